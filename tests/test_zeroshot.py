"""ZeroShotTagger: zero-shot transfer to unseen names on data with a known audio-label relation,
scikit-learn behaviour, model selection, masks, and scoring from waveforms and files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from zskit.errors import ConfigError
from zskit.heads.projection import ProjectionConfig
from zskit.models.zeroshot import (
    CachedLabelEncoder,
    ZeroShotConfig,
    ZeroShotTagger,
    choose_selection_classes,
)

N_CLASSES, LABEL_DIM, AUDIO_DIM = 16, 8, 24
FAST = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=64, dropout=0.1), epochs=15,
                      lr=3e-3, device="cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids thread hand-off costs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TableEncoder:
    """Label vectors from a fixed table (name ``c<i>`` -> row i); counts the names it encodes."""

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.encoded = table, []

    def encode_labels(self, names):
        self.encoded.extend(names)
        return torch.from_numpy(self.table[[int(n[1:]) for n in names]]).float()


def make_data(n: int, seed: int):
    """Clips whose embedding is a fixed linear image of the sum of their classes' label vectors
    plus noise: a projection learnt on some classes transfers to the others."""
    rng = np.random.default_rng(0)  # the same label space and audio map for every split
    labels = rng.standard_normal((N_CLASSES, LABEL_DIM))
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    mixing = rng.standard_normal((LABEL_DIM, AUDIO_DIM))
    rng = np.random.default_rng(seed)
    y = (rng.random((n, N_CLASSES)) < 0.15).astype(np.int8)
    y[np.arange(n), rng.integers(0, N_CLASSES, n)] = 1
    x = (y @ labels) @ mixing + 0.3 * rng.standard_normal((n, AUDIO_DIM))
    return x.astype(np.float32), y, labels


NAMES = [f"c{i}" for i in range(N_CLASSES)]
TRAIN, TEST = NAMES[:12], NAMES[12:]


@pytest.fixture(scope="module")
def fitted():
    x, y, table = make_data(600, seed=1)
    xv, yv, _ = make_data(200, seed=2)
    enc = TableEncoder(table)
    tagger = ZeroShotTagger(enc, FAST).fit(x, y[:, :12], TRAIN, X_val=xv, Y_val=yv[:, :12])
    return tagger, enc, table


def test_fit_returns_self_and_sets_learned_attributes(fitted):
    tagger, _, _ = fitted
    assert isinstance(tagger, ZeroShotTagger)
    assert tagger.selection_classes_, "with validation data ~10% of the classes select the epoch"
    assert not set(tagger.selection_classes_) & set(tagger.classes_), (
        "selection classes must not be trained on")
    assert sorted(tagger.classes_ + tagger.selection_classes_) == sorted(TRAIN)
    assert len(tagger.history_) == FAST.epochs and "val_select_map" in tagger.history_
    best = tagger.history_["val_select_map"].idxmax() + 1
    assert tagger.best_epoch_ == best, f"best epoch {tagger.best_epoch_} is not the argmax {best}"


def test_unseen_classes_beat_random_by_far(fitted):
    tagger, _, _ = fitted
    xt, yt, _ = make_data(300, seed=3)
    proba = tagger.predict_proba(xt, TEST)
    assert proba.shape == (300, 4) and ((proba > 0) & (proba < 1)).all()
    ap = np.mean([average_precision_score(yt[:, 12 + j], proba[:, j]) for j in range(4)])
    prevalence = yt[:, 12:].mean()
    assert ap > prevalence + 0.2, f"zero-shot mAP {ap:.3f} vs random ~{prevalence:.3f}"


def test_predict_and_classify_agree_with_probabilities(fitted):
    tagger, _, _ = fitted
    xt, _, _ = make_data(50, seed=4)
    proba = tagger.predict_proba(xt, TEST)
    np.testing.assert_array_equal(tagger.predict(xt, TEST, threshold=0.3), proba >= 0.3)
    assert tagger.classify(xt, TEST) == [TEST[i] for i in proba.argmax(1)]
    logits = tagger.decision_function(xt, TEST)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), proba, rtol=1e-6)
    # scores of a class do not depend on which other names are asked for
    np.testing.assert_allclose(tagger.predict_proba(xt, TEST[::-1])[:, ::-1], proba, rtol=1e-6)


def test_label_vectors_are_encoded_once_per_name(fitted):
    tagger, enc, _ = fitted
    before = len(enc.encoded)
    tagger.predict_proba(np.zeros((2, AUDIO_DIM), np.float32), TEST + TRAIN[:2])
    assert len(enc.encoded) == before, "names already encoded must come from the cache"
    assert len(enc.encoded) == len(set(enc.encoded)), "a name was encoded twice"


def test_one_cached_label_encoder_serves_many_taggers():
    x, y, table = make_data(120, seed=3)
    enc = TableEncoder(table)
    shared = CachedLabelEncoder(enc)
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=16), epochs=1, device="cpu")
    first = ZeroShotTagger(shared, cfg).fit(x, y[:, :12], TRAIN)
    second = ZeroShotTagger(shared, cfg).fit(x, y[:, 2:14], NAMES[2:14])
    assert first.label_encoder is second.label_encoder is shared, "the cache was wrapped again"
    assert sorted(enc.encoded) == sorted(NAMES[:14]), f"encoded {enc.encoded}"
    with pytest.raises(ConfigError, match="encode_labels"):
        CachedLabelEncoder(object())


def test_mask_hides_labels_from_the_loss():
    x, y, table = make_data(200, seed=5)
    mask = np.random.default_rng(6).random(y[:, :12].shape) < 0.5
    flipped = np.where(mask, y[:, :12], 1 - y[:, :12])  # change only the hidden labels
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=16), epochs=2, device="cpu",
                         drop_unlabelled=False)
    a = ZeroShotTagger(TableEncoder(table), cfg).fit(x, y[:, :12], TRAIN, mask)
    b = ZeroShotTagger(TableEncoder(table), cfg).fit(x, flipped, TRAIN, mask)
    for (name, pa), pb in zip(a.head_.state_dict().items(), b.head_.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=f"masked-out labels changed {name}")


def test_drop_unlabelled_counts_clips():
    x, y, table = make_data(100, seed=7)
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=8), epochs=1, device="cpu")
    tagger = ZeroShotTagger(TableEncoder(table), cfg).fit(x, y[:, :3], NAMES[:3])
    assert tagger.n_train_clips_ == int(y[:, :3].any(1).sum()), "clips without a positive stay"
    keep_all = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=8), epochs=1, device="cpu",
                              drop_unlabelled=False)
    assert ZeroShotTagger(TableEncoder(table), keep_all).fit(x, y[:, :3], NAMES[:3]) \
        .n_train_clips_ == 100


def test_supervised_selection_without_held_out_classes():
    x, y, table = make_data(200, seed=8)
    xv, yv, _ = make_data(80, seed=9)
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=16), epochs=3, device="cpu",
                         selection_fraction=0.0)
    tagger = ZeroShotTagger(TableEncoder(table), cfg).fit(x, y, NAMES, X_val=xv, Y_val=yv)
    assert tagger.selection_classes_ == [] and tagger.classes_ == NAMES


def test_choose_selection_classes_rules():
    y = np.zeros((4, 20), dtype=np.int8)
    y[0, :10] = 1  # only the first 10 classes have a validation positive
    names = [f"k{i}" for i in range(20)]
    chosen = choose_selection_classes(names, y, None, 0.1, seed=3, exclude=["k0"])
    assert len(chosen) == 2 and set(chosen) <= set(names[1:10]), chosen
    assert chosen == sorted(chosen, key=names.index), "returned in class order"
    assert chosen == choose_selection_classes(names, y, None, 0.1, seed=3, exclude=["k0"])
    assert choose_selection_classes(names, y, None, 0.0) == []
    assert len(choose_selection_classes(names[:5], y[:, :5], None, 0.05)) == 1, "at least one"


def test_errors_say_what_to_do(fitted):
    x, y, table = make_data(20, seed=10)
    with pytest.raises(ConfigError, match="not fitted"):
        ZeroShotTagger(TableEncoder(table)).predict_proba(x, TEST)
    with pytest.raises(ConfigError, match="encode_labels"):
        ZeroShotTagger(object())
    with pytest.raises(ConfigError, match="must be"):
        ZeroShotTagger(TableEncoder(table)).fit(x, y[:, :3], NAMES[:4])
    tagger, _, _ = fitted
    with pytest.raises(ConfigError, match="audio encoder"):
        tagger.predict_proba(np.zeros((2, 100), np.float32), TEST)
    with pytest.raises(ConfigError, match="selection_fraction"):
        ZeroShotConfig(selection_fraction=1.0)


@dataclass(frozen=True)
class _Cfg:
    sample_rate: int = 8000
    embed_dim: int = AUDIO_DIM


class ToyAudioEncoder(nn.Module):
    """Waveforms -> the mean of AUDIO_DIM fixed slices (deterministic), like a frozen encoder."""

    cfg = _Cfg()

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return waveforms[:, : AUDIO_DIM * 10].reshape(len(waveforms), AUDIO_DIM, 10).mean(-1)


def test_scores_waveforms_and_files_through_the_audio_encoder(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSKIT_DATA", str(tmp_path / "data"))
    tagger, enc, _ = fitted
    audio = ZeroShotTagger(enc, FAST, audio_encoder=ToyAudioEncoder())
    audio.__dict__.update({k: v for k, v in tagger.__dict__.items() if k.endswith("_")})
    waves = torch.randn(3, 8000)
    expected = tagger.predict_proba(ToyAudioEncoder()(waves).numpy(), TEST)
    np.testing.assert_allclose(audio.predict_proba(waves, TEST), expected, rtol=1e-5)
    paths = []
    for i, w in enumerate(waves):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], w.numpy() / 5, 8000, subtype="FLOAT")
    from_files = audio.predict_proba([str(p) for p in paths], TEST)
    expected = tagger.predict_proba(ToyAudioEncoder()(waves / 5).numpy(), TEST)
    np.testing.assert_allclose(from_files, expected, rtol=1e-4, atol=1e-6)


def test_mask_val_of_the_wrong_shape_is_explained():
    x, y, table = make_data(40, seed=11)
    xv, yv, _ = make_data(20, seed=12)
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=8), epochs=1, device="cpu")
    for bad in (np.ones((20, N_CLASSES - 1), bool), np.ones((15, N_CLASSES), bool)):
        with pytest.raises(ConfigError, match="mask_val must mark the known entries of Y_val"):
            ZeroShotTagger(TableEncoder(table), cfg).fit(x, y, NAMES, X_val=xv, Y_val=yv,
                                                         mask_val=bad)
    with pytest.raises(ConfigError, match="without X_val"):
        ZeroShotTagger(TableEncoder(table), cfg).fit(x, y, NAMES, mask_val=np.ones((20, 16)))


def test_batchnorm_trains_when_the_last_batch_would_hold_one_clip():
    x, y, table = make_data(9, seed=13)  # every clip has a positive: 9 = 2 batches of 4 + 1
    cfg = ZeroShotConfig(projection=ProjectionConfig(hidden_dim=8, input_norm="batchnorm"),
                         epochs=2, batch_size=4, device="cpu")
    tagger = ZeroShotTagger(TableEncoder(table), cfg).fit(x, y, NAMES)
    assert tagger.n_train_clips_ == 9 and len(tagger.history_) == 2
    with pytest.raises(ConfigError, match="at least 2 training clips"):
        ZeroShotTagger(TableEncoder(table), cfg).fit(x[:1], y[:1], NAMES)
