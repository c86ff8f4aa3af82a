"""Checks on notebooks/02_audio_spectrogram_transformer's metrics.json (wired into
tests/test_notebooks.py).

Always: every ablation reports an mAP (last and averaged) in [0, 1], its cost, and token counts
that follow the patch settings (overlap 6 gives more tokens than overlap 0); with several seeds,
every run's seed spread and seed ensemble; with a real-data recipe run (``recipe``), its folds or
eval score (:func:`check_recipe`). On a default run (not smoke) also: every trained model beats
the random baseline on the same test clips, the keyword model reaches ten times chance (it scored
63-81% over three seeds with its warm-up, chance 2.9%) and a recipe run beats chance.
Patchout's speed-up is reported, not asserted: wall-clock ratios from one notebook run on a shared
machine are not a test (benchmarks/bench_ast.py measures it). A smoke run (70 training clips, two epochs) is
too small for those claims: there trained and random mAP are within noise of each other.
Every run's figures (:func:`check_figures`) repeat the ablation table, and each single run is
paired with the paper's random-init figure of its patch setting.
"""

from __future__ import annotations

import math
from typing import Any

RUNS = ("AST 16x16, overlap 0", "AST 16x16, overlap 6", "PaSST-N, patchout", "PaSST-N, no patchout")
#: Paper 2's balanced-AudioSet mAP of ASTs trained from random weights (Table 6: no overlap, 16x16
#: and 128x2 patches; Table 2: overlap 6), the figures the notebook's random-init runs stand beside.
RANDOM_INIT_PUBLISHED = {"AST 16x16, overlap 0": 0.143, "AST 16x16, overlap 6": 0.148, "x2": 0.154}


def _is_map(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0


def check_figures(metrics: dict[str, Any]) -> None:
    """Each ablation's two mAP figures, the random baseline and the keyword accuracy are reported,
    equal the tables they come from, and published values carry their unit and a source."""
    figures = {f["name"]: f for f in metrics["figures"]}

    def figure(name: str) -> dict[str, Any]:
        assert name in figures, f"no figure {name!r} among {sorted(figures)}"
        return figures[name]

    for fig in figures.values():
        if fig["published"] is not None:
            assert fig["source"].startswith("paper 2"), (
                f"{fig['name']!r} has a published value {fig['published']} without a paper 2 source")
        scale = {"mAP": 1.0, "%": 100.0}.get(fig["unit"])
        assert scale is not None, f"{fig['name']!r}: unit {fig['unit']!r} is not mAP or %"
        for key in ("value", "published"):
            number = fig[key]
            assert number is None or (math.isfinite(number) and 0.0 <= number <= scale), (
                f"{fig['name']!r}: {key} {number} is outside [0, {scale:g}] for unit {fig['unit']}")
    assert math.isclose(figure("random-baseline mAP (expected)")["value"], metrics["random_map"]), (
        "the random-baseline figure is not metrics['random_map']")
    for run, row in metrics["ablations"].items():
        for name, key in ((f"{run}: mAP, weights averaged", "map_averaged"),
                          (f"{run}: mAP, last epoch", "map_last")):
            assert math.isclose(figure(name)["value"], row[key]), (
                f"figure {name!r} = {figure(name)['value']}, the ablation table {row[key]}")
        published = next((v for k, v in RANDOM_INIT_PUBLISHED.items() if k in run), None)
        if run.startswith("AST") and published is not None:
            got = figure(f"{run}: mAP, weights averaged")["published"]
            assert got == published, (
                f"{run}: paired with published {got}, not paper 2's random-init {published}")
    keyword = figure("keyword stand-in: test accuracy")["value"]
    assert math.isclose(keyword, 100 * metrics["keywords"]["accuracy"]), (
        f"keyword figure {keyword} % is not the measured accuracy {metrics['keywords']['accuracy']}")


def check(metrics: dict[str, Any]) -> None:
    ablations = metrics["ablations"]
    missing = [r for r in RUNS if r not in ablations]
    assert not missing, f"metrics.json lacks the ablations {missing}; it has {sorted(ablations)}"
    shapes = [r for r in ablations if r.startswith("AST") and "x2" in r]
    assert shapes, f"no rectangular-patch (Table 6) run among {sorted(ablations)}"
    chance = metrics["random_map"]
    assert _is_map(chance), f"random baseline {chance} is not an mAP"
    for run, row in ablations.items():
        for key in ("map_last", "map_averaged"):
            assert _is_map(row[key]), f"{run}: {key} = {row[key]} is not an mAP"
        for key in ("train_seconds_per_epoch", "test_clips_per_second", "tokens", "parameters"):
            assert row[key] > 0, f"{run}: cost {key} = {row[key]} must be positive"
    tokens = {r: ablations[r]["tokens"] for r in RUNS}
    assert tokens["AST 16x16, overlap 6"] > tokens["AST 16x16, overlap 0"], (
        f"overlap 6 must give more patches than overlap 0: {tokens}")
    assert metrics["position_grid"]["audio_grid"] == [12, 101], (
        f"the pictured AST grid should be 12 x 101 (10 s, overlap 6): {metrics['position_grid']}")
    ensembles = metrics.get("ensembles", {})
    for run, value in ensembles.items():
        assert _is_map(value), f"ensemble of {run}: {value} is not an mAP"
    if metrics["settings"]["n_seeds"] > 1:  # several seeds: a spread and an ensemble per run
        for run, row in ablations.items():
            assert run in ensembles, f"{run}: no ensemble of its seeds in {sorted(ensembles)}"
            sd = row["map_last_sd"]
            assert isinstance(sd, (int, float)) and math.isfinite(sd) and sd >= 0, (
                f"{run}: seed spread map_last_sd = {sd} with several seeds")
    kw = metrics["keywords"]
    assert 0.0 <= kw["accuracy"] <= 1.0 and kw["test_clips"] > 0, f"keyword results {kw}"
    check_figures(metrics)
    recipe = metrics.get("recipe")
    if recipe:
        check_recipe(recipe, metrics)
    if metrics.get("smoke"):
        return
    if recipe:
        assert recipe["value"] > recipe["chance"], (
            f"{recipe['data']} recipe: {recipe['metric']} {recipe['value']:.4f} does not beat "
            f"chance {recipe['chance']:.4f}")
    assert kw["accuracy"] > 10 * kw["chance"], (
        f"keyword accuracy {kw['accuracy']:.3f} is below ten times chance {kw['chance']:.3f}")
    for run, row in ablations.items():
        for key in ("map_averaged", "map_last"):
            assert row[key] > chance, (
                f"{run}: {key} {row[key]:.4f} does not beat random {chance:.4f}")
    for run, value in ensembles.items():
        assert value > chance, f"ensemble of {run}: mAP {value:.4f} does not beat random {chance:.4f}"
    assert math.isfinite(metrics["patchout_speedup"]) and metrics["patchout_speedup"] > 0, (
        f"patchout speed-up {metrics['patchout_speedup']} is not a measured ratio")


def check_recipe(recipe: dict[str, Any], metrics: dict[str, Any]) -> None:
    """A real-data recipe run (recipe_data set): ESC-50 reports each of the five official folds
    tested once on the rest of the clips, AudioSet one eval score; the value is their mean and
    appears as a figure."""
    metric, scores = recipe["metric"], recipe["scores"]
    values = [row[metric] for row in scores]
    assert values and all(_is_map(v) for v in values), f"recipe {metric} per evaluation: {values}"
    if recipe["data"] == "esc50":
        folds = [row["fold"] for row in scores]
        assert sorted(folds) == [1, 2, 3, 4, 5], f"ESC-50 cross-validation ran folds {folds}"
        for row in scores:
            assert row["train_clips"] + row["test_clips"] == recipe["clips"], (
                f"fold {row['fold']}: {row['train_clips']} train + {row['test_clips']} test clips "
                f"!= {recipe['clips']}: each fold must train on all the other folds")
    mean = sum(values) / len(values)
    assert math.isclose(recipe["value"], mean, abs_tol=1e-9), (
        f"recipe value {recipe['value']} is not the mean {mean} of its evaluations")
    names = [f["name"] for f in metrics["figures"]]
    assert any("recipe" in n for n in names), f"no figure of the recipe run among {names}"
