"""Regression tests for bugs found in a review of the audio front ends, I/O and losses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from zskit.audio.features import clip_features
from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.audio.io import load_audio, save_audio
from zskit.errors import AudioLoadError, ConfigError
from zskit.losses import info_nce, masked_bce


@pytest.mark.parametrize("with_ids", [False, True], ids=["pairs", "clip_ids"])
def test_info_nce_similarities_stay_float32_under_autocast(with_ids):
    """Under bf16 autocast the similarity matmul ran in bfloat16: with a small temperature its
    rounding (~0.4% of each cosine, x100) moved the loss by ~1e-3; now it matches float32."""
    g = torch.Generator().manual_seed(0)
    audio = F.normalize(torch.randn(64, 256, generator=g), dim=1)
    text = F.normalize(audio + 0.5 * torch.randn(64, 256, generator=g), dim=1)
    kwargs = {"clip_ids": [i // 2 for i in range(64)]} if with_ids else {}
    reference = info_nce(audio, text, temperature=0.01, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = info_nce(audio, text, temperature=0.01, **kwargs)
    torch.testing.assert_close(mixed, reference, rtol=0, atol=1e-6,
                               msg="info_nce under autocast should equal its float32 value")


def test_masked_bce_ignores_whatever_sits_in_masked_out_entries():
    """Unknown labels stored as NaN (or outputs that blew up there) made the gradient NaN through
    0 * NaN, and out-of-range targets crashed the probability form; masked-out entries must not
    matter at all."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, generator=g)
    targets = (torch.rand(3, 4, generator=g) > 0.5).float()
    mask = torch.rand(3, 4, generator=g) > 0.4
    mask[0, 0], mask[1, 1] = False, True
    clean_logits = logits.clone().requires_grad_()
    clean = masked_bce(clean_logits, targets, mask)
    clean.backward()

    dirty_targets = targets.masked_fill(~mask, float("nan"))
    dirty_logits = logits.masked_fill(~mask, float("inf")).requires_grad_()
    dirty = masked_bce(dirty_logits, dirty_targets, mask)
    dirty.backward()
    torch.testing.assert_close(dirty, clean.detach())
    assert torch.isfinite(dirty_logits.grad).all(), "masked-out entries poisoned the gradient"
    torch.testing.assert_close(dirty_logits.grad, clean_logits.grad)
    assert (dirty_logits.grad[~mask] == 0).all()

    probs = torch.sigmoid(logits).requires_grad_()
    loss = masked_bce(probs, targets.masked_fill(~mask, 2.0), mask, from_logits=False)
    loss.backward()
    torch.testing.assert_close(loss.detach(), clean.detach(), rtol=1e-5, atol=1e-6)
    assert torch.isfinite(probs.grad).all() and (probs.grad[~mask] == 0).all()


@pytest.mark.parametrize("content", ["empty", "nan"])
def test_clip_features_rejects_empty_and_nan_files_like_load_audio(tmp_path, content):
    """With ``seconds`` an empty file became silence features and a NaN sample NaN features,
    silently; load_audio (used without ``seconds``) refuses both."""
    good, bad = tmp_path / "good.wav", tmp_path / f"{content}.wav"
    rng = np.random.default_rng(0)
    sf.write(good, (rng.standard_normal(8000) * 0.1).astype(np.float32), 16000, subtype="FLOAT")
    data = np.zeros(0, np.float32) if content == "empty" else np.full(8000, np.nan, np.float32)
    sf.write(bad, data, 16000, subtype="FLOAT")
    frontend = KaldiFbank(KaldiFbankConfig(num_mel_bins=16, target_length=None, norm_mean=None))
    assert clip_features([good], frontend, 16000, seconds=0.5, progress=False).isfinite().all()
    for seconds in (0.5, None):
        with pytest.raises(AudioLoadError, match=bad.name):
            clip_features([good, bad], frontend, 16000, seconds=seconds, progress=False)


def test_kaldi_fbank_dithers_only_in_training():
    """Dither made evaluation features random (e.g. clip_features, which switches to eval)."""
    cfg = KaldiFbankConfig(num_mel_bins=16, target_length=None, norm_mean=None)
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(2)) * 0.1
    dithered = KaldiFbank(dataclasses.replace(cfg, dither=0.01))
    assert not torch.equal(dithered.train()(x), dithered(x)), "training features should be dithered"
    torch.testing.assert_close(dithered.eval()(x), KaldiFbank(cfg)(x), rtol=0, atol=0,
                               msg="evaluation features should not be dithered")


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_save_audio_scales_integer_pcm(tmp_path, as_tensor):
    """int16 PCM was cast to float keeping its scale (16384 -> 16384.0) and written clipped to
    full scale; it must come back as load_audio reads PCM (x / 32768)."""
    pcm = np.array([0, 16384, -8192, 1000, 32767, -32768], dtype=np.int16)
    path = save_audio(tmp_path / "pcm.wav", torch.from_numpy(pcm) if as_tensor else pcm, 16000)
    np.testing.assert_array_equal(load_audio(path, 16000).numpy(), pcm / 32768.0)
    with pytest.raises(ConfigError, match="uint8"):
        save_audio(tmp_path / "u8.wav", np.full(10, 128, dtype=np.uint8), 16000)


def test_save_audio_takes_bfloat16_tensors(tmp_path):
    """A bfloat16 tensor (e.g. from a model under autocast) crashed in ``.numpy()``."""
    wav = torch.tensor([0.5, -0.25, 0.125], dtype=torch.bfloat16)
    path = save_audio(tmp_path / "bf16.wav", wav, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 16000).numpy(), wav.float().numpy())
