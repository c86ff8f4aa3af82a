"""zskit.hierarchy_eval: splits, metrics against scikit-learn, lambda search, the method table,
blocked errors and the fine-tuned path on a tiny encoder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from zskit.audio.augment import SpecAugment
from zskit.data.manifest import Corpus
from zskit.encoders import create_audio_encoder
from zskit.errors import ConfigError, DataError
from zskit.heads.hierarchy import HierarchicalOutput, create_hierarchical_head
from zskit.hierarchy import Hierarchy
from zskit.hierarchy_eval import (
    LAMBDAS,
    METRICS,
    PAPER_TABLE_1,
    ClipDataset,
    HierarchicalData,
    HierarchicalTagger,
    HierarchyTrainConfig,
    attention_figure,
    blocked_errors,
    box_figure,
    clip_datasets,
    finetune_method,
    level_metrics,
    level_thresholds,
    pool_coarse,
    pooled_thresholds,
    pooling_comparison,
    predict_outputs,
    reference_logistic,
    run_methods,
    split_indices,
    standardize,
    train_head,
)

H = Hierarchy.from_dict({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1"]})
FAST = HierarchyTrainConfig(lr=1e-2, batch_size=32, max_epochs=10, warmup_epochs=1,
                            lambdas=(0.7, 0.9))


def _problem(n: int = 300, d: int = 16, seed: int = 0) -> HierarchicalData:
    """Fine tags linearly separable from the inputs up to noise; 70% of labels known."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, H.n_fine))
    labels = (x @ w + 0.5 * rng.normal(size=(n, H.n_fine)) > 1.0).astype(np.int8)
    mask = rng.random((n, H.n_fine)) < 0.7
    return HierarchicalData.from_arrays(x, labels, mask, H)


@pytest.fixture(scope="module")
def splits() -> list[HierarchicalData]:
    data = _problem()
    return standardize(data.subset(range(180)), data.subset(range(180, 240)),
                       data.subset(range(240, 300)))


def _masked_reference(y, s, m, fn, **kw):
    values = []
    for c in range(y.shape[1]):
        yc, sc = y[m[:, c], c], s[m[:, c], c]
        if fn is not roc_auc_score and yc.sum() == 0:
            continue
        if fn is roc_auc_score and len(set(yc)) < 2:
            continue
        values.append(fn(yc, sc, **kw))
    return float(np.mean(values))


def test_level_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y_val, y_test = (rng.random((80, 5)) < 0.4).astype(int), (rng.random((90, 5)) < 0.4).astype(int)
    s_val = np.clip(y_val * 0.3 + rng.random((80, 5)), 0, 1)
    s_test = np.clip(y_test * 0.3 + rng.random((90, 5)), 0, 1)
    m_val, m_test = rng.random((80, 5)) < 0.7, rng.random((90, 5)) < 0.7
    got = level_metrics(y_val, s_val, m_val, y_test, s_test, m_test)
    assert got["roc_auc"] == pytest.approx(_masked_reference(y_test, s_test, m_test, roc_auc_score))
    assert got["pr_auc"] == pytest.approx(
        _masked_reference(y_test, s_test, m_test, average_precision_score))
    # F1: brute-force the best validation threshold per class, apply it to test
    f1s = []
    for c in range(5):
        yv, sv = y_val[m_val[:, c], c], s_val[m_val[:, c], c]
        best = max(sorted(set(sv), reverse=True), key=lambda t: f1_score(yv, sv >= t))
        yt, st = y_test[m_test[:, c], c], s_test[m_test[:, c], c]
        f1s.append(f1_score(yt, st >= best))
    assert got["f1"] == pytest.approx(np.mean(f1s)), "F1 with validation-tuned thresholds"


def test_pool_coarse_max_and_mean():
    p = np.random.default_rng(1).random((10, H.n_fine)).astype(np.float32)
    mx, mean = pool_coarse(p, H, "max"), pool_coarse(p, H, "mean")
    for j in range(H.n_coarse):
        kids = H.children(j)
        np.testing.assert_allclose(mx[:, j], p[:, kids].max(1), rtol=1e-6)
        np.testing.assert_allclose(mean[:, j], p[:, kids].mean(1), rtol=1e-6)
    with pytest.raises(ConfigError, match="pooling"):
        pool_coarse(p, H, "median")


def _corpus(splits: list[str], labels: np.ndarray) -> Corpus:
    n = len(splits)
    manifest = pd.DataFrame({"clip_id": [str(i) for i in range(n)], "path": ["x.wav"] * n,
                             "split": splits, "labels": [""] * n})
    classes = [f"c{j}" for j in range(labels.shape[1])]
    return Corpus(root=None, manifest=manifest, metadata={}, classes=classes, labels=labels,
                  mask=np.ones(labels.shape, bool), captions=[[] for _ in range(n)])


def test_split_keeps_an_existing_validation_split():
    labels = np.zeros((6, 2), np.int8)
    corpus = _corpus(["train", "validation", "test", "train", "validation", "test"], labels)
    tr, va, te = split_indices(corpus)
    assert (tr.tolist(), va.tolist(), te.tolist()) == ([0, 3], [1, 4], [2, 5])


def test_split_holds_out_a_stratified_fifteen_percent():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 4)) < [0.05, 0.2, 0.4, 0.6]).astype(np.int8)
    corpus = _corpus(["train"] * 340 + ["test"] * 60, labels)
    tr, va, te = split_indices(corpus, val_fraction=0.15, seed=0)
    assert len(set(tr) | set(va)) == 340 and not set(tr) & set(va), "train/val must partition"
    assert te.tolist() == list(range(340, 400))
    assert abs(len(va) - 51) <= 2, f"15% of 340 is 51, got {len(va)}"
    share = labels[va].sum(0) / np.maximum(labels[:340].sum(0), 1)
    assert np.all(np.abs(share - 0.15) < 0.05), f"each class ~15% in validation: {share}"
    with pytest.raises(DataError, match="'test'"):
        split_indices(_corpus(["train"] * 3, labels[:3]))


def test_empty_validation_is_a_data_error():
    labels = np.eye(8, 2, dtype=np.int8)
    with pytest.raises(DataError, match="raise val_fraction"):
        split_indices(_corpus(["train"] * 6 + ["test"] * 2, labels), val_fraction=0.05)
    data = _problem(n=40)
    head = create_hierarchical_head("gmp", data.x.shape[1], H)
    with pytest.raises(DataError, match="validation split is empty"):
        train_head(head, data.subset(range(30)), data.subset([]), 0.8, FAST)


def test_subset_accepts_a_boolean_row_mask():
    data = _problem(n=5)
    keep = np.array([False, False, True, True, True])
    torch.testing.assert_close(data.subset(keep).x, data.x[2:])
    torch.testing.assert_close(data.subset(keep).coarse_mask, data.coarse_mask[2:])
    with pytest.raises(DataError, match="5 entries"):
        data.subset(keep[:4])


def test_standardize_uses_training_statistics():
    data = _problem(n=200)
    x = data.x * torch.linspace(1e-4, 3.0, data.x.shape[1]) + 5.0  # very unequal spreads
    tr, va = standardize(data.subset(range(150)).with_x(x[:150]), data.with_x(x).subset(range(150, 200)))
    ref = (x[:150] - x[:150].mean(0)) / (x[:150] - x[:150].mean(0)).pow(2).mean().sqrt()
    torch.testing.assert_close(tr.x, ref)
    assert tr.x.pow(2).mean().item() == pytest.approx(1.0, rel=1e-4), "unit global scale"
    ratio = tr.x.std(0)[-1] / tr.x.std(0)[0]
    assert ratio > 1e3, "one global scale keeps the features' relative spreads"
    assert va.x.mean(0).abs().max() > 1e-3, "validation must not be standardised on itself"


def test_train_head_keeps_the_best_validation_fine_loss(splits):
    from zskit.losses import masked_bce

    tr, va, _ = splits
    torch.manual_seed(0)
    head = create_hierarchical_head("gmp", tr.x.shape[1], H)
    result = train_head(head, tr, va, 0.8, FAST, seed=0)
    history = result.history
    assert result.best_value == pytest.approx(history["val_loss"].min())
    assert history["train_loss"].iloc[0] != pytest.approx(history["val_loss"].iloc[0], rel=1e-3)
    out = predict_outputs(head, va)
    fine = masked_bce(out.fine, va.fine, va.fine_mask, from_logits=False).item()
    assert fine == pytest.approx(result.best_value, rel=1e-4), (
        "val_loss is the masked fine BCE over all of val, and the kept weights are the best epoch's")
    coarse = masked_bce(out.coarse, va.coarse, va.coarse_mask, from_logits=False).item()
    assert fine != pytest.approx(0.8 * fine + 0.2 * coarse, rel=1e-4), "not Eq. 2's total"


def test_run_methods_table_and_lambda_search(splits):
    tr, va, te = splits
    methods = ["baseline", "gmp", "resatt"]
    table = run_methods(tr, va, te, H, methods=methods, seeds=[0, 1], config=FAST, progress=False)
    res = table.results
    assert sorted(zip(res["method"], res["seed"])) == sorted(
        (m, s) for m in methods for s in (0, 1)), res[["method", "seed"]]
    for metric in METRICS:
        assert res[metric].between(0, 1).all(), f"{metric} outside [0, 1]: {res[metric].tolist()}"
    assert (res["fine_roc_auc"] > 0.75).all(), f"a learnable problem: {res['fine_roc_auc'].tolist()}"
    search = table.lambda_search
    assert len(search) == 2 * len(FAST.lambdas), search
    for method in ("gmp", "resatt"):
        rows = search[search["method"] == method]
        best = float(rows.loc[rows["val_fine_loss"].idxmin(), "lam"])
        assert table.chosen_lambda[method] == best, f"{method}: chosen lambda is the argmin"
        assert (res[res["method"] == method]["lam"] == best).all(), "seeds reuse the chosen lambda"
    assert table.chosen_lambda["baseline"] is None, "the flat baseline has no lambda"
    summary = table.summary()
    assert list(summary.index) == methods and ("fine_pr_auc", "std") in summary.columns
    assert table.test_outputs[("resatt", 1)].attention.shape == (len(te), H.n_fine, H.n_coarse)
    as_dict = table.to_dict()
    assert as_dict["gmp"]["lambda"] == table.chosen_lambda["gmp"] and as_dict["gmp"]["seeds"] == 2
    assert as_dict["resatt"]["coarse"]["pr_auc"]["mean"] == pytest.approx(
        res[res["method"] == "resatt"]["coarse_pr_auc"].mean())
    paper = table.compare_with_paper()
    assert paper.loc["gmp", ("coarse_roc_auc", "paper")] == PAPER_TABLE_1["gmp"][3] == 93.1
    assert paper.loc["gmp", ("fine_pr_auc", "ours")] == pytest.approx(
        100 * res[res["method"] == "gmp"]["fine_pr_auc"].mean())
    pooled = pooling_comparison(table, va, te, H)
    assert list(pooled.index) == ["max", "mean"]
    assert pooled.loc["max", "coarse_pr_auc"] == pytest.approx(
        res[res["method"] == "baseline"]["coarse_pr_auc"].mean()), "the baseline's coarse is GMP"
    fig = box_figure(res)
    assert len(fig.data) == 3 * len(methods), "one box trace per method and metric"
    with pytest.raises(ConfigError, match="unknown"):
        run_methods(tr, va, te, H, methods=["nope"], seeds=[0], config=FAST, progress=False)


def test_config_checks():
    assert HierarchyTrainConfig().lambdas == LAMBDAS == (0.70, 0.75, 0.80, 0.85, 0.90)
    with pytest.raises(ConfigError, match="lambdas"):
        HierarchyTrainConfig(lambdas=(0.5, 1.2))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="num_threads"):
            HierarchyTrainConfig(num_threads=bad)
    assert HierarchyTrainConfig(num_threads=None).num_threads is None
    cfg = HierarchyTrainConfig().train_config(seed=3)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.seed) == ("adam", 1e-3, 1e-4, 3)


def test_blocked_errors_finds_a_fine_error_kept_from_the_coarse_level():
    h = Hierarchy.from_dict({"keys": ["piano", "organ"], "voice": ["voice"]})
    fine = torch.tensor([[0.83, 0.10, 0.90], [0.83, 0.10, 0.90], [0.20, 0.10, 0.90]])
    attention = torch.zeros(3, 3, 2)
    attention[:, 0, 0], attention[:, 1, 0], attention[:, 2, 1] = 0.05, 0.95, 1.0
    coarse = torch.einsum("bf,bfc->bc", fine, attention)
    data = HierarchicalData.from_arrays(
        np.zeros((3, 1)), np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1]]),
        np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool), h)
    out = HierarchicalOutput(fine, coarse, attention=attention)
    fine_thr, coarse_thr = np.array([0.5, 0.5, 0.5]), np.array([0.5, 0.5])
    table = blocked_errors(out, data, h, fine_thr, coarse_thr, np.array([0.8, 0.5]))
    assert table["clip"].tolist() == [0, 1], table  # clip 2 predicts no piano
    row = table.iloc[0]
    assert row["fine"] == "piano" and row["coarse"] == "keys", row
    assert row["p_coarse"] == pytest.approx(0.83 * 0.05 + 0.10 * 0.95) and row["gmp_passes"], row
    # GMP's pooled scores are judged by their own thresholds, not by the coarse head's
    stricter = blocked_errors(out, data, h, fine_thr, coarse_thr, np.array([0.9, 0.5]))
    assert not stricter["gmp_passes"].any() and (stricter["gmp_threshold"] == 0.9).all(), stricter
    fig = attention_figure(attention[0], fine[0], coarse[0], h)
    assert fig.data[0].z.shape == (3, 2) and "piano (83%)" in list(fig.data[0].y)
    with pytest.raises(ConfigError, match="out.attention"):
        attention_figure(attention, fine[0], coarse[0], h)
    fine_thr, coarse_thr = level_thresholds(out, data)
    assert fine_thr.shape == (3,) and coarse_thr.shape == (2,)


def test_pooled_thresholds_are_tuned_on_the_pooled_scores():
    h = Hierarchy.from_dict({"keys": ["piano", "organ"], "voice": ["voice"]})
    fine = torch.tensor([[0.9, 0.1, 0.2], [0.7, 0.1, 0.6], [0.3, 0.2, 0.9], [0.1, 0.2, 0.1]])
    labels = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]])
    data = HierarchicalData.from_arrays(np.zeros((4, 1)), labels, None, h)
    coarse = torch.full((4, 2), 0.5)  # a coarse head that knows nothing
    thr = pooled_thresholds(HierarchicalOutput(fine, coarse), data, h)
    from zskit.metrics import tune_thresholds

    want = tune_thresholds(labels @ h.matrix(np.int64) > 0, pool_coarse(fine, h, "max"))
    np.testing.assert_allclose(thr, want)
    pooled = pool_coarse(fine, h, "max")
    assert ((pooled >= thr) == (data.coarse.numpy() > 0)).all(), (pooled, thr)


def test_finetune_path_with_a_tiny_encoder(tmp_path):
    encoder = create_audio_encoder("yamnet", tiny=True)
    sr = encoder.sample_rate
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(sr * 2)).astype(np.float32), sr)
        paths.append(path)
    labels = (rng.random((12, H.n_fine)) < 0.4).astype(np.int8)
    data = HierarchicalData.from_arrays(np.zeros((12, 1)), labels, None, H)
    train = ClipDataset(paths[:8], data.subset(range(8)), sr, clip_seconds=2.0, crop_seconds=1.0)
    val = ClipDataset(paths[8:10], data.subset([8, 9]), sr, clip_seconds=2.0)
    test = ClipDataset(paths[10:], data.subset([10, 11]), sr, clip_seconds=2.0)
    corpus = _corpus(["train"] * 8 + ["validation"] * 2 + ["test"] * 2, labels)
    corpus = dataclasses.replace(corpus, root=tmp_path, metadata={"clip_seconds": 2.0},
                                 manifest=corpus.manifest.assign(path=[p.name for p in paths]))
    built = clip_datasets(corpus, split_indices(corpus), (data.subset(range(8)),
                          data.subset([8, 9]), data.subset([10, 11])), sr, 1.0,
                          limits=(3, None, None))
    assert [len(d) for d in built] == [3, 2, 2] and built[0].crop == sr and built[1].crop is None
    assert built[2].paths == paths[10:], "test rows map to their own files"
    wave, *targets = train[0]
    assert wave.shape == (sr,) and len(targets) == 4, "a 1-s crop and four target tensors"
    assert val[0][0].shape == (2 * sr,), "validation clips keep their full length"
    config = HierarchyTrainConfig(batch_size=4, max_epochs=1, warmup_epochs=0, encoder_lr=1e-4)
    before = [p.detach().clone() for p in encoder.parameters()]
    model, metrics = finetune_method(encoder, "resatt", H, train, val, test, 0.8, config,
                                     spec_augment=SpecAugment(8, 10))
    assert set(metrics) == set(METRICS), metrics
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    assert changed, "fine-tuning must update the encoder"
    x = torch.stack([val[0][0], val[1][0]])
    frontend = model.encoder.frontend
    assert not frontend._forward_hooks, "training must leave no hook on the encoder"
    torch.manual_seed(0)
    assert torch.equal(frontend(x), frontend(x)), "the encoder alone is never augmented"
    calls, raw = [], []
    model.spec_augment.register_forward_hook(lambda m, i, out: calls.append(out))
    probe = frontend.register_forward_hook(lambda m, i, out: raw.append(out.clone()))
    model.train()
    model(x)
    probe.remove()
    assert len(calls) == 1, "SpecAugment masks the spectrogram in a training forward"
    masked, plain = calls[0], raw[0]
    assert not torch.equal(masked, plain) and ((masked == plain) | (masked == 0)).all(), \
        "SpecAugment zeroes bands of the front end's output"
    model.eval()
    model(x)
    assert len(calls) == 1 and not frontend._forward_hooks, "no augmentation in eval mode"
    with pytest.raises(ConfigError, match="in_dim"):
        HierarchicalTagger(encoder, create_hierarchical_head("gmp", 3, H))


def test_reference_logistic_matches_scikit_learn(splits):
    from sklearn.linear_model import LogisticRegression

    tr, va, te = splits
    val_out, test_out = reference_logistic(tr, va, te, H, c=0.5)
    known = tr.fine_mask[:, 2].numpy()
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(tr.x.numpy()[known], tr.fine[known, 2].numpy())
    np.testing.assert_allclose(test_out.fine[:, 2].numpy(), ref.predict_proba(te.x.numpy())[:, 1],
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(val_out.coarse, torch.as_tensor(pool_coarse(val_out.fine, H)))
