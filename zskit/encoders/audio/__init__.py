"""Audio encoders as PyTorch modules."""

from zskit.encoders.audio.yamnet import (
    YAMNET_H5,
    YAMNET_LAYERS,
    Yamnet,
    YamnetConfig,
    YamnetTorchOutput,
    class_names,
    create_yamnet,
    load_yamnet_weights,
)

__all__ = [
    "YAMNET_H5",
    "YAMNET_LAYERS",
    "Yamnet",
    "YamnetConfig",
    "YamnetTorchOutput",
    "class_names",
    "create_yamnet",
    "load_yamnet_weights",
]
