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


def _set(path: str, value) -> callable:
    """A change that sets ``metrics[k1][k2]...`` (keys split on '/'; digits index lists)."""
    def change(metrics: dict) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in path.split("/")]
        for key in parents:
            metrics = metrics[key]
        metrics[last] = value
    return change


# each bad change, and the words of the rule that must catch it (in smoke and default runs)
BAD = {
    "no label space": (_set("label_spaces", []), "names no label space"),
    "a near-class figure missing": (lambda m: m["figures"].pop(0), "ZS mAP, glove, near"),
    "a distant-class mAP above 1": (_set("figures/1/value", 1.5), "ZS mAP, glove, distant"),
    "a NaN random mAP": (_set("figures/6/value", float("nan")), "minilm: random mAP nan"),
    "Pearson r outside its interval": (_set("proximity/glove/r", 0.9), r"glove: Pearson r \{'r': 0.9"),
    "a Pearson r figure that is not the measured r": (
        _set("figures/3/value", 0.3), "glove: Pearson r figure 0.3 is not the measured 0.2"),
    "a separation that is not within - between": (
        _set("family_separation/minilm/separation", 0.5), "'separation': 0.5"),
    "an explorer precision above 1": (_set("explorer/precision/glove", 1.2),
                                      "glove: explorer precision 1.2 is not a rate"),
    "an explorer with no result": (_set("explorer/results", 0), "explorer returned no clip"),
    "an explorer trained on its query's classes": (_set("explorer/held_out", []), "not zero-shot"),
    "an explorer ranking training clips": (_set("explorer/split", "all"), "not zero-shot"),
    "unranked search results": (lambda m: m["search"]["results"].reverse(), "unranked"),
    "an empty fold explorer": (_set("fold_explorer/classes", []), "fold explorer"),
}


@pytest.mark.parametrize("what", list(BAD))
@pytest.mark.parametrize("smoke", [False, True])
def test_bad_metrics_fail(what, smoke):
    metrics = good()
    checks_06.check(copy.deepcopy(metrics))
    metrics["smoke"] = smoke
    change, rule = BAD[what]
    change(metrics)
    with pytest.raises(AssertionError, match=rule):
        checks_06.check(metrics)


def test_the_default_run_claims_fail_only_outside_smoke_runs():
    bad = good()
    bad["figures"][0]["value"] = 0.1  # glove near below random
    with pytest.raises(AssertionError, match="glove: near held-out mAP 0.100 <= random 0.200"):
        checks_06.check(bad)
    bad["smoke"] = True  # a smoke run is too small for that claim
    checks_06.check(bad)
    bad = good()
    bad["family_separation"]["minilm"] = {"within": 0.2, "between": 0.3, "separation": -0.1}
    with pytest.raises(AssertionError, match="minilm: instruments are not closer within families"):
        checks_06.check(bad)
    bad["smoke"] = True
    checks_06.check(bad)
