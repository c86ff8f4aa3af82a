"""zskit.viz builds the right figure data (shapes, axes), not pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zskit.errors import ConfigError
from zskit.viz import (
    label_matrix_figure,
    per_class_ap_figure,
    spectrogram_figure,
    waveform_figure,
)


def test_waveform_short_signal_is_drawn_exactly():
    sr = 1000
    wav = torch.sin(torch.arange(500) / 10.0)
    fig = waveform_figure(wav, sr, title="sine")
    trace = fig.data[0]
    assert len(trace.x) == 500, "a short waveform must keep every sample"
    np.testing.assert_allclose(trace.y, wav.numpy(), rtol=1e-6)
    assert trace.x[-1] == pytest.approx(499 / sr), "x must be time in seconds"
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.title.text == "sine"


def test_waveform_long_signal_keeps_its_envelope():
    wav = np.zeros(100_000, dtype=np.float32)
    wav[54_321] = 0.9  # a single click must survive the reduction
    wav[12_345] = -0.7
    fig = waveform_figure(wav, 16_000, max_points=1000)
    y = np.asarray(fig.data[0].y)
    assert len(y) <= 1000, f"{len(y)} points drawn, max_points=1000"
    assert y.max() == pytest.approx(0.9) and y.min() == pytest.approx(-0.7), "peaks were lost"
    with pytest.raises(ConfigError, match="mono"):
        waveform_figure(np.zeros((2, 100)), 16_000)


def test_spectrogram_axes_and_shape():
    spec = np.random.default_rng(0).random((64, 101)).astype(np.float32)
    fig = spectrogram_figure(spec, sample_rate=16_000, hop_length=160, title="mel")
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (64, 101), "z must be (n_mels, n_frames)"
    assert heat.x[-1] == pytest.approx(1.0), "100 hops of 10 ms must end at 1.0 s"
    assert len(heat.y) == 64
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.yaxis.title.text == "mel band"


def test_label_matrix_codes_positive_negative_unknown():
    labels = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.int8)
    mask = np.array([[True, True, False], [True, False, True]])
    fig = label_matrix_figure(labels, mask, ["a", "b", "c"], clip_names=["x", "y"])
    z = np.asarray(fig.data[0].z)
    np.testing.assert_array_equal(z, [[2, 0, 1], [0, 1, 0]], err_msg="0 neg, 1 unknown, 2 pos")
    assert list(fig.data[0].x) == ["a", "b", "c"] and list(fig.data[0].y) == ["x", "y"]
    assert list(fig.data[0].colorbar.ticktext) == ["negative", "unknown", "positive"]
    with pytest.raises(ConfigError, match="class names"):
        label_matrix_figure(labels, mask, ["a", "b"])


def test_per_class_ap_bars_sorted_with_random_baseline():
    ap = np.array([0.2, np.nan, 0.9, 0.5])
    rnd = np.array([0.1, np.nan, 0.05, 0.2])
    fig = per_class_ap_figure(ap, ["a", "b", "c", "d"], random_ap=rnd)
    assert len(fig.data) == 2, "AP bars and random bars"
    assert list(fig.data[0].x) == ["c", "d", "a"], "NaN dropped, sorted best first"
    np.testing.assert_allclose(fig.data[0].y, [0.9, 0.5, 0.2])
    np.testing.assert_allclose(fig.data[1].y, [0.05, 0.2, 0.1])
    assert fig.layout.yaxis.title.text == "average precision"
