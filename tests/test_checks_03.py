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
    """Metrics shaped like notebook 03's: GMP's and ResAtt's coarse scores above GAP's and the
    baseline's, LP's coarse level collapsed, one figure per mean beside the paper's Table 1."""
    seeds = [0, 1] if smoke else list(range(8))
    methods, search, figures = {}, [], []
    coarse_shift = {"gmp": 0.05, "resatt": 0.04, "lp": -0.1}
    for i, method in enumerate(checks_03.TABLE_1):
        best = None if method == "baseline" else checks_03.LAMBDAS[i % 5]
        level_scores = {}
        for level in checks_03.LEVELS:
            shift = coarse_shift.get(method, 0.0) if level == "coarse" else 0.0
            level_scores[level] = {score: {"mean": 0.75 + shift, "std": 0.02}
                                   for score in checks_03.SCORES}
        methods[method] = {"seeds": len(seeds), "lambda": best, **level_scores}
        levels_scores = [(lv, s) for lv in checks_03.LEVELS for s in checks_03.SCORES]
        figures += [{"name": f"{method}, {level} {checks_03.LABELS[score]} (mean over "
                             f"{len(seeds)} seeds)",
                     "value": 100 * level_scores[level][score]["mean"], "unit": "%",
                     "published": checks_03.PAPER[method][j], "source": "paper 3, Table 1",
                     "data": "synth", "weights": "yamnet"}
                    for j, (level, score) in enumerate(levels_scores)]
        if best is not None:
            search += [{"method": method, "lam": lam, "val_fine_loss": 0.3 + abs(lam - best)}
                       for lam in checks_03.LAMBDAS]
    finetuned = [{"method": "baseline", **{f"{lv}_{s}": 0.6 for lv in checks_03.LEVELS
                                           for s in checks_03.SCORES}}]
    return {
        "smoke": smoke, "seeds": seeds, "methods": methods, "lambda_search": search,
        "figures": figures,
        "inference_pooling": {"max": {"roc_auc": 0.73}, "mean": {"roc_auc": 0.79}},
        "reference_logistic": {"fine_roc_auc": 0.7},
        "finetuned": {"weights": "yamnet", "results": finetuned},
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
    "a published value from the wrong cell of Table 1": lambda m: m["figures"][1].update(
        published=m["figures"][0]["published"]),
    "a figure that is not the mean it names": lambda m: m["figures"][5].update(value=12.0),
    "a figure missing": lambda m: m["figures"].pop(),
    "a figure without weights": lambda m: m["figures"][3].update(weights=""),
    "LP's coarse level not collapsed": lambda m: m["methods"]["lp"]["coarse"]["roc_auc"]
    .update(mean=0.8),
    "ResAtt's coarse level below the flat baseline's": lambda m: m["methods"]["resatt"]["coarse"]
    ["roc_auc"].update(mean=0.7),
    "no fine-tuned run": lambda m: m["finetuned"].update(results=[]),
}


def test_good_metrics_pass_in_both_sizes():
    checks_03.check(good())
    checks_03.check(good(smoke=True))


@pytest.mark.parametrize("what", list(BAD))
def test_bad_metrics_fail(what):
    with pytest.raises(AssertionError):
        checks_03.check(_broken(BAD[what]))
