"""Batch augmentations on spectrograms and waveforms: SpecAugment masking and mixup.

Both draw their randomness from an optional ``torch.Generator`` (on any device; draws are moved to
the data's device), so a seeded generator makes them reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zskit.errors import ConfigError

__all__ = ["SpecAugment", "mixup"]


def _band_mask(batch: int, size: int, max_width: int, n_masks: int,
               generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``(batch, size)`` bool: the union of ``n_masks`` random bands per row, widths 0..max_width."""
    gdev = generator.device if generator is not None else device
    shape = (batch, n_masks)
    width = torch.randint(0, max_width + 1, shape, generator=generator, device=gdev).clamp(max=size)
    start = (torch.rand(shape, generator=generator, device=gdev) * (size - width + 1)).long()
    idx = torch.arange(size, device=gdev)
    inside = (idx >= start[..., None]) & (idx < (start + width)[..., None])
    return inside.any(dim=1).to(device)


class SpecAugment(nn.Module):
    """Frequency and time masking (SpecAugment without warping), active only in training mode.

    Input ``(B, ..., F, T)`` by default (``freq_dim=-2, time_dim=-1``); for AST's ``(B, T, F)``
    layout pass ``freq_dim=-1, time_dim=-2``. A 2-D input is one example. Each example gets its own
    ``n_freq_masks`` bands of width uniform in ``0..freq_mask_param`` and ``n_time_masks`` of
    width ``0..time_mask_param`` (clipped to the axis), each at a uniform start, filled with
    ``mask_value``. Defaults are AST's (48 frequency bins, 192 frames). In eval mode ``forward``
    returns its input unchanged.
    """

    def __init__(self, freq_mask_param: int = 48, time_mask_param: int = 192, n_freq_masks: int = 1,
                 n_time_masks: int = 1, mask_value: float = 0.0, freq_dim: int = -2,
                 time_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("freq_mask_param", freq_mask_param), ("time_mask_param", time_mask_param),
                            ("n_freq_masks", n_freq_masks), ("n_time_masks", n_time_masks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r} must be an int >= 0.")
        if {freq_dim, time_dim} not in ({-2, -1},):
            raise ConfigError(f"freq_dim={freq_dim} and time_dim={time_dim} must be the last two "
                              "dimensions: (-2, -1) for (B, F, T) or (-1, -2) for (B, T, F).")
        self.freq_mask_param = freq_mask_param
        self.time_mask_param = time_mask_param
        self.n_freq_masks = n_freq_masks
        self.n_time_masks = n_time_masks
        self.mask_value = mask_value
        self.freq_dim = freq_dim
        self.time_dim = time_dim

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return x
        if x.ndim < 2:
            raise ConfigError(f"SpecAugment needs a spectrogram with at least 2 dims, got {tuple(x.shape)}.")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(0)
        batch = x.shape[0]
        masks = ((self.freq_dim, self.freq_mask_param, self.n_freq_masks),
                 (self.time_dim, self.time_mask_param, self.n_time_masks))
        for dim, max_width, n_masks in masks:
            if max_width == 0 or n_masks == 0:
                continue
            size = x.shape[dim]
            band = _band_mask(batch, size, max_width, n_masks, generator, x.device)
            view = [batch] + [1] * (x.ndim - 1)
            view[dim] = size
            x = x.masked_fill(band.view(view), self.mask_value)
        return x.squeeze(0) if unbatched else x

    def extra_repr(self) -> str:
        return (f"freq_mask_param={self.freq_mask_param}, time_mask_param={self.time_mask_param}, "
                f"n_freq_masks={self.n_freq_masks}, n_time_masks={self.n_time_masks}")


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.5,
          generator: torch.Generator | None = None,
          per_example: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each example with a random partner from the same batch (a random permutation).

    ``x_mixed = lam * x + (1 - lam) * x[perm]`` and the same for ``y`` (float labels, e.g.
    multi-hot or one-hot ``(B, C)``), with ``lam ~ Beta(alpha, alpha)`` drawn per example (or once
    per batch when ``per_example=False``). Returns ``(x_mixed, y_mixed, lam)``, ``lam`` shaped
    ``(B,)``. Beta draws come from numpy seeded by ``generator`` (torch has no seeded Beta sampler),
    so the result is reproducible from the generator alone.
    """
    if not alpha > 0:
        raise ConfigError(f"mixup alpha={alpha!r} must be > 0 (AST uses 0.5).")
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"mixup got {x.shape[0]} inputs but {y.shape[0]} labels; pass one label row "
                          "per example.")
    if not x.is_floating_point():
        raise ConfigError(f"mixup needs float inputs, got {x.dtype} (mixing would truncate); "
                          "convert them first, e.g. x.float() (waveforms from "
                          "zskit.audio.load_audio already are).")
    if not y.is_floating_point():
        raise ConfigError(f"mixup needs float labels, got {y.dtype}; one-hot encode class indices "
                          "with torch.nn.functional.one_hot(y, n_classes).float().")
    batch = x.shape[0]
    gdev = generator.device if generator is not None else x.device
    perm = torch.randperm(batch, generator=generator, device=gdev).to(x.device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gdev))
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=batch if per_example else 1)
    lam = torch.as_tensor(draws, dtype=x.dtype, device=x.device).expand(batch).contiguous()

    def mix(t: torch.Tensor) -> torch.Tensor:
        w = lam.to(t.dtype).view(batch, *([1] * (t.ndim - 1)))
        return w * t + (1 - w) * t[perm]

    return mix(x), mix(y), lam
