"""Edge cases of the paper-1 and paper-3 evaluation code found in review: label vectors without a
direction in the proximity analysis, probabilities of extreme logits, a frozen encoder in the
fine-tuned hierarchy path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from test_zeroshot import one_thread  # noqa: F401 (autouse: tiny models run on one thread)
from test_zeroshot_eval import TableEncoder

from zskit import hierarchy_eval
from zskit.errors import ConfigError
from zskit.heads.projection import ProjectionConfig
from zskit.hierarchy import Hierarchy
from zskit.models.zeroshot import ZeroShotConfig, ZeroShotTagger
from zskit.zeroshot_eval import Condition, TaggingData, evaluate

TINY = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=16, dropout=0.0), epochs=2,
                      device="cpu")


def test_proximity_ignores_label_vectors_without_a_direction():
    # "mute" (trained) and "unknown" (tested) have zero label vectors, as a word-vector encoder
    # gives names without a known word; every real trained vector points away from "opposite"
    table = {"a": np.array([1.0, 0.0, 0.0]), "b": np.array([0.0, 1.0, 0.0]),
             "mute": np.zeros(3), "near": np.array([0.9, 0.1, 0.0]),
             "opposite": np.array([-1.0, -1.0, 0.0]), "unknown": np.zeros(3)}
    classes = list(table)
    rng = np.random.default_rng(0)
    y = (rng.random((60, len(classes))) < 0.3).astype(np.int8)
    y[:, :3] |= (y[:, :3].sum(1) == 0)[:, None].astype(np.int8)  # a training positive each
    x = rng.standard_normal((60, 4)).astype(np.float32)
    data = TaggingData(x, y, np.array(["train"] * 40 + ["test"] * 20), classes, classes)
    cond = Condition("t", ("a", "b", "mute"), ("near", "opposite", "unknown"))
    ev = evaluate(data, [cond], {"table": TableEncoder(table)}, TINY, progress=False)
    rows = ev.per_class.set_index("class")
    assert rows.loc["near", "nearest"] == "a"
    assert rows.loc["near", "similarity"] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert rows.loc["opposite", "nearest"] != "mute", (
        "a zero vector has no direction: its cosine 0 must not beat real negative cosines")
    assert rows.loc["opposite", "similarity"] == pytest.approx(-np.sqrt(0.5))
    assert rows.loc["unknown", "nearest"] == "" and np.isnan(rows.loc["unknown", "similarity"]), (
        "a test name without a direction has no nearest class, not cosine 0 to an arbitrary one")
    prox = ev.proximity().set_index("class")
    assert np.isnan(prox.loc["unknown", "similarity"]) and prox.loc["unknown", "nearest"] == ""


def test_probabilities_of_extreme_logits_do_not_overflow():
    tagger = ZeroShotTagger(TableEncoder({}))
    logits = np.array([[-500.0, -90.0, 0.0, 90.0, 500.0]], dtype=np.float32)
    tagger.decision_function = lambda audio, names, kind="auto": logits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "overflow encountered in exp" would raise here
        p = tagger.predict_proba(None, list("abcde"))
    np.testing.assert_allclose(p, [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-30)


def test_encoder_lr_zero_freezes_the_encoder(monkeypatch):
    groups = {}

    class Stop(Exception):
        pass

    def capture(model, train, val, lam, config, seed=0, param_groups=None):
        groups["lrs"] = [g["lr"] for g in param_groups]
        raise Stop

    monkeypatch.setattr(hierarchy_eval, "train_head", capture)
    encoder = torch.nn.Linear(3, 4)
    encoder.embed_dim = 4
    hierarchy = Hierarchy.from_dict({"p": ["f0", "f1"], "q": ["f2"]})
    for encoder_lr, expected in ((0.0, 0.0), (None, 1e-3), (1e-5, 1e-5)):
        config = hierarchy_eval.HierarchyTrainConfig(lr=1e-3, encoder_lr=encoder_lr)
        with pytest.raises(Stop):
            hierarchy_eval.finetune_method(encoder, "gmp", hierarchy, None, None, None, 0.8,
                                           config)
        assert groups["lrs"] == [expected, 1e-3], (encoder_lr, groups)
    with pytest.raises(ConfigError, match="encoder_lr"):
        hierarchy_eval.HierarchyTrainConfig(encoder_lr=-1e-4)
