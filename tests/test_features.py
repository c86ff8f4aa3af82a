"""clip_features: the middle window of each file through a front end, stacked."""

from __future__ import annotations

import pytest
import torch

from zskit.audio.features import clip_features
from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.audio.io import save_audio
from zskit.audio.segments import center_pad
from zskit.errors import ConfigError


def test_middle_window_at_the_front_end_rate(tmp_path):
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g) * 0.1 for n in (48000, 20000)]  # 3 s and 1.25 s at 16 kHz
    paths = []
    for i, w in enumerate(waves):
        paths.append(tmp_path / f"{i}.wav")
        save_audio(paths[-1], w, 16000, subtype="FLOAT")
    frontend = KaldiFbank(KaldiFbankConfig(num_mel_bins=16, target_length=None, norm_mean=None))
    feats = clip_features(paths, frontend, 16000, seconds=2.0, progress=False)
    assert feats.shape == (2, 198, 16), f"two 2 s windows of 198 frames: {tuple(feats.shape)}"
    for i, w in enumerate(waves):  # the file's middle 2 s (the short one zero-padded around)
        expected = frontend(center_pad(w, 32000)[None])[0]
        torch.testing.assert_close(feats[i], expected, atol=2e-3, rtol=1e-3)
    with pytest.raises(ConfigError, match="different shapes"):
        clip_features(paths, frontend, 16000, seconds=None, progress=False)
    with pytest.raises(ConfigError, match="seconds"):
        clip_features(paths, frontend, 16000, seconds=0, progress=False)
