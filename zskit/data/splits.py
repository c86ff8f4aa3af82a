"""Splitting data: iterative stratification of multi-label clips; class folds and training-class
conditions for zero-shot evaluation (paper 1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from zskit.errors import ConfigError

__all__ = [
    "AUDIOSET_ALWAYS_TRAIN",
    "OPENMIC_CONDITIONS",
    "class_folds",
    "fold_statistics",
    "openmic_condition",
    "stratified_split",
]


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


# ---------------------------------------------------------------------------------------------
# Class folds and training-class conditions (paper 1)

#: Classes paper 1 only ever trains on: tagged in more than half of AudioSet, hard to balance.
AUDIOSET_ALWAYS_TRAIN: tuple[str, ...] = ("Speech", "Music")

#: Paper 1's OpenMIC conditions: no instrument class, no OpenMIC instrument, all classes.
OPENMIC_CONDITIONS: tuple[str, ...] = ("C\\C_inst", "C\\C_MIC", "C")


def _tag_counts(labels: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    lab = np.asarray(labels) > 0
    if lab.ndim != 2:
        raise ConfigError(f"labels must be (n_clips, n_classes), got shape {lab.shape}.")
    if mask is not None:
        known = np.asarray(mask, dtype=bool)
        if known.shape != lab.shape:
            raise ConfigError(f"mask has shape {known.shape} but labels {lab.shape}; pass one "
                              "mask entry per (clip, class).")
        lab = lab & known
    return lab.sum(axis=0)


def _class_indices(items: Iterable[str | int], classes: Sequence[str] | None, n: int,
                   what: str) -> list[int]:
    out = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= item < n:
                raise ConfigError(f"{what} index {item} is out of range for {n} classes; pass "
                                  f"indices 0..{n - 1} or class names.")
            out.append(int(item))
        elif classes is None:
            raise ConfigError(f"{what} names a class ({item!r}) but no `classes` were given; "
                              "pass classes= (ids or names, one per column) or use indices.")
        elif item not in classes:
            raise ConfigError(f"{what} class {item!r} is not among the classes "
                              f"({', '.join(map(str, list(classes)[:8]))}, ...); check its spelling.")
        else:
            out.append(list(classes).index(item))
    return out


def class_folds(labels: np.ndarray, n_folds: int = 5, *, classes: Sequence[str] | None = None,
                always_train: Iterable[str | int] = (), mask: np.ndarray | None = None) -> np.ndarray:
    """Fold of each class (column) for zero-shot cross-validation over classes (paper 1).

    Classes are visited by descending tag count (ties: column order); each goes to the fold with
    the fewest tags so far (ties: the fold with fewer classes, then the lower fold). A class with
    no tag adds no load, so it goes to the fold with the fewest classes (ties: fewest tags, then
    the lower fold): such classes are dealt round the folds instead of all landing in the lightest. ``always_train`` classes (names from ``classes``
    or column indices; Speech and Music on AudioSet, :data:`AUDIOSET_ALWAYS_TRAIN`) get fold -1:
    they are never tested. Tags are positives, counted where ``mask`` is set.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ConfigError(f"n_folds={n_folds!r} must be an integer >= 2 (paper 1 uses 5).")
    counts = _tag_counts(labels, mask)
    if classes is not None and len(classes) != len(counts):
        raise ConfigError(f"{len(classes)} classes are named but labels have {len(counts)} "
                          "columns; pass one name per column.")
    fixed = set(_class_indices(always_train, classes, len(counts), "always_train"))
    candidates = [c for c in range(len(counts)) if c not in fixed]
    if len(candidates) < n_folds:
        raise ConfigError(f"only {len(candidates)} classes can be tested, fewer than "
                          f"n_folds={n_folds}; lower n_folds.")
    folds = np.full(len(counts), -1, dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    size = np.zeros(n_folds, dtype=np.int64)
    for c in sorted(candidates, key=lambda j: (-counts[j], j)):
        keys = (size, load) if counts[c] else (load, size)  # np.lexsort: the last key first
        f = int(np.lexsort((np.arange(n_folds), *keys))[0])
        folds[c] = f
        load[f] += counts[c]
        size[f] += 1
    return folds


def fold_statistics(labels: np.ndarray, folds: np.ndarray, *, classes: Sequence[str] | None = None,
                    mask: np.ndarray | None = None) -> pd.DataFrame:
    """One row per fold (and ``train only`` for fold -1): classes, tags and tagged clips.

    ``clips`` counts the clips with at least one tag of the fold's classes (paper 1's "labeled
    instances").
    """
    counts = _tag_counts(labels, mask)
    folds = np.asarray(folds)
    if folds.shape != counts.shape:
        raise ConfigError(f"folds has shape {folds.shape} but labels have {len(counts)} classes; "
                          "pass the array class_folds returned.")
    lab = np.asarray(labels) > 0
    if mask is not None:
        lab = lab & np.asarray(mask, dtype=bool)
    names = list(classes) if classes is not None else [str(j) for j in range(len(counts))]
    rows = []
    for f in sorted(set(folds.tolist()), key=lambda v: (v < 0, v)):
        cols = np.flatnonzero(folds == f)
        rows.append({
            "fold": "train only" if f < 0 else str(f),
            "classes": len(cols),
            "tags": int(counts[cols].sum()),
            "clips": int(lab[:, cols].any(axis=1).sum()),
            "class names": ", ".join(names[j] for j in cols),
        })
    return pd.DataFrame(rows).set_index("fold")


def openmic_condition(condition: str, classes: Sequence[str], *, openmic_classes: Iterable[str],
                      instrument_classes: Iterable[str] | None = None) -> list[str]:
    """The training classes of one of paper 1's OpenMIC conditions, in ``classes`` order.

    - ``"C"``: every class;
    - ``"C\\C_MIC"``: every class except ``openmic_classes`` (the training-set classes that overlap
      OpenMIC's 20 instruments, e.g. P1a's exclusion list; on the synthetic corpus its 20
      OpenMIC-named classes);
    - ``"C\\C_inst"``: every class except ``instrument_classes`` (on AudioSet, "Musical
      instrument" and its descendants in the ontology) and the OpenMIC classes.
    """
    classes = list(classes)
    openmic = set(openmic_classes)
    unknown = sorted(openmic - set(classes))
    if unknown:
        raise ConfigError(f"openmic_classes {unknown} are not among the training classes; map "
                          "them to training-class names first (see data/exclusions/).")
    if condition == "C":
        return classes
    if condition == "C\\C_MIC":
        return [c for c in classes if c not in openmic]
    if condition == "C\\C_inst":
        if instrument_classes is None:
            raise ConfigError("condition 'C\\C_inst' needs instrument_classes (on AudioSet: "
                              "'Musical instrument' and its ontology descendants).")
        drop = openmic | set(instrument_classes)
        return [c for c in classes if c not in drop]
    raise ConfigError(f"condition {condition!r} is unknown; use one of {OPENMIC_CONDITIONS}.")
