"""Paper 1's evaluation protocol: conditions, runs, and every table checked against scikit-learn,
brute force or closed forms, on clips whose audio is a known function of their label vectors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from test_zeroshot import one_thread  # noqa: F401 (autouse: tiny models run on one thread)

from zskit.data.splits import class_folds
from zskit.errors import ConfigError, DataError
from zskit.heads.projection import ProjectionConfig
from zskit.models.zeroshot import ZeroShotConfig
from zskit.zeroshot_eval import (
    Condition,
    TaggingData,
    evaluate,
    fold_conditions,
    near_distant_conditions,
    openmic_conditions,
    paper_conditions,
    pearson_with_ci,
    proximity_figure,
    run_condition,
    supervised_condition,
)

GROUPS = {"strings": 4, "brass": 4, "reeds": 3, "drums": 4, "voice": 1}
CLASSES = [f"{g}{i}" for g, n in GROUPS.items() for i in range(n)]
CFG = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=48, dropout=0.1), epochs=8, lr=3e-3,
                     device="cpu")


class TableEncoder:
    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode_labels(self, names):
        return torch.from_numpy(np.stack([self.table[n] for n in names])).float()


def make_data(n: int = 640, seed: int = 0) -> tuple[TaggingData, TableEncoder]:
    """Label vectors = group centroid + member offset (relatives are close in label space);
    audio = a fixed linear image of the sum of a clip's label vectors, plus noise."""
    rng = np.random.default_rng(seed)
    dim = 10
    centroids = {g: rng.standard_normal(dim) for g in GROUPS}
    table = {}
    for c in CLASSES:
        v = centroids[c.rstrip("0123456789")] + 0.8 * rng.standard_normal(dim)
        table[c] = v / np.linalg.norm(v)
    vectors = np.stack([table[c] for c in CLASSES])
    y = (rng.random((n, len(CLASSES))) < 0.12).astype(np.int8)
    y[np.arange(n), rng.integers(0, len(CLASSES), n)] = 1
    x = (y @ vectors) @ rng.standard_normal((dim, 20)) + 0.3 * rng.standard_normal((n, 20))
    splits = np.array(["train"] * (n // 2) + ["validation"] * (n // 4) + ["test"] * (n - 3 * n // 4))
    groups = [c.rstrip("0123456789") for c in CLASSES]
    data = TaggingData(x.astype(np.float32), y, splits, CLASSES, CLASSES, groups=groups)
    return data, TableEncoder(table)


@pytest.fixture(scope="module")
def run():
    data, enc = make_data()
    folds = class_folds(data.labels[data.rows("train")], 4)
    conditions = (fold_conditions(data, folds) + near_distant_conditions(data, seed=0)
                  + [supervised_condition(data)])
    ev = evaluate(data, conditions, {"table": enc}, CFG, seeds=[0, 1], progress=False)
    return data, enc, folds, ev


def test_fold_conditions_test_each_class_once():
    data, _ = make_data(60)
    folds = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, -1, 2])
    conds = fold_conditions(data, folds)
    assert [c.name for c in conds] == ["fold 0", "fold 1", "fold 2"]
    tested = [c for cond in conds for c in cond.test]
    assert sorted(tested) == sorted(c for c, f in zip(CLASSES, folds) if f >= 0)
    for cond in conds:
        assert cond.zero_shot and set(cond.train) | set(cond.test) == set(CLASSES)
        assert CLASSES[14] in cond.train, "fold -1 classes always train"


def test_near_and_distant_cover_the_same_classes_with_and_without_relatives():
    data, _ = make_data(60)
    conds = near_distant_conditions(data, seed=3)
    near = [c for c in conds if c.kind == "near"]
    distant = [c for c in conds if c.kind == "distant"]
    group = {c: g for c, g in zip(data.classes, data.groups)}
    multi = [c for c in CLASSES if GROUPS[group[c]] >= 2]
    assert len(near) == max(GROUPS.values()) and len(distant) == 4, "voice has no relative"
    for kind in (near, distant):
        tested = sorted(c for cond in kind for c in cond.test)
        assert tested == sorted(multi), f"each multi-member class is tested exactly once: {tested}"
    for cond in near:
        for c in cond.test:
            assert any(group[t] == group[c] for t in cond.train), f"{c} lost all its relatives"
    for cond in distant:
        assert not any(group[t] == group[c] for c in cond.test for t in cond.train)
    fewer = near_distant_conditions(data, seed=3, rounds=2)
    assert [c.kind for c in fewer].count("near") == 2
    for cond in fewer[:2]:
        assert len(cond.test) == sum(math.ceil(n / 2) for n in GROUPS.values() if n >= 2) - \
            (cond.name == "near 1") * sum(n % 2 for n in GROUPS.values() if n >= 2)
        for c in cond.test:
            assert any(group[t] == group[c] for t in cond.train), f"{c} lost all its relatives"
    assert sorted(c for cond in fewer[:2] for c in cond.test) == sorted(multi)
    with pytest.raises(ConfigError, match="rounds"):
        near_distant_conditions(data, rounds=1)
    with pytest.raises(ConfigError, match="parent categories"):
        near_distant_conditions(TaggingData(data.embeddings, data.labels, data.splits,
                                            CLASSES, CLASSES))


def test_openmic_conditions_on_class_ids():
    data, _ = make_data(60)
    conds = openmic_conditions(data, ["brass0", "brass1"])
    assert [c.name for c in conds] == ["C\\C_MIC", "C"]
    assert conds[0].zero_shot and not conds[1].zero_shot
    assert set(conds[0].train) == set(CLASSES) - {"brass0", "brass1"}
    assert conds[0].test == ("brass0", "brass1")
    inst = openmic_conditions(data, ["brass0"], instrument_classes=["brass2", "strings0"])
    assert set(inst[0].train) == set(CLASSES) - {"brass0", "brass2", "strings0"}
    assert [c.keep for c in inst] == [(), (), ("brass0",)], "C trains the OpenMIC classes"


def test_openmic_c_trains_every_openmic_class_when_names_differ():
    """Transfer to OpenMIC: its ids and names ("brass0") are not the training ones ("Brass0"),
    so only Condition.keep stops model selection from holding an OpenMIC class out of training
    in "C", and only Condition.unseen tells that "C" is not zero-shot."""
    data, enc = make_data(200)
    upper = [c.capitalize() for c in CLASSES]
    audioset = TaggingData(data.embeddings, data.labels, data.splits, upper, upper)
    openmic = TaggingData(data.embeddings[:40], data.labels[:40, :8], np.array(["test"] * 40),
                          CLASSES[:8], CLASSES[:8])
    mic, every = openmic_conditions(audioset, upper[:8], test_classes=openmic.classes)
    assert mic.zero_shot and not every.zero_shot, "C trains its test classes under other ids"
    cfg = dataclasses.replace(CFG, epochs=1, selection_fraction=0.5)
    encoder = TableEncoder({**enc.table, **{c.capitalize(): enc.table[c] for c in CLASSES}})
    for seed in range(3):  # 8 of 16 classes held out: by chance alone, some would be OpenMIC's
        tagger, _, _ = run_condition(audioset, every, encoder,
                                     dataclasses.replace(cfg, seed=seed), eval_data=openmic)
        assert tagger.selection_classes_ == upper[8:], tagger.selection_classes_
    with pytest.raises(ConfigError, match="keep only classes of `train`"):
        Condition("x", ("a",), ("b",), keep=("b",))


def test_summary_matches_scikit_learn(run):
    data, _, _, ev = run
    table = ev.summary()
    y_all = data.labels[data.rows("test")]
    for _, row in table.iterrows():
        cond = ev.conditions[row["condition"]]
        y = y_all[:, data.index(cond.test)]
        per_seed = []
        for s in (0, 1):
            scores = ev.scores[("table", s, cond.name)]
            aps = [average_precision_score(y[:, j], scores[:, j]) for j in range(y.shape[1])
                   if y[:, j].any()]
            per_seed.append(np.mean(aps))
        assert row["mAP"] == pytest.approx(np.mean(per_seed), abs=1e-9), row["condition"]
        assert row["seed std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-9)


def test_zero_shot_beats_random_and_supervised_beats_zero_shot(run):
    _, _, _, ev = run
    table = ev.summary().set_index("condition")
    folds = [c for c in table.index if c.startswith("fold")]
    for f in folds:
        assert table.loc[f, "mAP"] > table.loc[f, "random mAP"] + 0.05, table.loc[f]
    assert table.loc["supervised", "mAP"] > table.loc[folds, "mAP"].mean(), table


def test_pooled_by_condition_and_by_class(run):
    data, _, _, ev = run
    folds = [c for c in ev.conditions if c.startswith("fold")]
    by_cond = ev.pooled(folds).iloc[0]
    summary = ev.summary(folds)
    assert by_cond["mAP"] == pytest.approx(summary["mAP"].mean(), abs=1e-12)
    assert by_cond["random mAP"] == pytest.approx(summary["random mAP"].mean(), abs=1e-12)
    by_class = ev.pooled(folds, by="class").iloc[0]
    y_all = data.labels[data.rows("test")]
    ref = []
    for s in (0, 1):
        aps = []
        for f in folds:
            y = y_all[:, data.index(ev.conditions[f].test)]
            sc = ev.scores[("table", s, f)]
            aps += [average_precision_score(y[:, j], sc[:, j]) for j in range(y.shape[1])
                    if y[:, j].any()]
        ref.append(np.mean(aps))
    assert by_class["mAP"] == pytest.approx(np.mean(ref), abs=1e-9)
    # the supervised run scored on one fold's classes only
    sup = ev.pooled(["supervised"], classes={"supervised": ev.conditions[folds[0]].test}).iloc[0]
    y = y_all[:, data.index(ev.conditions[folds[0]].test)]
    cols = [CLASSES.index(c) for c in ev.conditions[folds[0]].test]
    ref = np.mean([np.mean([average_precision_score(y[:, j], ev.scores[("table", s, "supervised")]
                                                    [:, cols[j]]) for j in range(len(cols))
                            if y[:, j].any()]) for s in (0, 1)])
    assert sup["mAP"] == pytest.approx(ref, abs=1e-9)


def test_class_bootstrap_interval(run):
    _, _, _, ev = run
    row = ev.summary(["fold 0"], n_bootstrap=200).iloc[0]
    assert row["95% low"] <= row["mAP"] <= row["95% high"], row
    assert row["95% high"] - row["95% low"] > 0, "resampling classes must move the mAP"
    pc = ev.per_class[ev.per_class["condition"] == "fold 0"].dropna(subset=["ap"])
    ap = pc.groupby("class")["ap"].mean().to_numpy()
    rng = np.random.default_rng(0)  # the same draws as the method: classes with replacement
    ref = np.quantile([ap[rng.choice(len(ap), len(ap))].mean() for _ in range(200)],
                      [0.025, 0.975])
    assert row["mAP"] == pytest.approx(ap.mean()), "the estimate is the mean seed-mean class AP"
    assert abs(row["95% low"] - ref[0]) < 0.05 and abs(row["95% high"] - ref[1]) < 0.05


def test_paired_near_vs_distant(run):
    _, _, _, ev = run
    near = [c for c in ev.conditions if c.startswith("near")]
    distant = [c for c in ev.conditions if c.startswith("distant")]
    table = ev.paired(near, distant, names=("near", "distant"), n_bootstrap=100).iloc[0]
    pc = ev.per_class.dropna(subset=["ap"])
    a = pc[pc["condition"].isin(near)].groupby("class")["ap"].mean()
    b = pc[pc["condition"].isin(distant)].groupby("class")["ap"].mean()
    common = a.index.intersection(b.index)
    assert table["classes"] == len(common) > 0
    assert table["difference"] == pytest.approx((a[common] - b[common]).mean())
    assert table["mAP near"] == pytest.approx(a[common].mean())
    assert table["95% low"] <= table["difference"] <= table["95% high"]
    assert table["near better"] == pytest.approx(((a[common] - b[common]) > 0).mean())
    with pytest.raises(ConfigError, match="share no"):
        ev.paired(["fold 0"], ["fold 1"])


def test_top1_matches_brute_force(run):
    data, _, _, ev = run
    table = ev.top1(["fold 1"]).iloc[0]
    cond = ev.conditions["fold 1"]
    y = data.labels[data.rows("test")][:, data.index(cond.test)]
    single = y.sum(1) == 1
    groups = np.array(data.groups)[data.index(cond.test)]
    accs, within = [], []
    for s in (0, 1):
        sc = ev.scores[("table", s, "fold 1")][single]
        truth = y[single].argmax(1)
        accs.append(np.mean(sc.argmax(1) == truth))
        hits = []
        for i, t in enumerate(truth):
            same = np.flatnonzero(groups == groups[t])
            if len(same) >= 2:
                hits.append(same[sc[i, same].argmax()] == t)
        within.append(np.mean(hits))
    assert table["clips"] == single.sum() and table["chance"] == pytest.approx(1 / len(cond.test))
    assert table["top-1"] == pytest.approx(np.mean(accs))
    assert table["within-group top-1"] == pytest.approx(np.mean(within))
    by_group = ev.top1(["distant: brass"], by_group=True)
    assert list(by_group["group"]) == ["brass"] and by_group["chance"].iloc[0] == 0.25


def test_proximity_is_the_nearest_trained_class(run):
    _, enc, _, ev = run
    prox = ev.proximity(["fold 0", "fold 2"])
    assert set(prox["condition"]) == {"fold 0", "fold 2"}
    np.testing.assert_allclose(prox["ap_gain"], prox["ap"] - prox["random_ap"])
    pc = ev.per_class[ev.per_class["condition"] == "fold 0"]
    for _, row in pc.iterrows():
        trained = ev.trained[("table", row["seed"], "fold 0")]
        assert row["class"] not in trained
        cos = {t: float(enc.table[row["class"]] @ enc.table[t]) for t in trained}
        assert row["nearest"] == max(cos, key=cos.get)
        assert row["similarity"] == pytest.approx(max(cos.values()), abs=1e-5)
    near = ev.proximity([c for c in ev.conditions if c.startswith("near")])
    distant = ev.proximity([c for c in ev.conditions if c.startswith("distant")])
    assert near["similarity"].mean() > distant["similarity"].mean(), (
        "near test classes must have closer training relatives than distant ones")
    fig = proximity_figure(prox)
    assert len(fig.data) == len(set(prox["group"])) + 1, "one trace per group plus the fit line"


def test_pearson_with_ci_closed_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    y = 0.4 * x + rng.standard_normal(40)
    res = pearson_with_ci(x, y)
    r = np.corrcoef(x, y)[0, 1]
    z, se = math.atanh(r), 1 / math.sqrt(40 - 3)
    assert res["r"] == pytest.approx(r)
    assert res["low"] == pytest.approx(math.tanh(z - 1.959964 * se), abs=1e-5)
    assert res["high"] == pytest.approx(math.tanh(z + 1.959964 * se), abs=1e-5)
    assert res["n"] == 40 and 0 <= res["p"] <= 1
    slope = np.cov(x, y)[0, 1] / np.var(x, ddof=1)  # least squares in closed form
    assert res["slope"] == pytest.approx(slope)
    assert res["intercept"] == pytest.approx(y.mean() - slope * x.mean())
    with pytest.raises(DataError, match="at least 4 finite pairs, got 2"):
        pearson_with_ci([1, 2, np.nan], [1, 2, 3])


def test_strict_policy_drops_clips_with_test_classes():
    data, enc = make_data(200)
    cond = Condition("t", tuple(CLASSES[2:]), tuple(CLASSES[:2]))
    paper, _, _ = run_condition(data, cond, enc, CFG)
    strict, _, _ = run_condition(data, cond, enc, CFG, clip_policy="strict")
    tr = data.labels[data.rows("train")]
    trained = [CLASSES.index(c) for c in strict.classes_]  # selection classes do not count
    expected = int((tr[:, trained].any(1) & ~tr[:, :2].any(1)).sum())
    assert strict.n_train_clips_ == expected < paper.n_train_clips_
    with pytest.raises(ConfigError, match="clip_policy"):
        run_condition(data, cond, enc, CFG, clip_policy="loose")


def test_strict_policy_that_empties_the_validation_split_says_so():
    data, enc = make_data(120)
    y = data.labels.copy()
    y[data.splits == "validation", 0] = 1  # every validation clip holds the test class
    held = TaggingData(data.embeddings, y, data.splits, CLASSES, CLASSES)
    cond = Condition("t", tuple(CLASSES[1:]), tuple(CLASSES[:1]))
    with pytest.raises(DataError, match="strict' removed every validation clip.*clip_policy='paper'"):
        run_condition(held, cond, enc, CFG, clip_policy="strict")


def test_without_a_validation_split_the_last_epoch_is_kept():
    data, enc = make_data(120)
    no_val = TaggingData(data.embeddings, data.labels,
                         np.where(data.splits == "validation", "train", data.splits),
                         CLASSES, CLASSES)
    tagger, rows, scores = run_condition(no_val, Condition("t", tuple(CLASSES[2:]),
                                                           tuple(CLASSES[:2])), enc, CFG)
    assert tagger.selection_classes_ == [] and tagger.best_epoch_ == CFG.epochs
    assert scores.shape == (len(rows), 2) and len(rows) == (data.splits == "test").sum()


def test_transfer_to_another_data_set():
    data, enc = make_data(200)
    other = TaggingData(data.embeddings[:30], data.labels[:30, :3], np.array(["eval"] * 30),
                        ["x", "y", "z"], CLASSES[:3])  # other ids, same names
    cond = Condition("transfer", tuple(CLASSES[3:]), ("x", "y", "z"))
    ev = evaluate(data, [cond], {"table": enc}, CFG, eval_data=other, eval_split=None,
                  progress=False)
    assert ev.scores[("table", 0, "transfer")].shape == (30, 3)
    assert list(ev.per_class["name"]) == CLASSES[:3]
    paper, _, _ = run_condition(data, cond, enc, CFG, eval_data=other, eval_split=None)
    strict, _, _ = run_condition(data, cond, enc, CFG, eval_data=other, eval_split=None,
                                 clip_policy="strict")  # drops clips of the left-out CLASSES[:3]
    tr = data.labels[data.rows("train")]
    trained = [CLASSES.index(c) for c in strict.classes_]
    expected = int((tr[:, trained].any(1) & ~tr[:, :3].any(1)).sum())
    assert strict.n_train_clips_ == expected < paper.n_train_clips_


def test_top1_counts_ties_as_wrong_like_within_group_top1():
    from zskit.zeroshot_eval import Evaluation

    n = 30
    y = np.zeros((n, 3), dtype=np.int8)
    y[np.arange(n), np.arange(n) % 3] = 1
    data = TaggingData(np.zeros((n, 2), np.float32), y, np.array(["test"] * n), ["a", "b", "c"],
                       ["a", "b", "c"], groups=["g"] * 3)
    ev = Evaluation(data, data.rows("test"), {"t": Condition("t", (), ("a", "b", "c"))}, ["s"],
                    [0])
    scores = np.zeros((n, 3))
    scores[y[:, 1] == 1, 1] = 1.0  # the class-"b" clips are right; the others: three-way ties,
    #                                which an argmax would settle as "a" (right for the "a" clips)
    ev.scores[("s", 0, "t")] = scores
    row = ev.top1(["t"]).iloc[0]
    assert row["top-1"] == pytest.approx(1 / 3) == row["within-group top-1"]


def test_top1_takes_the_known_positive_under_partial_labels():
    data, enc = make_data(200)
    test = data.rows("test")
    labels, mask = data.labels.copy(), np.ones_like(data.labels, dtype=bool)
    labels[test, 0], mask[test, 0] = 1, False  # class 0 positive everywhere but never checked
    partial = TaggingData(data.embeddings, labels, data.splits, CLASSES, CLASSES,
                          mask=mask, groups=data.groups)
    cond = Condition("t", tuple(CLASSES[4:]), tuple(CLASSES[:4]))
    ev = evaluate(partial, [cond], {"table": enc}, CFG, seeds=[0], progress=False)
    y = labels[test][:, :4] * mask[test][:, :4]
    single = y.sum(1) == 1
    want = np.mean(ev.scores[("table", 0, "t")][single].argmax(1) == y[single].argmax(1))
    assert ev.top1(["t"]).iloc[0]["top-1"] == pytest.approx(want)


def test_paper_conditions_on_the_synthetic_classes():
    from zskit.data.gm import CLASSES as GM
    from zskit.data.gm import OPENMIC_CLASSES

    ids = [c.id for c in GM]
    n = 40
    synth = TaggingData(np.zeros((n, 4), np.float32), np.zeros((n, len(ids)), np.int8),
                        np.array(["train"] * n), ids, [c.name for c in GM],
                        groups=[c.family for c in GM])
    folds = np.arange(len(ids)) % 5
    conds = paper_conditions("synth", synth, folds=folds, near_rounds=4)
    kinds = [c.kind for c in conds]
    assert kinds.count("fold") == 5 and kinds.count("supervised") == 1
    assert kinds.count("near") == 4 and kinds.count("distant") == 8, "8 families have relatives"
    openmic = {c.name: c for c in conds if c.kind == "openmic"}
    assert set(openmic) == {"C\\C_MIC", "C"} and openmic["C"].test == OPENMIC_CLASSES
    assert not set(openmic["C\\C_MIC"].train) & set(OPENMIC_CLASSES)


def audioset_like(n: int = 40) -> TaggingData:
    """Random embeddings over AudioSet's 527 classes (ids are ontology mids)."""
    from zskit.data.audioset import read_class_labels

    table = read_class_labels()
    rng = np.random.default_rng(0)
    y = (rng.random((n, len(table))) < 0.02).astype(np.int8)
    return TaggingData(rng.standard_normal((n, 8)).astype(np.float32), y,
                       np.array(["train", "validation", "test", "test"] * (n // 4)),
                       list(table["mid"]), list(table["display_name"]))


def test_paper_conditions_for_the_real_data_sets():
    from zskit.data.esc50 import ESC50_CLASSES
    from zskit.data.gm import OPENMIC_CLASSES

    audioset = audioset_like()
    mid = dict(zip(audioset.names, audioset.classes))
    esc = TaggingData(np.zeros((50, 8), np.float32), np.eye(50, dtype=np.int8),
                      np.array(["test"] * 50), list(ESC50_CLASSES), list(ESC50_CLASSES))
    (cond,) = paper_conditions("esc50", audioset, eval_data=esc)
    assert cond.test == ESC50_CLASSES and cond.zero_shot
    assert mid["Dog"] not in cond.train and mid["Bark"] not in cond.train, "overlap list applied"
    assert mid["Speech"] in cond.train and mid["Guitar"] in cond.train
    om = TaggingData(np.zeros((20, 8), np.float32), np.eye(20, dtype=np.int8),
                     np.array(["test"] * 20), list(OPENMIC_CLASSES), list(OPENMIC_CLASSES))
    inst, mic, every = paper_conditions("openmic", audioset, eval_data=om)
    assert (inst.name, mic.name, every.name) == ("C\\C_inst", "C\\C_MIC", "C")
    assert len(every.train) == 527 and every.test == OPENMIC_CLASSES
    assert inst.zero_shot and mic.zero_shot and not every.zero_shot
    assert mid["Violin, fiddle"] in every.keep and mid["Harp"] not in every.keep
    assert mid["Violin, fiddle"] not in mic.train and mid["Harp"] in mic.train
    assert mid["Harp"] not in inst.train and mid["Musical instrument"] not in inst.train
    assert mid["Dog"] in inst.train and set(inst.train) < set(mic.train)
    folds = class_folds(audioset.labels, 5, classes=audioset.names,
                        always_train=("Speech", "Music"))
    conds = paper_conditions("audioset", audioset, folds=folds)
    assert [c.kind for c in conds] == ["fold"] * 5 + ["supervised"]
    assert all(mid["Speech"] in c.train and mid["Music"] in c.train for c in conds[:5])
    with pytest.raises(ConfigError, match="eval_data"):
        paper_conditions("esc50", audioset)
    with pytest.raises(ConfigError, match="folds"):
        paper_conditions("audioset", audioset)
    with pytest.raises(ConfigError, match="dataset"):
        paper_conditions("clotho", audioset)


def test_errors(run):
    _, _, _, ev = run
    with pytest.raises(ConfigError, match="not evaluated"):
        ev.summary(["fold 9"])
    with pytest.raises(ConfigError, match="by="):
        ev.pooled(["fold 0"], by="seed")
    with pytest.raises(ConfigError, match="not test classes of 'fold 1'"):
        ev.pooled(["fold 1"], classes={"fold 1": ["cello"]})
    data, enc = make_data(40)
    with pytest.raises(ConfigError, match="unique"):
        evaluate(data, [supervised_condition(data)] * 2, {"t": enc}, CFG)
    with pytest.raises(DataError, match="same clips"):
        TaggingData(data.embeddings[:5], data.labels, data.splits, CLASSES, CLASSES)
    repeated = CLASSES[:3] + ["strings0"] + CLASSES[4:]
    with pytest.raises(DataError, match=r"class ids \['strings0'\] appear more than once"):
        TaggingData(data.embeddings, data.labels, data.splits, repeated, CLASSES)


class _ClipStats(torch.nn.Module):
    """A stand-in audio encoder with logits: (mean, rms) of each clip; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = type("Cfg", (), {"sample_rate": 8000, "__repr__": lambda self: "Cfg()"})()
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.calls = 0

    def forward_features(self, waveforms, lengths=None):
        from zskit.encoders.base import EncoderOutput

        self.calls += 1
        emb = torch.stack([waveforms.mean(1), waveforms.pow(2).mean(1).sqrt()], 1) * self.scale
        return EncoderOutput(embedding=emb, logits=-emb)


def test_embedded_corpus_reuses_a_cache_with_logits(tmp_path, monkeypatch):
    import pandas as pd
    import soundfile as sf

    import zskit.zeroshot_eval as zeval
    from zskit.cache import EmbeddingCache
    from zskit.data.manifest import load_corpus, write_manifest
    from zskit.fileio import write_json

    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(["train", "train", "validation", "test"]):
        sf.write(root / "audio" / f"c{i}.wav", rng.uniform(-0.5, 0.5, 800).astype(np.float32),
                 8000, subtype="FLOAT")
        rows.append({"clip_id": f"c{i}", "path": f"audio/c{i}.wav", "split": split,
                     "labels": ["a", "b", "a;b", "b"][i]})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    write_json(root / "metadata.json", {"classes": [
        {"id": "a", "name": "alpha", "family_name": "first"},
        {"id": "b", "name": "beta", "family_name": "first"}]})
    encoder = _ClipStats()
    monkeypatch.setattr(zeval, "create_audio_encoder_by_spec", lambda spec: encoder)
    kwargs = {"cache_dir": tmp_path / "cache", "progress": False}

    data = zeval.embedded_corpus(root, "stats", **kwargs)  # nothing cached: embeddings only
    assert encoder.calls > 0 and data.embeddings.shape == (4, 2)
    assert data.names == ["alpha", "beta"] and data.groups == ["first", "first"]
    assert data.labels.tolist() == [[1, 0], [0, 1], [1, 1], [0, 1]]
    only = EmbeddingCache(encoder, load_corpus(root), store_logits=False, **kwargs)
    assert only.complete
    with_logits = EmbeddingCache(encoder, load_corpus(root), store_logits=True, **kwargs)
    assert not with_logits.complete, "embedded_corpus should not pay for logits nobody asked for"

    with_logits.compute()  # what notebook 00 leaves behind; make its values recognisable
    np.save(with_logits.directory / "embeddings.npy", np.full((4, 2), 7.0, np.float32))
    encoder.calls = 0
    again = zeval.embedded_corpus(root, "stats", **kwargs)
    assert encoder.calls == 0 and np.all(again.embeddings == 7.0), "the logits cache was not reused"


@pytest.mark.parametrize("spec, says", [
    ("yamnet.audioset", "seen labelled examples of every AudioSet class"),
    ("vggish", "seen labelled examples of every AudioSet class"),  # default weights: AudioSet
    ("passt.openmic", "fine-tuned on the labels of openmic (20 classes) after AudioSet"),
    ("ast.speechcommands", "trained on the labels of speechcommands (35 classes)"),
    ("efficientnet_lite0.imagenet", "seen no labelled audio"),
])
def test_pretraining_caveat_names_what_the_encoder_saw(spec, says):
    from zskit.zeroshot_eval import pretraining_caveat

    assert says in pretraining_caveat(spec)
    with pytest.raises(ConfigError, match="no pretrained weights 'x'"):
        pretraining_caveat("yamnet.x")


def test_paper1_esc50_figures_are_keyed_by_the_corpus_category_names():
    from zskit.data.esc50 import CATEGORY_NAMES
    from zskit.zeroshot_eval import PAPER1

    for encoder, figures in PAPER1.items():
        assert set(figures["esc50_top1"]) == {*CATEGORY_NAMES.values(), "All"}, encoder
    # Table III's columns run Animal, Natural, Human, Domestic, Exterior: VGGish's Domestic 53.8
    assert PAPER1["vggish"]["esc50_top1"][CATEGORY_NAMES["interior"]] == pytest.approx(0.538)
