"""Cropping, padding, batching and segmenting waveforms along the last dimension (torch, any device)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from zskit.errors import ConfigError

__all__ = ["center_pad", "pad_batch", "random_crop", "segment", "segment_count"]


def _check_length(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive int (a number of samples).")


def random_crop(x: torch.Tensor, length: int, generator: torch.Generator | None = None,
                pad: bool = False) -> torch.Tensor:
    """A random window of ``length`` samples along the last dimension of ``x``.

    One offset, uniform over all valid positions, is shared by every leading dimension (e.g. the
    channels of one clip); crop clip by clip for per-example offsets. Inputs no longer than
    ``length`` are returned unchanged, or zero-padded at the end to ``length`` when ``pad=True``.
    The offset is needed on the host, so without a ``generator`` it is drawn from torch's global
    CPU generator even for ``x`` on a GPU (a draw there would wait for the GPU).
    """
    _check_length("length", length)
    n = x.shape[-1]
    if n <= length:
        return F.pad(x, (0, length - n)) if pad and n < length else x
    device = generator.device if generator is not None else torch.device("cpu")
    start = int(torch.randint(0, n - length + 1, (1,), generator=generator, device=device))
    return x[..., start:start + length]


def center_pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """``x`` zero-padded on both sides (centred) to ``length`` samples, or centre-cropped if longer.

    With an odd difference the extra padded sample goes to the end, and a crop keeps the earlier
    of the two middle windows.
    """
    _check_length("length", length)
    n = x.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return x[..., start:start + length]
    left = (length - n) // 2
    return F.pad(x, (left, length - n - left))


def pad_batch(waves: Sequence[torch.Tensor], max_length: int | None = None,
              pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D waveforms into ``(B, T)`` padded at the end, with a bool ``(B, T)`` mask of real samples.

    ``T`` is the longest waveform, capped at ``max_length``; longer waveforms are cut at
    ``max_length`` (their start is kept). All inputs must share one dtype and device.
    """
    if len(waves) == 0:
        raise ConfigError("pad_batch got an empty list; pass at least one waveform.")
    for i, w in enumerate(waves):
        if w.ndim != 1:
            raise ConfigError(f"pad_batch expects 1-D waveforms; item {i} has shape {tuple(w.shape)}. "
                              "Average or pick a channel first.")
    if max_length is not None:
        _check_length("max_length", max_length)
    lengths = [w.shape[0] if max_length is None else min(w.shape[0], max_length) for w in waves]
    total = max(lengths)
    first = waves[0]
    batch = torch.full((len(waves), total), pad_value, dtype=first.dtype, device=first.device)
    mask = torch.zeros((len(waves), total), dtype=torch.bool, device=first.device)
    for i, (w, n) in enumerate(zip(waves, lengths)):
        batch[i, :n] = w[:n]
        mask[i, :n] = True
    return batch, mask


def segment_count(num_samples: int, segment_length: int, hop: int | None = None) -> int:
    """How many segments :func:`segment` cuts ``num_samples`` samples into: the fewest that
    cover every sample (1 for a clip no longer than ``segment_length``)."""
    hop = segment_length if hop is None else hop
    return 1 if num_samples <= segment_length else 1 + -(-(num_samples - segment_length) // hop)


def segment(x: torch.Tensor, segment_length: int,
            hop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the last dimension of ``x`` into fixed-length segments.

    Returns ``(segments, valid)``: ``segments`` is ``(..., n_seg, segment_length)``, where segment
    ``i`` starts at sample ``i * hop`` (``hop`` defaults to ``segment_length``, no overlap; a smaller
    hop overlaps). ``n_seg`` is the fewest segments that cover every sample: 1 for inputs no longer
    than ``segment_length``, else ``1 + ceil((T - segment_length) / hop)``. The tail is zero-padded.
    ``valid`` is an int64 ``(n_seg,)`` tensor (same for every leading index) with the number of real
    samples in each segment; ``valid / segment_length`` is the valid fraction.
    """
    _check_length("segment_length", segment_length)
    hop = segment_length if hop is None else hop
    _check_length("hop", hop)
    if hop > segment_length:
        raise ConfigError(f"hop={hop} is larger than segment_length={segment_length}, which would "
                          "skip samples; use hop <= segment_length.")
    n = x.shape[-1]
    if n == 0:
        raise ConfigError("segment got an empty waveform (0 samples); drop it before segmenting.")
    n_seg = segment_count(n, segment_length, hop)
    total = (n_seg - 1) * hop + segment_length
    segments = F.pad(x, (0, total - n)).unfold(-1, segment_length, hop)
    starts = torch.arange(n_seg, device=x.device) * hop
    valid = (n - starts).clamp(min=0, max=segment_length)
    return segments, valid
