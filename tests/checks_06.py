"""Checks on notebooks/06_semantic_distance_explorer's metrics.json (wired into
tests/test_notebooks.py).

Every run: each label space reports near/distant/random mAP, Pearson r inside its interval, the
family separation of its label space, and the apps produced results (explorer, search, fold
explorer); the explorer's precision is zero-shot (its query's classes held out of training, test
clips ranked). Default runs also assert what the notebook shows: both label spaces place an
instrument closer to its own family than to others, and held-out classes with relatives in
training are tagged better than random. A smoke run (15 test clips) is too small for the second
claim, so only shapes and ranges are checked there.
"""

from __future__ import annotations

import math
from typing import Any


def _is_map(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0


def check(metrics: dict[str, Any]) -> None:
    figures = {f["name"]: f for f in metrics["figures"]}
    spaces = metrics["label_spaces"]
    assert spaces, "metrics.json names no label space"
    for space in spaces:
        for kind in ("near", "distant"):
            name = f"ZS mAP, {space}, {kind} held-out classes"
            assert name in figures and _is_map(figures[name]["value"]), f"{name}: {figures.get(name)}"
        rnd = figures[f"random-baseline mAP, {space}, held-out classes"]["value"]
        assert _is_map(rnd), f"{space}: random mAP {rnd}"
        r = metrics["proximity"][space]
        assert -1.0 <= r["low"] <= r["r"] <= r["high"] <= 1.0, f"{space}: Pearson r {r}"
        shown = figures[f"Pearson r, AP gain vs proximity, {space}"]["value"]
        assert shown == r["r"], f"{space}: Pearson r figure {shown} is not the measured {r['r']}"
        sep = metrics["family_separation"][space]
        assert math.isclose(sep["separation"], sep["within"] - sep["between"], abs_tol=1e-9), sep
        precision = metrics["explorer"]["precision"][space]
        assert 0.0 <= precision <= 1.0, f"{space}: explorer precision {precision} is not a rate"
    assert metrics["explorer"]["results"] > 0, "the zero-shot explorer returned no clip"
    explorer = metrics["explorer"]
    assert explorer["held_out"] and explorer["split"] == "test", (
        f"explorer precision is not zero-shot: held out {explorer['held_out']}, ranked "
        f"{explorer['split']!r} clips")
    scores = [row["score"] for row in metrics["search"]["results"]]
    assert scores and scores == sorted(scores, reverse=True), f"search results unranked: {scores}"
    classes = metrics["fold_explorer"]["classes"]
    assert classes and all(_is_map(c["ap"]) for c in classes), f"fold explorer: {classes}"
    if metrics.get("smoke"):
        return
    for space in spaces:
        sep = metrics["family_separation"][space]["separation"]
        assert sep > 0, f"{space}: instruments are not closer within families ({sep:.3f})"
        near = figures[f"ZS mAP, {space}, near held-out classes"]["value"]
        rnd = figures[f"random-baseline mAP, {space}, held-out classes"]["value"]
        assert near > rnd, f"{space}: near held-out mAP {near:.3f} <= random {rnd:.3f}"
