"""tests/checks_01.py, the assertions on notebook 01's metrics.json, can fail: a default run must
beat the random baseline on every fold and label space, and near held-out classes must beat
distant ones; every run (smoke too) is checked for shape and for its figures (present, equal to
their tables, published values as fractions with a source). Also: notebook 01 labels the paper's
columns with the encoder they belong to."""

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

    spaces = ("glove", "minilm")
    result = {
        "smoke": smoke, "n_folds": 2, "dataset": "synth",
        "folds": {s: {"per_fold": {"fold 0": fold(0.09), "fold 1": fold(0.10)}, "mean": fold(0.095)}
                  for s in spaces},
        "upper_bound": {s: {"all classes": 0.5, "mean over folds": 0.45, "per_fold": {}}
                        for s in spaces},
        "near_distant": {"glove": {"near": 0.09, "distant": 0.07, "random": 0.066,
                                   "paired": {"difference": 0.02, "95% low": 0.01}}},
        "openmic_conditions": {"glove": {"C\\C_MIC": {"mAP": 0.09}, "C": {"mAP": 0.36}}},
        "proximity": {"glove": {"r": 0.2, "low": -0.1, "high": 0.5}},
        "proximity_conditions": ["fold 0", "fold 1"],
        "zero_shot_conditions": ["fold 0", "fold 1", "C\\C_MIC"],
    }

    def figure(name: str, value: float, published: float | None = None, unit: str = "mAP") -> dict:
        return {"name": name, "value": value, "published": published,
                "source": "paper 1, Table II" if published is not None else "", "unit": unit}

    result["figures"] = [
        *(figure(f"ZS mAP, {s}, {f}", row["mAP"], 0.08)
          for s in spaces for f, row in {**result["folds"][s]["per_fold"],
                                         "mean": result["folds"][s]["mean"]}.items()),
        *(figure(f"supervised upper bound mAP, {s}, all classes", 0.5) for s in spaces),
        figure("Pearson r, AP gain vs proximity, glove", 0.2, None, "r"),
        figure("random-baseline mAP, mean over folds", 0.066, 0.004),
    ]
    return result


def _figure(m: dict, name: str) -> dict:
    return next(f for f in m["figures"] if f["name"] == name)


def _set_fold_map(m: dict, space: str, fold: str, value: float) -> None:
    """A fold's mAP as the notebook writes it: in the fold table and in its figure alike."""
    m["folds"][space]["per_fold"][fold]["mAP"] = value
    _figure(m, f"ZS mAP, {space}, {fold}")["value"] = value


def test_a_good_default_run_passes():
    checks_01.check(metrics())


@pytest.mark.parametrize("edit, match", [
    (lambda m: _set_fold_map(m, "minilm", "fold 1", 0.06),
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
    (lambda m: m["near_distant"]["glove"]["paired"].update({"95% low": -0.002}),
     "no sign that relatives in training help"),
    (lambda m: m["near_distant"]["glove"].update({"near": 0.06}), "do not beat random"),
    (lambda m: m["near_distant"].clear(), "no near vs distant"),
    (lambda m: m["openmic_conditions"]["glove"]["C"].update({"mAP": 0.08}), "training them"),
    (lambda m: m["figures"].pop(0), "no figure 'ZS mAP, glove, fold 0'"),
    (lambda m: _figure(m, "ZS mAP, minilm, mean").update({"value": 0.2}),
     "but the fold table says 0.095"),
    (lambda m: _figure(m, "ZS mAP, glove, fold 1").update({"published": 7.71}),
     "not a fraction in"),
    (lambda m: _figure(m, "ZS mAP, glove, fold 1").update({"source": ""}),
     "without a paper 1 source"),
    (lambda m: _figure(m, "random-baseline mAP, mean over folds").update({"value": 0.004}),
     "the folds' random mAP"),
    (lambda m: m["figures"].pop(), "no figure 'random-baseline"),
    (lambda m: m["figures"].remove(_figure(m, "Pearson r, AP gain vs proximity, glove")),
     "no figure 'Pearson r"),
    (lambda m: _figure(m, "Pearson r, AP gain vs proximity, glove").update({"value": 1.5}),
     "r = 1.5"),
    (lambda m: m["figures"].remove(_figure(m, "supervised upper bound mAP, minilm, all classes")),
     "no figure 'supervised upper bound mAP, minilm"),
    (lambda m: m["upper_bound"]["glove"].update({"all classes": 1.5}), "'all classes': 1.5"),
])
def test_bad_default_metrics_fail(edit, match):
    bad = copy.deepcopy(metrics())
    edit(bad)
    with pytest.raises(AssertionError, match=match):
        checks_01.check(bad)


def test_smoke_runs_are_checked_for_shape_only():
    below_random = metrics(smoke=True)
    _set_fold_map(below_random, "glove", "fold 0", 0.05)
    checks_01.check(below_random)  # 15 test clips: zero-shot vs random is noise there
    broken = metrics(smoke=True)
    broken["folds"]["glove"]["mean"]["mAP"] = float("nan")
    with pytest.raises(AssertionError, match=r"glove, mean: \{'mAP': nan"):
        checks_01.check(broken)
    no_figures = metrics(smoke=True)
    no_figures["figures"] = []  # a smoke run still reports its figures
    with pytest.raises(AssertionError, match="no figure"):
        checks_01.check(no_figures)


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

