"""Batch augmentations on spectrograms and waveforms: SpecAugment masking, mixup, time and
frequency shifts, random gain.

The modules (``SpecAugment``, ``RandomShift``, ``RandomGain``) act only in training mode, so they
can sit in front of a model inside an ``nn.Sequential`` that ``zskit.train.fit`` trains: fit
switches them on for training batches and off for validation. Mixup changes the labels too; use it
through a loss (``zskit.train.recipes.mixup_loss``). All draw their randomness from an optional
``torch.Generator`` (on any device; draws are moved to the data's device), so a seeded generator
makes them reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zskit.errors import ConfigError

__all__ = ["RandomGain", "RandomShift", "SpecAugment", "mix", "mixup", "mixup_pairs", "shift"]


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


def mixup_pairs(batch: int, alpha: float = 0.5, generator: torch.Generator | None = None,
                per_example: bool = True, prob: float = 1.0,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Partners and weights of one mixup draw: ``(perm, lam)``, both ``(batch,)`` on ``device``.

    ``perm`` is a random permutation (example ``i`` is mixed with ``perm[i]``); ``lam ~
    Beta(alpha, alpha)`` per example (or once per batch when ``per_example=False``). With
    ``prob < 1`` only that fraction of examples is mixed (the others get ``lam = 1``): AST mixes
    half of its training examples (``prob=0.5``) with ``lam ~ Beta(10, 10)``. Beta draws come from
    numpy seeded by ``generator`` (torch has no seeded Beta sampler), so the result is
    reproducible from the generator alone. Without a generator the seed comes from torch's global
    CPU generator, whatever ``device`` is: numpy needs it on the host, and a seed drawn on a GPU
    would make every training step wait for the GPU (a GPU ``generator`` still costs that wait).
    """
    if not alpha > 0:
        raise ConfigError(f"mixup alpha={alpha!r} must be > 0 (e.g. 0.5, or AST's 10).")
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"mixup prob={prob!r} must lie in [0, 1].")
    gdev = generator.device if generator is not None else torch.device(device)
    perm = torch.randperm(batch, generator=generator, device=gdev).to(device)
    seed_device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=seed_device))
    rng = np.random.default_rng(seed)
    draws = rng.beta(alpha, alpha, size=batch if per_example else 1)
    lam = np.broadcast_to(draws, (batch,)).copy()
    if prob < 1.0:
        lam[rng.random(batch) >= prob] = 1.0
    return perm, torch.as_tensor(lam, dtype=torch.float32, device=device)  # MPS has no float64


def mix(t: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``lam * t + (1 - lam) * t[perm]`` along the first dimension (``t`` floating point)."""
    w = lam.to(t.dtype).view(t.shape[0], *([1] * (t.ndim - 1)))
    return w * t + (1 - w) * t[perm]


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.5,
          generator: torch.Generator | None = None,
          per_example: bool = True,
          prob: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each example with a random partner from the same batch (a random permutation).

    ``x_mixed = lam * x + (1 - lam) * x[perm]`` and the same for ``y`` (float labels, e.g.
    multi-hot or one-hot ``(B, C)``); ``perm`` and ``lam`` as drawn by :func:`mixup_pairs`.
    Returns ``(x_mixed, y_mixed, lam)``, ``lam`` shaped ``(B,)`` in ``x``'s dtype.
    """
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
    perm, lam = mixup_pairs(x.shape[0], alpha, generator, per_example, prob, x.device)
    return mix(x, perm, lam), mix(y, perm, lam), lam.to(x.dtype)


# --------------------------------------------------------------------------- shifts and gain


def _per_example_uniform(batch: int, low: float, high: float, generator: torch.Generator | None,
                         device: torch.device) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return (low + (high - low) * torch.rand(batch, generator=generator, device=gdev)).to(device)


def shift(x: torch.Tensor, shifts: torch.Tensor, dim: int, roll: bool = True,
          fill: float = 0.0) -> torch.Tensor:
    """Example ``i`` of ``x`` (B, ...) moved by ``shifts[i]`` steps along ``dim`` (positive:
    towards higher indices). ``roll=True`` wraps around; otherwise vacated steps get ``fill``."""
    dim = dim % x.ndim
    if dim == 0:
        raise ConfigError("shift moves along a data axis, not the batch axis (dim 0).")
    size = x.shape[dim]
    view = [x.shape[0]] + [1] * (x.ndim - 1)
    view[dim] = size
    source = torch.arange(size, device=x.device)[None, :] - shifts.to(x.device).long()[:, None]
    inside = (source >= 0) & (source < size)
    index = (source % size).view(view).expand_as(x)
    out = x.gather(dim, index)
    if roll:
        return out
    return out.masked_fill(~inside.view(view), fill)


class RandomShift(nn.Module):
    """Shift each example by a uniform integer in ``[-max_shift, max_shift]`` along ``dim``;
    active only in training mode (like :class:`SpecAugment`).

    Time shift: ``dim=-1`` on waveforms ``(B, T)`` with ``roll=True`` (the clip wraps around, as
    PaSST rolls its waveforms) or on spectrograms. Frequency shift: the frequency axis of a
    spectrogram with ``roll=False`` (bins moved out are lost, the vacated ones get ``fill``).
    """

    def __init__(self, max_shift: int, dim: int = -1, roll: bool = True, fill: float = 0.0) -> None:
        super().__init__()
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ConfigError(f"max_shift={max_shift!r} must be an int >= 0.")
        self.max_shift, self.dim, self.roll, self.fill = max_shift, dim, roll, fill

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return x
        gdev = generator.device if generator is not None else x.device
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (x.shape[0],),
                               generator=generator, device=gdev)
        return shift(x, shifts, self.dim, self.roll, self.fill)

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}, dim={self.dim}, roll={self.roll}"


class RandomGain(nn.Module):
    """Scale each waveform by a gain uniform in ``[-max_db, max_db]`` dB; training mode only.

    For log spectrograms pass ``log_domain=True``: the gain is then *added* as
    ``gain_db * log_per_db`` (``ln(10) / 20`` for natural-log magnitudes, ``ln(10) / 10`` for
    natural-log power such as Kaldi's filter bank), before any normalisation is undone.
    """

    def __init__(self, max_db: float = 6.0, log_domain: bool = False,
                 log_per_db: float = float(np.log(10.0) / 10.0)) -> None:
        super().__init__()
        if not max_db >= 0:
            raise ConfigError(f"max_db={max_db!r} must be >= 0.")
        self.max_db, self.log_domain, self.log_per_db = float(max_db), log_domain, log_per_db

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.max_db == 0:
            return x
        db = _per_example_uniform(x.shape[0], -self.max_db, self.max_db, generator, x.device)
        db = db.to(x.dtype).view(x.shape[0], *([1] * (x.ndim - 1)))
        if self.log_domain:
            return x + db * self.log_per_db
        return x * torch.pow(10.0, db / 20.0)

    def extra_repr(self) -> str:
        return f"max_db={self.max_db}, log_domain={self.log_domain}"
