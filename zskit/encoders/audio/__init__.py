"""Audio encoders as PyTorch modules; importing this package registers every one of them.

Build them by name: ``zskit.create_audio_encoder("yamnet", pretrained="audioset")``;
``zskit.list_audio_encoders(pretrained=True)`` lists every ``name.tag``. Each encoder module
registers itself on import (``@register_audio_encoder``), so a new module needs one import line
below. The classes are exported for type checks and direct use with a config.
"""

from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.encoders.audio.image_backbones import (
    EfficientNetLiteAudioConfig,
    EfficientNetLiteAudioEncoder,
    ResNetAudioConfig,
    ResNetAudioEncoder,
    ViTAudioConfig,
    ViTAudioEncoder,
)
from zskit.encoders.audio.panns import PannsCnn, PannsConfig
from zskit.encoders.audio.passt import PaSST, PaSSTConfig
from zskit.encoders.audio.vggish import Vggish, VggishConfig
from zskit.encoders.audio.yamnet import (
    YAMNET_H5,
    YAMNET_LAYERS,
    YAMNET_PRETRAINED,
    Yamnet,
    YamnetConfig,
    class_names,
    load_yamnet_weights,
)

__all__ = [
    "YAMNET_H5",
    "YAMNET_LAYERS",
    "YAMNET_PRETRAINED",
    "ASTEncoder",
    "ASTEncoderConfig",
    "EfficientNetLiteAudioConfig",
    "EfficientNetLiteAudioEncoder",
    "PaSST",
    "PaSSTConfig",
    "PannsCnn",
    "PannsConfig",
    "ResNetAudioConfig",
    "ResNetAudioEncoder",
    "Vggish",
    "VggishConfig",
    "ViTAudioConfig",
    "ViTAudioEncoder",
    "Yamnet",
    "YamnetConfig",
    "class_names",
    "load_yamnet_weights",
]
