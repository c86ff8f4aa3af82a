"""Front ends against independent references: librosa, transformers' ASTFeatureExtractor and
mel_filter_bank, and brute-force numpy/torch.stft recomputations of the YAMNet and PaSST recipes."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
import torchaudio
from transformers import ASTFeatureExtractor
from transformers.audio_utils import mel_filter_bank

from zskit.audio import (
    LOGMEL_PRESETS,
    KaldiFbank,
    KaldiFbankConfig,
    LinearSpectrogram,
    LinearSpectrogramConfig,
    LogMel,
    LogMelConfig,
    build_frontend,
    frontends,
    mel_filterbank,
)
from zskit.errors import ConfigError

# Relative error in the linear (mel energy) domain, measured against librosa, with a floor of
# 1e-6 x the clip's peak so that float32 round-off in near-empty bins does not dominate.
LINEAR_RTOL = 1e-3
LOG_ATOL = 1e-3  # absolute difference on natural-log features
DB_ATOL = 1e-2  # absolute difference in dB
AST_ATOL = 1e-4  # KaldiFbank vs ASTFeatureExtractor, normalised features


def _noise_and_tones(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)
    return (x + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def _rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    floor = 1e-6 * np.abs(ref).max()
    return float(np.max(np.abs(out - ref) / (np.abs(ref) + floor)))


@pytest.mark.parametrize("mel_scale", ["slaney", "htk"])
@pytest.mark.parametrize("mel_norm", ["slaney", None])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("center", [True, False])
def test_logmel_matches_librosa_linear(mel_scale, mel_norm, power, center):
    sr = 16000
    x = _noise_and_tones(sr, 1.0)
    cfg = LogMelConfig(sample_rate=sr, n_fft=512, hop_length=160, n_mels=64, f_min=30.0,
                       f_max=7600.0, mel_scale=mel_scale, mel_norm=mel_norm, power=power,
                       center=center, pad_mode="constant", log="none")
    ref = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=512, hop_length=160, n_mels=64, fmin=30.0, fmax=7600.0,
        htk=mel_scale == "htk", norm=mel_norm, power=power, center=center, pad_mode="constant")
    out = LogMel(cfg)(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape, f"shape {out.shape} != librosa {ref.shape}"
    err = _rel_err(out, ref)
    assert err < LINEAR_RTOL, f"relative error {err:.2e} vs librosa exceeds {LINEAR_RTOL}"


def test_logmel_log_and_short_window_match_librosa():
    sr = 32000
    x = _noise_and_tones(sr, 0.5, seed=1)
    cfg = LogMelConfig(sample_rate=sr, n_fft=1024, win_length=800, hop_length=320, n_mels=128,
                       pad_mode="reflect", log="log", log_offset=1e-5)
    ref = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=1024, win_length=800, hop_length=320,
                                         n_mels=128, center=True, pad_mode="reflect")
    out = LogMel(cfg)(torch.from_numpy(x)).numpy()
    diff = np.abs(out - np.log(ref + 1e-5)).max()
    assert diff < LOG_ATOL, f"log-mel differs from librosa by {diff:.2e} (> {LOG_ATOL})"


def test_cnn14_preset_matches_librosa_power_to_db():
    cfg = LogMelConfig.cnn14()
    x = _noise_and_tones(cfg.sample_rate, 0.5, seed=2)
    mel = librosa.feature.melspectrogram(y=x, sr=32000, n_fft=1024, hop_length=320, n_mels=64,
                                         fmin=50, fmax=14000, center=True, pad_mode="reflect")
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    out = LogMel(cfg)(torch.from_numpy(x)).numpy()
    diff = np.abs(out - ref).max()
    assert diff < DB_ATOL, f"CNN14 log-mel differs from librosa by {diff:.3e} dB"


def test_db_top_db_is_per_example_like_librosa():
    cfg = dataclasses.replace(LogMelConfig.cnn14_16k(), top_db=80.0)
    clips = np.stack([_noise_and_tones(16000, 0.5, seed=s) * g for s, g in ((3, 1.0), (4, 1e-3))])
    out = LogMel(cfg)(torch.from_numpy(clips)).numpy()
    for i, clip in enumerate(clips):
        mel = librosa.feature.melspectrogram(y=clip, sr=16000, n_fft=512, hop_length=160, n_mels=64,
                                             fmin=50, fmax=8000, pad_mode="reflect")
        ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
        diff = np.abs(out[i] - ref).max()
        assert diff < DB_ATOL, f"example {i}: top_db dB differs from librosa by {diff:.3e}"


def test_kaldi_mel_filters_match_transformers_mel_domain_triangles():
    cfg = LogMelConfig.yamnet()
    ref = mel_filter_bank(num_frequency_bins=257, num_mel_filters=64, min_frequency=125.0,
                          max_frequency=7500.0, sampling_rate=16000, norm=None, mel_scale="kaldi",
                          triangularize_in_mel_space=True)
    fb = mel_filterbank(cfg).numpy()
    assert fb.shape == ref.shape == (257, 64), f"filter bank shape {fb.shape} vs {ref.shape}"
    diff = np.abs(fb - ref).max()
    assert diff < 1e-4, f"kaldi mel filters (float32) differ from transformers' by {diff:.2e}"


def _tf_style_frames(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    n = 1 + (len(x) - win) // hop
    return np.stack([x[i * hop:i * hop + win] for i in range(n)])


@pytest.mark.parametrize("preset, offset", [("yamnet", 0.001), ("vggish", 0.01)])
def test_yamnet_vggish_presets_match_numpy_recipe(preset, offset):
    cfg = LogMelConfig.preset(preset)
    x = _noise_and_tones(16000, 1.0, seed=5).astype(np.float64)
    window = scipy.signal.get_window("hann", 400, fftbins=True)  # periodic Hann
    mag = np.abs(np.fft.rfft(_tf_style_frames(x, 400, 160) * window, n=512))  # (frames, 257)
    fb = mel_filter_bank(257, 64, 125.0, 7500.0, 16000, norm=None, mel_scale="kaldi",
                         triangularize_in_mel_space=True)
    ref = np.log(mag @ fb + offset).T  # (64, frames)
    out = LogMel(cfg)(torch.from_numpy(x.astype(np.float32))).numpy()
    assert out.shape == ref.shape == (64, 98), f"{preset}: shape {out.shape} vs recipe {ref.shape}"
    diff = np.abs(out - ref).max()
    assert diff < LOG_ATOL, f"{preset}: log-mel differs from the numpy recipe by {diff:.2e}"


def test_passt_preset_matches_torch_stft_recipe():
    cfg = LogMelConfig.passt()
    x = torch.from_numpy(_noise_and_tones(32000, 1.0, seed=6)).unsqueeze(0)
    # The recipe written out: pre-emphasis, centred reflect STFT with a symmetric 800-sample Hann
    # window in a 1024 FFT, power, Kaldi mel banks 0-15000 Hz, ln(x + 1e-5), (x + 4.5) / 5.
    y = torch.nn.functional.conv1d(x.unsqueeze(1), torch.tensor([[[-0.97, 1.0]]])).squeeze(1)
    spec = torch.stft(y, 1024, hop_length=320, win_length=800, center=True, pad_mode="reflect",
                      window=torch.hann_window(800, periodic=False), return_complex=True)
    banks, _ = torchaudio.compliance.kaldi.get_mel_banks(128, 1024, 32000.0, 0.0, 15000.0,
                                                         100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks, (0, 1))
    ref = ((banks @ spec.abs().pow(2) + 1e-5).log() + 4.5) / 5.0
    out = LogMel(cfg)(x)
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} vs recipe {tuple(ref.shape)}"
    diff = (out - ref).abs().max().item()
    assert diff < LOG_ATOL, f"PaSST log-mel differs from the recipe by {diff:.2e}"


@pytest.mark.parametrize("num_samples", [16000 * 3, 16000 * 11])  # padded and cut to 1024 frames
def test_kaldi_fbank_matches_ast_feature_extractor(num_samples):
    x = np.random.default_rng(7).uniform(-0.5, 0.5, num_samples).astype(np.float32)
    ref = ASTFeatureExtractor()(x, sampling_rate=16000, return_tensors="np")["input_values"][0]
    out = KaldiFbank(KaldiFbankConfig.ast())(torch.from_numpy(x)).numpy()[0]
    assert out.shape == ref.shape == (1024, 128), f"shape {out.shape} vs AST extractor {ref.shape}"
    diff = np.abs(out - ref).max()
    assert diff < AST_ATOL, f"KaldiFbank differs from ASTFeatureExtractor by {diff:.2e}"


def test_kaldi_fbank_esc50_preset_matches_extractor_with_same_stats():
    cfg = KaldiFbankConfig.ast_esc50()
    x = _noise_and_tones(16000, 5.0, seed=8)
    ref = ASTFeatureExtractor(max_length=512, mean=cfg.norm_mean, std=cfg.norm_std)(
        x, sampling_rate=16000, return_tensors="np")["input_values"][0]
    out = KaldiFbank(cfg)(torch.from_numpy(x)[None]).numpy()[0]
    assert out.shape == (512, 128), f"ESC-50 layout should be (512 frames, 128 mels), got {out.shape}"
    diff = np.abs(out - ref).max()
    assert diff < AST_ATOL, f"ESC-50 features differ from the extractor by {diff:.2e}"


def test_kaldi_fbank_natural_length_and_no_norm():
    cfg = KaldiFbankConfig(target_length=None, norm_mean=None)
    module = KaldiFbank(cfg)
    x = torch.from_numpy(_noise_and_tones(16000, 1.0, seed=9))
    out = module(x)
    ref = torchaudio.compliance.kaldi.fbank(x[None], htk_compat=True, sample_frequency=16000,
                                            use_energy=False, window_type="hanning",
                                            num_mel_bins=128, dither=0.0, frame_shift=10)
    assert out.shape == (1, module.num_frames(16000), 128) == (1, *ref.shape), f"shape {out.shape}"
    torch.testing.assert_close(out[0], ref, rtol=0, atol=1e-5,  # |X|^2 without abs's sqrt:
                               msg="un-normalised features should equal torchaudio's fbank")


@pytest.mark.parametrize("options", [
    {"window_type": "hamming", "use_energy": True},
    {"window_type": "povey", "use_energy": True, "htk_compat": False},
    {"window_type": "blackman", "num_mel_bins": 40, "frame_length_ms": 32.0},
    {"window_type": "rectangular", "sample_rate": 8000, "frame_shift_ms": 12.5},
], ids=["hamming-energy", "povey-energy-first", "blackman-32ms", "rectangular-8k"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kaldi_fbank_batch_equals_torchaudio_per_clip(options, dtype):
    """The one-pass batch equals torchaudio's fbank run clip by clip, for every window, energy
    placement, FFT size and dtype (the same operations in the same precision, but |X|^2 is
    computed without the square root of abs: log-domain differences of about 1e-6)."""
    cfg = KaldiFbankConfig(target_length=None, norm_mean=None, **options)
    g = torch.Generator().manual_seed(3)
    batch = (torch.randn(3, 6007, generator=g) * 0.1).to(dtype)
    batch[1] = 0.0
    out = KaldiFbank(cfg)(batch)
    ref = torch.stack([torchaudio.compliance.kaldi.fbank(
        clip[None], sample_frequency=float(cfg.sample_rate), num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms, frame_shift=cfg.frame_shift_ms,
        window_type=cfg.window_type, dither=0.0, htk_compat=cfg.htk_compat,
        use_energy=cfg.use_energy) for clip in batch])
    assert out.dtype == dtype and out.shape == ref.shape, f"{out.dtype} {out.shape} vs {ref.shape}"
    diff = float((out - ref).abs().max())
    assert diff <= AST_ATOL, f"KaldiFbank {options} differs from kaldi.fbank by {diff:.2e}"


def test_kaldi_fbank_cuts_before_computing_and_dithers():
    cfg = KaldiFbankConfig(num_mel_bins=32, target_length=20, norm_mean=None)
    x = torch.randn(2, 16000) * 0.1
    full = KaldiFbank(dataclasses.replace(cfg, target_length=None))(x)
    torch.testing.assert_close(KaldiFbank(cfg)(x), full[:, :20], rtol=0, atol=0)
    dithered = KaldiFbank(dataclasses.replace(cfg, dither=1.0))
    silence = torch.zeros(1, 4000)
    assert not torch.equal(dithered(silence), dithered(silence)), "dither should add fresh noise"


def _frontends():
    yield from (LogMel(LogMelConfig.preset(name)) for name in LOGMEL_PRESETS)
    yield LinearSpectrogram()
    yield LinearSpectrogram(LinearSpectrogramConfig(log="db", center=False, win_length=800))
    yield KaldiFbank(KaldiFbankConfig.ast_speechcommands())


@pytest.mark.parametrize("module", list(_frontends()), ids=lambda m: repr(m).splitlines()[0][:60])
def test_batched_equals_per_example_and_finite(module):
    sr = module.cfg.sample_rate
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(3, sr // 2, generator=g) * 0.1
    batch[2] = 0.0  # digital silence must stay finite
    out = module.to("cpu")(batch)
    assert torch.isfinite(out).all(), f"{type(module).__name__} produced non-finite values"
    for i in range(3):
        one = module(batch[i : i + 1])
        assert torch.allclose(out[i : i + 1], one, atol=1e-5), f"example {i}: batched != single"


def _stft_frames(num_samples: int, win: int, hop: int, center: bool) -> int:
    """The textbook STFT frame count: centred frames start every hop (librosa's ``1 + n // hop``);
    uncentred ones must fit a whole window."""
    return 1 + num_samples // hop if center else 1 + (num_samples - win) // hop


def test_layouts_and_frame_counts():
    g = torch.Generator().manual_seed(0)
    for name in LOGMEL_PRESETS:
        cfg = LogMelConfig.preset(name)
        module = LogMel(cfg)
        for n in (cfg.n_fft + 1, cfg.sample_rate, cfg.sample_rate + 123):
            frames = _stft_frames(n - (cfg.preemphasis > 0), cfg.win, cfg.hop_length, cfg.center)
            assert cfg.num_frames(n) == frames, f"{name}, T={n}: num_frames {cfg.num_frames(n)}"
            out = module(torch.zeros(2, 3, n))
            assert out.shape == (2, 3, cfg.n_mels, frames), f"{name}, T={n}: {out.shape}"
        # (..., T) layouts: each leading index holds the features of its own waveform
        x = torch.randn(2, 3, cfg.n_fft + 1, generator=g) * 0.1
        out = module(x)
        for i, j in ((0, 0), (0, 2), (1, 0), (1, 2)):
            torch.testing.assert_close(out[i, j], module(x[i, j]), atol=1e-5, rtol=0,
                                       msg=f"{name}: features of x[{i}, {j}] mixed up")
    for lin in (LinearSpectrogramConfig(), LinearSpectrogramConfig(center=False, win_length=800)):
        out = LinearSpectrogram(lin)(torch.zeros(5000))
        frames = _stft_frames(5000, lin.win, lin.hop_length, lin.center)
        assert lin.num_frames(5000) == frames and out.shape == (lin.n_freqs, frames), (
            f"linear spectrogram (center={lin.center}) shape {out.shape}, expected {frames} frames")


def test_linear_spectrogram_matches_librosa_stft():
    cfg = LinearSpectrogramConfig(sample_rate=16000, n_fft=512, hop_length=160, log="log1p")
    x = _noise_and_tones(16000, 0.5, seed=10)
    ref = np.log1p(np.abs(librosa.stft(x, n_fft=512, hop_length=160, pad_mode="reflect")))
    out = LinearSpectrogram(cfg)(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape, f"shape {out.shape} vs librosa {ref.shape}"
    diff = np.abs(out - ref).max()
    assert diff < LOG_ATOL, f"log1p spectrogram differs from librosa by {diff:.2e}"


def test_buffers_follow_the_module_and_are_not_saved():
    module = LogMel(LogMelConfig.yamnet()).to(torch.float64)
    assert module.mel_fb.dtype == torch.float64, "buffers should move with .to()"
    assert module.state_dict() == {}, "derived buffers must not enter checkpoints"
    out = module(torch.randn(1, 16000, dtype=torch.float64))
    assert out.dtype == torch.float64 and torch.isfinite(out).all(), "float64 path failed"


def test_gradient_flows_to_the_waveform():
    x = torch.randn(2, 8000, requires_grad=True)
    LogMel(LogMelConfig.cnn14_16k())(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_build_frontend_dispatch_and_errors():
    assert isinstance(build_frontend(LogMelConfig()), LogMel)
    assert isinstance(build_frontend(KaldiFbankConfig()), KaldiFbank)
    assert isinstance(build_frontend(LinearSpectrogramConfig()), LinearSpectrogram)
    with pytest.raises(ConfigError, match="dict"):
        build_frontend({"n_mels": 64})
    with pytest.raises(ConfigError, match="'nope'.*passt"):
        LogMelConfig.preset("nope")
    with pytest.raises(ConfigError, match="f_max"):
        LogMelConfig(sample_rate=16000, f_max=9000.0)
    with pytest.raises(ConfigError, match="mel_norm"):
        LogMelConfig(mel_scale="kaldi", mel_norm="slaney")
    with pytest.raises(ConfigError, match="win_length=2048"):
        LinearSpectrogramConfig(n_fft=1024, win_length=2048)


def test_too_short_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="300 samples"):
        LogMel(LogMelConfig.yamnet())(torch.zeros(300))
    with pytest.raises(ConfigError, match="reflect"):
        LogMel(LogMelConfig.passt())(torch.zeros(400))
    with pytest.raises(ConfigError, match="200 samples"):
        KaldiFbank()(torch.zeros(2, 200))


@pytest.mark.parametrize("timing", [{"frame_shift_ms": 0.05}, {"frame_length_ms": 0.1}])
def test_kaldi_frames_shorter_than_a_sample_are_a_config_error(timing):
    with pytest.raises(ConfigError, match="need at least 2 and 1"):
        KaldiFbankConfig(**timing)


@pytest.mark.parametrize("frontend", [
    LogMel(LogMelConfig.passt()),
    LogMel(LogMelConfig.yamnet()),
    LinearSpectrogram(LinearSpectrogramConfig(sample_rate=16000, log="db")),
    KaldiFbank(KaldiFbankConfig.ast(128)),
], ids=["logmel-passt", "logmel-yamnet", "linear-db", "kaldi-ast"])
def test_front_ends_ignore_bf16_autocast(frontend):
    """Under CPU bfloat16 autocast (an encoder's mixed-precision forward) the front end still
    computes in float32: same dtype, same values as without autocast (bf16 would be ~1e-2 off)."""
    x = torch.from_numpy(_noise_and_tones(16000, 1.0)).float()[None]
    reference = frontend(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = frontend(x)
        from_bf16 = frontend(x.bfloat16())
    assert out.dtype == torch.float32 and from_bf16.dtype == torch.float32, (out.dtype, from_bf16.dtype)
    torch.testing.assert_close(out, reference, rtol=0, atol=0, msg="autocast changed the values")
    torch.testing.assert_close(from_bf16, frontend(x.bfloat16().float()), rtol=0, atol=0,
                               msg="bf16 input must be upcast, then computed in float32")


@pytest.mark.parametrize("target_length", [None, 64])
def test_kaldi_fbank_lengths_match_clips_computed_alone(target_length):
    torch.manual_seed(0)
    frontend = KaldiFbank(KaldiFbankConfig(num_mel_bins=32, target_length=target_length))
    lengths = torch.tensor([4000, 9000, 300])  # the last is shorter than one 25 ms frame
    batch = torch.randn(3, 9000)  # whatever follows a clip's end must not matter
    out = frontend(batch, lengths)
    for i, n in enumerate(lengths.tolist()):
        clip = batch[i, :n]
        if n < frontend.cfg.frame_length:  # padded with zeros to one frame
            clip = torch.nn.functional.pad(clip, (0, frontend.cfg.frame_length - n))
        alone = frontend(clip)[0]
        torch.testing.assert_close(out[i, : alone.shape[0]], alone, atol=1e-5, rtol=1e-5)
        pad = out[i, alone.shape[0]:]
        assert torch.all(pad == pad.flatten()[0]) if pad.numel() else True, "padding is constant"


def test_kaldi_fbank_lengths_need_one_count_per_clip():
    with pytest.raises(ConfigError, match="one sample count per clip"):
        KaldiFbank(KaldiFbankConfig(target_length=None))(torch.zeros(2, 4000), torch.tensor([4000]))


@pytest.mark.parametrize("make", [lambda: LogMel(LogMelConfig(n_mels=32)),
                                  lambda: LinearSpectrogram(LinearSpectrogramConfig()),
                                  lambda: KaldiFbank(KaldiFbankConfig(num_mel_bins=32))])
def test_cpu_chunks_give_the_whole_batch_result(make, monkeypatch):
    torch.manual_seed(0)
    frontend, x = make(), torch.randn(5, 8000)
    lengths = torch.tensor([8000, 5000, 300, 7999, 6400])
    whole = frontend(x) if not isinstance(frontend, KaldiFbank) else frontend(x, lengths)
    monkeypatch.setattr(frontends, "_CPU_CHUNK_ELEMENTS", 1)  # one clip at a time
    chunked = frontend(x) if not isinstance(frontend, KaldiFbank) else frontend(x, lengths)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("frontend", [
    KaldiFbank(KaldiFbankConfig(num_mel_bins=32, target_length=None)),
    KaldiFbank(KaldiFbankConfig(num_mel_bins=32, target_length=64, use_energy=True)),
    LogMel(LogMelConfig.yamnet()), LinearSpectrogram()], ids=lambda m: type(m).__name__)
def test_an_empty_batch_gives_an_empty_result_of_the_clip_shape(frontend):
    one = frontend(torch.zeros(1, 16000))
    for dtype in (torch.float32, torch.float64):
        empty = frontend(torch.zeros(0, 16000, dtype=dtype))
        assert empty.shape == (0, *one.shape[1:]) and empty.dtype == dtype
    if isinstance(frontend, KaldiFbank):
        assert frontend(torch.zeros(0, 16000), torch.zeros(0, dtype=torch.long)).shape[0] == 0


@pytest.mark.parametrize("make", [KaldiFbank, LogMel, LinearSpectrogram],
                         ids=lambda m: m.__name__)
def test_integer_pcm_is_a_config_error_not_a_silent_rescale(make):
    pcm = (torch.randn(1, 16000) * 3000).to(torch.int16)
    with pytest.raises(ConfigError, match="32768"):
        make()(pcm)
    assert make()(pcm.float() / 32768).dtype == torch.float32
