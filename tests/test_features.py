"""clip_features: the middle window of each file through a front end, stacked, batched and cached."""

from __future__ import annotations

import os

import pytest
import torch

from zskit.audio.features import clip_features, resampler
from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.audio.io import save_audio
from zskit.audio.segments import center_pad
from zskit.errors import ConfigError

FRONTEND = KaldiFbank(KaldiFbankConfig(num_mel_bins=16, target_length=None, norm_mean=None))


def _write(tmp_path, waves, rate):
    paths = []
    for i, w in enumerate(waves):
        paths.append(tmp_path / f"{i}.wav")
        save_audio(paths[-1], w, rate, subtype="FLOAT")
    return paths


def test_middle_window_at_the_front_end_rate(tmp_path):
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g) * 0.1 for n in (48000, 20000, 40000)]  # 3, 1.25, 2.5 s
    paths = _write(tmp_path, waves, 16000)
    feats = clip_features(paths, FRONTEND, 16000, seconds=2.0, progress=False, batch_size=2)
    assert feats.shape == (3, 198, 16), f"three 2 s windows of 198 frames: {tuple(feats.shape)}"
    for i, w in enumerate(waves):  # the file's middle 2 s (the short one zero-padded around)
        expected = FRONTEND(center_pad(w, 32000)[None])[0]
        torch.testing.assert_close(feats[i], expected, atol=2e-3, rtol=1e-3)
    with pytest.raises(ConfigError, match="different shapes"):
        clip_features(paths, FRONTEND, 16000, seconds=None, progress=False)
    with pytest.raises(ConfigError, match="seconds"):
        clip_features(paths, FRONTEND, 16000, seconds=0, progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        clip_features(paths, FRONTEND, 16000, seconds=1.0, batch_size=0, progress=False)


def test_batched_resampling_equals_clip_by_clip(tmp_path):
    g = torch.Generator().manual_seed(1)
    waves = [torch.randn(n, generator=g) * 0.1 for n in (64000, 64000, 24000)]  # at 32 kHz
    paths = _write(tmp_path, waves, 32000)
    feats = clip_features(paths, FRONTEND, 16000, seconds=1.5, progress=False)
    for i, w in enumerate(waves):
        middle = center_pad(w, min(len(w), 48000))  # the middle 1.5 s, or all of a shorter file
        one = center_pad(resampler(32000, 16000)(middle), 24000)  # resampled, then padded
        torch.testing.assert_close(feats[i], FRONTEND(one[None])[0], atol=2e-3, rtol=1e-3)


def test_cache_is_keyed_and_reused(tmp_path):
    paths = _write(tmp_path, [torch.randn(16000) * 0.1, torch.randn(16000) * 0.1], 16000)
    cache = tmp_path / "cache"
    first = clip_features(paths, FRONTEND, 16000, seconds=0.5, progress=False, cache_dir=cache)
    stored = sorted(cache.iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".pt", f"one cache file expected: {stored}"
    stamp = torch.zeros(1)  # a marker only a load from the cache can return
    torch.save(stamp, stored[0])
    again = clip_features(paths, FRONTEND, 16000, seconds=0.5, progress=False, cache_dir=cache)
    assert torch.equal(again, stamp), "the same key should load the stored tensor"
    other = KaldiFbank(KaldiFbankConfig(num_mel_bins=8, target_length=None, norm_mean=None))
    assert clip_features(paths, other, 16000, seconds=0.5, progress=False,
                         cache_dir=cache).shape[-1] == 8, "another front end needs another key"
    os.utime(paths[0], ns=(1, 1))  # a changed file must not reuse the old features
    fresh = clip_features(paths, FRONTEND, 16000, seconds=0.5, progress=False, cache_dir=cache)
    torch.testing.assert_close(fresh, first, rtol=0, atol=0)
    assert len(list(cache.iterdir())) == 3, "each key is stored once, with no temporary files left"
