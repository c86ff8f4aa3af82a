"""Audio file I/O with soundfile (libsndfile: wav, flac, ogg, mp3) and torchaudio resampling.

``torchaudio.load``/``save`` need FFmpeg and are not used. Every failure raises ``AudioLoadError``
naming the file and saying what to do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from zskit.errors import AudioLoadError, ConfigError
from zskit.fileio import atomic_write

__all__ = ["SAVE_FORMATS", "AudioInfo", "audio_info", "check_samples", "decode_error", "load_audio",
           "save_audio"]

log = logging.getLogger(__name__)

SAVE_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
_PCM_DTYPES = (np.dtype(np.int16), np.dtype(np.int32))


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioLoadError(f"audio file not found: {path}. Check the path, or re-create the data "
                             "(e.g. `zskit data synth`).")
    if path.is_dir():
        raise AudioLoadError(f"{path} is a directory, not an audio file; pass the path of a file in it.")


def decode_error(path: Path, err: Exception) -> AudioLoadError:
    """The error for a file libsndfile could not decode (``err``), saying how to fix the file."""
    return AudioLoadError(
        f"could not decode {path} ({err}). The file is corrupt, truncated or not audio that "
        "libsndfile reads (wav, flac, ogg, mp3): re-download or re-generate it, or convert it to wav."
    )


def check_samples(path: Path, data: np.ndarray) -> None:
    """Raise ``AudioLoadError`` when the samples decoded from ``path`` are empty or not finite."""
    if data.size == 0:
        raise AudioLoadError(f"{path} holds no audio samples (zero length); re-create the file or "
                             "drop it from the manifest.")
    if not np.isfinite(data).all():
        raise AudioLoadError(f"{path} contains NaN or infinite samples; re-create the file or drop it "
                             "from the manifest.")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Frames, sample rate and channels of ``path`` from its header (``.duration`` in seconds)."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise decode_error(path, err) from err
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate),
                     channels=int(info.channels))


def load_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True) -> torch.Tensor:
    """Read ``path`` as float32 at ``sample_rate``: shape ``(T,)`` if ``mono`` (channel mean), else ``(C, T)``.

    Any input rate is resampled with ``torchaudio.functional.resample`` (windowed sinc).
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r} must be a positive int (e.g. 16000 or 32000).")
    path = Path(path)
    _check_file(path)
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise decode_error(path, err) from err
    check_samples(path, data)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    if mono:
        wav = wav.mean(dim=0)
    if file_rate != sample_rate:
        log.debug("resampling %s from %d Hz to %d Hz", path, file_rate, sample_rate)
        wav = torchaudio.functional.resample(wav, int(file_rate), sample_rate)
    return wav.contiguous()


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int,
               subtype: str | None = None) -> Path:
    """Write ``wav`` (``(T,)`` or ``(C, T)``) to ``path`` atomically; format from the suffix.

    Samples are floats in [-1, 1] or int16/int32 PCM (scaled by their full range, as
    ``load_audio`` reads them back).

    Suffixes: ``.wav``, ``.flac``, ``.ogg`` (``SAVE_FORMATS``). ``subtype`` is soundfile's (e.g.
    ``'PCM_16'``, the default for wav and flac, or ``'FLOAT'`` for lossless float wav). The data go
    to a temporary file in the same folder that then replaces ``path``, so readers never see a
    half-written file. Parent folders are created. Returns ``path``.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the audio format of {path}: use one of the suffixes "
                          f"{sorted(SAVE_FORMATS)}.")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r} for {path} must be a positive int.")
    if torch.is_tensor(wav):  # numpy has no bfloat16
        wav = wav.detach().cpu()
        data = (wav.float() if wav.dtype == torch.bfloat16 else wav).numpy()
    else:
        data = np.asarray(wav)
    if data.ndim not in (1, 2) or data.shape[-1] == 0:
        raise ConfigError(f"audio for {path} must be shaped (T,) or (C, T) with T > 0, "
                          f"got {data.shape}.")
    # int16/int32 PCM goes to soundfile as it is, which scales it by the type's range (a cast to
    # float would keep PCM's scale and clip every sample)
    if data.dtype not in _PCM_DTYPES:
        if not np.issubdtype(data.dtype, np.floating):
            raise ConfigError(f"audio for {path} has dtype {data.dtype}; pass float samples in "
                              "[-1, 1] or int16/int32 PCM (e.g. uint8: (x - 128) / 128).")
        if not np.isfinite(data).all():
            raise ConfigError(f"audio for {path} contains NaN or infinite samples; fix them before "
                              "saving.")
        data = data.astype(np.float32, copy=False)
    frames = data if data.ndim == 1 else data.T  # soundfile wants (T, C)
    with atomic_write(path, "w+b") as fh:  # soundfile seeks and reads back while writing
        sf.write(fh, frames, sample_rate, subtype=subtype, format=fmt)
    return path
