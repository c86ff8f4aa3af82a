"""PaSST, the Patchout faSt Spectrogram Transformer (Koutini et al., Interspeech 2022), as zskit encoders.

A ViT over 16x16 patches of PaSST's 128-bin log-mel spectrogram (``LogMelConfig.passt()``, 32 kHz)
with a [CLS] and a [DIST] token (DeiT), written here with the parameter names of the official
implementation (github.com/kkoutini/PaSST, ``models/passt.py``; also the ``hear21passt`` package),
so the released checkpoints load one to one:

- ``patch_embed.proj``: ``Conv2d(1, D, 16, stride=(frequency_stride, time_stride))``;
- ``cls_token`` and ``dist_token`` ``(1, 1, D)``, ``new_pos_embed`` ``(1, 2, D)`` (their positions);
- separate frequency and time positional embeddings ``freq_new_pos_embed`` ``(1, D, F', 1)`` and
  ``time_new_pos_embed`` ``(1, D, 1, T')`` with ``F' = n_mels // frequency_stride`` and
  ``T' = input_frames // time_stride`` (12 x 99 for PaSST-S: 128 mels, 998 frames, stride 10);
- ``blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2`` (pre-norm blocks,
  LayerNorm eps 1e-6, qkv with bias, GELU), ``norm``;
- ``head`` = ``LayerNorm`` (``head.0``) + ``Linear`` (``head.1``) applied to the clip embedding.
  The checkpoints also hold DeiT's ``head_dist``, which PaSST's forward never uses; the loader
  drops it by name (see ``UNUSED_CHECKPOINT_KEYS``).

Behaviour (as in the official model):

- The clip embedding is the mean of the final-normed [CLS] and [DIST] tokens (768-d), the
  ``features`` PaSST returns next to its logits and what the zero-shot paper embeds.
- Structured patchout in training: ``s_patchout_t`` whole time columns and ``s_patchout_f`` whole
  frequency rows of the patch grid are dropped at random (after the positional embeddings are
  added); nothing is dropped in eval mode.
- Inputs shorter than the trained length use only the first time positions (eval) or a random
  window of them (training).
- Clips longer than ``segment_seconds`` (10 s) are cut into segments
  (``zskit.audio.segments.segment``, zero-padded tail), each segment is embedded and the clip
  embedding (and logits) is the mean over the segments of the clip's own samples (paper 4): in a
  padded batch, each clip uses the segments ``segment`` would cut it alone into.

Registered encoders (``create_audio_encoder(name, pretrained=tag)``): ``passt`` (PaSST-S, stride 10),
``passt_n`` (no overlap, stride 16) and ``passt_l`` (PaSST-L, 7 blocks). Their weights are the
GitHub release assets of kkoutini/PaSST (Apache-2.0); the releases publish no checksums.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio.frontends import LogMel, LogMelConfig
from zskit.audio.segments import segment, segment_count
from zskit.data.download import RemoteFile, download
from zskit.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    check_lengths,
    check_waveforms,
)
from zskit.encoders.registry import register_audio_encoder
from zskit.encoders.weights import check_state_dict, load_state_file
from zskit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "PASST_PRETRAINED",
    "UNUSED_CHECKPOINT_KEYS",
    "PaSST",
    "PaSSTConfig",
    "load_passt_checkpoint",
    "load_passt_state_dict",
    "passt_state_dict",
]

#: Keys of the official checkpoints that zskit's PaSST does not use, and why.
UNUSED_CHECKPOINT_KEYS: dict[str, str] = {
    "head_dist.weight": "DeiT's distillation head; PaSST's forward classifies the mean of the "
                        "[CLS] and [DIST] features with `head` only and never calls it",
    "head_dist.bias": "see head_dist.weight",
}


@dataclass(frozen=True)
class PaSSTConfig:
    """Front end, sizes, patchout and segmenting of a PaSST; defaults are PaSST-S (stride 10).

    ``input_frames`` is the spectrogram length the positional embedding was built for (the
    official ``input_tdim``, 998); the time embedding has ``input_frames // time_stride`` positions.
    Patchout defaults are paper 4's (Table 2: 4 frequency rows, 50 time columns for PaSST-S).
    """

    sample_rate: int = 32000
    frontend: LogMelConfig = field(default_factory=LogMelConfig.passt)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    frequency_stride: int = 10
    time_stride: int = 10
    input_frames: int = 998
    num_classes: int = 527  # 0: no classifier head
    s_patchout_t: int = 50  # time columns dropped in training
    s_patchout_f: int = 4  # frequency rows dropped in training
    dropout: float = 0.0
    attn_dropout: float = 0.0
    segment_seconds: float = 10.0  # longer clips are embedded segment by segment and averaged
    segment_hop_seconds: float | None = None  # None: segments do not overlap

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"PaSST frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; use LogMelConfig.passt() or change both."
            )
        for name in ("embed_dim", "depth", "num_heads", "patch_size", "frequency_stride",
                     "time_stride", "input_frames", "mlp_ratio", "segment_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"PaSST {name}={getattr(self, name)!r} must be positive.")
        for name in ("num_classes", "s_patchout_t", "s_patchout_f"):
            if getattr(self, name) < 0:
                raise ConfigError(f"PaSST {name}={getattr(self, name)!r} must be >= 0.")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"PaSST embed_dim={self.embed_dim} is not divisible by "
                              f"num_heads={self.num_heads}; pick a divisor.")
        conv_rows = (self.frontend.n_mels - self.patch_size) // self.frequency_stride + 1
        if self.frontend.n_mels < self.patch_size or conv_rows != self.freq_positions:
            raise ConfigError(
                f"PaSST with {self.frontend.n_mels} mel bins, patch {self.patch_size} and "
                f"frequency_stride {self.frequency_stride} gives {conv_rows} patch rows but "
                f"{self.freq_positions} frequency positions (n_mels // stride); choose n_mels and "
                "stride so they agree (e.g. 128 and 10, or a stride equal to the patch size)."
            )
        hop = self.segment_hop_seconds
        if hop is not None and not 0 < hop <= self.segment_seconds:
            raise ConfigError(f"segment_hop_seconds={hop} must lie in (0, segment_seconds="
                              f"{self.segment_seconds}].")
        columns = self.time_patches(self.frontend.num_frames(self.segment_samples))
        if columns > self.time_positions:
            raise ConfigError(
                f"a {self.segment_seconds} s segment gives {columns} time patches but the time "
                f"embedding has {self.time_positions} (input_frames={self.input_frames}); "
                "shorten segment_seconds or raise input_frames."
            )

    @property
    def freq_positions(self) -> int:
        """Rows of the frequency positional embedding (``n_mels // frequency_stride``)."""
        return self.frontend.n_mels // self.frequency_stride

    @property
    def time_positions(self) -> int:
        """Columns of the time positional embedding (``input_frames // time_stride``)."""
        return self.input_frames // self.time_stride

    @property
    def segment_samples(self) -> int:
        """Samples of one segment (320,000 for 10 s at 32 kHz)."""
        return round(self.segment_seconds * self.sample_rate)

    @property
    def segment_hop_samples(self) -> int:
        """Samples between segment starts."""
        hop = self.segment_seconds if self.segment_hop_seconds is None else self.segment_hop_seconds
        return round(hop * self.sample_rate)

    @property
    def min_samples(self) -> int:
        """Shortest waveform that gives one patch column; shorter clips are zero-padded to it."""
        fe = self.frontend
        extra = 1 if fe.preemphasis > 0 else 0
        if fe.center:
            need = (self.patch_size - 1) * fe.hop_length + 2 * (fe.n_fft // 2) - fe.n_fft
            return max(need + extra, fe.n_fft // 2 + 1 + extra)  # reflect padding needs > n_fft/2
        return (self.patch_size - 1) * fe.hop_length + fe.win + extra

    def time_patches(self, frames: int) -> int:
        """Patch columns of a spectrogram with ``frames`` frames."""
        return max(0, (frames - self.patch_size) // self.time_stride + 1)

    def num_patches(self, num_samples: int) -> int:
        """Patch tokens of one segment of ``num_samples`` samples in eval mode (no patchout)."""
        frames = self.frontend.num_frames(max(num_samples, self.min_samples))
        return self.freq_positions * min(self.time_patches(frames), self.time_positions)

    @classmethod
    def passt_s(cls, **overrides: Any) -> PaSSTConfig:
        """PaSST-S: 16x16 patches with stride 10 (overlap 6), 12 blocks (the defaults)."""
        return cls(**overrides)

    @classmethod
    def passt_n(cls, **overrides: Any) -> PaSSTConfig:
        """PaSST-N: non-overlapping 16x16 patches (stride 16); patchout 2 rows, 15 columns."""
        base = cls(frequency_stride=16, time_stride=16, s_patchout_f=2, s_patchout_t=15)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def passt_l(cls, **overrides: Any) -> PaSSTConfig:
        """PaSST-L ("light"): PaSST-S cut to 7 blocks (the released ``passt-l-kd`` model)."""
        return dataclasses.replace(cls(depth=7), **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> PaSSTConfig:
        """A small random-init PaSST for tests: 32 mels, 32-d, 2 blocks, 2 s segments, no head."""
        base = cls(frontend=dataclasses.replace(LogMelConfig.passt(), n_mels=32), embed_dim=32,
                   depth=2, num_heads=2, mlp_ratio=2.0, frequency_stride=16, time_stride=10,
                   input_frames=200, num_classes=0, s_patchout_t=3, s_patchout_f=1,
                   segment_seconds=2.0)
        return dataclasses.replace(base, **overrides)


class PatchEmbed(nn.Module):
    """Strided convolution over the spectrogram: ``(B, 1, F, T)`` -> ``(B, D, F', T')``."""

    def __init__(self, cfg: PaSSTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, cfg.patch_size,
                              stride=(cfg.frequency_stride, cfg.time_stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (rows: q, k, v; heads contiguous)."""

    def __init__(self, dim: int, num_heads: int, attn_dropout: float, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # scale 1 / sqrt(head_dim)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, d)))


class Mlp(nn.Module):
    """``fc1`` -> GELU -> ``fc2``."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, cfg: PaSSTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, cfg.num_heads, cfg.attn_dropout, cfg.dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaSST(AudioEncoder):
    """PaSST: waveforms ``(B, T)`` at 32 kHz -> :class:`EncoderOutput` (embedding ``(B, D)``,
    patch tokens, token mask and, with a head, logits). Random init until weights are loaded
    (``create_audio_encoder("passt", pretrained="audioset")`` or :func:`load_passt_checkpoint`).
    """

    def __init__(self, cfg: PaSSTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or PaSSTConfig()
        c = self.cfg
        d = c.embed_dim
        self.frontend = LogMel(c.frontend)
        self.patch_embed = PatchEmbed(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, d))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, d, c.freq_positions, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, d, 1, c.time_positions))
        self.pos_drop = nn.Dropout(c.dropout)
        self.blocks = nn.Sequential(*[Block(c) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = (nn.Sequential(nn.LayerNorm(d), nn.Linear(d, c.num_classes))
                     if c.num_classes > 0 else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViT initialisation: truncated normal (std 0.02) tokens, embeddings and linear weights."""
        for p in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                  self.time_new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """PaSST's log-mel ``(B, 1, n_mels, frames)`` in float32 (the front end ignores autocast)."""
        return self.frontend(waveforms.float()).unsqueeze(1)

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Embeddings, tokens and logits of waveforms ``(B, T)``; ``lengths`` counts real samples.

        Clips longer than ``cfg.segment_seconds`` are segmented: ``tokens`` then concatenates the
        segments' tokens and ``embedding``/``logits`` average each clip's own segments.
        """
        x = check_waveforms(waveforms, self.sample_rate)
        b, n = x.shape
        lengths = check_lengths(lengths, x)  # on the CPU, where the frame counts are computed
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.long)
        seg_len = self.cfg.segment_samples
        if n <= seg_len:
            return self._forward_clips(x, lengths)
        hop = self.cfg.segment_hop_samples
        segs, _ = segment(x, seg_len, hop)  # (B, S, seg_len)
        s = segs.shape[1]
        starts = torch.arange(s) * hop
        # each clip uses the segments `segment` gives it alone (the fewest that cover its samples):
        # with overlapping segments, a later one may hold real samples that an earlier one covers
        counts = torch.tensor([segment_count(int(k), seg_len, hop) for k in lengths.tolist()])
        used_cpu = torch.arange(s)[None, :] < counts[:, None]  # (B, S), on the CPU
        real = (lengths[:, None] - starts[None, :]).clamp(0, seg_len) * used_cpu
        out = self._forward_clips(segs.reshape(b * s, seg_len), real.reshape(-1))
        used = used_cpu.to(x.device)  # every clip uses its first segment
        weights = used.to(out.embedding.dtype) / used.sum(1, keepdim=True)

        def average(t: torch.Tensor) -> torch.Tensor:
            return (t.view(b, s, -1) * weights[..., None]).sum(1)

        tokens = out.tokens.reshape(b, -1, out.tokens.shape[-1])
        mask = (out.token_mask.view(b, s, -1) & used[..., None]).reshape(b, -1)
        return EncoderOutput(embedding=average(out.embedding), tokens=tokens, token_mask=mask,
                             logits=None if out.logits is None else average(out.logits))

    def _forward_clips(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """Clips ``x`` of at most one segment; ``lengths`` (on the CPU: reading them from a GPU
        would make every step wait for it) counts their real samples, 0 for none."""
        if x.shape[-1] < self.cfg.min_samples:
            x = F.pad(x, (0, self.cfg.min_samples - x.shape[-1]))
        spec = self.spectrogram(x)
        frames = [self.cfg.frontend.num_frames(k) if k > 0 else 0 for k in lengths.tolist()]
        return self.forward_spectrogram(spec, torch.tensor(frames, device=x.device))

    def forward_spectrogram(self, spec: torch.Tensor,
                            frames: torch.Tensor | None = None) -> EncoderOutput:
        """The transformer on log-mel ``(B, 1, n_mels, T)`` or ``(B, n_mels, T)``.

        ``frames`` ``(B,)`` counts real frames per clip (for ``token_mask``). The spectrogram may
        have at most as many patch columns as the time embedding has positions.
        """
        c = self.cfg
        if spec.ndim == 3:
            spec = spec.unsqueeze(1)
        if spec.ndim != 4 or spec.shape[1] != 1 or spec.shape[-1] < c.patch_size:
            raise ConfigError(
                f"PaSST takes log-mel (B, n_mels, T) or (B, 1, n_mels, T) with T >= {c.patch_size} "
                f"frames, got {tuple(spec.shape)}; compute it with encoder.spectrogram(waveforms), "
                "or pass the waveforms to forward_features (it pads short clips)."
            )
        if spec.shape[2] != c.frontend.n_mels:
            raise ConfigError(f"the spectrogram has {spec.shape[2]} mel bins but PaSST's frequency "
                              f"positions are made for {c.frontend.n_mels}; feed {c.frontend.n_mels}.")
        # the float32 front end feeds a model that may be cast to bfloat16 / half
        x = self.patch_embed(spec.to(self.patch_embed.proj.weight.dtype))  # (B, D, F', T')
        b, _, n_f, n_t = x.shape
        t_pos = self.time_new_pos_embed
        if n_t > t_pos.shape[-1]:
            raise ConfigError(
                f"spectrogram gives {n_t} patch columns but the time embedding has "
                f"{t_pos.shape[-1]} positions; pass waveforms to forward() (it segments long clips) "
                "or cut the spectrogram."
            )
        offset = 0
        if self.training and n_t < t_pos.shape[-1]:
            offset = int(torch.randint(0, t_pos.shape[-1] - n_t + 1, (1,)))
        x = x + t_pos[..., offset:offset + n_t] + self.freq_new_pos_embed

        keep_t = torch.arange(n_t, device=x.device)
        keep_f = torch.arange(n_f, device=x.device)
        if self.training and c.s_patchout_t > 0 and n_t > 1:
            keep_t = _random_subset(n_t, n_t - min(c.s_patchout_t, n_t - 1), x.device)
            x = x[:, :, :, keep_t]
        if self.training and c.s_patchout_f > 0 and n_f > 1:
            keep_f = _random_subset(n_f, n_f - min(c.s_patchout_f, n_f - 1), x.device)
            x = x[:, :, keep_f, :]
        patches = x.flatten(2).transpose(1, 2)  # (B, F'' * T'', D), frequency-major

        cls = (self.cls_token + self.new_pos_embed[:, :1]).expand(b, -1, -1)
        dist = (self.dist_token + self.new_pos_embed[:, 1:]).expand(b, -1, -1)
        seq = self.blocks(self.pos_drop(torch.cat((cls, dist, patches), dim=1)))
        seq = self.norm(seq)
        embedding = (seq[:, 0] + seq[:, 1]) / 2

        if frames is None:
            frames = torch.full((b,), spec.shape[-1], device=x.device)
        starts = keep_t * c.time_stride  # first frame of each kept patch column
        real = starts[None, :] < frames.to(x.device)[:, None]  # (B, T'')
        mask = real[:, None, :].expand(b, keep_f.numel(), -1).reshape(b, -1)
        logits = self.head(embedding) if self.head is not None else None
        return EncoderOutput(embedding=embedding, tokens=seq[:, 2:], token_mask=mask, logits=logits)


def _random_subset(n: int, k: int, device: torch.device) -> torch.Tensor:
    """``k`` of ``range(n)`` drawn at random, in increasing order."""
    return torch.randperm(n, device=device)[:k].sort().values


# --------------------------------------------------------------------------- official checkpoints


def passt_state_dict(model: PaSST, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official PaSST state dict checked against ``model`` and ready for ``load_state_dict``.

    Unwraps a ``{"model": ...}`` checkpoint, drops the keys in ``UNUSED_CHECKPOINT_KEYS`` (and the
    ``head.*`` keys when the model has no head) and raises :class:`DataError` naming every
    missing, unexpected or wrongly shaped key. Nothing else is renamed: zskit uses the official
    parameter names.
    """
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]  # DeiT-style wrapper, as the official loader accepts
    sd = dict(state_dict)
    for key, reason in UNUSED_CHECKPOINT_KEYS.items():
        if sd.pop(key, None) is not None:
            log.debug("dropping %s from the PaSST checkpoint: %s", key, reason)
    if model.head is None:  # built with num_classes=0: the checkpoint's classifier is not wanted
        for key in [k for k in sd if k.startswith("head.")]:
            del sd[key]
    c = model.cfg
    check_state_dict(
        model.state_dict(), sd, "the PaSST checkpoint",
        f"The model has depth {c.depth}, strides {c.frequency_stride}x{c.time_stride}, "
        f"{c.time_positions} time positions and {c.num_classes} classes: build the encoder whose "
        "config matches the weights (passt, passt_n, passt_l, or set input_frames/num_classes).",
    )
    return sd


def load_passt_state_dict(model: PaSST, state_dict: Mapping[str, torch.Tensor]) -> PaSST:
    """Load an official PaSST state dict into ``model`` (every parameter mapped); returns ``model``."""
    model.load_state_dict(passt_state_dict(model, state_dict), strict=True)
    return model


def load_passt_checkpoint(model: PaSST, path: str | os.PathLike) -> PaSST:
    """Load an official PaSST ``.pt`` file (e.g. ``passt-s-f128-p16-s10-ap.476-swa.pt``) into ``model``."""
    return load_passt_state_dict(model, load_state_file(path))


# --------------------------------------------------------------------------- registry

_RELEASES = "https://github.com/kkoutini/PaSST/releases/download/"
_LICENCE = "Apache-2.0"  # the licence of github.com/kkoutini/PaSST, which releases the weights
_NO_SUM = "GitHub releases publish no checksum, so the download is not verified."


def _weights(tag: str, path: str, num_classes: int, notes: str, **config: Any) -> PretrainedCfg:
    return PretrainedCfg(
        tag=tag, url=_RELEASES + path, licence=_LICENCE, verified="keys", sample_rate=32000,
        mean=-4.5, std=5.0,  # PaSST's fixed log-mel normalisation (x + 4.5) / 5
        num_classes=num_classes, notes=f"{notes} {_NO_SUM}",
        extra={"config": {"num_classes": num_classes, **config}},
    )


#: The released weights per registered encoder; ``extra["config"]`` holds the fields they fix
#: (the registry applies them).
PASST_PRETRAINED: dict[str, list[PretrainedCfg]] = {
    "passt": [
        _weights("audioset", "v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt", 527,
                 "PaSST-S on AudioSet, mAP .476 (SWA); hear21passt's default."),
        _weights("audioset_kd", "v.0.0.9/passt-s-kd-ap.486.pt", 527,
                 "PaSST-S on AudioSet with knowledge distillation, mAP .486."),
        _weights("audioset_20s", "v0.0.5/passt-s-f128-20sec-p16-s10-ap.474-swa.pt", 527,
                 "PaSST-S with a 20 s time embedding (paper 4's PaSST-S20), mAP .474.",
                 input_frames=2000, segment_seconds=20.0, s_patchout_t=80),  # Table 2: 4; 80
        _weights("openmic", "v0.0.5/openmic-passt-s-f128-10sec-p16-s10-ap.85.pt", 20,
                 "PaSST-S fine-tuned on OpenMIC-2018 (20 instruments), mAP .85."),
        _weights("fsd50k", "v0.0.5/fsd50k-passt-s-f128-p16-s10-ap.655.pt", 200,
                 "PaSST-S fine-tuned on FSD50K (200 classes), mAP .655."),
    ],
    "passt_n": [
        _weights("audioset", "v0.0.2-audioset/passt-s-f128-p16-s16-ap.473-swa.pt", 527,
                 "PaSST-N (no overlap, stride 16) on AudioSet, mAP .473 (SWA)."),
        _weights("fsd50k", "v0.0.5/fsd50k-passt-s-n-f128-p16-s16-ap.642.pt", 200,
                 "PaSST-N fine-tuned on FSD50K (200 classes), mAP .642."),
    ],
    "passt_l": [
        _weights("audioset", "v.0.0.10/passt-l-kd-ap.47.pt", 527,
                 "PaSST-L (7 blocks) on AudioSet with knowledge distillation, mAP .47."),
    ],
}


def _build(cfg: PaSSTConfig, pretrained: PretrainedCfg | None) -> PaSST:
    """A PaSST; the registry has already set the fields ``pretrained.extra["config"]`` fixes."""
    model = PaSST(cfg)
    if pretrained is not None:
        if not pretrained.url:
            raise ConfigError(f"PaSST weights {pretrained.tag!r} have no url; load a local file "
                              "with zskit.encoders.audio.passt.load_passt_checkpoint(model, path).")
        path = download(RemoteFile(pretrained.url, sha256=pretrained.sha256,
                                   filename=pretrained.filename, licence=pretrained.licence))
        load_passt_checkpoint(model, path)
    return model


@register_audio_encoder("passt", config=PaSSTConfig.passt_s(), tiny=PaSSTConfig.tiny(),
                        pretrained=PASST_PRETRAINED["passt"],
                        description="PaSST-S: patchout spectrogram transformer, 16x16 patches, "
                                    "stride 10, 768-d (Koutini et al. 2022)")
def _build_passt(cfg: PaSSTConfig, pretrained: PretrainedCfg | None) -> PaSST:
    """PaSST-S (stride 10)."""
    return _build(cfg, pretrained)


@register_audio_encoder("passt_n", config=PaSSTConfig.passt_n(), tiny=PaSSTConfig.tiny(),
                        pretrained=PASST_PRETRAINED["passt_n"],
                        description="PaSST-N: PaSST with non-overlapping 16x16 patches (stride 16)")
def _build_passt_n(cfg: PaSSTConfig, pretrained: PretrainedCfg | None) -> PaSST:
    """PaSST-N (stride 16)."""
    return _build(cfg, pretrained)


@register_audio_encoder("passt_l", config=PaSSTConfig.passt_l(), tiny=PaSSTConfig.tiny(),
                        pretrained=PASST_PRETRAINED["passt_l"],
                        description="PaSST-L: the light 7-block PaSST (stride 10)")
def _build_passt_l(cfg: PaSSTConfig, pretrained: PretrainedCfg | None) -> PaSST:
    """PaSST-L (7 blocks)."""
    return _build(cfg, pretrained)

