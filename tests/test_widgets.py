"""zskit.widgets apps driven from Python, as a user would drive them in a notebook."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from zskit.errors import ConfigError, DataError
from zskit.heads.projection import ProjectionConfig
from zskit.models.zeroshot import ZeroShotConfig, ZeroShotTagger
from zskit.search import EmbeddingIndex
from zskit.widgets import RESULT_CLASS, Clips, FoldExplorer, RetrievalSearch, ZeroShotExplorer
from zskit.zeroshot_eval import TaggingData

CLASSES = ["cello", "violin", "tuba", "trumpet"]
FAMILIES = ["strings", "strings", "brass", "brass"]
WORDS = CLASSES + ["viola", "horn"]
DIM, LABEL_DIM, N = 12, 8, 80


class WordTable:
    """A label encoder over a fixed vocabulary; an unknown word raises, as GloVe does."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.vectors = {w: rng.normal(size=LABEL_DIM).astype(np.float32) for w in WORDS}

    def encode_labels(self, names):
        unknown = [n for n in names if n not in self.vectors]
        if unknown:
            raise ConfigError(f"no word vector for {unknown}; use a known word.")
        return torch.from_numpy(np.stack([self.vectors[n] for n in names]))

    encode = encode_labels


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Clips holding 1-2 of four instruments, their embeddings, audio files and splits."""
    rng = np.random.default_rng(0)
    labels = np.zeros((N, len(CLASSES)), dtype=np.int8)
    for i in range(N):
        labels[i, rng.choice(len(CLASSES), size=1 + i % 2, replace=False)] = 1
    prototypes = rng.normal(size=(len(CLASSES), DIM))
    x = (labels @ prototypes + 0.3 * rng.normal(size=(N, DIM))).astype(np.float32)
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i in range(3):  # players only need files; clips share three
        paths.append(folder / f"tone{i}.flac")
        sf.write(paths[-1], 0.1 * np.sin(np.arange(800) * (i + 1) / 10), 8000)
    clips = Clips(ids=[f"clip{i:02d}" for i in range(N)], paths=[paths[i % 3] for i in range(N)],
                  captions=[f"caption {i}" for i in range(N)],
                  truth=[[c for c, v in zip(CLASSES, row) if v] for row in labels])
    splits = np.array(["train"] * 50 + ["validation"] * 15 + ["test"] * 15)
    data = TaggingData(embeddings=x, labels=labels, splits=splits, classes=list(CLASSES),
                       names=list(CLASSES), groups=list(FAMILIES))
    config = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=16), epochs=3,
                            selection_fraction=0.0, device="cpu")
    tagger = ZeroShotTagger(WordTable(), config).fit(x, labels, CLASSES)
    return {"clips": clips, "x": x, "labels": labels, "data": data, "config": config,
            "tagger": tagger}


def test_zero_shot_explorer_ranks_typed_names_like_the_tagger(toy):
    app = ZeroShotExplorer(toy["clips"], {("toy", "words"): toy["tagger"]}, {"toy": toy["x"]},
                           top_k=4)
    app.query.value = "cello, viola"  # viola was never trained on
    res = app.results
    assert app.error is None, app.error
    assert list(res["class"].unique()) == ["cello", "viola"] and len(res) == 8
    probs = toy["tagger"].predict_proba(toy["x"], ["cello", "viola"], kind="embeddings")
    for j, name in enumerate(["cello", "viola"]):
        part = res[res["class"] == name]
        np.testing.assert_allclose(part["score"], np.sort(probs[:, j])[::-1][:4], rtol=1e-6)
        assert list(part["rank"]) == [1, 2, 3, 4]
    cello = res[res["class"] == "cello"]
    assert list(cello["hit"]) == [bool(toy["labels"][r, 0]) for r in cello["row"]]
    rows = [w for w in app.output.children if RESULT_CLASS in w._dom_classes]
    assert len(rows) == 8, "one row with a player per result"
    assert rows[0].children[1].format == "flac" and rows[0].children[1].value[:4] == b"fLaC"
    assert "really hold" in app.message.value

    app.top_k.value = 2  # changing a control re-runs the query
    assert len(app.results) == 4


def test_zero_shot_explorer_shows_errors_as_messages(toy):
    read_only = toy["x"].copy()
    read_only.setflags(write=False)  # as cached embeddings (memory maps) are
    app = ZeroShotExplorer(toy["clips"], {("toy", "words"): toy["tagger"]}, {"toy": read_only},
                           players=False)
    app.query.value = "cello, zebra"
    assert app.results.empty and "zebra" in app.error and "zebra" in app.message.value
    assert app.output.children == ()
    app.query.value = " , "
    assert "at least one class name" in app.error
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        app.query.value = "tuba"
    assert app.error is None and len(app.results) == 5
    assert "application/vnd.jupyter.widget-view+json" in app._repr_mimebundle_()
    with pytest.raises(ConfigError, match="rows"):
        ZeroShotExplorer(toy["clips"], {("toy", "words"): toy["tagger"]}, {"toy": toy["x"][:5]})
    for top_k in (0, 51, 2.5):  # the box would clamp 51 to 50 without a word
        with pytest.raises(ConfigError, match="top_k"):
            ZeroShotExplorer(toy["clips"], {("toy", "words"): toy["tagger"]}, {"toy": toy["x"]},
                             top_k=top_k)


def test_a_missing_audio_file_is_a_message_not_stale_results(toy, tmp_path):
    full = toy["clips"]
    clips = Clips(ids=full.ids, paths=[tmp_path / "gone.flac"] * len(full),
                  captions=full.captions, truth=full.truth)
    app = ZeroShotExplorer(clips, {("toy", "words"): toy["tagger"]}, {"toy": toy["x"]})
    app.query.value = "cello"
    assert app.error and "gone.flac" in app.error and "players=False" in app.error
    assert app.results.empty and app.output.children == ()


def test_retrieval_search_matches_brute_force_cosine(toy):
    words = WordTable()
    with torch.no_grad():
        joint = toy["tagger"].head_(torch.from_numpy(toy["x"])).numpy()
    app = RetrievalSearch(toy["clips"], words.encode, EmbeddingIndex(joint), top_k=3,
                          players=False)
    app.query.value = "tuba"
    q = words.vectors["tuba"]
    cos = joint @ q / (np.linalg.norm(joint, axis=1) * np.linalg.norm(q))
    best = np.argsort(-cos)[:3]
    assert list(app.results["row"]) == list(best)
    np.testing.assert_allclose(app.results["score"], cos[best], rtol=1e-5)
    assert list(app.results["clip"]) == [f"clip{i:02d}" for i in best]
    assert len(app.output.children) == 3

    app.top_k.value = 2  # changing a control re-runs the query, as in the explorer
    assert list(app.results["row"]) == list(best[:2]) and len(app.output.children) == 2

    app.query.value = "   "
    assert app.results.empty and "empty" in app.error
    app.query.value = "zebra"
    assert "zebra" in app.error, "the encoder's unknown-word error is shown"

    class Model:  # anything with encode_text, like a DualEncoder
        encode_text = staticmethod(words.encode)

    assert len(RetrievalSearch(toy["clips"], Model(), EmbeddingIndex(joint)).search("cello")) == 5
    with pytest.raises(ConfigError, match="encode_text"):
        RetrievalSearch(toy["clips"], object(), EmbeddingIndex(joint))
    with pytest.raises(ConfigError, match="rows"):
        RetrievalSearch(toy["clips"], words.encode, EmbeddingIndex(joint[:3]))


def test_fold_explorer_retrains_and_relates_ap_to_proximity(toy):
    app = FoldExplorer(toy["data"], {"words": WordTable()}, toy["config"])
    app.family.value = "brass"  # the distant case: the whole family held out
    assert app.held_out.value == ("tuba", "trumpet")
    table = app.train()
    assert app.error is None, app.error
    assert set(table["name"]) <= {"tuba", "trumpet"} and len(table) >= 1
    assert set(table["nearest"]) <= {"cello", "violin"}, "nearest among the training classes"
    words = WordTable().vectors
    for _, row in table.iterrows():
        a, b = words[row["name"]], words[row["nearest"]]
        assert row["similarity"] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b),
                                                  rel=1e-5)
        assert row["ap_gain"] == pytest.approx(row["ap"] - row["random_ap"])
    assert np.isfinite(app.seconds) and app.figure is not None
    assert len(app.figure.data[0].x) == len(table)
    assert "trained on 2 classes" in app.message.value

    app.held_out.value = ("tuba",)  # no longer the whole family: the dropdown forgets it
    assert app.family.value == FoldExplorer.NO_FAMILY
    app.family.value = "brass"  # so that choosing the family again selects it again
    assert app.held_out.value == ("tuba", "trumpet")

    app.held_out.value = ()
    assert app.train().empty and "at least one class" in app.error and app.figure is None
    assert np.isnan(app.seconds), "no time for a run that failed"
    app.held_out.value = tuple(CLASSES)
    app.train()
    assert "every class" in app.error
    with pytest.raises(ConfigError, match="zebra"):
        FoldExplorer(toy["data"], {"words": WordTable()}, held_out=["zebra"])


def test_clips_from_corpus_and_validation(toy):
    corpus = SimpleNamespace(  # the fields Clips.from_corpus reads
        class_names=["cello", "tuba"], manifest=pd.DataFrame({"clip_id": ["a", "b"]}),
        paths=toy["clips"].paths[:2], captions=[["a cello"], []],
        labels=np.array([[1, 1], [0, 1]]))
    clips = Clips.from_corpus(corpus)
    assert clips.truth == [["cello", "tuba"], ["tuba"]] and clips.captions == ["a cello", ""]
    with pytest.raises(DataError, match="one id, path"):
        Clips(ids=["a"], paths=[], captions=[""], truth=[[]])
    part = toy["clips"].subset(np.array([5, 2]))
    full = toy["clips"]
    assert part.ids == [full.ids[5], full.ids[2]] and part.truth == [full.truth[5], full.truth[2]]
    assert part.paths == [full.paths[5], full.paths[2]] and part.captions[0] == full.captions[5]
    with pytest.raises(DataError, match="out of range"):
        full.subset([0, len(full)])
    with pytest.raises(DataError, match="one id, path"):
        full.subset([])
