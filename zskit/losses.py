"""Losses: masked binary cross-entropy, symmetric InfoNCE / NT-Xent, hierarchical weighted BCE.

Each loss is a function and a small ``nn.Module`` around it. Losses are computed in float32, so
they are safe under ``torch.autocast``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zskit.errors import ConfigError

__all__ = [
    "HierarchicalBCE",
    "InfoNCE",
    "MaskedBCE",
    "hierarchical_bce",
    "info_nce",
    "masked_bce",
    "positives_from_ids",
]


def masked_bce(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    from_logits: bool = True,
) -> torch.Tensor:
    """Mean binary cross-entropy over the entries where ``mask`` is set (OpenMIC's label mask).

    ``outputs`` are logits (or probabilities with ``from_logits=False``; these are clamped to
    [0, 1]), ``targets`` in [0, 1] of the same shape. ``mask`` (bool, or float weights for a weighted mean) marks the entries
    that count; the mean is over those entries only. An all-masked batch gives 0 and zero
    gradients, never NaN. Masked-out entries are ignored entirely: their outputs and targets may
    hold anything (NaN for unknown labels, out-of-range values) and get exactly zero gradient.
    """
    if outputs.shape != targets.shape:
        raise ConfigError(
            f"masked_bce: outputs have shape {tuple(outputs.shape)} but targets "
            f"{tuple(targets.shape)}; pass one target per output."
        )
    x, y = outputs.float(), targets.float()
    if mask is not None:
        if mask.shape != x.shape:
            raise ConfigError(
                f"masked_bce: mask has shape {tuple(mask.shape)} but outputs {tuple(x.shape)}; "
                "pass one mask entry per output."
            )
        weight = mask.to(device=x.device, dtype=x.dtype)
        # replaced before the loss, not after: a NaN there would reach the gradient as 0 * NaN
        known = weight > 0
        x, y = torch.where(known, x, 0.0), torch.where(known, y, 0.0)
    if from_logits:
        loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    else:  # F.binary_cross_entropy refuses to run under autocast, hence the disabled region
        # clamp: float rounding can put a pooled probability (ResAtt's W^T P) a hair above 1
        with torch.autocast(x.device.type, enabled=False):
            loss = F.binary_cross_entropy(x.clamp(0.0, 1.0), y, reduction="none")
    if mask is None:
        return loss.mean()
    kept = torch.where(known, loss * weight, torch.zeros_like(loss))
    return kept.sum() / weight.sum().clamp_min(torch.finfo(loss.dtype).tiny)


class MaskedBCE(nn.Module):
    """Module form of :func:`masked_bce`: ``forward(outputs, targets, mask=None)``."""

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        self.from_logits = from_logits

    def forward(
        self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return masked_bce(outputs, targets, mask, from_logits=self.from_logits)


def positives_from_ids(
    clip_ids: torch.Tensor | Sequence[Hashable], device: torch.device | None = None
) -> torch.Tensor:
    """``(B, B)`` bool matrix: True where items i and j come from the same clip."""
    if not isinstance(clip_ids, torch.Tensor):
        codes: dict[Hashable, int] = {}
        clip_ids = torch.tensor([codes.setdefault(c, len(codes)) for c in clip_ids])
    clip_ids = clip_ids.to(device)
    return clip_ids[:, None] == clip_ids[None, :]


def _scale(
    logit_scale: torch.Tensor | float | None, temperature: float | None
) -> torch.Tensor | float:
    if (logit_scale is None) == (temperature is None):
        raise ConfigError(
            "info_nce needs exactly one of logit_scale (the model's multiplier, e.g. "
            "model.logit_scale.exp()) or a fixed temperature (e.g. 0.07); got "
            f"logit_scale={logit_scale!r}, temperature={temperature!r}."
        )
    if temperature is not None:
        if temperature <= 0:
            raise ConfigError(f"info_nce temperature={temperature} must be > 0, e.g. 0.07.")
        return 1.0 / temperature
    scale = logit_scale.float() if isinstance(logit_scale, torch.Tensor) else float(logit_scale)
    if isinstance(scale, torch.Tensor) and scale.device.type != "cpu":
        # Checking a scale on a GPU would make every training step wait for the GPU. There a
        # non-positive scale turns the logits (and so the loss) into NaN instead, which fit
        # reports as a diverged loss; a positive scale passes through unchanged.
        return torch.where(scale > 0, scale, torch.nan)
    if not bool(torch.all(torch.as_tensor(scale) > 0)):
        raise ConfigError(f"info_nce logit_scale={logit_scale!r} must be > 0 (a negative scale "
                          "rewards dissimilar pairs): pass the multiplier, e.g. "
                          "model.logit_scale.exp(), not the log-scale.")
    return scale


def _check_positives(positives: torch.Tensor, shape: torch.Size) -> None:
    """A caller's ``positives`` must match the logits and give every row and column a positive.

    The second check reads the matrix, so it runs on CPU matrices only: on a GPU it would make
    every step wait for the GPU. There a row or column without a positive gets the target 0 / 0,
    so the loss is NaN, which fit reports as a diverged loss.
    """
    if positives.shape != shape:
        raise ConfigError(
            f"info_nce: positives has shape {tuple(positives.shape)}, expected "
            f"{tuple(shape)}: one entry per (audio, text) pair of the batch."
        )
    on_cpu = positives.device.type == "cpu"
    if on_cpu and not bool(positives.any(0).all() and positives.any(1).all()):
        raise ConfigError(
            "info_nce: every row and column of positives needs a True entry (its own pair)."
        )


def info_nce(
    audio: torch.Tensor,
    text: torch.Tensor,
    *,
    logit_scale: torch.Tensor | float | None = None,
    temperature: float | None = None,
    clip_ids: torch.Tensor | Sequence[Hashable] | None = None,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE / NT-Xent of paired ``(B, D)`` embeddings (row i of each is pair i).

    ``logits = scale * audio @ text.T`` with ``scale = logit_scale`` (the multiplier, i.e. the
    exponential of a learnable log-scale, as open_clip passes it) or ``1 / temperature``. The loss
    is the mean of the audio->text and text->audio cross-entropies. Embeddings are used as given
    (normalise them in the model for cosine similarities).

    Several captions of one clip in a batch: give ``clip_ids`` (one id per row) or a ``(B, B)`` bool
    ``positives`` matrix. All items of the same clip then count as positives, none as negatives:
    each row's target is uniform over its positives (cross-entropy with soft targets). With one
    caption per clip this is the usual cross-entropy against the identity.

    Bad input raises :class:`~zskit.errors.ConfigError`. A non-positive ``logit_scale`` or a
    ``positives`` row without a True entry is only caught on the CPU: on a GPU, checking would
    make every training step wait for it, so there the loss becomes NaN instead.
    """
    if audio.ndim != 2 or audio.shape != text.shape:
        raise ConfigError(
            f"info_nce: audio {tuple(audio.shape)} and text {tuple(text.shape)} must both be "
            "(B, D) with row i of each forming pair i."
        )
    if len(audio) == 0:
        raise ConfigError("info_nce: the batch is empty; pass at least one (audio, text) pair "
                          "(drop empty batches before the loss).")
    scale = _scale(logit_scale, temperature)
    with torch.autocast(audio.device.type, enabled=False):  # autocast would run it in fp16/bf16
        logits = scale * (audio.float() @ text.float().T)
    if clip_ids is not None and positives is not None:
        raise ConfigError("info_nce: pass clip_ids or positives, not both.")
    if clip_ids is not None:
        if len(clip_ids) != len(audio):
            raise ConfigError(
                f"info_nce: {len(clip_ids)} clip_ids for a batch of {len(audio)}; pass one per row."
            )
        # every row and column has a positive (each item shares its own clip): nothing to check
        positives = positives_from_ids(clip_ids, logits.device)
    elif positives is not None:
        _check_positives(positives, logits.shape)
    if positives is None:
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    pos = positives.to(device=logits.device, dtype=logits.dtype)
    audio_to_text = F.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
    text_to_audio = F.cross_entropy(logits.T, pos.T / pos.T.sum(1, keepdim=True))
    return 0.5 * (audio_to_text + text_to_audio)


class InfoNCE(nn.Module):
    """Module form of :func:`info_nce`: a fixed ``temperature``, or ``logit_scale`` per call."""

    def __init__(self, temperature: float | None = None) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self,
        audio: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor | float | None = None,
        clip_ids: torch.Tensor | Sequence[Hashable] | None = None,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        temperature = self.temperature if logit_scale is None else None
        return info_nce(
            audio,
            text,
            logit_scale=logit_scale,
            temperature=temperature,
            clip_ids=clip_ids,
            positives=positives,
        )


def hierarchical_bce(
    fine: torch.Tensor,
    fine_targets: torch.Tensor,
    coarse: torch.Tensor,
    coarse_targets: torch.Tensor,
    *,
    lam: float = 0.8,
    fine_mask: torch.Tensor | None = None,
    coarse_mask: torch.Tensor | None = None,
    fine_from_logits: bool = True,
    coarse_from_logits: bool = True,
) -> torch.Tensor:
    """``lam * BCE_fine + (1 - lam) * BCE_coarse``, each a :func:`masked_bce` (paper 3, Eq. 2).

    Bottom-up heads (GMP, ResAtt) output coarse probabilities: set ``coarse_from_logits=False``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(
            f"hierarchical_bce: lam={lam} must lie in [0, 1] (paper 3 searches 0.70-0.90)."
        )
    fine_loss = masked_bce(fine, fine_targets, fine_mask, from_logits=fine_from_logits)
    coarse_loss = masked_bce(coarse, coarse_targets, coarse_mask, from_logits=coarse_from_logits)
    return lam * fine_loss + (1.0 - lam) * coarse_loss


class HierarchicalBCE(nn.Module):
    """Module form of :func:`hierarchical_bce`."""

    def __init__(
        self, lam: float = 0.8, fine_from_logits: bool = True, coarse_from_logits: bool = True
    ) -> None:
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ConfigError(
                f"HierarchicalBCE: lam={lam} must lie in [0, 1] (paper 3 searches 0.70-0.90)."
            )
        self.lam, self.fine_from_logits, self.coarse_from_logits = (
            lam,
            fine_from_logits,
            coarse_from_logits,
        )

    def forward(
        self,
        fine: torch.Tensor,
        fine_targets: torch.Tensor,
        coarse: torch.Tensor,
        coarse_targets: torch.Tensor,
        fine_mask: torch.Tensor | None = None,
        coarse_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return hierarchical_bce(
            fine,
            fine_targets,
            coarse,
            coarse_targets,
            lam=self.lam,
            fine_mask=fine_mask,
            coarse_mask=coarse_mask,
            fine_from_logits=self.fine_from_logits,
            coarse_from_logits=self.coarse_from_logits,
        )
