"""Tagging metrics: per-class average precision, mAP, the random baseline and bootstrap intervals.

Arrays are ``(n_clips, n_classes)``. ``mask`` (same shape, bool) marks the entries whose label is
known (OpenMIC style); masked-out entries are ignored as if the clip were absent for that class.
Average precision follows scikit-learn's ``average_precision_score``: tied scores form one
threshold, and AP is the sum over thresholds of recall increase times precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zskit.errors import ConfigError

__all__ = [
    "ConfidenceInterval",
    "average_precision_per_class",
    "bootstrap_ci",
    "mean_average_precision",
    "random_average_precision",
    "random_map",
]


def _as_2d(name: str, array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ConfigError(
            f"{name} must be (n_clips, n_classes) or (n_clips,), got shape {a.shape}; "
            "reshape it before computing metrics."
        )
    return a


def _tagging_inputs(
    y_true: np.ndarray, y_score: np.ndarray | None, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Check shapes and return (binary truth, scores, known-entry mask) as 2-D arrays."""
    truth = _as_2d("y_true", y_true)
    if mask is None:
        known = np.ones(truth.shape, dtype=bool)
    else:
        known = _as_2d("mask", mask).astype(bool)
        if known.shape != truth.shape:
            raise ConfigError(
                f"mask has shape {known.shape} but y_true has {truth.shape}; pass one mask entry "
                "per (clip, class)."
            )
    values = np.unique(truth[known])
    if not np.isin(values, (0, 1)).all():
        raise ConfigError(
            f"y_true must hold 0/1 labels where mask is True, found values {values[:5].tolist()}; "
            "binarise the labels and mark unknown entries with mask=False."
        )
    score = None
    if y_score is not None:
        score = _as_2d("y_score", y_score).astype(np.float64)
        if score.shape != truth.shape:
            raise ConfigError(
                f"y_score has shape {score.shape} but y_true has {truth.shape}; score every "
                "(clip, class) pair."
            )
        if np.isnan(score[known]).any():
            raise ConfigError("y_score holds NaN where mask is True; fix the scorer or mask them.")
    return (truth == 1) & known, score, known


def average_precision_per_class(
    y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """AP of each class (column); NaN for classes with no positive among the known entries."""
    pos, score, known = _tagging_inputs(y_true, y_score, mask)
    assert score is not None
    n = pos.shape[0]
    # Unknown entries sort last and carry no weight, so they change no threshold's counts.
    score = np.where(known, score, -np.inf)
    order = np.argsort(-score, axis=0, kind="stable")
    s = np.take_along_axis(score, order, axis=0)
    tp = np.take_along_axis(pos, order, axis=0).astype(np.float64)
    fp = np.take_along_axis(known & ~pos, order, axis=0).astype(np.float64)
    cum_tp = np.cumsum(tp, axis=0)
    cum_known = cum_tp + np.cumsum(fp, axis=0)
    precision = np.divide(cum_tp, cum_known, out=np.zeros_like(cum_tp), where=cum_known > 0)
    # Each row takes the precision at the end of its block of tied scores (one threshold).
    rows = np.arange(n)[:, None]
    is_end = np.ones_like(s, dtype=bool)
    is_end[:-1] = s[:-1] != s[1:]
    end = np.where(is_end, rows, n - 1)
    end = np.minimum.accumulate(end[::-1], axis=0)[::-1]
    precision_at_threshold = np.take_along_axis(precision, end, axis=0)
    n_pos = pos.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (tp * precision_at_threshold).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def mean_average_precision(
    y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Macro mean of per-class AP over the classes with at least one known positive."""
    ap = average_precision_per_class(y_true, y_score, mask)
    if np.isnan(ap).all():
        return float("nan")
    return float(np.nanmean(ap))


def random_average_precision(
    y_true: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Exact expected AP per class of a scorer that ranks the known clips in random order.

    With n known clips of which P are positive, the expectation over all orderings (no ties) is
    ``(H_n + (P - 1) / (n - 1) * (n - H_n)) / n`` with ``H_n`` the n-th harmonic number; it tends
    to the prevalence P / n for large n. NaN for classes without a known positive.
    """
    pos, _, known = _tagging_inputs(y_true, None, mask)
    n = known.sum(axis=0).astype(np.float64)
    p = pos.sum(axis=0).astype(np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, pos.shape[0] + 1))])
    h_n = harmonic[n.astype(int)]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(n > 1, (p - 1) / np.maximum(n - 1, 1), 0.0)
        expected = (h_n + slope * (n - h_n)) / n
    return np.where(p > 0, expected, np.nan)


def random_map(y_true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Expected mAP of a random scorer: the macro mean of :func:`random_average_precision`."""
    ap = random_average_precision(y_true, mask)
    if np.isnan(ap).all():
        return float("nan")
    return float(np.nanmean(ap))


@dataclass(frozen=True)
class ConfidenceInterval:
    """A metric on the full data and its bootstrap percentile interval."""

    value: float  # the metric on all clips
    low: float  # lower bound of the (1 - alpha) interval
    high: float  # upper bound
    n_resamples: int  # resamples on which the metric was defined (not NaN)


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: np.ndarray | None,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap over clips (rows): ``metric_fn(*arrays)`` on ``n`` resamples.

    Every array is resampled with the same row indices; ``None`` is passed through (e.g. no mask).
    Resamples on which the metric is NaN (e.g. a class lost all its positives) are skipped.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}; use 0.05 for a 95% interval.")
    if n < 1:
        raise ConfigError(f"n must be a positive number of resamples, got {n}.")
    present = [np.asarray(a) for a in arrays if a is not None]
    if not present:
        raise ConfigError("bootstrap_ci needs at least one array to resample; pass y_true, ...")
    n_rows = present[0].shape[0]
    if any(a.shape[0] != n_rows for a in present):
        shapes = [a.shape for a in present]
        raise ConfigError(f"all arrays must have the same number of rows (clips), got {shapes}.")
    rng = np.random.default_rng(seed)
    values = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, n_rows, n_rows)
        values[i] = metric_fn(*(None if a is None else np.asarray(a)[idx] for a in arrays))
    valid = values[~np.isnan(values)]
    point = float(metric_fn(*arrays))
    if valid.size == 0:
        return ConfidenceInterval(point, float("nan"), float("nan"), 0)
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(point, float(low), float(high), int(valid.size))
