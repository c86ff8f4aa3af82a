"""Paper 1's class folds, fold statistics and the OpenMIC training-class conditions."""

from __future__ import annotations

import numpy as np
import pytest

from zskit.data.splits import (
    AUDIOSET_ALWAYS_TRAIN,
    class_folds,
    fold_statistics,
    openmic_condition,
    stratified_split,
)
from zskit.errors import ConfigError


def labels_with_counts(counts, n_clips=None, seed=0):
    """A 0/1 matrix whose column j has exactly counts[j] positives."""
    rng = np.random.default_rng(seed)
    n = n_clips or max(counts) + 5
    y = np.zeros((n, len(counts)), dtype=np.int8)
    for j, c in enumerate(counts):
        y[rng.choice(n, c, replace=False), j] = 1
    return y


def test_greedy_assignment_by_hand():
    # descending: c0 (10) -> f0, c1 (8) -> f1, c2 (5) -> f2 (load 0), c3 (4) -> f2 (5 < 8),
    # c4 (3) -> f1 (8 < 9, 10), c5 (1) -> f2 (9 < 10, 11)
    counts = [10, 8, 5, 4, 3, 1]
    folds = class_folds(labels_with_counts(counts), n_folds=3)
    assert folds.tolist() == [0, 1, 2, 2, 1, 2], folds


def test_ties_follow_column_order_and_lowest_fold():
    folds = class_folds(labels_with_counts([2, 2, 2, 2]), n_folds=2)
    assert folds.tolist() == [0, 1, 0, 1], folds


def test_always_train_classes_are_never_tested():
    counts = [50, 40, 9, 8, 7, 6, 5, 4, 3, 2]
    names = ["Speech", "Music"] + [f"k{i}" for i in range(8)]
    folds = class_folds(labels_with_counts(counts), 2, classes=names,
                        always_train=AUDIOSET_ALWAYS_TRAIN)
    assert folds[0] == -1 and folds[1] == -1, "Speech and Music only ever train"
    assert (folds[2:] >= 0).all()
    np.testing.assert_array_equal(folds, class_folds(labels_with_counts(counts), 2,
                                                     always_train=[0, 1]))


def test_folds_are_balanced_on_a_long_tailed_distribution():
    counts = np.random.default_rng(1).zipf(1.6, 120).clip(1, 400)
    y = labels_with_counts(counts.tolist(), n_clips=500)
    folds = class_folds(y, 5)
    load = np.bincount(folds, weights=y.sum(0), minlength=5)
    # the greedy rule keeps every fold within one class's tags of the lightest fold
    assert load.max() - load.min() <= counts.max(), load
    sizes = np.bincount(folds, minlength=5)
    assert sizes.min() >= 1 and sizes.sum() == 120


def test_mask_counts_only_known_positives():
    y = labels_with_counts([6, 5, 4, 3])
    mask = np.ones_like(y, dtype=bool)
    mask[:, 0] = False  # class 0's tags are all unknown: it comes last, with 0 tags
    # c1 (5) -> f0, c2 (4) -> f1, c3 (3) -> f1 (4 < 5), c0 (0) -> f0 (5 < 7)
    assert class_folds(y, 2, mask=mask).tolist() == [0, 0, 1, 1]
    assert class_folds(y, 2).tolist() == [0, 1, 1, 0], "without the mask c0 leads"


def test_fold_statistics_add_up():
    counts = [50, 40, 9, 8, 7, 6, 5, 4]
    y = labels_with_counts(counts, n_clips=80)
    names = ["Speech", "Music", "a", "b", "c", "d", "e", "f"]
    folds = class_folds(y, 3, classes=names, always_train=["Speech", "Music"])
    stats = fold_statistics(y, folds, classes=names)
    assert list(stats.index) == ["0", "1", "2", "train only"]
    assert stats["classes"].sum() == 8 and stats["tags"].sum() == sum(counts)
    assert stats.loc["train only", "class names"] == "Speech, Music"
    for f in range(3):
        cols = np.flatnonzero(folds == f)
        assert stats.loc[str(f), "clips"] == int(y[:, cols].any(1).sum())


@pytest.mark.parametrize("kwargs, match", [
    ({"n_folds": 1}, "n_folds"),
    ({"n_folds": 9}, "fewer than"),
    ({"always_train": ["Speech"]}, "no `classes`"),
    ({"always_train": ["Nope"], "classes": list("abcdef")}, "Nope"),
])
def test_errors_name_the_problem(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        class_folds(labels_with_counts([3, 2, 2, 1, 1, 1]), **{"n_folds": 2, **kwargs})


def test_openmic_conditions():
    classes = ["Speech", "Guitar", "Violin, fiddle", "Drum", "Dog", "Musical instrument"]
    openmic = ["Guitar", "Violin, fiddle"]
    instruments = ["Musical instrument", "Guitar", "Violin, fiddle", "Drum"]
    assert openmic_condition("C", classes, openmic_classes=openmic) == classes
    assert openmic_condition("C\\C_MIC", classes, openmic_classes=openmic) == [
        "Speech", "Drum", "Dog", "Musical instrument"]
    assert openmic_condition("C\\C_inst", classes, openmic_classes=openmic,
                             instrument_classes=instruments) == ["Speech", "Dog"]
    with pytest.raises(ConfigError, match="instrument_classes"):
        openmic_condition("C\\C_inst", classes, openmic_classes=openmic)
    with pytest.raises(ConfigError, match="unknown"):
        openmic_condition("C-MIC", classes, openmic_classes=openmic)
    with pytest.raises(ConfigError, match="Cello"):
        openmic_condition("C", classes, openmic_classes=["Cello"])


def test_stratified_split_unchanged():
    y = labels_with_counts([20, 10, 5], n_clips=40)
    out = stratified_split(y, (0.5, 0.5), np.random.default_rng(0))
    assert set(out.tolist()) == {0, 1} and abs((out == 0).sum() - 20) <= 2


def test_classes_without_tags_are_dealt_round_the_folds():
    # c0..c4 leave loads 10, 9, 9 and 1, 2, 2 classes; the five untagged classes add no load, so
    # the lightest-load rule alone would put all of them in fold 1. By class count: f0, then
    # (sizes tied) the lighter f1, f2, then f0, f1
    folds = class_folds(labels_with_counts([10, 5, 5, 4, 4, 0, 0, 0, 0, 0]), n_folds=3)
    assert folds[5:].tolist() == [0, 1, 2, 0, 1], folds
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1, folds
