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


def _set_mean(metrics: dict, method: str, level: str, score: str, mean: float) -> None:
    """Change one method's mean and its figure together, so that only the rule about that mean
    (not the figure-is-the-mean rule) can catch it."""
    metrics["methods"][method][level][score]["mean"] = mean
    name = f"{method}, {level} {checks_03.LABELS[score]} (mean over {len(metrics['seeds'])} seeds)"
    (figure,) = [f for f in metrics["figures"] if f["name"] == name]
    figure["value"] = 100 * mean


# each bad change, and the words of the rule that must catch it
BAD = {
    "GAP beats GMP on the coarse ROC-AUC": (
        lambda m: _set_mean(m, "gap", "coarse", "roc_auc", 0.9), "GMP .* < GAP"),
    "a method missing": (lambda m: m["methods"].pop("lp"), "methods run"),
    "a lambda not chosen by the search": (lambda m: m["methods"]["gmp"].update(
        {"lambda": next(lam for lam in checks_03.LAMBDAS if lam != m["methods"]["gmp"]["lambda"])}),
        "gmp: chosen"),
    "a NaN mean": (lambda m: _set_mean(m, "resatt", "fine", "f1", float("nan")),
                   "resatt fine f1 mean = nan"),
    "a fine ROC-AUC near chance": (
        lambda m: _set_mean(m, "top_down", "fine", "roc_auc", 0.55), "top_down: .* near chance"),
    "a figure without its published value": (
        lambda m: m["figures"][0].update(published=None), "published None"),
    "fewer seeds than the default run's 8": (lambda m: m.update(seeds=[0, 1]), r"seeds \[0, 1\]"),
    "a published value from the wrong cell of Table 1": (lambda m: m["figures"][1].update(
        published=m["figures"][0]["published"]), "Table 1 says"),
    "a figure that is not the mean it names": (
        lambda m: m["figures"][5].update(value=12.0), "figure 12.0 is not the mean"),
    "a figure missing": (lambda m: m["figures"].pop(), "41 figures, not 42"),
    "a figure without weights": (lambda m: m["figures"][3].update(weights=""), "'weights': ''"),
    "LP's coarse level not collapsed": (
        lambda m: _set_mean(m, "lp", "coarse", "roc_auc", 0.8), "did not collapse"),
    "ResAtt's coarse level below the flat baseline's": (
        lambda m: _set_mean(m, "resatt", "coarse", "roc_auc", 0.7),
        "resatt: .* not above the flat baseline"),
    "no fine-tuned run": (lambda m: m["finetuned"].update(results=[]), "no fine-tuned run"),
    "a figure under another name": (
        lambda m: m["figures"][0].update(name="baseline, fine ROC-AUC"), "missing"),
    "a method run on fewer seeds": (lambda m: m["methods"]["gap"].update(seeds=7),
                                    "gap: 7 seeds, expected 8"),
    "a lambda for the flat baseline": (lambda m: m["methods"]["baseline"].update({"lambda": 0.8}),
                                       "the flat baseline has no lambda"),
    "a lambda outside the grid": (lambda m: m["methods"]["gmp"].update({"lambda": 0.95}),
                                  "gmp: lambda 0.95 not searched"),
    "no seed spread": (lambda m: m["methods"]["gap"]["fine"]["f1"].update(std=None),
                       "gap fine f1 std = None"),
    "a lambda left out of the search": (lambda m: m["lambda_search"].pop(), "resatt: searched"),
    "an inference pooling row missing": (lambda m: m["inference_pooling"].pop("mean"),
                                         "inference pooling rows"),
    "an inference pooling score above 1": (
        lambda m: m["inference_pooling"]["max"].update(roc_auc=1.3), "pooling max"),
    "a NaN reference score": (
        lambda m: m["reference_logistic"].update(fine_roc_auc=float("nan")), "'fine_roc_auc': nan"),
    "a fine-tuned score below 0": (
        lambda m: m["finetuned"]["results"][0].update(coarse_f1=-0.1), "fine-tuned"),
}


def test_good_metrics_pass_in_both_sizes():
    checks_03.check(good())
    checks_03.check(good(smoke=True))


@pytest.mark.parametrize("what", list(BAD))
def test_bad_metrics_fail(what):
    change, rule = BAD[what]
    with pytest.raises(AssertionError, match=rule):
        checks_03.check(_broken(change))
