"""zskit.metrics against scikit-learn and brute-force references."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    roc_auc_score,
    top_k_accuracy_score,
)

from zskit import metrics
from zskit.errors import ConfigError
from zskit.metrics import (
    _count_irrelevant_at_least,
    average_precision_per_class,
    bootstrap_ci,
    d_prime,
    f1_per_class,
    macro_f1,
    macro_roc_auc,
    mean_average_precision,
    random_average_precision,
    random_map,
    retrieval_metrics,
    retrieval_metrics_both,
    retrieval_per_query,
    roc_auc_per_class,
    top1_accuracy,
    top1_accuracy_by_group,
    tune_thresholds,
    within_group_top1,
)


def brute_force_ap(y: np.ndarray, s: np.ndarray) -> float:
    """AP from its definition: sum over distinct thresholds of recall step times precision."""
    n_pos = y.sum()
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        chosen = s >= t
        recall = y[chosen].sum() / n_pos
        ap += (recall - prev_recall) * y[chosen].mean()
        prev_recall = recall
    return ap


def sklearn_ap(y: np.ndarray, s: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = []
    for c in range(y.shape[1]):
        k = mask[:, c]
        out.append(average_precision_score(y[k, c], s[k, c]) if y[k, c].sum() else np.nan)
    return np.array(out)


@pytest.fixture
def tagging_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n, c = 60, 7
    y = (rng.random((n, c)) < 0.3).astype(np.int8)
    # Coarse scores: many ties within and across labels.
    s = np.round(rng.random((n, c)) + 0.5 * y, 1)
    mask = rng.random((n, c)) < 0.8
    y[:, 3] = 0  # a class without positives
    mask[:, 5] = False  # a fully masked class
    return y, s, mask


def test_ap_matches_sklearn_without_mask(tagging_data):
    y, s, _ = tagging_data
    full = np.ones_like(y, dtype=bool)
    ours = average_precision_per_class(y, s)
    ref = sklearn_ap(y, s, full)
    np.testing.assert_allclose(ours, ref, atol=1e-12, err_msg="AP differs from sklearn (ties)")
    assert np.isnan(ours[3]), "a class without positives must give NaN"


def test_ap_matches_sklearn_with_mask(tagging_data):
    y, s, mask = tagging_data
    ours = average_precision_per_class(y, s, mask)
    ref = sklearn_ap(y, s, mask)
    np.testing.assert_allclose(ours, ref, atol=1e-12, err_msg="masked AP differs from sklearn")
    assert np.isnan(ours[5]), "a fully masked class must give NaN"
    assert np.isfinite(np.delete(ours, [3, 5])).all(), "other classes must be finite"


def test_masked_entries_are_ignored(tagging_data):
    y, s, mask = tagging_data
    garbage_y = np.where(mask, y, 1)
    garbage_s = np.where(mask, s, np.nan)  # unknown entries may hold anything
    np.testing.assert_allclose(
        average_precision_per_class(garbage_y, garbage_s, mask),
        average_precision_per_class(y, s, mask),
        err_msg="values under mask=False changed the AP",
    )


def test_ap_matches_brute_force_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = (rng.random(25) < 0.4).astype(int)
        y[0] = 1
        s = rng.integers(0, 5, 25).astype(float)
        ours = average_precision_per_class(y, s)[0]
        assert ours == pytest.approx(brute_force_ap(y, s), abs=1e-12), f"y={y} s={s}"


@pytest.mark.parametrize("tile_bytes", [1, 4096, 1 << 18])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "non-negative"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ap_over_several_class_blocks_matches_sklearn_and_leaves_input_alone(
    tile_bytes, signed, dtype, monkeypatch
):
    """More classes than one sorting block (and than one key group), float32 scores with ties
    and infinities, a column-major score matrix (whose per-block copy must not sort the
    caller's array), and transposing copies made of one row per tile, several rows per tile,
    or one tile, in float32 and float64. Signed scores take the search route, scores >= 0 the
    integer-key route; -0.0 and 0.0 must tie on both."""
    monkeypatch.setattr("zskit.metrics._AP_TILE_BYTES", tile_bytes)
    monkeypatch.setattr("zskit.metrics._AP_KEY_BYTES", 1)  # as many key groups as blocks
    rng = np.random.default_rng(4)
    n, c = 300, 150
    y = rng.random((n, c)) < rng.uniform(0.01, 0.3, c)
    y[0] = True  # every class has a positive
    if signed:
        s = np.round(rng.normal(size=(n, c)) + y, 1).astype(dtype)
        s[5, :40], s[6, 20:60] = np.inf, -np.inf
        s[7:40:3] = -0.0
    else:
        s = np.round(rng.random((n, c)) + y, 1).astype(dtype)
        s[5, :40], s[6, 20:60] = np.inf, 0.0
        s[7:40:3] = -0.0  # ties with the zeros above, and with each other
    s = np.asfortranarray(s)
    mask = rng.random((n, c)) < 0.7
    mask[0] = True
    before = s.copy()
    finite = np.clip(s, -1e38, 1e38)  # the same order, for sklearn, which refuses infinity
    for m in (np.ones_like(mask), mask):
        ours = average_precision_per_class(y, s, None if m.all() else m)
        np.testing.assert_allclose(ours, sklearn_ap(y, finite, m), atol=1e-12,
                                   err_msg="AP differs from sklearn across class blocks")
    np.testing.assert_array_equal(s, before, err_msg="average_precision_per_class changed y_score")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ap_routes_agree_and_each_is_taken(dtype, monkeypatch):
    """Scores >= 0 take the integer-key route and any others the search route (each checked by
    making the other one fail); on the same scores both routes give identical APs, masked or
    not, with heavy ties, unknown entries holding positives and large scores, and classes
    without a positive or without a known entry."""
    rng = np.random.default_rng(9)
    n, c = 400, 90
    y = rng.random((n, c)) < rng.uniform(0.005, 0.5, c)
    y[:, 7] = False
    s = (np.round(rng.random((n, c)) * 16) / 16 + 0.25 * y).astype(dtype)  # exact; heavy ties
    mask = rng.random((n, c)) < 0.6
    mask[:, 11] = False
    garbage_y, garbage_s = y | ~mask, np.where(mask, s, dtype(1e30))  # under mask=False
    routes = {"keys": metrics._ap_by_keys, "search": metrics._ap_by_search}
    for m in (None, mask):
        pos = y if m is None else y & m
        by_keys, by_search = (route(pos, s, m) for route in routes.values())
        np.testing.assert_array_equal(by_keys, by_search, err_msg="the two routes disagree")
        assert np.isnan(by_keys[7]) and np.isfinite(by_keys[:7]).all()
    np.testing.assert_allclose(average_precision_per_class(y, s, mask), sklearn_ap(y, s, mask),
                               atol=1e-12, err_msg="masked AP differs from sklearn")

    def refuse(*_):
        raise AssertionError("the wrong route was taken")

    monkeypatch.setattr(metrics, "_ap_by_search", refuse)
    np.testing.assert_array_equal(
        average_precision_per_class(garbage_y, garbage_s, mask), by_keys,
        err_msg="values under mask=False changed the AP (key route)")
    monkeypatch.setattr(metrics, "_ap_by_search", routes["search"])
    monkeypatch.setattr(metrics, "_ap_by_keys", refuse)
    shifted = s - dtype(2)  # negative scores, the same order and ties (multiples of 1/16)
    np.testing.assert_array_equal(average_precision_per_class(y, shifted, mask), by_keys,
                                  err_msg="the search route differs on shifted scores")
    with_nan = np.where(mask, s, np.nan).astype(dtype)  # NaN under mask=False: search route
    np.testing.assert_array_equal(average_precision_per_class(y, with_nan, mask), by_keys)


@pytest.mark.parametrize("shift", [0.0, -0.5], ids=["non-negative", "signed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ap_threads_give_identical_values_over_uneven_shares(dtype, shift, monkeypatch):
    """Key groups (or, for signed scores, search blocks) shared out over 2, 3 or more
    threads (more threads than some shares, a last group narrower than the others) give exactly
    the one-thread APs, masked or not; each thread has its own key buffer, so a shared one would
    mix classes and fail this. Bad ``threads`` raise."""
    monkeypatch.setattr("zskit.metrics._AP_KEY_BYTES", 1)
    monkeypatch.setattr("zskit.metrics._AP_BLOCK", 7)  # 103 classes: 15 groups, the last of 5
    rng = np.random.default_rng(12)
    n, c = 500, 103
    y = rng.random((n, c)) < rng.uniform(0.01, 0.3, c)
    y[0] = True
    s = (np.round(rng.random((n, c)), 2) + 0.3 * y + shift).astype(dtype)  # ties
    mask = rng.random((n, c)) < 0.7
    mask[0] = True
    for m in (None, mask):
        one = average_precision_per_class(y, s, m, threads=1)
        np.testing.assert_allclose(one, sklearn_ap(y, s, np.ones_like(y) if m is None else m),
                                   atol=1e-12,
                                   err_msg="one-thread AP differs from sklearn")
        for threads in (2, 3, 16, None):
            np.testing.assert_array_equal(
                average_precision_per_class(y, s, m, threads=threads), one,
                err_msg=f"threads={threads} changed the APs")
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="threads"):
            mean_average_precision(y, s, threads=bad)


def test_ap_finds_nan_at_a_known_entry_in_any_block():
    """NaN is found after sorting (it sorts last); masked-out NaN is fine, known NaN is not."""
    rng = np.random.default_rng(6)
    y = rng.random((40, 150)) < 0.3
    s = rng.random((40, 150))
    mask = np.ones_like(y)
    s[7, 140], mask[7, 140] = np.nan, False  # a class in the last block
    assert np.isfinite(average_precision_per_class(y, s, mask)[140]), "masked NaN must be ignored"
    for m in (None, np.where(np.arange(150) == 140, True, mask)):
        with pytest.raises(ConfigError, match="NaN"):
            average_precision_per_class(y, s, m)


def test_ap_of_empty_inputs_is_nan():
    assert np.isnan(average_precision_per_class(np.zeros((0, 3)), np.zeros((0, 3)))).all()
    assert average_precision_per_class(np.zeros((5, 0)), np.zeros((5, 0))).shape == (0,)


def test_map_is_macro_over_classes_with_positives(tagging_data):
    y, s, mask = tagging_data
    ref = np.nanmean(sklearn_ap(y, s, mask))
    assert mean_average_precision(y, s, mask) == pytest.approx(ref, abs=1e-12)
    perfect = mean_average_precision(y, y.astype(float) + 0.0, None)
    assert perfect == pytest.approx(1.0), "scoring with the truth itself must give mAP 1"


def test_metrics_take_torch_tensors_that_require_grad(tagging_data):
    """Scores straight from a model (a tensor requiring grad) give the numpy result; retrieval
    and tagging share one conversion (zskit._arrays.to_numpy), as does zskit.viz."""
    y, s, mask = tagging_data
    scores = torch.tensor(s, requires_grad=True)
    assert mean_average_precision(torch.from_numpy(y), scores, torch.from_numpy(mask)) == (
        pytest.approx(mean_average_precision(y, s, mask), abs=1e-12))
    square = torch.rand(4, 4, requires_grad=True)
    relevant = torch.eye(4, dtype=torch.bool)
    assert retrieval_metrics(square, relevant) == retrieval_metrics(
        square.detach().numpy(), relevant.numpy())


def test_random_ap_is_exact_expectation_over_orderings():
    n, p = 7, 3
    aps = []
    for positives in itertools.combinations(range(n), p):
        y = np.zeros(n, dtype=int)
        y[list(positives)] = 1
        aps.append(brute_force_ap(y, -np.arange(n, dtype=float)))
    y = np.zeros(n, dtype=int)
    y[:p] = 1
    expected = random_average_precision(y)[0]
    assert expected == pytest.approx(np.mean(aps), abs=1e-12), "exact random AP is off"


def test_random_map_with_mask_matches_monte_carlo(tagging_data):
    y, _, mask = tagging_data
    rng = np.random.default_rng(3)
    sims = [mean_average_precision(y, rng.random(y.shape), mask) for _ in range(400)]
    exact = random_map(y, mask)
    assert abs(np.mean(sims) - exact) < 0.01, f"MC {np.mean(sims):.4f} vs exact {exact:.4f}"
    ap = random_average_precision(y, mask)
    assert np.isnan(ap[3]) and np.isnan(ap[5]), "no positives -> NaN"


def test_bootstrap_ci_brackets_the_value(tagging_data):
    y, s, mask = tagging_data
    ci = bootstrap_ci(mean_average_precision, y, s, mask, n=200, seed=0)
    assert ci.low <= ci.value <= ci.high, f"interval {ci} does not contain the value"
    assert ci.high - ci.low > 0, "a noisy metric must have a non-empty interval"
    again = bootstrap_ci(mean_average_precision, y, s, mask, n=200, seed=0)
    assert again == ci, "the same seed must give the same interval"
    no_mask = bootstrap_ci(mean_average_precision, y, s, None, n=50)
    assert no_mask.n_resamples == 50, "None must be passed through as 'no mask'"


def test_bad_inputs_raise_config_errors():
    y = np.array([[0, 1], [1, 0]])
    with pytest.raises(ConfigError, match="shape"):
        average_precision_per_class(y, np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="0/1"):
        average_precision_per_class(y * 2, np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="NaN"):
        average_precision_per_class(y, np.full((2, 2), np.nan))
    with pytest.raises(ConfigError, match="alpha"):
        bootstrap_ci(mean_average_precision, y, np.zeros((2, 2)), alpha=1.5)


# --- ROC AUC and d' -------------------------------------------------------------------------


def sklearn_auc(y: np.ndarray, s: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = []
    for c in range(y.shape[1]):
        k = mask[:, c]
        defined = 0 < y[k, c].sum() < k.sum()
        out.append(roc_auc_score(y[k, c], s[k, c]) if defined else np.nan)
    return np.array(out)


def test_roc_auc_matches_sklearn_with_ties_and_mask(tagging_data):
    y, s, mask = tagging_data
    y[:, 6] = 1  # a class without negatives
    full = np.ones_like(mask)
    for m in (full, mask):
        ours = roc_auc_per_class(y, s, m)
        ref = sklearn_auc(y, s, m)
        np.testing.assert_allclose(ours, ref, atol=1e-12, err_msg="ROC AUC differs from sklearn")
        assert macro_roc_auc(y, s, m) == pytest.approx(np.nanmean(ref), abs=1e-12)
    ours = roc_auc_per_class(y, s, mask)
    assert np.isnan(ours[[3, 5, 6]]).all(), "no positive / fully masked / no negative -> NaN"
    assert np.isfinite(np.delete(ours, [3, 5, 6])).all(), "other classes must be finite"


def test_roc_auc_is_pairwise_win_rate_with_half_ties():
    rng = np.random.default_rng(4)
    for _ in range(20):
        y = (rng.random(30) < 0.4).astype(int)
        y[:2] = (0, 1)
        s = rng.integers(0, 4, 30).astype(float)
        pos, neg = s[y == 1], s[y == 0]
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
        assert roc_auc_per_class(y, s)[0] == pytest.approx(wins, abs=1e-12), f"y={y} s={s}"


def test_roc_auc_ignores_masked_entries(tagging_data, caplog):
    y, s, mask = tagging_data
    garbage_y = np.where(mask, y, 1)
    garbage_s = np.where(mask, s, np.nan)
    np.testing.assert_allclose(
        roc_auc_per_class(garbage_y, garbage_s, mask),
        roc_auc_per_class(y, s, mask),
        err_msg="values under mask=False changed the AUC",
    )
    with caplog.at_level(logging.INFO, logger="zskit.metrics"):
        macro_roc_auc(y, s, mask)
    assert "[3, 5]" in caplog.text, f"excluded classes must be reported, log was {caplog.text!r}"
    assert np.isnan(macro_roc_auc(np.zeros((4, 2)), np.zeros((4, 2)))), "no class defined -> NaN"


def test_d_prime_inverts_the_gaussian_auc():
    for d in (-1.0, 0.0, 0.5, 1.7, 3.0):
        auc = 0.5 * math.erfc(-d / 2)  # AUC of N(d, 1) against N(0, 1) is Phi(d / sqrt 2)
        assert d_prime(auc) == pytest.approx(d, abs=1e-9), f"d'={d}"
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(4000), np.ones(4000)]
    s = rng.standard_normal(8000) + 1.5 * y
    assert d_prime(roc_auc_score(y, s)) == pytest.approx(1.5, abs=0.08), "empirical d' is off"
    out = d_prime(np.array([0.5, 1.0, np.nan]))
    assert out[0] == 0 and out[1] == np.inf and np.isnan(out[2]), f"array d' wrong: {out}"
    assert isinstance(d_prime(0.7), float), "a scalar AUC must give a float"
    with pytest.raises(ConfigError, match="1.2"):
        d_prime(1.2)


# --- F1 with tuned thresholds ---------------------------------------------------------------


def brute_force_best_thresholds(y, s, mask):
    """Try every known score of each class as the threshold; F1 from scikit-learn."""
    best_f1, best_thr = [], []
    for c in range(y.shape[1]):
        k = mask[:, c]
        yc, sc = y[k, c], s[k, c]
        if yc.sum() == 0:
            best_f1.append(np.nan)
            best_thr.append(np.inf)
            continue
        cands = sorted(set(sc.tolist()), reverse=True)
        f1s = [f1_score(yc, (sc >= t).astype(int)) for t in cands]
        top = max(f1s)
        best_f1.append(top)
        best_thr.append(max(t for t, f in zip(cands, f1s) if f == pytest.approx(top, abs=1e-12)))
    return np.array(best_f1), np.array(best_thr)


def test_tune_thresholds_maximises_f1_by_brute_force(tagging_data):
    y, s, mask = tagging_data
    for m in (np.ones_like(mask), mask):
        thr = tune_thresholds(y, s, m)
        ref_f1, ref_thr = brute_force_best_thresholds(y, s, m)
        np.testing.assert_array_equal(thr, ref_thr, err_msg="not the highest F1-maximising cut")
        reached = f1_per_class(y, s, thr, m)
        np.testing.assert_allclose(reached, ref_f1, atol=1e-12, err_msg="tuned F1 is not the max")
    assert np.isinf(tune_thresholds(y, s, mask)[[3, 5]]).all(), "no known positive -> +inf"


def test_tune_thresholds_tie_rule_and_validation_to_test():
    y = np.array([1, 0, 0, 1])
    s = np.array([4.0, 3.0, 2.0, 1.0])  # cutting at 4 and at 1 both give F1 = 2/3
    assert tune_thresholds(y, s)[0] == 4.0, "equal F1: the highest threshold must win"
    assert f1_per_class(y, s, tune_thresholds(y, s))[0] == pytest.approx(2 / 3)
    test_scores = np.array([5.0, 4.0, 3.9, 0.0])  # 4.0 == threshold counts as positive
    assert f1_per_class(y, test_scores, np.array([4.0]))[0] == pytest.approx(0.5), (
        "on test data, scores >= threshold are positive (TP 1, FP 1, FN 1)"
    )


def test_f1_matches_sklearn(tagging_data):
    y, s, mask = tagging_data
    rng = np.random.default_rng(6)
    pred = (rng.random(y.shape) < 0.3).astype(int)
    pred[:, 4] = 0  # a class never predicted; class 3 has no positive
    ref = f1_score(y, pred, average=None, zero_division=np.nan)
    np.testing.assert_allclose(f1_per_class(y, pred), ref, atol=1e-12, err_msg="F1 vs sklearn")
    assert macro_f1(y, pred) == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=np.nan), abs=1e-12
    )
    none_none = np.zeros((5, 1), dtype=int)
    assert np.isnan(f1_per_class(none_none, none_none)[0]), "no positive, none predicted -> NaN"
    # Thresholds from validation applied to test scores, with a mask.
    thr = tune_thresholds(y[:30], s[:30], mask[:30])
    ours = f1_per_class(y[30:], s[30:], thr, mask[30:])
    for c in range(y.shape[1]):
        k = mask[30:, c]
        yc, pc = y[30:][k, c], (s[30:][k, c] >= thr[c]).astype(int)
        ref_c = f1_score(yc, pc, zero_division=np.nan) if k.any() else np.nan
        np.testing.assert_allclose(ours[c], ref_c, atol=1e-12, err_msg=f"masked F1, class {c}")
    assert macro_f1(y[30:], s[30:], 0.5) == pytest.approx(
        f1_score(y[30:], (s[30:] >= 0.5).astype(int), average="macro", zero_division=np.nan),
        abs=1e-12,
    ), "a scalar threshold applies to every class"


def test_f1_bad_inputs_raise():
    y = np.array([[0, 1], [1, 0]])
    with pytest.raises(ConfigError, match="thresholds="):
        f1_per_class(y, np.array([[0.2, 0.9], [0.7, 0.1]]))
    with pytest.raises(ConfigError, match="one per class"):
        f1_per_class(y, np.zeros((2, 2)), thresholds=np.zeros(3))
    with pytest.raises(ConfigError, match="NaN"):
        f1_per_class(y, np.zeros((2, 2)), thresholds=np.array([0.5, np.nan]))


# --- top-1 accuracy -------------------------------------------------------------------------


def test_top1_matches_sklearn_and_is_pessimistic_on_ties():
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 6, 80)
    score = rng.random((80, 6))
    ref = top_k_accuracy_score(idx, score, k=1, labels=range(6))
    assert top1_accuracy(idx, score) == pytest.approx(ref), "top-1 differs from sklearn"
    coarse = rng.integers(0, 3, (80, 6)).astype(float)
    brute = np.mean([all(coarse[i, j] < coarse[i, t] for j in range(6) if j != t)
                     for i, t in enumerate(idx)])
    assert top1_accuracy(idx, coarse) == pytest.approx(brute), "ties must count as wrong"
    assert top1_accuracy(idx, np.ones((80, 6))) == 0.0, "a constant scorer must earn nothing"
    with pytest.raises(ConfigError, match="class indices"):
        top1_accuracy(idx.astype(float) + 0.5, score)
    with pytest.raises(ConfigError, match=r"\[0, 6\)"):
        top1_accuracy(idx + 6, score)


def test_within_group_and_by_group_top1_by_brute_force():
    rng = np.random.default_rng(8)
    class_groups = np.array(["animals"] * 4 + ["water"] * 4 + ["urban"] * 4)
    idx = rng.integers(0, 12, 150)
    score = rng.integers(0, 6, (150, 12)).astype(float)  # ties on purpose

    def strict_win(i, candidates):
        t = idx[i]
        return all(score[i, j] < score[i, t] for j in candidates if j != t)

    within = [strict_win(i, np.flatnonzero(class_groups == class_groups[t]))
              for i, t in enumerate(idx)]
    plain = [strict_win(i, range(12)) for i in range(150)]
    assert within_group_top1(idx, score, class_groups) == pytest.approx(np.mean(within))
    by_group = top1_accuracy_by_group(idx, score, class_groups)
    by_group_within = top1_accuracy_by_group(idx, score, class_groups, within_group=True)
    assert list(by_group) == ["animals", "urban", "water"], f"keys: {list(by_group)}"
    for g in by_group:
        clips = class_groups[idx] == g
        assert by_group[g] == pytest.approx(np.mean(np.array(plain)[clips])), f"plain, {g}"
        assert by_group_within[g] == pytest.approx(np.mean(np.array(within)[clips])), f"10-way, {g}"
    # Without ties, the plain per-group accuracy is scikit-learn's on that group's clips.
    smooth = rng.random((150, 12))
    for g, acc in top1_accuracy_by_group(idx, smooth, class_groups).items():
        clips = class_groups[idx] == g
        ref = top_k_accuracy_score(idx[clips], smooth[clips], k=1, labels=range(12))
        assert acc == pytest.approx(ref), f"group {g} vs sklearn"
    assert within_group_top1(idx, smooth, class_groups) >= top1_accuracy(idx, smooth), (
        "restricting the candidates cannot lower accuracy"
    )
    with pytest.raises(ConfigError, match="one group per class"):
        within_group_top1(idx, score, class_groups[:5])


# --- retrieval ------------------------------------------------------------------------------


def brute_force_retrieval(scores, relevant, ks=(1, 5, 10), map_k=10):
    """Rank every item with Python's sort (irrelevant first on ties) and read the metrics off."""
    out = {f"R@{k}": [] for k in ks} | {f"mAP@{map_k}": [], "MRR": []}
    for s, r in zip(scores.tolist(), relevant.tolist()):
        if not any(r):
            for v in out.values():
                v.append(np.nan)
            continue
        flags = [r[i] for i in sorted(range(len(s)), key=lambda i: (-s[i], r[i]))]
        first = flags.index(True) + 1
        for k in ks:
            out[f"R@{k}"].append(float(first <= k))
        hits, ap = 0, 0.0
        for rank, is_rel in enumerate(flags[:map_k], start=1):
            if is_rel:
                hits += 1
                ap += hits / rank
        out[f"mAP@{map_k}"].append(ap / sum(r))
        out["MRR"].append(1 / first)
    return {k: np.array(v) for k, v in out.items()}


def test_retrieval_matches_brute_force_with_ties_and_several_relevant():
    rng = np.random.default_rng(9)
    for trial in range(150):
        n_q, n_i = rng.integers(1, 10), rng.integers(1, 30)
        scores = rng.integers(0, rng.integers(1, 6), (n_q, n_i)).astype(np.float32)
        relevant = rng.random((n_q, n_i)) < rng.choice([0.05, 0.3, 0.8])
        map_k = int(rng.integers(1, 13))
        for s, r in ((scores, relevant), (scores.T, relevant.T)):  # C and transposed layouts
            ours = retrieval_per_query(s, r, ks=(1, 3, 10), map_k=map_k)
            ref = brute_force_retrieval(s, r, ks=(1, 3, 10), map_k=map_k)
            for key, want in ref.items():
                np.testing.assert_allclose(
                    ours[key], want, atol=1e-12, err_msg=f"{key}, trial {trial}\n{s}\n{r}"
                )


def test_retrieval_against_a_full_sort_on_a_larger_matrix():
    rng = np.random.default_rng(10)
    n_q, n_i = 300, 2000
    relevant = rng.random((n_q, n_i)) < 0.002
    relevant[:, 0] = rng.random(n_q) < 0.5  # about half the queries have several items
    scores = np.round(rng.random((n_q, n_i)) + 0.8 * relevant, 2).astype(np.float32)
    order = np.lexsort((relevant, -scores), axis=1)  # full sort, irrelevant first on ties
    flags = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    has = n_rel > 0
    first = np.argmax(flags, axis=1) + 1.0
    hits = np.cumsum(flags[:, :10], axis=1)
    ap = (flags[:, :10] * hits / np.arange(1, 11)).sum(axis=1) / np.maximum(n_rel, 1)
    ours = retrieval_per_query(scores, relevant)
    np.testing.assert_array_equal(ours["rank"][has], first[has], err_msg="rank of first relevant")
    np.testing.assert_allclose(ours["mAP@10"][has], ap[has], atol=1e-12, err_msg="AP@10")
    assert np.isnan(ours["mAP@10"][~has]).all(), "queries without relevant items must be NaN"


def test_retrieval_with_one_relevant_item_per_query():
    rng = np.random.default_rng(11)
    n_q, n_i = 200, 60
    target = rng.integers(0, n_i, n_q)
    scores = rng.standard_normal((n_q, n_i))
    scores[np.arange(n_q), target] += 2.0
    relevant = np.zeros((n_q, n_i), dtype=bool)
    relevant[np.arange(n_q), target] = True
    got = retrieval_metrics(scores, relevant)
    assert list(got) == ["R@1", "R@5", "R@10", "mAP@10", "MRR"], f"keys: {list(got)}"
    for k in (1, 5, 10):
        ref = top_k_accuracy_score(target, scores, k=k, labels=range(n_i))
        assert got[f"R@{k}"] == pytest.approx(ref), f"R@{k} vs sklearn top-k accuracy"
    rank = 1 + (scores > scores[np.arange(n_q), target][:, None]).sum(axis=1)
    assert got["MRR"] == pytest.approx(np.mean(1 / rank)), "MRR"
    assert got["mAP@10"] == pytest.approx(np.mean(np.where(rank <= 10, 1 / rank, 0))), (
        "with one relevant item AP@10 must be 1/rank within the top 10 (DCASE 2022)"
    )


def test_retrieval_edge_cases(caplog):
    relevant = np.array([[True, False, False], [False, False, False], [True, True, True]])
    constant = np.zeros((3, 3))
    with caplog.at_level(logging.WARNING, logger="zskit.metrics"):
        got = retrieval_metrics(constant, relevant, ks=(1, 5))
    assert "1 of 3 queries" in caplog.text, "queries without a relevant item must be reported"
    # Query 0: pessimistic rank 3; query 2: every item relevant, rank 1, AP 1.
    assert got["R@1"] == pytest.approx(0.5) and got["MRR"] == pytest.approx((1 / 3 + 1) / 2)
    assert got["R@5"] == 1.0, "k beyond the number of items covers every item"
    none = retrieval_metrics(constant, np.zeros((3, 3), dtype=bool))
    assert all(np.isnan(v) for v in none.values()), "no answerable query -> NaN"
    tensor = retrieval_metrics(torch.tensor(constant + np.eye(3)), torch.tensor(np.eye(3) > 0))
    assert tensor["R@1"] == 1.0 and tensor["mAP@10"] == 1.0, "tensors and identity ranking"
    read_only = np.array([[3, 2, 1, 0], [0, 1, 2, 3]])  # integer scores, a read-only array
    read_only.setflags(write=False)
    two = np.array([[True, False, True, False], [True, True, False, False]])
    got = retrieval_per_query(read_only, two, ks=(1,), map_k=2)
    np.testing.assert_allclose(got["mAP@2"], [0.5, 0.0], err_msg="AP@2 of ranks (1, 3) and (4, 3)")
    with pytest.raises(ConfigError, match=r"queries \[1\]"):
        retrieval_metrics(np.array([[0.0, 1.0], [np.nan, 0.0]]), np.eye(2) > 0)
    with pytest.raises(ConfigError, match="n_queries, n_items"):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
    with pytest.raises(ConfigError, match="boolean"):
        retrieval_metrics(np.zeros((2, 2)), np.full((2, 2), 0.5))


def test_retrieval_both_directions_are_transposes():
    rng = np.random.default_rng(12)
    audio_of_caption = np.repeat(np.arange(20), 5)
    relevant = audio_of_caption[:, None] == np.arange(20)[None, :]
    scores = rng.standard_normal((100, 20)) + 1.5 * relevant
    both = retrieval_metrics_both(scores, relevant)
    assert both["text_to_audio"] == retrieval_metrics(scores, relevant), "text->audio"
    assert both["audio_to_text"] == retrieval_metrics(
        np.ascontiguousarray(scores.T), np.ascontiguousarray(relevant.T)
    ), "audio->text must be the transpose"
    ref = brute_force_retrieval(scores.T, relevant.T)
    assert both["audio_to_text"]["mAP@10"] == pytest.approx(ref["mAP@10"].mean()), (
        "audio->text has five relevant captions per query"
    )


def test_blocked_counting_matches_direct_counting():
    rng = np.random.default_rng(13)
    scores = rng.integers(0, 5, (37, 23)).astype(float)
    relevant = rng.random((37, 23)) < 0.3
    for s, r in ((scores, relevant), (scores.T, relevant.T)):
        thr = rng.integers(0, 5, s.shape[0]).astype(float)
        direct = ((s >= thr[:, None]) & ~r).sum(axis=1)
        np.testing.assert_array_equal(_count_irrelevant_at_least(s, r, thr, block=50), direct)
        rows = np.array([4, 0, 9])
        np.testing.assert_array_equal(
            _count_irrelevant_at_least(s, r, thr[rows], rows=rows, block=50), direct[rows],
            err_msg="counting a subset of queries",
        )


# --- bootstrap with the new metrics ---------------------------------------------------------


def test_bootstrap_ci_works_with_the_new_metrics(tagging_data):
    y, s, mask = tagging_data
    auc = bootstrap_ci(macro_roc_auc, y, s, mask, n=100)
    assert auc.low <= auc.value <= auc.high and auc.n_resamples == 100, f"AUC interval {auc}"
    thr = tune_thresholds(y[:30], s[:30], mask[:30])
    f1 = bootstrap_ci(lambda yt, st, m: macro_f1(yt, st, thr, m), y[30:], s[30:], mask[30:], n=100)
    assert f1.value == pytest.approx(macro_f1(y[30:], s[30:], thr, mask[30:])), f"F1 {f1}"
    assert f1.low <= f1.value <= f1.high, f"F1 interval {f1}"
    rng = np.random.default_rng(14)
    idx, score = rng.integers(0, 5, 60), rng.random((60, 5))
    acc = bootstrap_ci(top1_accuracy, idx, score, n=100)
    assert acc.value == pytest.approx(top1_accuracy(idx, score)) and acc.low < acc.high
    relevant = rng.random((80, 40)) < 0.05
    per_query = retrieval_per_query(rng.random((80, 40)) + relevant, relevant)
    ci = bootstrap_ci(np.nanmean, per_query["mAP@10"], n=100)
    assert ci.value == pytest.approx(np.nanmean(per_query["mAP@10"])), "per-query values as rows"
    assert ci.low <= ci.value <= ci.high, f"retrieval interval {ci}"


def test_metrics_take_bfloat16_scores():
    y = (torch.rand(40, 3, generator=torch.Generator().manual_seed(0)) < 0.5).numpy()
    scores = torch.rand(40, 3, generator=torch.Generator().manual_seed(1)).bfloat16()
    assert mean_average_precision(y, scores) == pytest.approx(
        mean_average_precision(y, scores.float().numpy()))


@pytest.mark.parametrize("n_classes, groups, threads", [(527, 9, 2), (527, 3, 2), (103, 15, 4),
                                                        (5, 9, 2), (1, 1, 8), (0, 0, 2)])
def test_class_groups_are_shared_out_evenly_over_threads(n_classes, groups, threads):
    """Each thread's run of class groups holds an equal share of the classes (within one) in the
    same number of groups (9 blocks of 64, shared out whole, gave one of two threads 320 classes
    and the other 207); together the groups cover every class once, at least ``groups`` of them
    unless there are fewer classes."""
    runs = metrics._class_runs(n_classes, groups, threads)
    covered = [c for run in runs for cols in run for c in range(cols.start, cols.stop)]
    assert covered == list(range(n_classes)), "every class exactly once, in order"
    shares = [sum(cols.stop - cols.start for cols in run) for run in runs]
    assert len(runs) <= max(1, threads) and max(shares) - min(shares) <= 1, shares
    if n_classes >= groups:  # else groups of one class each: as many as a thread has classes
        assert len({len(run) for run in runs}) == 1, "the same number of groups per thread"
    assert sum(len(run) for run in runs) >= min(groups, n_classes)
