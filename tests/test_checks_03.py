"""tests/checks_03.py (notebook 03's metrics check) passes good metrics and fails bad ones."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("checks_03", Path(__file__).with_name("checks_03.py"))
checks_03 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks_03)


def good(smoke: bool = False) -> dict:
    """Metrics shaped like notebook 03's, with GMP's coarse scores above GAP's."""
    seeds = [0, 1] if smoke else list(range(8))
    methods, search, figures = {}, [], []
    for i, method in enumerate(checks_03.TABLE_1):
        best = None if method == "baseline" else checks_03.LAMBDAS[i % 5]
        level_scores = {}
        for level in checks_03.LEVELS:
            coarse_bonus = 0.02 if (method == "gmp" and level == "coarse") else 0.0
            level_scores[level] = {score: {"mean": 0.75 + coarse_bonus, "std": 0.02}
                                   for score in checks_03.SCORES}
            figures += [{"name": f"{method} {level} {score}", "value": 75.0, "unit": "%",
                         "published": 80.0, "data": "synth", "weights": "yamnet"}
                        for score in checks_03.SCORES]
        methods[method] = {"seeds": len(seeds), "lambda": best, **level_scores}
        if best is not None:
            search += [{"method": method, "lam": lam, "val_fine_loss": 0.3 + abs(lam - best)}
                       for lam in checks_03.LAMBDAS]
    return {
        "smoke": smoke, "seeds": seeds, "methods": methods, "lambda_search": search,
        "figures": figures,
        "inference_pooling": {"max": {"roc_auc": 0.73}, "mean": {"roc_auc": 0.79}},
        "reference_logistic": {"fine_roc_auc": 0.7},
    }


def _broken(change) -> dict:
    metrics = copy.deepcopy(good())
    change(metrics)
    return metrics


BAD = {
    "GAP beats GMP on the coarse ROC-AUC": lambda m: m["methods"]["gap"]["coarse"]["roc_auc"]
    .update(mean=0.9),
    "a method missing": lambda m: m["methods"].pop("lp"),
    "a lambda not chosen by the search": lambda m: m["methods"]["gmp"].update(
        {"lambda": next(lam for lam in checks_03.LAMBDAS if lam != m["methods"]["gmp"]["lambda"])}),
    "a NaN mean": lambda m: m["methods"]["resatt"]["fine"]["f1"].update(mean=float("nan")),
    "a fine ROC-AUC near chance": lambda m: m["methods"]["top_down"]["fine"]["roc_auc"]
    .update(mean=0.55),
    "a figure without its published value": lambda m: m["figures"][0].update(published=None),
    "fewer seeds than the default run's 8": lambda m: m.update(seeds=[0, 1]),
}


def test_good_metrics_pass_in_both_sizes():
    checks_03.check(good())
    checks_03.check(good(smoke=True))


@pytest.mark.parametrize("what", list(BAD))
def test_bad_metrics_fail(what):
    with pytest.raises(AssertionError):
        checks_03.check(_broken(BAD[what]))
