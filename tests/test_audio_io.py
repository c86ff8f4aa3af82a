"""load_audio / save_audio / audio_info on files written with soundfile in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from zskit.audio import audio_info, load_audio, save_audio
from zskit.errors import AudioLoadError, ConfigError


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


@pytest.mark.parametrize("suffix, fmt, subtype, atol", [
    (".wav", "WAV", "FLOAT", 0.0),
    (".wav", "WAV", "PCM_16", 1 / 32768),
    (".flac", "FLAC", "PCM_16", 1 / 32768),
])
def test_lossless_formats_round_trip(tmp_path, suffix, fmt, subtype, atol):
    x = _sine(440, 16000, 0.5)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path, 16000)
    assert y.dtype == torch.float32 and y.shape == (8000,), f"got {y.dtype} {tuple(y.shape)}"
    err = np.abs(y.numpy() - x).max()
    assert err <= atol + 1e-7, f"{suffix}/{subtype}: max error {err:.2e} > {atol:.2e}"


def _lossy_formats():
    yield ".ogg", "OGG", "VORBIS"
    yield ".mp3", "MP3", "MPEG_LAYER_III"


@pytest.mark.parametrize("suffix, fmt, subtype", list(_lossy_formats()))
def test_lossy_formats_keep_pitch_and_duration(tmp_path, suffix, fmt, subtype):
    sr = 16000
    x = _sine(1000, sr, 1.0)
    path = tmp_path / f"tone{suffix}"
    try:
        sf.write(path, x, sr, format=fmt, subtype=subtype)
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        pytest.skip(f"this libsndfile cannot write {fmt}: {err}")
    y = load_audio(path, sr).numpy()
    # MP3 encoders add up to a frame of padding; allow 0.1 s either way.
    assert abs(len(y) - len(x)) <= sr // 10, f"{suffix}: {len(y)} samples, expected ~{len(x)}"
    assert abs(_peak_hz(y, sr) - 1000) <= 2, f"{suffix}: peak at {_peak_hz(y, sr):.1f} Hz"


def test_stereo_to_mono_is_channel_mean(tmp_path):
    left, right = _sine(440, 16000, 0.25), _sine(660, 16000, 0.25, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono = load_audio(path, 16000)
    assert torch.allclose(mono, torch.from_numpy((left + right) / 2), atol=1e-7), "mono != mean"
    both = load_audio(path, 16000, mono=False)
    assert both.shape == (2, 4000), f"mono=False should give (C, T), got {tuple(both.shape)}"
    assert torch.equal(both[1], torch.from_numpy(right)), "channel order changed"


@pytest.mark.parametrize("file_rate", [44100, 48000])
@pytest.mark.parametrize("target_rate", [16000, 32000])
def test_resampling_keeps_frequency_and_duration(tmp_path, file_rate, target_rate):
    freq, seconds = 1000.0, 1.0
    path = tmp_path / f"sine_{file_rate}.wav"
    sf.write(path, _sine(freq, file_rate, seconds), file_rate, subtype="FLOAT")
    y = load_audio(path, target_rate).numpy()
    assert abs(len(y) - target_rate * seconds) <= 1, f"{len(y)} samples for {seconds} s"
    assert abs(_peak_hz(y, target_rate) - freq) <= 1.0, f"peak moved to {_peak_hz(y, target_rate)}"
    # Away from the edges the result is the same sine sampled at the new rate.
    ideal = _sine(freq, target_rate, seconds)
    middle = slice(target_rate // 10, -target_rate // 10)
    err = np.abs(y[middle] - ideal[middle]).max()
    assert err < 1e-2, f"{file_rate}->{target_rate}: max deviation from the ideal sine {err:.3e}"


def test_multichannel_resampled_keeps_channels(tmp_path):
    # one tone per channel: resampling must keep each channel's own pitch, in file order
    tones = (500, 1000, 2000, 3000)
    path = tmp_path / "four.flac"
    sf.write(path, np.stack([_sine(f, 48000, 0.5) for f in tones], axis=1), 48000)
    y = load_audio(path, 16000, mono=False)
    assert y.shape == (4, 8000), f"expected (4, 8000), got {tuple(y.shape)}"
    peaks = [_peak_hz(channel, 16000) for channel in y.numpy()]
    assert np.allclose(peaks, tones, atol=2), f"channel peaks {peaks} Hz, expected {tones}"


def _write_text(path, text="this is not audio"):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", ["missing", "directory", "text", "empty", "nan", "inf"])
def test_bad_inputs_raise_audio_load_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"bad_{case}.wav"
    if case == "directory":
        path.mkdir()
    elif case == "text":
        _write_text(path)
    elif case == "empty":
        sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)
    elif case in ("nan", "inf"):
        x = np.zeros(1600, dtype=np.float32)
        x[100] = np.nan if case == "nan" else np.inf
        sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioLoadError) as info:
        load_audio(path, 16000)
    assert path.name in str(info.value), f"message should name the file: {info.value}"
    if case in ("missing", "directory", "text"):
        with pytest.raises(AudioLoadError, match=path.name):
            audio_info(path)


def test_audio_info_reads_the_header(tmp_path):
    path = tmp_path / "info.flac"
    sf.write(path, np.zeros((22050, 2), dtype=np.float32), 44100)
    info = audio_info(path)
    assert (info.frames, info.sample_rate, info.channels) == (22050, 44100, 2), f"{info}"
    assert info.duration == pytest.approx(0.5), f"duration {info.duration}"


def test_bad_sample_rate_is_config_error(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(100, dtype=np.float32), 16000)
    with pytest.raises(ConfigError, match="16000.0"):
        load_audio(path, 16000.0)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_save_audio_round_trips_and_leaves_no_temp_files(tmp_path, suffix):
    x = torch.from_numpy(np.stack([_sine(440, 16000, 0.5), _sine(880, 16000, 0.5, amp=0.2)]))
    path = save_audio(tmp_path / "sub" / f"out{suffix}", x, 16000)
    assert path.is_file(), f"{path} was not written"
    assert sorted(p.name for p in path.parent.iterdir()) == [f"out{suffix}"], "temp file left behind"
    y = load_audio(path, 16000, mono=False)
    assert y.shape[0] == 2 and abs(y.shape[1] - 8000) <= 1600, f"shape {tuple(y.shape)}"
    if suffix != ".ogg":
        err = (y - x).abs().max().item()
        assert err <= 1 / 32768 + 1e-7, f"{suffix}: PCM_16 round trip error {err:.2e}"
    else:
        assert abs(_peak_hz(y[0].numpy(), 16000) - 440) <= 2, "ogg round trip lost the pitch"


def test_save_audio_replaces_atomically_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    save_audio(path, np.zeros(160, dtype=np.float32), 16000, subtype="FLOAT")
    save_audio(path, np.full(320, 0.25, dtype=np.float32), 16000, subtype="FLOAT")
    assert audio_info(path).frames == 320, "second save should replace the first"

    def broken_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save_audio(path, np.zeros(999, dtype=np.float32), 16000)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"], "failed save left a temp file"
    assert load_audio(path, 16000).shape == (320,), "failed save must keep the old file intact"


def test_save_audio_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="clip.mp3"):
        save_audio(tmp_path / "clip.mp3", np.zeros(10), 16000)
    with pytest.raises(ConfigError, match="nan.wav"):
        save_audio(tmp_path / "nan.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(ConfigError, match="3d.wav"):
        save_audio(tmp_path / "3d.wav", np.zeros((1, 2, 3)), 16000)
    assert list(tmp_path.iterdir()) == [], "rejected saves must not create files"
