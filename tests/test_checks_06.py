"""tests/checks_06.py (notebook 06's metrics check) passes good metrics and fails bad ones."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("checks_06", Path(__file__).with_name("checks_06.py"))
checks_06 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks_06)

SPACES = ("glove", "minilm")


def good() -> dict:
    figures = []
    for space in SPACES:
        figures += [
            {"name": f"ZS mAP, {space}, near held-out classes", "value": 0.30},
            {"name": f"ZS mAP, {space}, distant held-out classes", "value": 0.25},
            {"name": f"random-baseline mAP, {space}, held-out classes", "value": 0.20},
            {"name": f"Pearson r, AP gain vs proximity, {space}", "value": 0.2},
        ]
    return {
        "smoke": False, "label_spaces": list(SPACES), "figures": figures,
        "proximity": {s: {"r": 0.2, "low": -0.1, "high": 0.45, "p": 0.2, "n": 98} for s in SPACES},
        "family_separation": {s: {"within": 0.5, "between": 0.3, "separation": 0.2}
                              for s in SPACES},
        "explorer": {"query": "cello", "results": 5, "held_out": ["cello"], "split": "test",
                     "precision": dict.fromkeys(SPACES, 0.4)},
        "search": {"query": "a cello", "results": [{"clip": "a", "score": 0.9},
                                                   {"clip": "b", "score": 0.7}]},
        "fold_explorer": {"family": "brass", "classes": [{"name": "tuba", "ap": 0.4}]},
    }


def test_good_metrics_pass_and_bad_ones_fail():
    checks_06.check(good())
    bad = copy.deepcopy(good())
    bad["figures"][0]["value"] = 0.1  # glove near below random
    with pytest.raises(AssertionError, match="near held-out mAP"):
        checks_06.check(bad)
    bad["smoke"] = True  # a smoke run is too small for that claim
    checks_06.check(bad)
    bad = copy.deepcopy(good())
    bad["family_separation"]["minilm"] = {"within": 0.2, "between": 0.3, "separation": -0.1}
    with pytest.raises(AssertionError, match="closer within families"):
        checks_06.check(bad)
    bad = copy.deepcopy(good())
    bad["proximity"]["glove"]["r"] = 0.9  # outside its interval
    with pytest.raises(AssertionError, match="Pearson r"):
        checks_06.check(bad)
    bad = copy.deepcopy(good())
    bad["search"]["results"].reverse()
    with pytest.raises(AssertionError, match="unranked"):
        checks_06.check(bad)
    bad = copy.deepcopy(good())
    bad["fold_explorer"]["classes"] = []
    with pytest.raises(AssertionError, match="fold explorer"):
        checks_06.check(bad)
    for field, value in (("held_out", []), ("split", "all")):
        bad = copy.deepcopy(good())
        bad["explorer"][field] = value  # trained on the query's classes, or ranking training clips
        bad["smoke"] = True
        with pytest.raises(AssertionError, match="not zero-shot"):
            checks_06.check(bad)
