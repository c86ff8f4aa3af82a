"""Checks of notebook 05's ``metrics.json`` (paper 5: transfer learning for retrieval).

Always: every run was evaluated in both directions with metrics that are rates; the cost columns
order as the runs are built (projection only < partial fine-tuning < training from scratch, in
parameters trained); the caption noise made new captions; the published Table 5 figures sit
beside the runs they compare with; no run ranks more than ``MAX_TIES`` of the test captions on a
tie (an audio side that maps every clip to one point, as the random EfficientNet with its initial
batch-norm statistics did, ties nearly every ranking and lands below chance). On a default run
(not smoke, where 4 test clips leave every ranking near chance) the dual encoder on the
audio-pretrained features must retrieve far above chance: text -> audio R@k at least 3x a random
ranking's, k the largest of 10, 5, 1 where chance is at most 20%.
"""

from __future__ import annotations

import math
from typing import Any

from zskit.models.dual_encoder import informative_k

RUNS = (
    "image-pretrained, projection only",
    "image-pretrained, last blocks fine-tuned",
    "random init, projection only",
    "random init, trained from scratch",
    "audio-pretrained, projection only",
)
STARTS = {  # run that trains encoder layers -> the projection-only run whose head it starts from
    "image-pretrained, last blocks fine-tuned": "image-pretrained, projection only",
    "random init, trained from scratch": "random init, projection only",
}
KEYS = ("R@1", "R@5", "R@10", "mAP@10", "MRR")
FACTOR = 3.0
MAX_CHANCE = 0.2
MAX_TIES = 0.05  # share of test captions whose relevant clip may tie with another clip
TABLE5 = {  # (MRR, MAP@10 %, R@10 %) of paper 5's Table 5
    "ResNet (Baseline)": (0.0411, 0.84, 7.71), "ResNet (Fine-Tuned)": (0.0391, 0.85, 7.86),
    "ViT (Baseline)": (0.0294, 10.92, 8.21), "ViT (Fine-Tuned)": (0.0297, 13.15, 7.84),
    "PANN (Baseline)": (0.0262, 3.09, 19.42),
}


def check(metrics: dict[str, Any]) -> None:
    retrieval, cost, chance = metrics["retrieval"], metrics["cost"], metrics["chance"]
    assert tuple(retrieval) == RUNS and tuple(cost) == RUNS, (
        f"runs {list(retrieval)} / {list(cost)}, expected {RUNS}")
    for run, directions in retrieval.items():
        assert set(directions) == {"text_to_audio", "audio_to_text"}, (run, sorted(directions))
        for direction, values in directions.items():
            for key in KEYS:
                v = values[key]
                assert isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1, (
                    f"{run}, {direction}: {key} = {v!r} is not a rate in [0, 1]")
    trained = {run: cost[run]["trained_parameters"] for run in RUNS}
    assert (trained["image-pretrained, projection only"]
            == trained["random init, projection only"]
            < trained["image-pretrained, last blocks fine-tuned"]
            < trained["random init, trained from scratch"]), (
        f"parameters trained {trained}: projection only < last blocks < from scratch expected")
    for run in RUNS:
        assert cost[run]["seconds_per_epoch"] > 0 and cost[run]["epochs"] >= 1, (run, cost[run])
    for run, start in STARTS.items():
        assert cost[run]["started_from"] == start, (run, cost[run].get("started_from"))
        assert cost[run]["steps"] > cost[start]["steps"] > 0, (
            f"{run}: {cost[run]['steps']} optimiser steps, {start}: {cost[start]['steps']}; "
            "fine-tuning must build on the projection-only run's steps")
    ties = metrics["ties"]
    assert tuple(ties) == RUNS, f"ties of runs {list(ties)}, expected {RUNS}"
    for run, share in ties.items():
        assert share <= MAX_TIES, (
            f"{run}: {share:.0%} of the test captions rank their clip on a tie (at most "
            f"{MAX_TIES:.0%} expected): its audio embeddings have collapsed to one point")
    captions = metrics["captions_embedded"]
    assert captions["with_noise"] > captions["originals"] > 0, (
        f"{captions}: the caption noise made no new caption")

    figures = {f["name"]: f for f in metrics["figures"]}
    image_row = "ViT" if metrics["settings"]["image_encoder"] == "vit_b16" else "ResNet"
    for run, row in (("image-pretrained, projection only", f"{image_row} (Baseline)"),
                     ("image-pretrained, last blocks fine-tuned", f"{image_row} (Fine-Tuned)"),
                     ("audio-pretrained, projection only", "PANN (Baseline)")):
        for i, metric in enumerate(("MRR", "mAP@10", "R@10")):
            name = f"text->audio {metric}, {run}"
            assert name in figures, f"figure {name!r} missing"
            fig = figures[name]
            assert fig["published"] == TABLE5[row][i], (name, fig["published"], row)
            scale = 1.0 if metric == "MRR" else 100.0
            assert abs(fig["value"] - scale * retrieval[run]["text_to_audio"][metric]) < 1e-6, fig

    if metrics.get("smoke"):
        return
    t2a_chance = chance["text_to_audio"]
    k = informative_k(t2a_chance, max_chance=MAX_CHANCE)
    audio = retrieval["audio-pretrained, projection only"]["text_to_audio"]
    assert audio[f"R@{k}"] >= FACTOR * t2a_chance[f"R@{k}"], (
        f"audio-pretrained: text->audio R@{k} {audio[f'R@{k}']:.3f} is less than {FACTOR}x the "
        f"random R@{k} {t2a_chance[f'R@{k}']:.3f}")
