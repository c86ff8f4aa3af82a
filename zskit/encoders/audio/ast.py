"""AST, the Audio Spectrogram Transformer (Gong et al., Interspeech 2021), as a zskit encoder.

The transformer is transformers' ``ASTModel`` built from an ``ASTConfig`` (no hub download); the
front end is zskit's :class:`~zskit.audio.KaldiFbank` (``KaldiFbankConfig.ast()``: 128 Kaldi
filter-bank bins every 10 ms, padded or cut to ``max_length`` frames, normalised to mean 0 and
std 0.5 with the data set's statistics), exactly as AST prepares its input.

- Patches are 16x16 with ``frequency_stride`` x ``time_stride`` (10 x 10 = overlap 6). Their
  count is ``((n_mels - 16) // fs + 1) * ((max_length - 16) // ts + 1)``: 12 x 101 = 1212 for
  AudioSet's 1024 frames. The paper's ``N = 12 * ceil((100 t - 16) / 10)`` agrees whenever
  ``100 t - 16`` is not a multiple of 10 (and counts one column less when it is).
- ``patch_shape=(128, 2)`` (with strides 128 and 2) gives paper 2's rectangular patches in
  temporal order (Table 6): the patch embedding and positional embedding of ``ASTModel`` are
  replaced by ones of that shape; everything else is unchanged.
- A randomly initialised AST starts its [CLS], [DIST] and positional embeddings from a truncated
  normal (std 0.02) as AST's own code does (``ASTModel`` alone would start them at zero, which
  makes every position look alike at the first step). ImageNet weights:
  :func:`zskit.adapt.adapt_vision_transformer`.
- The clip embedding is AST's pooled output, the mean of the final-normed [CLS] and [DIST]
  tokens; ``tokens`` are the patch tokens (frequency-major: token ``f * T' + t``).
- ``classifier`` (LayerNorm + Linear, as ``ASTForAudioClassification``) gives ``logits`` when
  ``num_classes > 0``.
- Module names are those of ``ASTForAudioClassification`` (``audio_spectrogram_transformer``,
  ``classifier``), so the state dict is the Hugging Face one of the installed transformers.

Pretrained weights (tags ``audioset`` and ``speechcommands``) are the MIT checkpoints on the
Hugging Face hub, loaded with ``from_pretrained`` for users who are online; the loader checks that
every parameter was mapped (transformers renames older checkpoints' keys itself).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    check_lengths,
    check_waveforms,
)
from zskit.encoders.registry import register_audio_encoder
from zskit.encoders.weights import check_loading_info
from zskit.errors import ConfigError, DataError, require

log = logging.getLogger(__name__)

__all__ = ["AST_PRETRAINED", "ASTEncoder", "ASTEncoderConfig", "load_ast_pretrained"]

#: ASTConfig fields that must agree between a checkpoint and the encoder's config.
_ARCH_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "patch_size", "frequency_stride", "time_stride", "max_length", "num_mel_bins")


def _transformers() -> Any:
    """transformers' AST classes (imported on first use: the import takes seconds)."""
    return require("transformers.models.audio_spectrogram_transformer."
                   "modeling_audio_spectrogram_transformer", "the AST encoder")


@dataclass(frozen=True)
class ASTEncoderConfig:
    """Front end and transformer sizes of an AST; defaults are the AudioSet model (ViT-Base).

    ``max_length`` (frames) is the front end's ``target_length``: change it through
    ``frontend=KaldiFbankConfig.ast(target_length)``. Overlap = ``patch_size - stride``.
    """

    sample_rate: int = 16000
    frontend: KaldiFbankConfig = field(default_factory=KaldiFbankConfig.ast)
    embed_dim: int = 768  # hidden_size
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072  # intermediate_size
    patch_size: int = 16
    patch_shape: tuple[int, int] | None = None  # (frequency, time) of rectangular patches
    frequency_stride: int = 10
    time_stride: int = 10
    num_classes: int = 527  # 0: no classifier
    dropout: float = 0.0
    attn_dropout: float = 0.0
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"AST frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; use KaldiFbankConfig.ast() or change both."
            )
        if self.frontend.target_length is None:
            raise ConfigError("AST needs a fixed input length: set frontend.target_length "
                              "(e.g. KaldiFbankConfig.ast(1024)).")
        for name in ("embed_dim", "depth", "num_heads", "mlp_dim", "patch_size",
                     "frequency_stride", "time_stride"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"AST {name}={getattr(self, name)!r} must be positive.")
        if self.num_classes < 0:
            raise ConfigError(f"AST num_classes={self.num_classes} must be >= 0 (0: no classifier).")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"AST embed_dim={self.embed_dim} is not divisible by "
                              f"num_heads={self.num_heads}; pick a divisor.")
        if self.patch_shape is not None and (len(self.patch_shape) != 2
                                              or min(self.patch_shape) <= 0):
            raise ConfigError(f"AST patch_shape={self.patch_shape!r} must be two positive sizes "
                              "(frequency, time), e.g. (128, 2); or None for square patches.")
        pf, pt = self.patch_hw
        if self.num_mel_bins < pf or self.max_length < pt:
            raise ConfigError(
                f"AST input {self.num_mel_bins} bins x {self.max_length} frames is smaller than "
                f"one {pf}x{pt} patch; enlarge the front end."
            )

    @property
    def patch_hw(self) -> tuple[int, int]:
        """Patch height (frequency bins) and width (frames)."""
        if self.patch_shape is None:
            return self.patch_size, self.patch_size
        return int(self.patch_shape[0]), int(self.patch_shape[1])

    @property
    def max_length(self) -> int:
        """Frames the model sees (inputs are padded or cut to it)."""
        return int(self.frontend.target_length)

    @property
    def num_mel_bins(self) -> int:
        """Filter-bank bins."""
        return self.frontend.num_mel_bins

    @property
    def grid(self) -> tuple[int, int]:
        """Patch rows and columns, as ``ASTEmbeddings.get_shape`` computes them."""
        pf, pt = self.patch_hw
        rows = (self.num_mel_bins - pf) // self.frequency_stride + 1
        cols = (self.max_length - pt) // self.time_stride + 1
        return rows, cols

    @property
    def num_patches(self) -> int:
        """Patch tokens (1212 for the AudioSet model)."""
        rows, cols = self.grid
        return rows * cols

    def hf_config(self) -> Any:
        """The transformers ``ASTConfig`` of this model (square patches of the smaller side when
        ``patch_shape`` is rectangular: :class:`ASTEncoder` then replaces the patch embedding)."""
        return _transformers().ASTConfig(
            hidden_size=self.embed_dim, num_hidden_layers=self.depth,
            num_attention_heads=self.num_heads, intermediate_size=self.mlp_dim,
            hidden_dropout_prob=self.dropout, attention_probs_dropout_prob=self.attn_dropout,
            layer_norm_eps=self.layer_norm_eps, patch_size=min(self.patch_hw),
            frequency_stride=self.frequency_stride, time_stride=self.time_stride,
            max_length=self.max_length, num_mel_bins=self.num_mel_bins,
            num_labels=max(self.num_classes, 1),
        )

    @classmethod
    def speechcommands(cls, **overrides: Any) -> ASTEncoderConfig:
        """AST on Speech Commands V2: 128 frames (1.28 s), its statistics, 35 classes."""
        base = cls(frontend=KaldiFbankConfig.ast_speechcommands(), num_classes=35)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> ASTEncoderConfig:
        """A small random-init AST for tests: 32 bins x 128 frames, 32-d, 2 layers, 2 heads."""
        base = cls(frontend=KaldiFbankConfig(num_mel_bins=32, target_length=128), embed_dim=32,
                   depth=2, num_heads=2, mlp_dim=64, num_classes=0)
        return dataclasses.replace(base, **overrides)


class ASTEncoder(AudioEncoder):
    """AST: waveforms ``(B, T)`` at 16 kHz -> :class:`EncoderOutput` (pooled embedding, patch
    tokens, token mask, logits). Random init unless built with pretrained weights."""

    def __init__(self, cfg: ASTEncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ASTEncoderConfig()
        modeling = _transformers()
        hf_cfg = self.cfg.hf_config()
        self.frontend = KaldiFbank(self.cfg.frontend)
        self.audio_spectrogram_transformer = modeling.ASTModel(hf_cfg)
        self.classifier = modeling.ASTMLPHead(hf_cfg) if self.cfg.num_classes > 0 else None
        embeddings = self.audio_spectrogram_transformer.embeddings
        if len(set(self.cfg.patch_hw)) > 1:  # rectangular patches: ASTModel only has squares
            embeddings.patch_embeddings.projection = torch.nn.Conv2d(
                1, self.cfg.embed_dim, kernel_size=self.cfg.patch_hw,
                stride=(self.cfg.frequency_stride, self.cfg.time_stride))
            embeddings.position_embeddings = torch.nn.Parameter(
                torch.zeros(1, self.cfg.num_patches + 2, self.cfg.embed_dim))
        for p in (embeddings.cls_token, embeddings.distillation_token,
                  embeddings.position_embeddings):
            torch.nn.init.trunc_normal_(p, std=0.02)

    def features(self, waveforms: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> torch.Tensor:
        """AST's normalised filter bank ``(B, max_length, n_mels)`` (float32: the front end ignores
        autocast); with ``lengths``, each clip's features come from its real samples only (then
        padded as AST pads)."""
        return self.frontend(waveforms.float(), lengths)

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Pooled embedding, patch tokens, token mask and (with a classifier) logits."""
        x = check_waveforms(waveforms, self.sample_rate)
        lengths = check_lengths(lengths, x)
        if x.shape[-1] < self.cfg.frontend.frame_length:
            x = F.pad(x, (0, self.cfg.frontend.frame_length - x.shape[-1]))
        out = self.forward_fbank(self.features(x, lengths))
        n = torch.full((x.shape[0],), x.shape[-1]) if lengths is None else lengths
        frames = self.frontend.clip_frames(n)
        out.token_mask = self.token_mask(frames.to(x.device))
        return out

    def forward_fbank(self, fbank: torch.Tensor) -> EncoderOutput:
        """The transformer on normalised features ``(B, max_length, n_mels)``."""
        if fbank.shape[1:] != (self.cfg.max_length, self.cfg.num_mel_bins):
            raise ConfigError(
                f"AST expects features (B, {self.cfg.max_length}, {self.cfg.num_mel_bins}), got "
                f"{tuple(fbank.shape)}; compute them with encoder.features(waveforms)."
            )
        ast = self.audio_spectrogram_transformer
        # the float32 front end feeds a model that may be cast to bfloat16 / half
        dtype = ast.embeddings.patch_embeddings.projection.weight.dtype
        out = ast(input_values=fbank.to(dtype))
        pooled = out.pooler_output  # ([CLS] + [DIST]) / 2 after the final LayerNorm
        logits = self.classifier(pooled) if self.classifier is not None else None
        return EncoderOutput(embedding=pooled, tokens=out.last_hidden_state[:, 2:], logits=logits)

    def token_mask(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, num_patches)``: True for patches whose first frame holds real input."""
        rows, cols = self.cfg.grid
        starts = torch.arange(cols, device=frames.device) * self.cfg.time_stride
        real = starts[None, :] < frames[:, None]
        return real[:, None, :].expand(-1, rows, -1).reshape(frames.shape[0], rows * cols)


# --------------------------------------------------------------------------- pretrained weights


def load_ast_pretrained(model: ASTEncoder, source: str, **kwargs: Any) -> ASTEncoder:
    """Load an ``ASTForAudioClassification`` checkpoint (hub id or local directory) into ``model``.

    ``kwargs`` go to ``from_pretrained`` (e.g. ``revision=``). Raises :class:`DataError` when a
    parameter is missing, unexpected or mis-shaped, and :class:`ConfigError` when the checkpoint's
    architecture differs from ``model.cfg``.
    """
    modeling = _transformers()
    try:
        # ignore_mismatched_sizes: mis-shaped weights are reported in `info` (a DataError naming
        # them below) instead of failing with a bare RuntimeError.
        hf, info = modeling.ASTForAudioClassification.from_pretrained(
            source, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    except OSError as err:
        raise DataError(
            f"could not load AST weights from {source!r}: {str(err).rstrip('.')}. Check the network connection, or "
            "download the model once (huggingface-cli download ...) and pass its directory as "
            "PretrainedCfg(tag, extra={'hf_id': '/path/to/dir'})."
        ) from err
    hint = "It is not an AST checkpoint of the ASTForAudioClassification layout."
    check_loading_info(info, f"the AST checkpoint {source!r}", hint)
    if info.get("error_msgs"):
        raise DataError(f"the AST checkpoint {source!r} did not load ({info['error_msgs']}). {hint}")
    mismatch = {f: (getattr(hf.config, f), getattr(model.cfg.hf_config(), f))
                for f in _ARCH_FIELDS if getattr(hf.config, f) != getattr(model.cfg.hf_config(), f)}
    if mismatch:
        raise ConfigError(
            f"the AST checkpoint {source!r} has a different architecture than the encoder "
            f"(field: (checkpoint, encoder)) {mismatch}; build the encoder with matching settings."
        )
    state = hf.state_dict()
    if model.classifier is None:  # built without a classifier (num_classes=0): not wanted
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    elif hf.config.num_labels != model.cfg.num_classes:
        raise ConfigError(f"the AST checkpoint {source!r} has {hf.config.num_labels} classes, the "
                          f"encoder {model.cfg.num_classes}; set num_classes to match.")
    model.load_state_dict(state, strict=True)
    return model


_HUB = "https://huggingface.co/"
_LICENCE = "BSD-3-Clause"  # the licence tag of MIT's AST model cards (and of github.com/YuanGongND/ast)

#: The MIT AST checkpoints on the Hugging Face hub; ``extra["config"]`` holds the fields they fix
#: (the registry applies them). ``extra["revision"]`` pins the hub commit; None (the newest) until
#: someone looks the commit ids up online, which could not be done where these were written.
AST_PRETRAINED: list[PretrainedCfg] = [
    PretrainedCfg(
        tag="audioset", url=_HUB + "MIT/ast-finetuned-audioset-10-10-0.4593", licence=_LICENCE,
        verified="keys", sample_rate=16000, mean=-4.2677393, std=4.5689974, num_classes=527,
        notes="AST (ImageNet + AudioSet), stride 10x10, 1024 frames, AudioSet mAP 0.4593 "
              "(paper 2's single model). Loaded with transformers' from_pretrained; the hub "
              "verifies the download.",
        extra={"hf_id": "MIT/ast-finetuned-audioset-10-10-0.4593", "revision": None,
               "config": {"frontend": KaldiFbankConfig.ast(), "num_classes": 527}},
    ),
    PretrainedCfg(
        tag="speechcommands", url=_HUB + "MIT/ast-finetuned-speech-commands-v2", licence=_LICENCE,
        verified="keys", sample_rate=16000, mean=-6.845978, std=5.5654526, num_classes=35,
        notes="AST on Speech Commands V2 (35 classes), 128 frames, accuracy 98.1% in paper 2.",
        extra={"hf_id": "MIT/ast-finetuned-speech-commands-v2", "revision": None,
               "config": {"frontend": KaldiFbankConfig.ast_speechcommands(), "num_classes": 35}},
    ),
]


@register_audio_encoder("ast", config=ASTEncoderConfig(), tiny=ASTEncoderConfig.tiny(),
                        pretrained=AST_PRETRAINED,
                        description="AST: audio spectrogram transformer, 16x16 patches with "
                                    "overlap 6, 768-d (Gong et al. 2021)")
def _build_ast(cfg: ASTEncoderConfig, pretrained: PretrainedCfg | None) -> ASTEncoder:
    """AST (transformers' ASTModel on zskit's Kaldi filter bank)."""
    model = ASTEncoder(cfg)
    if pretrained is not None:
        source = pretrained.extra.get("hf_id")
        if not source:
            raise ConfigError(f"AST weights {pretrained.tag!r} name no checkpoint; set "
                              "extra={'hf_id': <hub id or local directory>}.")
        load_ast_pretrained(model, source, revision=pretrained.extra.get("revision"))
    return model

