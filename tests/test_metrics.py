"""zskit.metrics against scikit-learn and brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from zskit.errors import ConfigError
from zskit.metrics import (
    average_precision_per_class,
    bootstrap_ci,
    mean_average_precision,
    random_average_precision,
    random_map,
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


def test_map_is_macro_over_classes_with_positives(tagging_data):
    y, s, mask = tagging_data
    ref = np.nanmean(sklearn_ap(y, s, mask))
    assert mean_average_precision(y, s, mask) == pytest.approx(ref, abs=1e-12)
    perfect = mean_average_precision(y, y.astype(float) + 0.0, None)
    assert perfect == pytest.approx(1.0), "scoring with the truth itself must give mAP 1"


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
