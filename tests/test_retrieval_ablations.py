"""zskit.models.retrieval_ablations: YAMNet's cached stem and trainable top reproduce YAMNet, the
spectrogram PaSST crops in training and averages segments in eval, and one run reports its cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zskit.audio.io import load_audio, save_audio
from zskit.encoders import create_audio_encoder
from zskit.errors import ConfigError, DataError
from zskit.models.dual_encoder import DualEncoder, Precomputed, RetrievalPairs, count_parameters
from zskit.models.retrieval_ablations import (
    SpectrogramPaSST,
    YamnetTop,
    run_retrieval,
    small_passt_config,
    spectrogram_features,
    yamnet_stems,
)
from zskit.train.config import TrainConfig


@pytest.fixture(scope="module")
def yamnet():
    torch.manual_seed(0)
    return create_audio_encoder("yamnet", tiny=True).eval()


def _clips(folder, seconds, rate, n=3, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        t = np.arange(round(seconds * rate)) / rate
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.standard_normal(t.size)
        paths.append(folder / f"clip{i}.wav")
        save_audio(paths[-1], wave.astype(np.float32), rate)
    return paths


def test_stems_and_top_reproduce_yamnet_and_are_cached(yamnet, tmp_path):
    paths = _clips(tmp_path, 2.5, yamnet.sample_rate)
    stems = yamnet_stems(yamnet, paths, keep_last=2, cache_dir=tmp_path / "cache")
    assert stems.dtype == torch.float16 and stems.shape[:2] == (3, yamnet.cfg.num_patches(40000))
    top = YamnetTop(yamnet, keep_last=2)
    waves = torch.stack([load_audio(p, yamnet.sample_rate) for p in paths])
    with torch.no_grad():
        expected, got = yamnet(waves), top(stems)
    assert torch.allclose(got, expected, atol=2e-3 * expected.abs().max()), (got - expected).abs().max()
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert torch.equal(yamnet_stems(yamnet, paths, keep_last=2, cache_dir=tmp_path / "cache"), stems)


def test_crops_are_consecutive_patches_of_the_clip(yamnet, tmp_path):
    paths = _clips(tmp_path, 4.0, yamnet.sample_rate)
    full = yamnet_stems(yamnet, paths, cache_dir=tmp_path)
    crops = yamnet_stems(yamnet, paths, crop_patches=2, seed=3, cache_dir=tmp_path)
    assert crops.shape == (3, 2, *full.shape[2:])
    for clip, crop in zip(full.float(), crops.float()):
        errors = [(clip[s:s + 2] - crop).abs().max() for s in range(full.shape[1] - 1)]
        assert min(errors) < 1e-2 * clip.abs().max(), errors  # fp16 rounding only


def test_a_clip_shorter_than_the_crop_gets_the_same_patches_in_any_batch(yamnet, tmp_path):
    for folder in ("short", "long"):
        (tmp_path / folder).mkdir()
    short = _clips(tmp_path / "short", 1.0, yamnet.sample_rate, n=2)
    long = _clips(tmp_path / "long", 4.0, yamnet.sample_rate, n=1)
    alone = yamnet_stems(yamnet, short, crop_patches=3, batch_size=2, cache_dir=tmp_path / "a")
    mixed = yamnet_stems(yamnet, long + short, crop_patches=3, batch_size=3,
                         cache_dir=tmp_path / "b")
    assert alone.shape[:2] == (2, 3) and mixed.shape[:2] == (3, 3)
    assert torch.equal(alone, mixed[1:]), "padding a short clip must not depend on its batch"


def test_stem_errors(yamnet, tmp_path):
    paths = _clips(tmp_path, 2.0, yamnet.sample_rate, n=1)
    with pytest.raises(ConfigError, match="keep_last"):
        yamnet_stems(yamnet, paths, keep_last=0, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="not YAMNet"):
        YamnetTop(torch.nn.Linear(2, 2))
    (tmp_path / "longer").mkdir()
    longer = _clips(tmp_path / "longer", 4.0, yamnet.sample_rate, n=1)
    with pytest.raises(DataError, match="crop_patches"):
        yamnet_stems(yamnet, paths + longer, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"\(B, P, C, H, W\)"):
        YamnetTop(yamnet)(torch.zeros(2, 3))


def test_top_trains_only_when_asked(yamnet):
    assert count_parameters(YamnetTop(yamnet, trainable=False)) == 0
    top = YamnetTop(yamnet)
    assert count_parameters(top) == count_parameters(yamnet.layer14, trainable=False)
    stems = torch.randn(2, 3, *yamnet.layer13(torch.zeros(1, *_layer13_input(yamnet))).shape[1:])
    top(stems).sum().backward()
    trained = [p for p in top.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def _layer13_input(yamnet):
    x = torch.zeros(1, 1, yamnet.cfg.patch_frames, yamnet.cfg.frontend.n_mels)
    for name in yamnet.layer_names[:12]:
        x = getattr(yamnet, name)(x)
    return tuple(x.shape[1:])


def test_spectrogram_passt_crops_in_training_and_averages_segments(tmp_path):
    cfg = small_passt_config(clip_seconds=4.0, n_mels=32, embed_dim=16, depth=1, num_heads=2)
    paths = _clips(tmp_path, 4.0, cfg.sample_rate, n=2)
    spec = spectrogram_features(cfg, paths, clip_seconds=4.0, cache_dir=tmp_path)
    assert spec.dtype == torch.float16 and spec.shape[:2] == (2, 32)
    assert len(list(tmp_path.glob("*.pt"))) == 1  # cached for the next run
    torch.manual_seed(0)
    model = SpectrogramPaSST(cfg, train_seconds=1.0, segment_seconds=2.0)
    assert model.embed_dim == 16 and model.sample_rate == cfg.sample_rate
    model.train()
    assert model(spec).shape == (2, 16)
    model.eval()
    half = model.frames(2.0)
    with torch.no_grad():
        got = model(spec)
        parts = [model.encoder.forward_spectrogram(spec[..., a:a + half].float()).embedding
                 for a in (0, half)]
    assert torch.allclose(got, (parts[0] + parts[1]) / 2, atol=1e-5)
    model.segment_seconds = 4.0
    with torch.no_grad():
        whole = model(spec)
    assert not torch.allclose(whole, got, atol=1e-4), "the segment length changed nothing"


def test_spectrogram_passt_errors():
    cfg = small_passt_config(clip_seconds=2.0, n_mels=32, embed_dim=16, depth=1, num_heads=2)
    with pytest.raises(ConfigError, match="choose a length"):
        SpectrogramPaSST(cfg, train_seconds=5.0)
    model = SpectrogramPaSST(cfg, train_seconds=1.0)
    with pytest.raises(ConfigError, match="spectrogram_features"):
        model(torch.zeros(2, 64, 100))


def test_with_audio_keeps_captions_and_text_embeddings():
    pairs = RetrievalPairs(torch.randn(3, 4), [["a b", "c"], ["d"], ["e f"]])
    pairs.text_embeddings = torch.randn(len(pairs.texts), 5)
    other = pairs.with_audio(torch.randn(3, 2, 7))
    assert other.texts == pairs.texts and other.text_embeddings is pairs.text_embeddings
    assert other.audio.shape == (3, 2, 7) and np.array_equal(other.clip_index, pairs.clip_index)
    with pytest.raises(DataError, match="one per clip"):
        pairs.with_audio(torch.randn(2, 4))


def test_run_retrieval_reports_metrics_and_cost():
    torch.manual_seed(0)
    n, d = 12, 8
    audio = torch.randn(n, d)
    pairs = RetrievalPairs(audio, [[f"caption {i}"] for i in range(n)])
    pairs.text_embeddings = audio + 0.1 * torch.randn(n, d)  # text sits near its clip
    model = DualEncoder(Precomputed(d), Precomputed(d), dim=8)
    run = run_retrieval(model, pairs, pairs, pairs, TrainConfig(lr=1e-2, max_epochs=3,
                                                                batch_size=4, progress=False))
    assert run["trained_parameters"] == count_parameters(model) > 0
    assert run["seconds"] > 0 and run["epochs"] == 3 and len(run["history"]) == 3
    t2a = run["metrics"]["text_to_audio"]
    assert set(t2a) >= {"R@1", "R@5", "R@10", "mAP@10"} and t2a["R@5"] > 5 / n
