"""tests/checks_01.py, the assertions on notebook 01's metrics.json, can fail: a default run must
beat the random baseline on every fold and label space; a smoke run is checked for shape only.
Also: notebook 01 labels the paper's columns with the encoder they belong to."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("checks_01", Path(__file__).with_name("checks_01.py"))
checks_01 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks_01)


def metrics(smoke: bool = False) -> dict:
    """What a default run writes, reduced to the fields the check reads (two folds, two spaces)."""
    def fold(value: float) -> dict:
        return {"mAP": value, "random mAP": 0.066, "seed std": 0.004, "95% low": value - 0.015,
                "95% high": value + 0.015}

    return {
        "smoke": smoke, "n_folds": 2,
        "folds": {s: {"per_fold": {"fold 0": fold(0.09), "fold 1": fold(0.10)}, "mean": fold(0.095)}
                  for s in ("glove", "minilm")},
        "upper_bound": {s: {"all classes": 0.5, "mean over folds": 0.45, "per_fold": {}}
                        for s in ("glove", "minilm")},
        "near_distant": {"glove": {"near": 0.09, "distant": 0.07, "random": 0.066}},
        "proximity": {"glove": {"r": 0.2, "low": -0.1, "high": 0.5}},
        "proximity_conditions": ["fold 0", "fold 1"],
        "zero_shot_conditions": ["fold 0", "fold 1", "C\\C_MIC"],
    }


def test_a_good_default_run_passes():
    checks_01.check(metrics())


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["folds"]["minilm"]["per_fold"]["fold 1"].update({"mAP": 0.06}),
     "minilm, fold 1: zero-shot mAP 0.0600 does not beat the random baseline"),
    (lambda m: m["folds"]["glove"]["mean"].update({"95% low": 0.06}),
     "glove: the 95% interval of the mean zero-shot mAP starts at 0.0600"),
    (lambda m: m["upper_bound"]["glove"].update({"mean over folds": 0.08}),
     "supervised upper bound"),
    (lambda m: m["folds"]["glove"]["per_fold"].pop("fold 1"), "1 folds evaluated"),
    (lambda m: m["folds"].clear(), "no per-fold"),
    (lambda m: m["near_distant"]["glove"].update({"near": 1.3}), "not an mAP"),
    (lambda m: m["proximity"]["glove"].update({"r": 0.7}), "inside its interval"),
    (lambda m: m["proximity_conditions"].extend(["C", "supervised"]),
     r"pools conditions whose test classes were trained: \['C', 'supervised'\]"),
])
def test_bad_default_metrics_fail(edit, match):
    bad = copy.deepcopy(metrics())
    edit(bad)
    with pytest.raises(AssertionError, match=match):
        checks_01.check(bad)


def test_smoke_runs_are_checked_for_shape_only():
    below_random = metrics(smoke=True)
    below_random["folds"]["glove"]["per_fold"]["fold 0"]["mAP"] = 0.05
    checks_01.check(below_random)  # 15 test clips: zero-shot vs random is noise there
    broken = metrics(smoke=True)
    broken["folds"]["glove"]["mean"]["mAP"] = float("nan")
    with pytest.raises(AssertionError, match="glove, mean"):
        checks_01.check(broken)


def test_notebook_names_the_paper_encoder_of_its_columns():
    """The paper's figures come from the encoder `audio_encoder` picks (``paper_encoder``): no
    column heading may promise VGG/VGGish whatever the encoder."""
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "01_zero_shot_tagging.ipynb"
    code = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
            if c["cell_type"] == "code"]
    headings = [line.strip() for src in code for line in src.splitlines()
                if '"paper' in line and "VGG" in line]
    assert not headings, headings
    assert any('f"paper ({paper_encoder}, Word2Vec)"' in src for src in code)

