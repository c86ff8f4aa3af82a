"""tests/checks_02.py (notebook 02's metrics check) passes good metrics and fails bad ones."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("checks_02", Path(__file__).with_name("checks_02.py"))
checks_02 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks_02)


def good() -> dict:
    row = {"map_last": 0.30, "map_averaged": 0.32, "map_last_sd": 0.01, "train_seconds_per_epoch": 2.0,
           "test_clips_per_second": 100.0, "parameters": 1000}
    tokens = {"AST 16x16, overlap 0": 48, "AST 16x16, overlap 6": 95, "AST 64x2, no overlap": 99,
              "PaSST-N, patchout": 48, "PaSST-N, no patchout": 48}
    published = {"AST 16x16, overlap 0": 0.143, "AST 16x16, overlap 6": 0.148,
                 "AST 64x2, no overlap": 0.154}

    def figure(name: str, value: float, published: float | None = None, unit: str = "mAP") -> dict:
        return {"name": name, "value": value, "published": published, "unit": unit,
                "source": "paper 2, Table 6" if published is not None else ""}

    figures = [figure("random-baseline mAP (expected)", 0.1),
               figure("keyword stand-in: test accuracy", 50.0, 98.11, "%")]
    for run in tokens:
        figures += [figure(f"{run}: mAP, weights averaged", row["map_averaged"], published.get(run)),
                    figure(f"{run}: mAP, last epoch", row["map_last"])]
    return {"smoke": False, "random_map": 0.1, "patchout_speedup": 1.4, "settings": {"n_seeds": 2},
            "ensembles": {run: 0.33 for run in tokens},
            "position_grid": {"audio_grid": [12, 101]},
            "keywords": {"accuracy": 0.5, "chance": 1 / 35, "test_clips": 100},
            "ablations": {run: {**row, "tokens": n} for run, n in tokens.items()},
            "figures": figures}


def _figure(metrics: dict, name: str) -> dict:
    return next(f for f in metrics["figures"] if f["name"] == name)


def _set_map(metrics: dict, run: str, key: str, value: float) -> None:
    """An ablation score as the notebook writes it: in the table and in its figure alike."""
    metrics["ablations"][run][key] = value
    label = {"map_averaged": "weights averaged", "map_last": "last epoch"}[key]
    _figure(metrics, f"{run}: mAP, {label}")["value"] = value


def test_good_metrics_pass_and_bad_ones_fail():
    checks_02.check(good())
    bad = copy.deepcopy(good())
    _set_map(bad, "PaSST-N, patchout", "map_averaged", 0.05)
    with pytest.raises(AssertionError, match="does not beat random"):
        checks_02.check(bad)
    bad["smoke"] = True  # a smoke run is too small for that claim
    checks_02.check(bad)
    bad = copy.deepcopy(good())
    bad["ablations"]["AST 16x16, overlap 6"]["tokens"] = 10
    with pytest.raises(AssertionError, match="more patches"):
        checks_02.check(bad)
    bad = copy.deepcopy(good())
    bad["patchout_speedup"] = float("nan")
    with pytest.raises(AssertionError, match="patchout"):
        checks_02.check(bad)
    bad = copy.deepcopy(good())
    del bad["ablations"]["AST 64x2, no overlap"]
    with pytest.raises(AssertionError, match="rectangular"):
        checks_02.check(bad)
    bad = copy.deepcopy(good())
    bad["keywords"]["accuracy"] = 0.2  # 7x chance: a run stuck at chance for most epochs
    _figure(bad, "keyword stand-in: test accuracy")["value"] = 20.0
    with pytest.raises(AssertionError, match="keyword accuracy"):
        checks_02.check(bad)
    bad = copy.deepcopy(good())
    _set_map(bad, "AST 16x16, overlap 0", "map_last", float("nan"))
    with pytest.raises(AssertionError, match="not an mAP"):
        checks_02.check(bad)
    bad = copy.deepcopy(good())
    del bad["ensembles"]["PaSST-N, patchout"]
    with pytest.raises(AssertionError, match="no ensemble"):
        checks_02.check(bad)
    bad["settings"]["n_seeds"] = 1  # one seed: no ensembles or spreads to check
    checks_02.check(bad)
    bad = copy.deepcopy(good())
    bad["ablations"]["AST 16x16, overlap 6"]["map_last_sd"] = None
    with pytest.raises(AssertionError, match="seed spread"):
        checks_02.check(bad)


@pytest.mark.parametrize("edit, match", [
    (lambda m: _set_map(m, "AST 16x16, overlap 6", "map_last", 0.09), "map_last 0.0900 does not beat"),
    (lambda m: m["ensembles"].update({"PaSST-N, patchout": 0.08}), "ensemble of PaSST-N, patchout"),
    (lambda m: m["figures"].pop(), "no figure 'PaSST-N, no patchout: mAP, last epoch'"),
    (lambda m: _figure(m, "AST 16x16, overlap 0: mAP, weights averaged").update({"value": 0.5}),
     "the ablation table 0.32"),
    (lambda m: _figure(m, "AST 16x16, overlap 6: mAP, weights averaged").update(
        {"published": 0.347}), "not paper 2's random-init 0.148"),
    (lambda m: _figure(m, "AST 16x16, overlap 0: mAP, weights averaged").update(
        {"published": 14.3}), "outside"),
    (lambda m: _figure(m, "keyword stand-in: test accuracy").update({"source": ""}),
     "without a paper 2 source"),
    (lambda m: _figure(m, "keyword stand-in: test accuracy").update({"value": 0.5}),
     "is not the measured accuracy"),
    (lambda m: _figure(m, "random-baseline mAP (expected)").update({"value": 0.2}),
     "random-baseline figure"),
    (lambda m: _figure(m, "random-baseline mAP (expected)").update({"unit": "dB"}),
     "unit 'dB' is not mAP or %"),
    (lambda m: m["ablations"].pop("AST 16x16, overlap 0"),
     r"lacks the ablations \['AST 16x16, overlap 0'\]"),
    (lambda m: m.update(random_map=1.5), "random baseline 1.5 is not an mAP"),
    (lambda m: m["ablations"]["PaSST-N, patchout"].update(test_clips_per_second=0.0),
     "PaSST-N, patchout: cost test_clips_per_second = 0.0"),
    (lambda m: m["position_grid"].update(audio_grid=[12, 100]), "should be 12 x 101"),
    (lambda m: m["ensembles"].update({"PaSST-N, patchout": float("nan")}),
     "ensemble of PaSST-N, patchout: nan is not an mAP"),
    (lambda m: m["keywords"].update(test_clips=0), "keyword results"),
])
def test_figures_and_default_claims_are_checked(edit, match):
    bad = good()
    edit(bad)
    with pytest.raises(AssertionError, match=match):
        checks_02.check(bad)


def with_recipe() -> dict:
    metrics = good()
    folds = [{"fold": k, "train_clips": 1600, "test_clips": 400, "accuracy": 0.8 + k / 100}
             for k in range(1, 6)]
    metrics["recipe"] = {"data": "esc50", "metric": "accuracy", "value": 0.83, "chance": 0.02,
                         "clips": 2000, "scores": folds}
    metrics["figures"].append({"name": "ESC-50 recipe: accuracy, mean over the 5 folds", "value": 83.0,
                               "published": None, "source": "", "unit": "%"})
    return metrics


def test_recipe_runs_are_checked():
    checks_02.check(with_recipe())
    bad = with_recipe()
    bad["recipe"]["scores"] = bad["recipe"]["scores"][:4]
    bad["recipe"]["value"] = 0.825
    with pytest.raises(AssertionError, match="ran folds"):
        checks_02.check(bad)
    bad = with_recipe()
    bad["recipe"]["scores"][2]["train_clips"] = 400
    with pytest.raises(AssertionError, match="all the other folds"):
        checks_02.check(bad)
    bad = with_recipe()
    bad["recipe"]["scores"][0]["accuracy"] = 1.5
    with pytest.raises(AssertionError, match="recipe accuracy per evaluation"):
        checks_02.check(bad)
    bad = with_recipe()
    bad["recipe"]["value"] = 0.9
    with pytest.raises(AssertionError, match="is not the mean"):
        checks_02.check(bad)
    bad = with_recipe()
    bad["figures"].pop()
    with pytest.raises(AssertionError, match="no figure of the recipe"):
        checks_02.check(bad)
    bad = with_recipe()
    for row in bad["recipe"]["scores"]:
        row["accuracy"] = 0.01
    bad["recipe"]["value"] = 0.01
    with pytest.raises(AssertionError, match="does not beat chance"):
        checks_02.check(bad)
    bad["smoke"] = True  # a smoke run (one epoch on fixture clips) makes no claim
    checks_02.check(bad)
