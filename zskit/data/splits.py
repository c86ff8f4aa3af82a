"""Splitting data: iterative stratification of multi-label clips (class folds join it for paper 1)."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Split index per row by iterative stratification (Sechidis et al., 2011).

    Rarest class first, each of its unassigned rows goes to the split, among those not yet full,
    that most lacks that class (ties: the split that most lacks rows, then at random).
    """
    lab = np.asarray(labels).astype(bool)
    n = len(lab)
    share = np.asarray(fractions, dtype=float) / np.sum(fractions)
    want_rows = share * n
    want = np.outer(share, lab.sum(axis=0))
    out = np.full(n, -1)
    order = rng.permutation(n)

    def place(row: int, need: np.ndarray) -> None:
        open_ = np.flatnonzero(want_rows > 0)
        open_ = open_ if len(open_) else np.arange(len(share))
        best = open_[need[open_] == need[open_].max()]
        best = best[want_rows[best] == want_rows[best].max()]
        s = int(rng.choice(best))
        out[row] = s
        want_rows[s] -= 1
        want[s] -= lab[row]

    while (out < 0).any():
        free = out < 0
        counts = lab[free].sum(axis=0)
        if counts.max() == 0:
            for row in order[free[order]]:
                place(int(row), want_rows)
            break
        c = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for row in order[(free & lab[:, c])[order]]:
            place(int(row), want[:, c])
    return out
