"""Tagging, classification and retrieval metrics, vectorised in numpy.

Tagging arrays are ``(n_clips, n_classes)``. ``mask`` (same shape, bool) marks the entries whose
label is known (OpenMIC style); masked-out entries are ignored as if the clip were absent for that
class. Per-class functions return NaN for classes on which the metric is undefined (no known
positive, and for ROC AUC also no known negative); the macro means skip them.

- Average precision follows scikit-learn's ``average_precision_score``: tied scores form one
  threshold, and AP is the sum over thresholds of recall increase times precision.
- ROC AUC follows ``roc_auc_score``: a tied positive/negative pair counts one half.
- F1 uses per-class thresholds tuned on validation data (:func:`tune_thresholds`) and applied to
  test scores; a clip is predicted positive when ``score >= threshold``.
- Classification (:func:`top1_accuracy`) and retrieval (:func:`retrieval_metrics`) break ties
  pessimistically: a wrong class or irrelevant item with the same score as the right one is ranked
  above it, so a constant scorer earns nothing.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from zskit._arrays import to_numpy
from zskit.errors import ConfigError

__all__ = [
    "ConfidenceInterval",
    "average_precision_per_class",
    "bootstrap_ci",
    "d_prime",
    "f1_per_class",
    "macro_f1",
    "macro_roc_auc",
    "mean_average_precision",
    "random_average_precision",
    "random_map",
    "retrieval_metrics",
    "retrieval_metrics_both",
    "retrieval_per_query",
    "roc_auc_per_class",
    "top1_accuracy",
    "top1_accuracy_by_group",
    "tune_thresholds",
    "within_group_top1",
]

logger = logging.getLogger(__name__)

_AP_BLOCK = 64  # classes sorted together by average_precision_per_class's search route
_AP_TILE_BYTES = 1 << 18  # bytes per tile of its transposing copies (stays in L2 cache)
_AP_KEY_BYTES = 1 << 24  # keys sorted at a time by its integer-key route (16 MiB)
_NAN_SCORES = "y_score holds NaN where mask is True; fix the scorer or mask them."


def _as_2d(name: str, array: np.ndarray) -> np.ndarray:
    a = to_numpy(array)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ConfigError(
            f"{name} must be (n_clips, n_classes) or (n_clips,), got shape {a.shape}; "
            "reshape it before computing metrics."
        )
    return a


def _tagging_inputs(
    y_true: np.ndarray,
    y_score: np.ndarray | None,
    mask: np.ndarray | None,
    check_nan: bool = True,
    keep_unknown_labels: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Check shapes and return (binary truth, scores, known-entry mask) as 2-D arrays.

    Scores keep a float32 or float64 dtype (other dtypes become float64): comparisons, the only
    thing the rank-based metrics do with them, are exact in either. The checks make elementwise
    passes only, so they cost little beside the metrics on large matrices. ``check_nan=False``
    leaves the NaN check (a pass over the scores) to a caller that finds NaN more cheaply;
    ``keep_unknown_labels=True`` leaves labels under ``mask=False`` in the truth for a caller
    that ignores them itself (a boolean ``y_true`` is then returned as it is, with no copy).
    """
    truth = _as_2d("y_true", y_true)
    known = None
    if mask is not None:
        known = _as_2d("mask", mask).astype(bool, copy=False)
        if known.shape != truth.shape:
            raise ConfigError(
                f"mask has shape {known.shape} but y_true has {truth.shape}; pass one mask entry "
                "per (clip, class)."
            )
    if truth.dtype == bool:
        pos = truth
    else:
        pos = truth == 1
        binary = pos | (truth == 0)
        if known is not None:
            binary |= ~known
        if not binary.all():
            values = np.unique(truth[~binary])
            raise ConfigError(
                "y_true must hold 0/1 labels where mask is True, found values "
                f"{values[:5].tolist()}; binarise the labels and mark unknown entries with "
                "mask=False."
            )
    if known is None:
        known = np.ones(truth.shape, dtype=bool)
    elif not keep_unknown_labels:
        pos = pos & known
    score = None
    if y_score is not None:
        score = _as_2d("y_score", y_score)
        if score.dtype not in (np.float32, np.float64):
            score = score.astype(np.float64)
        if score.shape != truth.shape:
            raise ConfigError(
                f"y_score has shape {score.shape} but y_true has {truth.shape}; score every "
                "(clip, class) pair."
            )
        if check_nan and np.isnan(score).any() and np.isnan(score[known]).any():
            raise ConfigError(_NAN_SCORES)
    return pos, score, known


def _transposed(
    values: np.ndarray, known: np.ndarray | None, cols: slice, buffer: np.ndarray
) -> np.ndarray:
    """Columns ``cols`` of ``values`` as a C-ordered ``(classes, clips)`` copy (rows to sort),
    written into the first rows of ``buffer`` (reused: a fresh large array costs page faults).

    Scores of unknown entries become NaN (which sorts last) when ``known`` is given. The copy
    goes by tiles of about ``_AP_TILE_BYTES``, so that reads and writes stay in cache: a plain
    copy of the transposed view reads one element per cache line and ran several times slower.
    """
    n = values.shape[0]
    width = len(range(*cols.indices(values.shape[1])))
    rows_out = buffer[:width]
    step = max(1, _AP_TILE_BYTES // (max(width, 1) * values.itemsize))
    if known is not None:  # NaN or 0 picked by the mask and added: quicker than a masked write
        nan_if_unknown = np.array([np.nan, 0.0], values.dtype)
    for r in range(0, n, step):
        rows = slice(r, r + step)
        tile = values[rows, cols]
        if known is not None:
            tile = tile + np.take(nan_if_unknown, known[rows, cols].view(np.uint8))
        rows_out[:, rows] = tile.T
    return rows_out


def _fill_keys(
    keys: np.ndarray, bits: np.ndarray, pos: np.ndarray, known: np.ndarray | None, cols: slice
) -> None:
    """Write the keys ``2 * bits + label`` of the classes ``cols`` into ``keys``, one row each.

    ``bits`` are the scores' IEEE bits as unsigned integers; for scores >= 0 they grow with the
    score, so sorted keys order the clips by score, negatives before positives among tied
    scores. The shift drops the sign bit, so ``-0.0`` and ``0.0`` get one key. Unknown entries
    get all bits set before the shift: one of the two largest keys (whatever their label),
    after every known one. Written by row tiles of about ``_AP_TILE_BYTES`` that span all of
    ``cols`` (long inner loops for numpy; a tile stays in cache while it is transposed).
    """
    n = bits.shape[0]
    step = max(1, _AP_TILE_BYTES // (max(len(keys), 1) * bits.itemsize))
    for r in range(0, n, step):
        rows = slice(r, r + step)
        if known is None:
            tile = bits[rows, cols] << 1
        else:
            tile = np.subtract(known[rows, cols].view(np.uint8), 1, dtype=bits.dtype)
            tile |= bits[rows, cols]
            tile <<= 1
        tile |= pos[rows, cols].view(np.uint8)  # the label (unknown entries' is ignored)
        keys[:, rows] = tile.T


def _first_at_least(
    flat: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: np.ndarray | int
) -> np.ndarray:
    """For each sorted stretch ``flat[lo:hi]``, the position of its first entry ``>= value``
    (``hi`` if none): a binary search run for all stretches at once, with no Python loop over
    them, so that many short searches cost a few vectorised steps rather than a call each.
    """
    lo, hi = lo.copy(), hi.copy()
    last = max(flat.size - 1, 0)
    for _ in range(int((hi - lo).max(initial=0)).bit_length()):
        mid = (lo + hi) >> 1
        right = (lo < hi) & (flat[np.minimum(mid, last)] < value)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right, hi, np.minimum(mid, hi))
    return lo


def _ap_from_sorted_keys(keys: np.ndarray, masked: bool, odd: np.ndarray) -> np.ndarray:
    """AP of each row of sorted keys (see :func:`_fill_keys`); NaN for a row without a positive.

    The positives are the odd keys: one scan (``odd`` is its byte buffer) finds them all, in
    ascending order within each row; with ``masked``, the unknown entries at the end of each
    row are left out of the scan. A positive's position in its row counts the known clips
    scoring lower, unless the key before it has the same score; then the tied group's first
    position is looked up (:func:`_first_at_least`, for those positives only). Positives that
    share a score share the count of positives at or above it, from the first of them.
    """
    width, n = keys.shape
    flat = keys.reshape(-1)
    row_start = np.arange(width + 1) * n
    odd = np.bitwise_and(flat, 1, out=odd[: flat.size], casting="unsafe")
    if masked:  # unknown entries hold the two largest keys, at the end of each row
        unknown = np.iinfo(keys.dtype).max - 1
        known_end = _first_at_least(flat, row_start[:-1], row_start[1:], unknown)
        for a, b in zip(known_end, row_start[1:]):
            odd[a:b] = 0
    else:
        known_end = row_start[1:]
    at = np.flatnonzero(odd.view(bool))  # flat positions, by class then score
    n_pos = np.diff(np.searchsorted(at, row_start))
    key = flat[at]
    start = at  # flat position of the first clip with the positive's score: at, unless tied
    tied = np.flatnonzero((flat[at - 1] | 1) == key)  # at - 1 may be in another row: harmless
    if tied.size:
        start = at.copy()
        lo = at[tied] - at[tied] % n
        start[tied] = _first_at_least(flat, lo, at[tied], key[tied] - 1)
    first_tied = np.ones(at.size, dtype=bool)  # the first positive with its score in its class
    first_tied[1:] = at[:-1] < start[1:]
    first = np.maximum.accumulate(np.where(first_tied, np.arange(at.size), 0))
    end = np.cumsum(n_pos)
    precision = (np.repeat(end, n_pos) - first) / (np.repeat(known_end, n_pos) - start)
    ap = np.full(width, np.nan)
    has_pos = n_pos > 0
    ap[has_pos] = np.add.reduceat(precision, (end - n_pos)[has_pos]) / n_pos[has_pos]
    return ap


def _ap_by_keys(
    pos: np.ndarray, score: np.ndarray, known: np.ndarray | None, threads: int = 1
) -> np.ndarray:
    """Per-class AP of scores that are all >= 0 (no NaN): one integer sort per class.

    The label rides in the lowest bit of each key, so the sorted keys alone give every
    positive's rank: no separate gathering of the positives and no search for each. Classes go
    in equal groups whose keys fill about ``_AP_KEY_BYTES`` (but no more groups than blocks of
    ``_AP_BLOCK`` classes), through one reused buffer per thread: a fresh large buffer costs page
    faults. With ``threads`` > 1 the groups are shared out in contiguous runs, one per thread;
    numpy's sort and the other whole-array steps release the GIL, so the threads overlap.
    """
    n, n_classes = pos.shape
    bits = score.view(f"u{score.itemsize}")
    groups = min(math.ceil(score.nbytes / _AP_KEY_BYTES), math.ceil(n_classes / _AP_BLOCK))
    runs = _class_runs(n_classes, groups, threads)
    ap = np.full(n_classes, np.nan)

    def rank_groups(run: list[slice]) -> None:
        buffer = np.empty((_widest(runs), n), bits.dtype)  # one per thread, reused by its groups
        odd = np.empty(buffer.size, np.uint8)
        for cols in run:
            keys = buffer[: cols.stop - cols.start]
            _fill_keys(keys, bits, pos, known, cols)
            keys.sort(axis=1)
            ap[cols] = _ap_from_sorted_keys(keys, known is not None, odd)

    _map_threads(rank_groups, runs)
    return ap


def _class_runs(n_classes: int, groups: int, threads: int) -> list[list[slice]]:
    """Class groups (column slices), one run of them for each of up to ``threads`` threads.

    The runs hold equal shares of the classes (within one) in the same number of groups, and
    there are at least ``groups`` groups unless there are fewer classes: 9 blocks of 64 of 527
    classes, shared out whole, gave one of two threads 320 classes and the other 207, and the
    first thread's last 113 ran alone.
    """
    threads = max(1, min(threads, groups, n_classes))
    per_run = max(1, math.ceil(groups / threads))
    runs = []
    for t in range(threads):
        lo, hi = n_classes * t // threads, n_classes * (t + 1) // threads
        width = max(1, math.ceil((hi - lo) / per_run))
        runs.append([slice(a, min(a + width, hi)) for a in range(lo, hi, width)])
    return runs


def _widest(runs: list[list[slice]]) -> int:
    """The most classes in one group of ``runs`` (at least 1): the rows of a reused buffer."""
    return max((cols.stop - cols.start for run in runs for cols in run), default=1)


def _map_threads(work: Callable[[list[slice]], None], runs: list[list[slice]]) -> None:
    """``work(run)`` for each run of class groups, each on its own thread when there are several
    (errors are raised here). numpy's sort and other whole-array steps release the GIL, so the
    threads overlap."""
    if len(runs) <= 1:
        for run in runs:
            work(run)
        return
    with ThreadPoolExecutor(len(runs)) as pool:
        list(pool.map(work, runs))


def _metric_threads(threads: int | None) -> int:
    """``threads`` checked, or the number of CPUs this process may use when it is None."""
    if threads is None:
        affinity = getattr(os, "sched_getaffinity", None)
        return len(affinity(0)) if affinity else os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(
            f"threads must be a positive integer or None (all CPUs), got {threads!r}."
        )
    return threads


def _ap_by_search(
    pos: np.ndarray, score: np.ndarray, known: np.ndarray | None, threads: int = 1
) -> np.ndarray:
    """Per-class AP of any scores: each class's positives looked up in its sorted scores.

    Classes go in blocks of up to ``_AP_BLOCK``, as many for each thread; for each block:

    - the known scores and the labels are copied transposed (in cache-sized tiles) so that
      each class is a contiguous row; the positives' scores are gathered from that copy in one
      step, by class;
    - the rows are sorted with numpy's vectorised sort; extra memory stays at one block;
    - each class's positives are sorted and looked up in its sorted row: ``known clips >= p``
      is ``n_known`` minus the insertion point of ``p``;
    - that insertion point grows strictly with the score among known entries, so runs of
      equal insertion points are tied positives, and ``positives >= p`` follows from where
      each run starts, for all classes of the block at once.

    NaN among known scores is caught after sorting (NaN sorts last), saving a pass over the input.
    With ``threads`` > 1 the blocks are shared out over threads, as in :func:`_ap_by_keys`.
    """
    n, n_classes = pos.shape
    if known is None:
        n_known = np.full(n_classes, n)
    else:
        n_known = known.sum(axis=0)
        pos = pos & known
    ap = np.full(n_classes, np.nan)
    runs = _class_runs(n_classes, math.ceil(n_classes / _AP_BLOCK), threads)

    def rank_blocks(run: list[slice]) -> None:
        scores = np.empty((_widest(runs), n), score.dtype)  # reused, one per thread
        labels = np.empty(scores.shape, bool)
        for cols in run:
            ranked = _transposed(score, known, cols, scores)
            at = np.flatnonzero(_transposed(pos, None, cols, labels))  # by class, then clip
            positive_scores = ranked.reshape(-1)[at]
            ranked.sort(axis=1)
            block_known = n_known[cols]
            with_known = np.flatnonzero(block_known)
            if np.isnan(ranked[with_known, block_known[with_known] - 1]).any():
                raise ConfigError(_NAN_SCORES)
            bounds = np.searchsorted(at, np.arange(len(ranked) + 1) * n)
            below = np.empty(at.size, np.int64)  # known clips scoring lower than each positive
            for j, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
                if hi > lo:
                    p = positive_scores[lo:hi]
                    p.sort()
                    below[lo:hi] = np.searchsorted(ranked[j], p, "left")
            n_pos = np.diff(bounds)
            ap[cols] = _ap_from_ranks(below, n_pos, block_known)

    _map_threads(rank_blocks, runs)
    return ap


def _ap_from_ranks(below: np.ndarray, n_pos: np.ndarray, n_known: np.ndarray) -> np.ndarray:
    """AP of each class from ``below``, the known clips scoring lower than each positive (the
    positives grouped by class, ascending within each); ``n_pos`` and ``n_known`` per class.
    NaN for a class without a positive."""
    end = np.cumsum(n_pos)
    cls = np.repeat(np.arange(n_pos.size), n_pos)
    run_starts = np.ones(below.size, dtype=bool)
    run_starts[1:] = (below[1:] != below[:-1]) | (cls[1:] != cls[:-1])
    first_tied = np.maximum.accumulate(np.where(run_starts, np.arange(below.size), 0))
    precision = (end[cls] - first_tied) / (n_known[cls] - below)
    ap = np.full(n_pos.size, np.nan)
    has_pos = n_pos > 0
    ap[has_pos] = np.add.reduceat(precision, (end - n_pos)[has_pos]) / n_pos[has_pos]
    return ap


def average_precision_per_class(
    y_true: np.ndarray,
    y_score: np.ndarray,
    mask: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """AP of each class (column); NaN for classes with no positive among the known entries.

    AP is the mean over a class's positives of the precision at its score: known positives
    scoring at least as high, over known clips scoring at least as high (tied scores form one
    threshold, as in scikit-learn). Only these two counts are needed, so nothing is argsorted.
    Memory traffic shapes the work on AudioSet-sized inputs; two routes:

    - scores that are all >= 0 (probabilities, the usual input) are sorted as integer keys
      that carry the label (:func:`_ap_by_keys`), 1.3-2x quicker;
    - any other scores (logits, or NaN anywhere) are sorted as they are and each class's
      positives looked up in them (:func:`_ap_by_search`).

    Both give the same values, equal to scikit-learn's up to float rounding of the sums.
    ``threads`` (default: the CPUs this process may use) share the classes out on either
    route; pass 1 to keep the call on one core.
    """
    threads = _metric_threads(threads)
    pos, score, known = _tagging_inputs(
        y_true, y_score, mask, check_nan=False, keep_unknown_labels=True
    )
    assert score is not None
    if mask is None:
        known = None
    if score.size and score.min() >= 0:  # False when a NaN is anywhere
        return _ap_by_keys(pos, score, known, threads)
    return _ap_by_search(pos, score, known, threads)


def mean_average_precision(
    y_true: np.ndarray,
    y_score: np.ndarray,
    mask: np.ndarray | None = None,
    threads: int | None = None,
) -> float:
    """Macro mean of per-class AP over the classes with at least one known positive.

    ``threads``: as in :func:`average_precision_per_class`.
    """
    ap = average_precision_per_class(y_true, y_score, mask, threads)
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


def _macro(values: np.ndarray, metric: str) -> float:
    """Mean over the defined (non-NaN) entries; NaN when none is defined."""
    undefined = np.flatnonzero(np.isnan(values))
    if undefined.size:
        logger.info(
            "%s: %d of %d classes undefined and excluded from the mean: %s",
            metric, undefined.size, values.size, undefined[:20].tolist(),
        )
    if undefined.size == values.size:
        return float("nan")
    return float(np.nanmean(values))


def _tie_blocks(s_sorted: np.ndarray, k_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of the block of equal (score, known) pairs holding each sorted row."""
    n = s_sorted.shape[0]
    rows = np.arange(n)[:, None]
    new = np.ones(s_sorted.shape, dtype=bool)
    new[1:] = (s_sorted[1:] != s_sorted[:-1]) | (k_sorted[1:] != k_sorted[:-1])
    start = np.maximum.accumulate(np.where(new, rows, 0), axis=0)
    is_end = np.ones_like(new)
    is_end[:-1] = new[1:]
    end = np.minimum.accumulate(np.where(is_end, rows, n - 1)[::-1], axis=0)[::-1]
    return start, end


def _sort_known_first(
    score: np.ndarray, known: np.ndarray, pos: np.ndarray, descending: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort each column by score with the unknown entries last; return sorted (score, known, pos)."""
    s = np.where(known, score, 0.0)
    order = np.lexsort((-s if descending else s, ~known), axis=0)
    take = np.take_along_axis
    return take(s, order, axis=0), take(known, order, axis=0), take(pos, order, axis=0)


def roc_auc_per_class(
    y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """ROC AUC of each class; NaN for classes without a known positive or a known negative.

    Computed as the Mann-Whitney statistic with mid-ranks, so a tied positive/negative pair
    counts one half, exactly as scikit-learn's ``roc_auc_score``.
    """
    pos, score, known = _tagging_inputs(y_true, y_score, mask)
    assert score is not None
    s, k, p = _sort_known_first(score, known, pos, descending=False)
    start, end = _tie_blocks(s, k)
    midrank = (start + end) / 2.0 + 1.0  # known entries come first, so ranks count only them
    n_pos = pos.sum(axis=0).astype(np.float64)
    n_neg = (known & ~pos).sum(axis=0).astype(np.float64)
    u = (midrank * p).sum(axis=0) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def macro_roc_auc(
    y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Macro mean ROC AUC over the classes with a known positive and a known negative.

    The excluded classes are logged (INFO) and are the NaN entries of :func:`roc_auc_per_class`.
    """
    return _macro(roc_auc_per_class(y_true, y_score, mask), "macro_roc_auc")


def d_prime(auc: float | np.ndarray) -> float | np.ndarray:
    """Sensitivity index from ROC AUC: ``sqrt(2) * Phi^-1(auc)`` (AudioSet papers' d').

    It is the separation, in standard deviations, of two unit-variance Gaussians whose ROC has
    this AUC. AudioSet papers apply it to the macro AUC: ``d_prime(macro_roc_auc(...))``.
    AUC 0.5 gives 0, AUC 1 gives +inf; NaN stays NaN.
    """
    a = np.asarray(auc, dtype=np.float64)
    if np.any((a < 0) | (a > 1)):
        bad = a[(a < 0) | (a > 1)]
        raise ConfigError(f"AUC must lie in [0, 1], got {bad[:5].tolist()}; pass ROC AUC values.")
    d = np.sqrt(2.0) * ndtri(a)
    return float(d) if d.ndim == 0 else d


def tune_thresholds(
    y_true_val: np.ndarray, y_score_val: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Per-class threshold maximising F1 on validation data (predict positive if score >= it).

    Candidates are the distinct known scores of the class. Ties: among thresholds reaching the
    same best F1, the highest one (fewest predicted positives) wins. A class without a known
    positive gets ``+inf`` (predict no positive), which is also the F1-optimal choice there.
    Returns an array of shape ``(n_classes,)`` for :func:`f1_per_class` on test data.
    """
    pos, score, known = _tagging_inputs(y_true_val, y_score_val, mask)
    assert score is not None
    s, k, p = _sort_known_first(score, known, pos, descending=True)
    _, end = _tie_blocks(s, k)
    rows = np.arange(s.shape[0])[:, None]
    cum_tp = np.cumsum(p, axis=0)
    cum_pred = np.cumsum(k, axis=0)
    n_pos = pos.sum(axis=0)
    cut_here = (end == rows) & k  # cutting after a whole block of tied known scores
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(cut_here, 2.0 * cum_tp / (cum_pred + n_pos), -1.0)
    best = np.argmax(f1, axis=0)  # the first maximum is the highest threshold
    thresholds = s[best, np.arange(s.shape[1])] if s.size else np.zeros(s.shape[1])
    no_pos = n_pos == 0
    if no_pos.any():
        logger.info(
            "tune_thresholds: classes %s have no known positive; threshold +inf",
            np.flatnonzero(no_pos)[:20].tolist(),
        )
    return np.where(no_pos, np.inf, thresholds)


def f1_per_class(
    y_true: np.ndarray,
    y_pred_or_scores: np.ndarray,
    thresholds: float | np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) of each class over the known entries.

    Without ``thresholds`` the second argument must hold 0/1 predictions; with them (a scalar or
    one per class, e.g. from :func:`tune_thresholds`) scores ``>= threshold`` are positive.
    NaN for a class with neither a known positive nor a predicted one (scikit-learn's
    ``zero_division=np.nan``); a class without positives but with false alarms scores 0.
    """
    if thresholds is None:
        pos, _, known = _tagging_inputs(y_true, None, mask)
        pred = _as_2d("y_pred", y_pred_or_scores)
        if pred.shape != pos.shape:
            raise ConfigError(
                f"y_pred has shape {pred.shape} but y_true has {pos.shape}; predict every "
                "(clip, class) pair."
            )
        values = np.unique(pred[known])
        if not np.isin(values, (0, 1)).all():
            raise ConfigError(
                f"predictions must be 0/1 without thresholds, found {values[:5].tolist()}; pass "
                "thresholds= (e.g. from tune_thresholds on validation data) to binarise scores."
            )
        pred = pred == 1
    else:
        pos, score, known = _tagging_inputs(y_true, y_pred_or_scores, mask)
        assert score is not None
        thr = np.asarray(thresholds, dtype=np.float64)
        if thr.ndim not in (0, 1) or (thr.ndim == 1 and thr.shape[0] != pos.shape[1]):
            raise ConfigError(
                f"thresholds must be a scalar or one per class ({pos.shape[1]}), got shape "
                f"{thr.shape}; use tune_thresholds() on validation data."
            )
        if np.isnan(thr).any():
            raise ConfigError("thresholds hold NaN; use +inf to predict no positive for a class.")
        pred = score >= thr
    pred = pred & known
    tp = (pred & pos).sum(axis=0)
    denom = (2 * tp + (pred & ~pos).sum(axis=0) + (pos & ~pred).sum(axis=0)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * tp / denom, np.nan)


def macro_f1(
    y_true: np.ndarray,
    y_pred_or_scores: np.ndarray,
    thresholds: float | np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Macro mean of :func:`f1_per_class` over the classes where F1 is defined.

    For bootstrap intervals bind the thresholds, which are not resampled:
    ``bootstrap_ci(lambda y, s: macro_f1(y, s, thr), y_test, s_test)``.
    """
    return _macro(f1_per_class(y_true, y_pred_or_scores, thresholds, mask), "macro_f1")


def _classification_inputs(
    y_true_idx: np.ndarray, y_score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(y_true_idx)
    score = np.asarray(y_score, dtype=np.float64)
    if score.ndim != 2 or idx.ndim != 1 or idx.shape[0] != score.shape[0]:
        raise ConfigError(
            f"expected y_true_idx (n_clips,) and y_score (n_clips, n_classes), got {idx.shape} and "
            f"{score.shape}; pass class indices, not one-hot labels."
        )
    in_range = idx.size == 0 or (0 <= idx.min() and idx.max() < score.shape[1])
    if not (np.issubdtype(idx.dtype, np.integer) and in_range):
        raise ConfigError(
            f"y_true_idx must hold integer class indices in [0, {score.shape[1]}), got dtype "
            f"{idx.dtype} and values {np.unique(idx)[:5].tolist()}; map labels to indices first."
        )
    if np.isnan(score).any():
        raise ConfigError("y_score holds NaN; fix the scorer before computing accuracy.")
    return idx, score


def _top1_correct(
    idx: np.ndarray, score: np.ndarray, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Whether the true class strictly beats every other candidate class (ties count as wrong)."""
    rows = np.arange(idx.shape[0])
    beats = score >= score[rows, idx][:, None]
    if candidates is not None:
        beats &= candidates
    beats[rows, idx] = False
    return ~beats.any(axis=1)


def _group_codes(
    class_groups: Sequence[Hashable] | np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted group names and each class's index into them."""
    groups = np.asarray(class_groups)
    if groups.shape != (n_classes,):
        raise ConfigError(
            f"class_groups must give one group per class ({n_classes}), got shape {groups.shape}; "
            "e.g. the ESC-50 category of each of the 50 classes."
        )
    return np.unique(groups, return_inverse=True)


def top1_accuracy(y_true_idx: np.ndarray, y_score: np.ndarray) -> float:
    """Fraction of clips whose true class scores strictly above every other class."""
    idx, score = _classification_inputs(y_true_idx, y_score)
    if idx.size == 0:
        return float("nan")
    return float(_top1_correct(idx, score).mean())


def within_group_top1(
    y_true_idx: np.ndarray, y_score: np.ndarray, class_groups: Sequence[Hashable] | np.ndarray
) -> float:
    """Top-1 accuracy with each clip classified among the classes of its true class's group.

    This is the within-category protocol (e.g. 10-way among the 10 classes of an ESC-50 category
    instead of 50-way). ``class_groups`` gives the group of each class, shape ``(n_classes,)``.
    """
    idx, score = _classification_inputs(y_true_idx, y_score)
    _, codes = _group_codes(class_groups, score.shape[1])
    if idx.size == 0:
        return float("nan")
    candidates = codes[None, :] == codes[idx][:, None]
    return float(_top1_correct(idx, score, candidates).mean())


def top1_accuracy_by_group(
    y_true_idx: np.ndarray,
    y_score: np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    *,
    within_group: bool = False,
) -> dict[str, float]:
    """Top-1 accuracy of the clips of each group, keyed by ``str(group)`` in sorted order.

    ``groups`` gives the group of each class (shape ``(n_classes,)``); a clip belongs to the group
    of its true class. Plain accuracy ranks all classes; ``within_group=True`` ranks only the
    classes of the clip's group (:func:`within_group_top1`). Groups without clips are left out.
    """
    idx, score = _classification_inputs(y_true_idx, y_score)
    names, codes = _group_codes(groups, score.shape[1])
    clip_codes = codes[idx]
    candidates = codes[None, :] == clip_codes[:, None] if within_group else None
    correct = _top1_correct(idx, score, candidates)
    counts = np.bincount(clip_codes, minlength=names.size)
    hits = np.bincount(clip_codes, weights=correct, minlength=names.size)
    return {str(names[g]): float(hits[g] / counts[g]) for g in np.flatnonzero(counts)}


def _retrieval_inputs(scores: Any, relevant: Any) -> tuple[np.ndarray, np.ndarray]:
    s = to_numpy(scores)
    rel = to_numpy(relevant)
    if s.ndim != 2 or rel.shape != s.shape:
        raise ConfigError(
            f"scores and relevant must both be (n_queries, n_items), got {s.shape} and "
            f"{rel.shape}; relevant[q, i] says whether item i answers query q."
        )
    if 0 in s.shape:
        raise ConfigError(f"scores has shape {s.shape}; retrieval needs queries and items.")
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    elif s.dtype.itemsize < 4:
        s = s.astype(np.float32)  # float16: numpy and torch.topk on CPU handle float32 better
    if rel.dtype != bool:
        if not ((rel == 0) | (rel == 1)).all():
            raise ConfigError("relevant must be boolean (or 0/1); binarise graded relevance first.")
        rel = rel != 0
    if any(stride < 0 for stride in s.strides):
        s = np.ascontiguousarray(s)  # torch cannot view negative strides
    return s, rel


def _count_irrelevant_at_least(
    s: np.ndarray,
    rel: np.ndarray,
    threshold: np.ndarray,
    rows: np.ndarray | None = None,
    block: int = 1 << 22,
) -> np.ndarray:
    """Per query (or per query in ``rows``), how many irrelevant items score ``>= threshold``.

    Works in cache-sized blocks along the matrix's contiguous axis, so a transposed view costs
    no more than the matrix itself.
    """
    n_q = s.shape[0] if rows is None else rows.size
    n_i = s.shape[1]
    sel = slice(None) if rows is None else rows
    count = np.zeros(n_q, dtype=np.int64)
    if s.flags.f_contiguous and not s.flags.c_contiguous:  # a transposed matrix: walk its items
        step = max(1, block // max(n_q, 1))
        for a in range(0, n_i, step):
            hit = s[sel, a : a + step] >= threshold[:, None]
            hit &= ~rel[sel, a : a + step]
            count += hit.sum(axis=1)
    else:
        step = max(1, block // n_i)
        for a in range(0, n_q, step):
            part = slice(a, a + step) if rows is None else rows[a : a + step]
            hit = s[part] >= threshold[a : a + step, None]
            hit &= ~rel[part]
            count[a : a + step] = hit.sum(axis=1)
    return count


def _check_cutoffs(ks: Sequence[int], map_k: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks) or int(map_k) < 1:
        raise ConfigError(f"cut-offs must be positive, got ks={ks} and map_k={map_k}.")
    return ks


def _ap_from_top_k(
    s: np.ndarray, rel: np.ndarray, rows: np.ndarray, n_rel: np.ndarray, map_k: int
) -> np.ndarray:
    """AP@map_k of the queries ``rows`` (with ``n_rel`` relevant items) from their top k."""
    import torch  # lazily: importing zskit.metrics stays light

    n_i = s.shape[1]
    k = min(map_k, n_i)
    with warnings.catch_warnings():  # a read-only array (e.g. a memory map) is only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        scores = torch.from_numpy(s)
    # torch.topk on a transposed view is about twice as slow as a contiguous copy and topk.
    scores = scores.contiguous()
    # Top k + 1 of every query (one more, to see ties): cheaper than gathering rows of a view.
    values_t, index_t = torch.topk(scores, min(k + 1, n_i), dim=1)
    values_t, index_t = values_t.numpy()[rows], index_t.numpy()[rows]
    values, index = values_t[:, :k], index_t[:, :k]
    top_rel = rel[rows[:, None], index]
    # Pessimistic rank of each relevant item in the top k: irrelevant items scoring at least as
    # high, plus the relevant items up to and including it (tied relevant items in any order).
    rank = ((values[:, None, :] >= values[:, :, None]) & ~top_rel[:, None, :]).sum(axis=2)
    if k < n_i:
        # Items tied with the k-th score also lie outside the top k: a relevant one among them is
        # ranked after all their irrelevant twins, so count those queries in full.
        tied_out = values_t[:, k] == values[:, -1]
        at_edge = top_rel & (values == values[:, -1:]) & tied_out[:, None]
        edge = np.flatnonzero(at_edge.any(axis=1))
        if edge.size:
            full = _count_irrelevant_at_least(s, rel, values[edge, -1], rows=rows[edge])
            rank[edge] = np.where(at_edge[edge], full[:, None], rank[edge])
    n_relevant_so_far = np.cumsum(top_rel, axis=1)
    rank += n_relevant_so_far
    precision = np.where(top_rel & (rank <= map_k), n_relevant_so_far / rank, 0.0)
    return precision.sum(axis=1) / n_rel


def retrieval_per_query(
    scores: Any, relevant: Any, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, np.ndarray]:
    """Per-query retrieval metrics: ``R@k``, ``mAP@{map_k}`` (AP@k), ``MRR`` (1/rank), ``rank``.

    ``scores`` and boolean ``relevant`` are ``(n_queries, n_items)`` (numpy arrays or tensors).

    - ``rank`` is the 1-based rank of the best-ranked relevant item; ``R@k`` is 1 when it is
      ``<= k`` (at least one relevant item in the top k), ``MRR`` is its reciprocal (no cut-off).
    - ``mAP@k`` is the DCASE language-based audio retrieval AP: the sum of precision at the rank
      of each relevant item ranked within the top k, divided by the number of relevant items of
      the query. With one relevant item it is ``1/rank`` if ``rank <= k`` else 0 (DCASE 2022
      task 6b); dividing by all relevant items follows the multi-match evaluation of DCASE 2025.
    - Ties are pessimistic: an irrelevant item with the same score as a relevant one is ranked
      above it; relevant items tied with each other take consecutive ranks (in any order, which
      changes no metric). A constant scorer thus gets rank ``n_irrelevant + 1``.
    - Queries without a relevant item get NaN everywhere (they cannot be answered).

    Cost: a few passes over the matrix that count scores above the best relevant one, plus a
    top-k (``torch.topk``) for the queries with several relevant items and one in the top k.
    """
    s, rel = _retrieval_inputs(scores, relevant)
    ks = _check_cutoffs(ks, map_k)
    map_k = int(map_k)
    nan_rows = np.flatnonzero(np.isnan(s.max(axis=1)))
    if nan_rows.size:
        raise ConfigError(
            f"scores hold NaN in queries {nan_rows[:10].tolist()}; fix the similarity "
            "computation (e.g. a zero-norm embedding) before ranking."
        )
    n_rel = np.count_nonzero(rel, axis=1)
    has = n_rel > 0
    best = np.max(s, axis=1, where=rel, initial=-np.inf)
    rank = 1.0 + _count_irrelevant_at_least(s, rel, best)
    # One relevant item: AP@k is 1/rank within the cut-off; none in the top k: 0. Queries with
    # several relevant items and one in the top k need their top k.
    ap = np.where(rank <= map_k, 1.0 / rank, 0.0)
    several = np.flatnonzero((n_rel > 1) & (rank <= map_k))
    if several.size:
        ap[several] = _ap_from_top_k(s, rel, several, n_rel[several], map_k)

    nan = np.full(s.shape[0], np.nan)
    out = {f"R@{k}": np.where(has, rank <= k, nan) for k in ks}
    out[f"mAP@{map_k}"] = np.where(has, ap, nan)
    out["MRR"] = np.where(has, 1.0 / rank, nan)
    out["rank"] = np.where(has, rank, nan)
    return out


def retrieval_metrics(
    scores: Any, relevant: Any, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, float]:
    """Mean ``R@k`` for each k, ``mAP@{map_k}`` and ``MRR`` over the queries (see
    :func:`retrieval_per_query` for definitions and ties).

    Queries without a relevant item are left out of the means and logged as a warning. For
    confidence intervals resample the per-query values:
    ``bootstrap_ci(np.nanmean, retrieval_per_query(s, r)["mAP@10"])``.
    """
    per_query = retrieval_per_query(scores, relevant, ks, map_k)
    rank = per_query.pop("rank")
    missing = int(np.isnan(rank).sum())
    if missing:
        logger.warning(
            "%d of %d queries have no relevant item and are left out of the retrieval metrics.",
            missing, rank.size,
        )
    if missing == rank.size:
        return {name: float("nan") for name in per_query}
    return {name: float(np.nanmean(v)) for name, v in per_query.items()}


def retrieval_metrics_both(
    scores_text_audio: Any, relevant: Any, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, dict[str, float]]:
    """:func:`retrieval_metrics` for text->audio (rows are captions) and audio->text (transpose).

    ``scores_text_audio`` and ``relevant`` are ``(n_captions, n_audio)``. Returns
    ``{"text_to_audio": {...}, "audio_to_text": {...}}``.
    """
    s, rel = _retrieval_inputs(scores_text_audio, relevant)
    return {
        "text_to_audio": retrieval_metrics(s, rel, ks, map_k),
        "audio_to_text": retrieval_metrics(s.T, rel.T, ks, map_k),
    }


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
