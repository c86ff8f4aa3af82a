"""The notebook checks of papers 4 and 5 (tests/checks_04.py, checks_05.py) pass on good metrics
and fail on bad ones."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest


def _load(name):
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks_04, checks_05 = _load("checks_04"), _load("checks_05")


def _rates(r1, r5, r10, map10, mrr=None):
    return {"R@1": r1, "R@5": r5, "R@10": r10, "mAP@10": map10, "MRR": map10 if mrr is None
            else mrr}


# chance of a 300-clip test set (1 relevant clip per caption; 5 captions per clip)
CHANCE = {"text_to_audio": _rates(1 / 300, 5 / 300, 10 / 300, 0.01),
          "audio_to_text": _rates(5 / 1500, 0.016, 0.033, 0.01)}


def _metrics_04():
    good = {"text_to_audio": _rates(0.2, 0.5, 0.6, 0.33), "audio_to_text": _rates(0.3, 0.6, 0.7,
                                                                                   0.2)}
    retrieval = {run: copy.deepcopy(good) for run in checks_04.RUNS}
    figures = [{"name": f"{arrow} {metric}, {run}", "value": 100 * good[direction][metric],
                "published": checks_04.PUBLISHED[run][metric] if direction == "text_to_audio"
                else None, "unit": "%", "data": "synth test split", "weights": "yamnet + minilm"}
               for run in checks_04.RUNS
               for direction, arrow in (("text_to_audio", "text->audio"),
                                        ("audio_to_text", "audio->text"))
               for metric in checks_04.METRICS]
    lengths = [2.0, 10.0]
    ablations = {name: {"metrics": copy.deepcopy(good), "seconds": 5.0, "what": "weights",
                        "trained_parameters": 1_443_841, "epochs": 5, "best_epoch": 4}
                 for name in checks_04.YAMNET_ROWS}
    ablations["YAMNet last block + projections (joint)"]["trained_parameters"] = 2_503_681
    scratch = {"text_to_audio": _rates(0.1, 0.3, 0.45, 0.2), "audio_to_text": _rates(0.1, 0.3,
                                                                                      0.4, 0.2)}
    for seconds in lengths:
        ablations[f"PaSST from scratch, {seconds:g} s segments"] = {
            "metrics": copy.deepcopy(scratch), "seconds": 20.0, "trained_parameters": 579_841,
            "what": "random init", "epochs": 20, "best_epoch": 20}
    matrix = {f"{a:g} s": {f"{b:g} s": scratch["text_to_audio"] for b in lengths} for a in lengths}
    return {"retrieval": retrieval, "chance": copy.deepcopy(CHANCE), "figures": figures,
            "zero_shot": {"dual encoder + prompts": 0.5, "random (expected)": 0.2},
            "ablations": ablations, "segment_matrix": matrix, "smoke": False, "dataset": "synth",
            "settings": {"segment_lengths": lengths}}


def test_check_04_passes_good_metrics_and_fails_bad_ones():
    checks_04.check(_metrics_04())
    bad = _metrics_04()
    bad["retrieval"]["augmentation on"]["text_to_audio"]["R@10"] = 0.05  # above chance, < 3x
    with pytest.raises(AssertionError, match="less than 3.0x the random R@10"):
        checks_04.check(bad)
    bad = _metrics_04()
    bad["zero_shot"]["dual encoder + prompts"] = 0.1
    with pytest.raises(AssertionError, match="does not beat random"):
        checks_04.check(bad)
    bad = _metrics_04()
    bad["figures"][3]["published"] = 38.0  # R@10 of "augmentation off" given its mAP@10
    with pytest.raises(AssertionError, match="Table 3 says 68.56"):
        checks_04.check(bad)
    small = _metrics_04()  # 15 test clips: chance R@10 = 67%, so the factor applies to R@1
    small["chance"]["text_to_audio"] = _rates(1 / 15, 1 / 3, 2 / 3, 0.2)
    for run in checks_04.RUNS:
        small["retrieval"][run]["text_to_audio"] = _rates(0.15, 0.8, 0.9, 0.45)
    with pytest.raises(AssertionError, match="R@1 0.150 is less than 3.0x"):
        checks_04.check(small)
    for run in checks_04.RUNS:  # R@1 well above chance, but R@10 at or below chance
        small["retrieval"][run]["text_to_audio"] = _rates(0.25, 0.5, 0.6, 0.45)
    with pytest.raises(AssertionError, match="R@10 0.600 is not above chance 0.667"):
        checks_04.check(small)


def _figure(metrics, name):
    return next(f for f in metrics["figures"] if f["name"] == name)


@pytest.mark.parametrize("change, match", [
    (lambda m: _figure(m, "text->audio mAP@10, augmentation on").update(published=38.0),
     "Table 3 says 38.56"),
    (lambda m: _figure(m, "audio->text R@1, augmentation off").update(published=25.51),
     "the paper has no number for"),
    (lambda m: m["figures"].remove(_figure(m, "audio->text R@5, augmentation on")),
     "figure 'audio->text R@5, augmentation on' missing"),
    (lambda m: _figure(m, "text->audio R@1, augmentation off").update(value=0.2),
     "text->audio R@1, augmentation off"),
    (lambda m: _figure(m, "text->audio R@5, augmentation off").update(weights=""), "weights ''"),
    (lambda m: m["retrieval"]["augmentation off"]["audio_to_text"].update({"R@10": 70.0}),
     "not a rate"),
    (lambda m: m.update(zero_shot={}), "no zero-shot comparison"),
    (lambda m: m["retrieval"].pop("augmentation on"), "runs .* expected"),
    (lambda m: m["retrieval"]["augmentation off"]["text_to_audio"].update({"mAP@10": 0.015}),
     "augmentation off: text->audio mAP@10 0.015 is less than twice chance"),
    (lambda m: m["retrieval"]["augmentation on"]["audio_to_text"].update({"R@1": 0.005}),
     "augmentation on: audio->text R@1 0.005 is less than 3.0x chance"),
    (lambda m: m["ablations"][CONTROL].update(what=""), "no statement of what produced it"),
])
def test_check_04_fails_on_bad_figures_and_rates(change, match):
    bad = _metrics_04()
    change(bad)
    with pytest.raises(AssertionError, match=match):
        checks_04.check(bad)


DELETE = object()
JOINT, CONTROL = checks_04.YAMNET_ROWS[2], checks_04.YAMNET_ROWS[1]
AT_CHANCE = _rates(1 / 300, 5 / 300, 10 / 300, 0.01)


def _change(metrics, path, value):
    node = metrics
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return metrics


@pytest.mark.parametrize("path, value, match", [
    (("ablations", CONTROL), DELETE, "ablation rows"),
    (("ablations", JOINT, "metrics", "text_to_audio", "R@10"), 0.05, "joint.*less than 3.0x"),
    (("ablations", JOINT, "trained_parameters"), 1_443_841, "projections plus YAMNet layers"),
    (("ablations", "PaSST from scratch, 10 s segments", "seconds"), 0.0, "cost missing"),
    (("ablations", "PaSST from scratch, 10 s segments", "metrics", "text_to_audio", "R@1"), 2.0,
     "not a rate"),
    (("segment_matrix", "10 s", "2 s"), DELETE, "does not cross every length"),
    (("segment_matrix", "10 s", "10 s"), _rates(0.1, 0.3, 0.5, 0.2), "differs from the row's own"),
])
def test_check_04_fails_on_bad_ablation_rows(path, value, match):
    checks_04.check(_metrics_04())
    with pytest.raises(AssertionError, match=match):
        checks_04.check(_change(_metrics_04(), path, value))


def test_check_04_asks_from_scratch_rows_above_chance_except_in_smoke_runs():
    bad = _change(_metrics_04(), ("ablations", "PaSST from scratch, 2 s segments", "metrics",
                                  "text_to_audio"), AT_CHANCE)
    _change(bad, ("segment_matrix", "2 s", "2 s"), AT_CHANCE)
    with pytest.raises(AssertionError, match="2 s segments: text->audio R@10 0.033 is less than"):
        checks_04.check(bad)
    checks_04.check({**bad, "smoke": True})


def _metrics_05(smoke=False, r10=0.4):
    runs = checks_05.RUNS
    retrieval = {run: {"text_to_audio": _rates(0.1, 0.3, r10, 0.2),
                       "audio_to_text": _rates(0.1, 0.3, 0.4, 0.2)} for run in runs}
    params = dict(zip(runs, (850_000, 2_300_000, 850_000, 4_200_000, 720_000)))
    cost = {run: {"trained_parameters": params[run], "seconds_per_epoch": 1.5, "epochs": 3,
                  "best_epoch": 2, "seconds": 5.0, "steps": 270,
                  "started_from": checks_05.STARTS.get(run, "")} for run in runs}
    for run in checks_05.STARTS:
        cost[run]["steps"] = 270 + 36
    rows = {runs[0]: "ResNet (Baseline)", runs[1]: "ResNet (Fine-Tuned)",
            runs[4]: "PANN (Baseline)"}
    figures = []
    for run, row in rows.items():
        for i, (metric, scale) in enumerate((("MRR", 1.0), ("mAP@10", 100.0), ("R@10", 100.0))):
            figures.append({"name": f"text->audio {metric}, {run}",
                            "value": scale * retrieval[run]["text_to_audio"][metric],
                            "published": checks_05.TABLE5[row][i]})
    return {"retrieval": retrieval, "cost": cost, "chance": copy.deepcopy(CHANCE),
            "figures": figures, "settings": {"image_encoder": "efficientnet_lite0"},
            "captions_embedded": {"originals": 900, "with_noise": 1100},
            "ties": dict.fromkeys(runs, 0.0), "smoke": smoke}


def test_check_05_passes_good_metrics_and_fails_bad_ones():
    checks_05.check(_metrics_05())
    bad = _metrics_05(r10=0.08)  # above chance (0.033), below 3x
    with pytest.raises(AssertionError, match="less than 3.0x the random R@10"):
        checks_05.check(bad)
    checks_05.check({**bad, "smoke": True})  # the quality claim is not asked of a smoke run
    bad = _metrics_05(smoke=True)
    bad["cost"]["random init, trained from scratch"]["trained_parameters"] = 1_000_000
    with pytest.raises(AssertionError, match="from scratch expected"):
        checks_05.check(bad)
    bad = _metrics_05(smoke=True)
    bad["cost"]["image-pretrained, last blocks fine-tuned"]["steps"] = 8  # the unfair old default
    with pytest.raises(AssertionError, match="build on the projection-only run's steps"):
        checks_05.check(bad)
    bad = _metrics_05(smoke=True)
    bad["cost"]["random init, trained from scratch"]["started_from"] = ""
    with pytest.raises(AssertionError, match="trained from scratch"):
        checks_05.check(bad)
    bad = _metrics_05(smoke=True)
    bad["captions_embedded"]["with_noise"] = 900
    with pytest.raises(AssertionError, match="noise made no new caption"):
        checks_05.check(bad)
    bad = _metrics_05(smoke=True)
    bad["retrieval"]["random init, projection only"]["audio_to_text"]["MRR"] = 1.5
    with pytest.raises(AssertionError, match="not a rate"):
        checks_05.check(bad)
    bad = _metrics_05(smoke=True)
    bad["figures"][0]["published"] = 0.0294  # ViT's row beside an EfficientNet run
    with pytest.raises(AssertionError, match=r"0\.0294, 'ResNet \(Baseline\)'"):
        checks_05.check(bad)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["retrieval"].pop("random init, projection only"), "runs .* expected"),
    (lambda m: m["cost"].pop("random init, projection only"), "runs .* expected"),
    (lambda m: m["retrieval"]["random init, projection only"].pop("audio_to_text"),
     r"\('random init, projection only', \['text_to_audio'\]\)"),
    (lambda m: m["cost"]["random init, projection only"].update(seconds_per_epoch=0.0),
     "'seconds_per_epoch': 0.0"),
    (lambda m: m["cost"]["random init, projection only"].update(epochs=0), "'epochs': 0"),
    (lambda m: m["figures"].pop(),
     "figure 'text->audio R@10, audio-pretrained, projection only' missing"),
    (lambda m: m["figures"][1].update(value=0.2), "'value': 0.2"),  # mAP@10 in %, not a rate
])
def test_check_05_fails_on_bad_runs_costs_and_figures(change, match):
    bad = _metrics_05(smoke=True)
    checks_05.check(copy.deepcopy(bad))
    change(bad)
    with pytest.raises(AssertionError, match=match):
        checks_05.check(bad)
