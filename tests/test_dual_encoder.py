"""DualEncoder: shapes, normalisation, scale, gradients, frozen parts, segmenting, training data,
the fit loop on separable data, exact chance levels, prompt classifiers and partial fine-tuning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from zskit.data.manifest import Corpus
from zskit.encoders import create_audio_encoder, create_text_encoder
from zskit.errors import ConfigError, DataError
from zskit.losses import info_nce
from zskit.metrics import retrieval_metrics
from zskit.models.dual_encoder import (
    DualEncoder,
    Precomputed,
    RetrievalPairs,
    chance_retrieval_metrics,
    contrastive_loss,
    corpus_pairs,
    count_parameters,
    encoder_blocks,
    evaluate_retrieval,
    fit_dual_encoder,
    freeze,
    informative_k,
    layerwise_lr_groups,
    paper4_finetune_config,
    paper4_pretrain_config,
    paper5_config,
    pretraining_corpora,
    prompt_classifier,
    segment_average,
    unfreeze_last_blocks,
    zero_shot_scores,
)
from zskit.text_augment import CaptionSwap, TextNoise
from zskit.train import TrainConfig


@pytest.fixture(scope="module")
def tiny_text():
    return create_text_encoder("minilm", tiny=True)


@pytest.fixture(scope="module")
def tiny_audio():
    return create_audio_encoder("yamnet", tiny=True)


def test_encodes_are_normalised_and_scale_starts_at_1_over_0_07(tiny_audio, tiny_text):
    model = DualEncoder(tiny_audio, tiny_text, dim=24)
    waves = torch.randn(3, 16000)
    a = model.encode_audio(waves, torch.tensor([16000, 12000, 9000]))
    t = model.encode_text(["a dog barks", "rain", "a violin plays softly"])
    assert a.shape == (3, 24) and t.shape == (3, 24)
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    raw = model.encode_text("a dog barks", normalize=False)
    assert raw.shape == (1, 24) and not torch.isclose(raw.norm(), torch.tensor(1.0))
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
    *_, scale = model(waves, ["x", "y", "z"])
    assert math.isclose(scale.item(), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale.item() == pytest.approx(100.0), "exp(logit_scale) is clamped at 100"


def test_every_trainable_parameter_gets_a_gradient(tiny_audio, tiny_text):
    model = DualEncoder(tiny_audio, tiny_text, dim=16, projection="mlp", hidden=8)
    model.train()
    batch = {"audio": torch.randn(4, 16000), "lengths": torch.tensor([16000, 16000, 8000, 4000]),
             "text": ["a", "b c", "a violin", "drums"], "clip_ids": torch.tensor([0, 0, 1, 2])}
    loss = contrastive_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    # YAMNet's classifier head is not on the embedding path: it must be the only one without grad
    assert missing == ["audio_encoder.logits.weight", "audio_encoder.logits.bias"], missing
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs() > 0


def test_frozen_blocks_of_a_partly_trained_encoder_keep_their_batch_norm_statistics(tiny_text):
    """CNN14 with only its last block trainable: in training mode the frozen blocks' batch norms
    stay in eval mode, so their running statistics do not drift, while the trained block's
    batch norms learn from the batch."""
    audio = create_audio_encoder("cnn14", tiny=True)
    freeze(audio)
    unfreeze_last_blocks(audio, 1)
    model = DualEncoder(audio, tiny_text, dim=8).train()
    norms = [m for m in audio.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    frozen = [m for m in norms if not any(p.requires_grad for p in m.parameters())]
    trained = [m for m in norms if m not in frozen]
    assert frozen and trained, "the test needs frozen and trainable batch norms"
    before = [m.running_mean.clone() for m in norms]
    model.encode_audio(torch.randn(2, audio.sample_rate))
    changed = [not torch.equal(b, m.running_mean) for b, m in zip(before, norms)]
    assert not any(m.training for m in frozen) and all(m.training for m in trained)
    assert not any(c for c, m in zip(changed, norms) if m in frozen), "frozen statistics drifted"
    assert any(c for c, m in zip(changed, norms) if m in trained)


def test_frozen_encoder_stays_in_eval_mode_and_gets_no_gradient(tiny_audio):
    text = create_text_encoder("minilm", tiny=True, dropout=0.5)
    freeze(text)
    model = DualEncoder(tiny_audio, text, dim=8).train()
    assert not text.training and tiny_audio.training, "frozen encoders stay in eval mode"
    t1 = model.encode_text(["a dog barks"])
    t2 = model.encode_text(["a dog barks"])
    assert torch.equal(t1, t2), "no dropout in a frozen encoder"
    t1.sum().backward()
    assert all(p.grad is None for p in text.parameters())
    assert model.text_projection.weight.grad is not None


def test_precomputed_path_loss_matches_info_nce_by_hand():
    torch.manual_seed(0)
    model = DualEncoder.from_embeddings(6, 5, dim=4)
    audio, text, ids = torch.randn(5, 6), torch.randn(5, 5), torch.tensor([0, 0, 1, 2, 2])
    loss = contrastive_loss(model, (audio, text, ids))
    a = nn.functional.normalize(model.audio_projection(audio), dim=1)
    t = nn.functional.normalize(model.text_projection(text), dim=1)
    expected = info_nce(a, t, logit_scale=1 / 0.07, clip_ids=ids)
    assert torch.allclose(loss, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="no text encoder"):
        model.encode_text(["a query"])
    with pytest.raises(ConfigError, match=r"\(B, 6\)"):
        model.encode_audio(torch.randn(2, 7))


def test_precomputed_text_with_encode_answers_new_queries():
    table = {"dog": torch.tensor([1.0, 0, 0]), "car": torch.tensor([0, 1.0, 0])}
    model = DualEncoder.from_embeddings(4, 3, dim=3,
                                        encode_text=lambda ts: torch.stack([table[t] for t in ts]))
    emb = model.encode_text(["dog", "car"])
    direct = model.encode_text(torch.stack([table["dog"], table["car"]]))
    assert torch.allclose(emb, direct)


def test_load_projections_starts_from_another_models_head():
    torch.manual_seed(0)
    trained, fresh = DualEncoder.from_embeddings(6, 5, dim=4), DualEncoder.from_embeddings(6, 5, dim=4)
    with torch.no_grad():
        trained.logit_scale.fill_(2.0)
    audio, text = torch.randn(3, 6), torch.randn(3, 5)
    assert not torch.allclose(fresh.encode_audio(audio), trained.encode_audio(audio))
    assert fresh.load_projections(trained) is fresh
    assert torch.allclose(fresh.encode_audio(audio), trained.encode_audio(audio))
    assert torch.allclose(fresh.encode_text(text), trained.encode_text(text))
    assert fresh.logit_scale.item() == 2.0
    fresh.audio_projection.weight.data.add_(1.0)  # a copy, not shared weights
    assert not torch.allclose(fresh.encode_audio(audio), trained.encode_audio(audio))
    with pytest.raises(ConfigError, match="audio_projection"):
        DualEncoder.from_embeddings(7, 5, dim=4).load_projections(trained)
    with pytest.raises(ConfigError, match="text_projection"):
        DualEncoder.from_embeddings(6, 7, dim=4).load_projections(trained)


class MeanEncoder(nn.Module):
    """Embeds a waveform as [mean of real samples, number of real samples] (for segmenting)."""

    sample_rate = 10

    def forward(self, x, lengths):
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        total = (x * mask).sum(1) / lengths
        return torch.stack([total, lengths.float()], dim=1)


def test_segment_average_matches_a_manual_mean():
    x = torch.arange(25, dtype=torch.float32).repeat(2, 1)
    lengths = torch.tensor([25, 12])
    out = segment_average(MeanEncoder(), x, lengths, segment_samples=10)
    # clip 0: segments [0..9], [10..19], [20..24] (5 real samples); clip 1: [0..9], [10, 11]
    assert torch.allclose(out[0], torch.tensor([(4.5 + 14.5 + 22.0) / 3, (10 + 10 + 5) / 3]))
    assert torch.allclose(out[1], torch.tensor([(4.5 + 10.5) / 2, (10 + 2) / 2]))
    hop = segment_average(MeanEncoder(), x[:1], None, segment_samples=10, hop_samples=5)
    starts = [0, 5, 10, 15]
    means = [np.mean(np.arange(s, min(s + 10, 25))) for s in starts]
    assert torch.allclose(hop[0, 0], torch.tensor(float(np.mean(means))))


def test_model_segments_when_asked():
    enc = MeanEncoder()
    enc.embed_dim = 2
    model = DualEncoder(enc, Precomputed(3), dim=2, segment_seconds=1.0)
    x, lengths = torch.arange(25.0)[None], torch.tensor([25])
    with torch.no_grad():
        feats = model.audio_features(x, lengths)
    assert torch.allclose(feats, segment_average(enc, x, lengths, 10))


def _write_clips(folder, seconds, rate=16000):
    paths = []
    for i, s in enumerate(seconds):
        path = folder / f"clip{i}.wav"
        sf.write(path, np.full(int(s * rate), 0.01 * (i + 1), dtype=np.float32), rate)
        paths.append(str(path))
    return paths


def test_retrieval_pairs_items_crop_and_collate(tmp_path):
    paths = _write_clips(tmp_path, [3.0, 1.0, 0.5])
    captions = [["a", "b", ""], ["c"], []]
    pairs = RetrievalPairs(paths, captions, sample_rate=16000, max_seconds=2.0)
    assert len(pairs) == 3 and pairs.clip_index.tolist() == [0, 0, 1], "empty captions skipped"
    torch.manual_seed(0)
    items = [pairs[i] for i in range(3)]
    assert [len(it["audio"]) for it in items] == [32000, 32000, 16000], "crop to max_seconds"
    batch = pairs.collate(items)
    assert batch["audio"].shape == (3, 32000)
    assert batch["lengths"] == [32000, 32000, 16000], "host-side counts, left alone by to_device"
    assert batch["text"] == ["a", "b", "c"] and batch["clip_ids"].tolist() == [0, 0, 1]
    rel = pairs.relevance()
    assert rel.shape == (3, 3) and rel.sum() == 3 and rel[2, 1]
    with pytest.raises(DataError, match="one list of captions per clip"):
        RetrievalPairs(paths, captions[:2], sample_rate=16000)
    with pytest.raises(ConfigError, match="sample_rate"):
        RetrievalPairs(paths, captions)


def test_retrieval_pairs_swap_noise_and_embedded_text():
    audio = torch.randn(2, 4)
    captions = [["a violin plays"], ["someone plays a cello"]]
    rewrites = [[["R1", "R2"]], [["R3"]]]
    pairs = RetrievalPairs(audio, captions, rewrites, swap=CaptionSwap(0.3))
    torch.manual_seed(0)
    texts = [pairs[0]["text"] for _ in range(4000)]
    rate = np.mean([t != "a violin plays" for t in texts])
    assert abs(rate - 0.3) < 0.03, f"swap rate {rate}"
    assert set(texts) == {"a violin plays", "R1", "R2"}
    assert pairs.caption_inputs() == captions[0] + captions[1], "evaluation uses originals"

    noisy = RetrievalPairs(audio, [["someone plays a violin"] * 5] * 2, text_noise=TextNoise(0.2))
    batch = noisy.collate([noisy[i] for i in range(10)])
    assert sum(t != "someone plays a violin" for t in batch["text"]) == 2

    pairs.embed_texts(lambda ts: torch.tensor([[len(t), 1.0] for t in ts]))
    assert pairs.text_embeddings.shape == (5, 2), "captions and rewrites embedded once"
    a, t, ids = pairs.tensors()
    assert torch.equal(t[:, 0], torch.tensor([14.0, 21.0])) and ids.tolist() == [0, 1]
    assert torch.equal(a, audio)
    with pytest.raises(ConfigError, match="text_noise"):
        noisy.embed_texts(lambda ts: torch.zeros(len(ts), 2))


def test_embed_texts_cache_file_is_reused_only_for_the_same_texts(tmp_path):
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return torch.ones(len(texts), 3)

    cache = tmp_path / "text" / "minilm.pt"
    first = RetrievalPairs(torch.zeros(2, 4), [["a", "b"], ["c"]]).embed_texts(encode, cache=cache)
    again = RetrievalPairs(torch.zeros(2, 4), [["a", "b"], ["c"]]).embed_texts(encode, cache=cache)
    assert calls == [3], "the second call reads the file"
    assert torch.equal(first.text_embeddings, again.text_embeddings)
    RetrievalPairs(torch.zeros(2, 4), [["a", "b"], ["other"]]).embed_texts(encode, cache=cache)
    assert calls == [3, 3], "other texts are embedded again"
    torch.save([1, 2, 3], cache)  # a readable file of another kind at the cache's path
    RetrievalPairs(torch.zeros(2, 4), [["a", "b"], ["c"]]).embed_texts(encode, cache=cache)
    assert calls == [3, 3, 3], "a file that is not a text cache is replaced, not crashed on"


def test_concat_and_corpus_pairs(tmp_path):
    a = RetrievalPairs(torch.zeros(2, 3), [["x"], ["y", "z"]])
    b = RetrievalPairs(torch.ones(1, 3), [["w"]], [[["w rewrite"]]])
    both = RetrievalPairs.concat([a, b])
    assert both.n_clips == 3 and len(both) == 4
    assert both.clip_index.tolist() == [0, 1, 1, 2] and both.texts[-1] == "w rewrite"
    a.embed_texts(lambda ts: torch.tensor([[float(ord(t[0]))] for t in ts]))
    b.embed_texts(lambda ts: torch.tensor([[float(ord(t[0])) + len(t)] for t in ts]))
    both = RetrievalPairs.concat([a, b])
    expected = [ord(t[0]) + (len(t) if t.startswith("w") else 0) for t in both.texts]
    assert both.text_embeddings[:, 0].tolist() == expected, "embeddings follow the new order"
    with pytest.raises(ConfigError, match="mix"):
        RetrievalPairs.concat([a, RetrievalPairs(["f.wav"], [["q"]], sample_rate=16000)])

    manifest = pd.DataFrame({"clip_id": ["a", "b", "c"], "path": ["a.wav", "b.wav", "c.wav"],
                             "split": ["train", "test", "train"],
                             "keywords": ["dog;bark", "", "rain"]})
    corpus = Corpus(tmp_path, manifest, {}, [], np.zeros((3, 0), np.int8),
                    np.zeros((3, 0), bool),
                    [["A dog barks."], ["Cars pass."], ["Rain falls.", "It rains."]])
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    pairs = corpus_pairs(corpus, "train", emb, n_rewrites=2, swap_p=0.3)
    assert pairs.n_clips == 2 and torch.equal(pairs.audio, torch.tensor(emb[[0, 2]]))
    assert pairs.texts[:3] == ["A dog barks.", "Rain falls.", "It rains."]
    assert len(pairs.texts) == 3 + 3 * 2 and pairs.swap.p == 0.3
    assert "bark" in pairs.texts[3] or "dog" in pairs.texts[3]
    files = corpus_pairs(corpus, "test", sample_rate=16000)
    assert files.audio == [tmp_path / "b.wav"]
    with pytest.raises(DataError, match="validation"):
        corpus_pairs(corpus, "validation", emb)
    with pytest.raises(DataError, match="manifest order"):
        corpus_pairs(corpus, "train", emb[:2])


def _separable(n_clips, seed):
    g = torch.Generator().manual_seed(seed)
    topics = torch.randn(n_clips, 8, generator=g)
    audio = topics @ torch.randn(8, 12, generator=g) + 0.1 * torch.randn(n_clips, 12, generator=g)
    mix = torch.randn(8, 10, generator=g)
    captions = []
    for i in range(n_clips):  # captions: noisy views of the clip's topic, as embeddings
        captions.append([topics[i] @ mix + 0.3 * torch.randn(10, generator=g) for _ in range(3)])
    return audio, captions


def test_fit_dual_encoder_learns_far_above_chance():
    audio, caps = _separable(120, 0)
    texts = [[f"clip{i} caption{j}" for j in range(3)] for i in range(120)]
    lookup = {t: caps[i][j] for i in range(120) for j, t in enumerate(texts[i])}
    encode = lambda ts: torch.stack([lookup[t] for t in ts])
    train = RetrievalPairs(audio[:90], texts[:90]).embed_texts(encode)
    val = RetrievalPairs(audio[90:], texts[90:]).embed_texts(encode)
    torch.manual_seed(0)
    model = DualEncoder.from_embeddings(12, 10, dim=16)
    before = evaluate_retrieval(model, val)["text_to_audio"]["R@1"]
    result = fit_dual_encoder(model, train, val, TrainConfig(lr=1e-2, max_epochs=8,
                                                             batch_size=32, progress=False,
                                                             device="cpu"))
    after = evaluate_retrieval(model, val)
    chance = chance_retrieval_metrics(val.relevance())
    assert "val_R@1" in result.history.columns and "val_mAP@10" in result.history.columns
    assert after["text_to_audio"]["R@1"] > max(5 * chance["R@1"], before + 0.2), (after, before)
    assert after["audio_to_text"]["R@1"] > 5 * chance_retrieval_metrics(val.relevance().T)["R@1"]


def test_fit_with_strings_and_a_trainable_text_encoder(tiny_text):
    audio = torch.randn(6, 4)
    pairs = RetrievalPairs(audio, [["a dog", "dog barking"], ["rain"], ["a car"], ["violin"],
                                   ["cello"], ["drums"]],
                           [[["a hound"], ["a dog barks"]], [[]], [[]], [[]], [[]], [[]]],
                           swap=CaptionSwap(0.5), text_noise=TextNoise(0.2))
    model = DualEncoder(Precomputed(4), tiny_text, dim=8)
    result = fit_dual_encoder(model, pairs, config=TrainConfig(max_epochs=2, batch_size=4,
                                                               progress=False, device="cpu"))
    assert result.steps == 4 and np.isfinite(result.history["train_loss"]).all()


@pytest.mark.parametrize("n_items, relevant_rows", [(6, [2, 4]), (5, [0]), (6, [0, 2, 3, 5])])
def test_chance_metrics_equal_the_mean_over_all_rankings(n_items, relevant_rows):
    rel = np.zeros((1, n_items), dtype=bool)
    rel[0, relevant_rows] = True
    totals: dict[str, float] = {}
    perms = list(itertools.permutations(range(n_items)))
    for perm in perms:
        scores = -np.asarray(perm, dtype=float)[None, :]  # item perm[j]... any fixed ranking
        for name, value in retrieval_metrics(scores, rel, ks=(1, 2, 5), map_k=3).items():
            totals[name] = totals.get(name, 0.0) + value / len(perms)
    exact = chance_retrieval_metrics(rel, ks=(1, 2, 5), map_k=3)
    for name, value in totals.items():
        assert exact[name] == pytest.approx(value, abs=1e-12), f"{name}: {exact[name]} vs {value}"


def test_chance_metrics_one_relevant_item_closed_form():
    rel = np.eye(20, dtype=bool)
    chance = chance_retrieval_metrics(rel)
    assert chance["R@1"] == pytest.approx(1 / 20) and chance["R@10"] == pytest.approx(10 / 20)
    assert chance["MRR"] == pytest.approx(np.mean(1 / np.arange(1, 21)))
    assert chance["mAP@10"] == pytest.approx(np.sum(1 / np.arange(1, 11)) / 20)


def test_prompt_classifier_averages_templates_and_classifies():
    def encode(texts):
        vecs = {"dog": [1.0, 0.0], "violin": [0.0, 1.0]}
        out = []
        for t in texts:
            v = np.array(vecs[t.split()[-1]]) * (2.0 if t.startswith("the") else 1.0)
            out.append(v + (0.5 if "recording" in t else 0.0))
        return torch.tensor(np.array(out), dtype=torch.float32)

    cls = prompt_classifier(encode, ["dog", "violin"], ["the sound of a {}", "a recording of {}"])
    u = np.array([1.0, 0.0])
    v = np.array([1.5, 0.5]) / np.linalg.norm([1.5, 0.5])  # "a recording of dog"
    expected = (u + v) / np.linalg.norm(u + v)
    assert np.allclose(cls[0].numpy(), expected, atol=1e-6)
    scores = zero_shot_scores(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), cls)
    assert scores.argmax(1).tolist() == [0, 1]
    with pytest.raises(ConfigError, match="placeholder"):
        prompt_classifier(encode, ["dog"], ["no slot"])


def test_model_zero_shot_classifier_uses_label_words(tiny_audio, tiny_text):
    model = DualEncoder(tiny_audio, tiny_text, dim=8)
    cls = model.zero_shot_classifier(["french_horn", "violin"])
    direct = model.embed_text(["the sound of a french horn", "the sound of a violin"])
    assert torch.allclose(cls, direct, atol=1e-6), "ids become words inside the template"


def test_blocks_partial_fine_tuning_and_layerwise_lr(tiny_text, tiny_audio):
    bert_blocks = encoder_blocks(tiny_text)
    assert len(bert_blocks) == 2, "the tiny BERT has two layers"
    assert len(encoder_blocks(tiny_audio)) == 14, "YAMNet's 14 layers"
    passt = create_audio_encoder("passt", tiny=True)
    assert len(encoder_blocks(passt)) == 2
    cnn = create_audio_encoder("cnn14", tiny=True)
    assert len(encoder_blocks(cnn)) == 3
    plain = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Linear(3, 1))
    assert len(encoder_blocks(plain)) == 3

    names = unfreeze_last_blocks(tiny_audio, 2)
    trainable = {n for n, p in tiny_audio.named_parameters() if p.requires_grad}
    assert set(names) == trainable
    assert all(n.startswith(("layer13.", "layer14.", "logits.")) for n in trainable), trainable
    assert any(n.startswith("layer13.") for n in trainable)
    assert unfreeze_last_blocks(tiny_audio, 0) == [] and count_parameters(tiny_audio) == 0
    freeze(tiny_audio, frozen=False)

    groups = layerwise_lr_groups(plain, lr=1.0, decay=0.5)
    lrs = [g["lr"] for g in groups]
    assert lrs == [0.25, 0.5, 1.0], lrs
    assert sum(len(g["params"]) for g in groups) == len(list(plain.parameters()))
    with pytest.raises(ConfigError, match="decay"):
        layerwise_lr_groups(plain, 1.0, decay=0.0)


def test_param_groups_cover_every_trainable_parameter_once(tiny_audio, tiny_text):
    model = DualEncoder(tiny_audio, tiny_text, dim=8)
    freeze(tiny_text)
    groups = model.param_groups(1e-3, encoder_lr=1e-4, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(ids) == sorted(trainable) and len(ids) == len(set(ids))
    assert groups[0]["lr"] == 1e-3 and max(g["lr"] for g in groups[1:]) == 1e-4
    freeze(tiny_text, frozen=False)


def test_paper_recipes():
    pre, fine, p5 = paper4_pretrain_config(), paper4_finetune_config(), paper5_config(lr=1e-3)
    assert (pre.optimizer, pre.lr, pre.min_lr, pre.schedule) == ("adam", 2e-5, 1e-7, "cosine")
    assert (pre.max_epochs, pre.warmup_epochs, pre.batch_size) == (16, 1.0, 64)
    assert (fine.lr, fine.max_epochs, fine.schedule) == (8e-6, 5, "cosine")
    assert (p5.schedule, p5.lr, p5.monitor) == ("plateau", 1e-3, "val_loss")


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="'deep'"):
        DualEncoder.from_embeddings(4, 4, projection="deep")
    with pytest.raises(ConfigError, match="segment_hop_seconds"):
        DualEncoder.from_embeddings(4, 4, segment_hop_seconds=1.0)
    with pytest.raises(ConfigError, match="embed_dim"):
        DualEncoder(nn.Linear(2, 2), Precomputed(3))


def test_informative_k_picks_the_largest_cutoff_with_low_chance():
    small = chance_retrieval_metrics(np.eye(15, dtype=bool))  # R@10 = 2/3, R@5 = 1/3, R@1 = 1/15
    assert informative_k(small) == 1
    assert informative_k(small, max_chance=0.4) == 5
    assert informative_k(chance_retrieval_metrics(np.eye(300, dtype=bool))) == 10


def _corpus(root, paths, splits, name=None):
    manifest = pd.DataFrame({"clip_id": paths, "path": paths, "split": splits})
    n = len(paths)
    return Corpus(root, manifest, {} if name is None else {"name": name}, [],
                  np.zeros((n, 0), np.int8), np.zeros((n, 0), bool), [["x"]] * n)


def test_pretraining_takes_the_targets_training_split_and_never_its_test_clips(tmp_path):
    target = _corpus(tmp_path / "clotho", ["a.wav", "b.wav", "c.wav", "d.wav"],
                     ["train", "train", "validation", "test"], name="ClothoV2")
    same_folder = _corpus(tmp_path / "clotho", ["a.wav", "b.wav", "c.wav", "d.wav"],
                          ["train", "train", "validation", "test"])
    same_name = _corpus(tmp_path / "copy", ["a.wav", "c.wav"], ["train", "test"], name="ClothoV2")
    other = _corpus(tmp_path / "audiocaps", ["x.wav", "y.wav"], ["train", "test"],
                    name="AudioCaps")
    parts = pretraining_corpora([same_folder, same_name, other], target)
    assert [p.paths for p in parts] == [
        [tmp_path / "clotho" / "a.wav", tmp_path / "clotho" / "b.wav"],
        [tmp_path / "copy" / "a.wav"],
        [tmp_path / "audiocaps" / "x.wav", tmp_path / "audiocaps" / "y.wav"],  # all of it
    ]
    leaky = _corpus(tmp_path, ["clotho/d.wav", "z.wav"], ["train", "train"], name="mix")
    with pytest.raises(DataError, match="1 validation/test clips"):
        pretraining_corpora([leaky], target)


def test_rewrites_need_one_list_per_caption():
    with pytest.raises(DataError, match="clip 0 has 1 rewrite lists for 2 captions"):
        RetrievalPairs(torch.zeros(1, 4), [["a dog", "a cat"]], [[["x"]]])


def test_overlapping_segments_of_a_clip_do_not_depend_on_the_rest_of_the_batch():
    clip = torch.randn(100)
    alone = segment_average(MeanEncoder(), clip[None], torch.tensor([100]), 100, 50)
    batch = torch.zeros(2, 200)
    batch[0], batch[1, :100] = clip.repeat(2), clip
    together = segment_average(MeanEncoder(), batch, torch.tensor([200, 100]), 100, 50)
    assert torch.allclose(together[1], alone[0]), "a longer clip in the batch changed this one"
    assert together[1, 1] == 100, "a 100-sample clip is one 100-sample segment"


def _source_corpus(root, clip_ids, splits, name, **columns):
    manifest = pd.DataFrame({"clip_id": clip_ids, "path": [f"{c}.wav" for c in clip_ids],
                             "split": splits, **columns})
    n = len(clip_ids)
    return Corpus(root, manifest, {"name": name}, [], np.zeros((n, 0), np.int8),
                  np.zeros((n, 0), bool), [["x"]] * n)


def test_pretraining_finds_wavcaps_copies_of_the_targets_test_clips(tmp_path):
    clotho = _source_corpus(tmp_path / "clotho", ["dog", "rain", "cafe"],
                            ["train", "validation", "test"], "ClothoV2.1",
                            sound_id=[100, 101, 102.0])
    wavcaps = _source_corpus(tmp_path / "wavcaps", ["FreeSound/102", "FreeSound/7",
                                                    "AudioSet_SL/Y--0w1YA1Hm4_30.000_40.000"],
                             ["train"] * 3, "WavCaps",
                             source=["FreeSound", "FreeSound", "AudioSet_SL"])
    with pytest.raises(DataError, match=r"1 validation/test clips.*FreeSound/102.*overlap='drop'"):
        pretraining_corpora([wavcaps], clotho)
    kept = pretraining_corpora([wavcaps, clotho], clotho, overlap="drop")
    assert [p.manifest["clip_id"].tolist() for p in kept] == [
        ["FreeSound/7", "AudioSet_SL/Y--0w1YA1Hm4_30.000_40.000"], ["dog"]]
    assert kept[0].captions == [["x"], ["x"]] and len(kept[0].labels) == 2
    audiocaps = _source_corpus(tmp_path / "audiocaps", ["--0w1YA1Hm4_30", "abcdefghijk_0"],
                               ["test", "train"], "AudioCaps",
                               youtube_id=["--0w1YA1Hm4", "abcdefghijk"])
    with pytest.raises(DataError, match="AudioSet_SL/Y--0w1YA1Hm4"):
        pretraining_corpora([wavcaps], audiocaps)
    with pytest.raises(ConfigError, match="overlap='keep'"):
        pretraining_corpora([wavcaps], clotho, overlap="keep")


def test_embeddings_are_float32_under_autocast_and_in_a_bf16_model():
    pairs = RetrievalPairs(torch.randn(6, 8), [["x"], ["y"]] * 3)
    pairs.text_embeddings = torch.randn(len(pairs.texts), 8)
    model = DualEncoder.from_embeddings(8, 8, dim=4)
    expected = evaluate_retrieval(model, pairs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.embed_audio(pairs.audio).dtype == torch.float32
        assert evaluate_retrieval(model, pairs)["text_to_audio"].keys() == expected[
            "text_to_audio"].keys()
    model.to(torch.bfloat16)
    assert model.encode_audio(torch.randn(2, 8)).dtype == torch.bfloat16
    assert model.embed_text(torch.randn(3, 8)).dtype == torch.float32


def test_a_caption_string_in_place_of_a_list_is_refused_and_empty_inputs_embed_to_nothing():
    with pytest.raises(DataError, match=r"captions\[1\] is a string.*\[\[caption\]"):
        RetrievalPairs(torch.zeros(2, 4), [["a cat"], "a dog barks"])
    model = DualEncoder.from_embeddings(4, 4, dim=3)
    assert model.embed_text(torch.zeros(0, 4)).shape == (0, 3)
    assert model.embed_audio(torch.zeros(0, 4)).shape == (0, 3)
    enc = MeanEncoder()
    enc.embed_dim = 2
    waves = DualEncoder(enc, Precomputed(3), dim=2).encode_audio(torch.ones(2, 10), [10, 5])
    assert waves.shape == (2, 2), "lengths as a list"
    with pytest.raises(ConfigError, match="Precomputed and cannot load audio files"):
        model.embed_audio(["a.wav"])
