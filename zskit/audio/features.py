"""Front-end features of many clips at once, for training models from scratch on a CPU.

Training a spectrogram transformer for several epochs recomputes the same spectrograms every
epoch; :func:`clip_features` computes them once (one centred window per clip) so ``fit`` can train
on an in-memory tensor. Random-crop or waveform augmentation needs the waveforms instead.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import soundfile as sf
import torch
import torchaudio
from torch import nn
from tqdm.auto import tqdm

from zskit.audio.io import audio_info, load_audio
from zskit.audio.segments import center_pad
from zskit.errors import AudioLoadError, ConfigError

__all__ = ["clip_features", "resampler"]


@torch.no_grad()
def clip_features(paths: Sequence[str | os.PathLike], frontend: nn.Module, sample_rate: int,
                  seconds: float | None = None, progress: bool = True) -> torch.Tensor:
    """``frontend`` applied to each file, stacked: ``(N, *frontend_output_shape)`` float32.

    Each file is loaded at ``sample_rate`` (the front end's rate) and, with ``seconds``, cut to
    its middle ``seconds`` (or zero-padded around, when shorter), so all outputs share one shape.
    """
    if not paths:
        raise ConfigError("clip_features got no files; pass at least one path.")
    length = None
    if seconds is not None:
        if not seconds > 0:
            raise ConfigError(f"seconds={seconds!r} must be positive (or None for whole files).")
        length = round(seconds * sample_rate)
    frontend = frontend.eval()
    out = []
    for path in tqdm(paths, desc="features", disable=not progress, leave=False):
        if seconds is None:
            wave = load_audio(path, sample_rate)
        else:
            wave = center_pad(_middle(path, seconds, sample_rate), length)
        out.append(frontend(wave[None])[0].float())
    shapes = {tuple(x.shape) for x in out}
    if len(shapes) > 1:
        raise ConfigError(f"files gave features of different shapes {sorted(shapes)[:3]}; set "
                          "`seconds` (or a front end with a fixed target length).")
    return torch.stack(out)


@functools.cache
def resampler(source: int, target: int) -> torchaudio.transforms.Resample:
    """A resampler from ``source`` to ``target`` Hz with its kernel built once (rebuilding it per
    call, as ``torchaudio.functional.resample`` does, costs more than resampling a short clip)."""
    return torchaudio.transforms.Resample(source, target)


def _middle(path: str | os.PathLike, seconds: float, sample_rate: int) -> torch.Tensor:
    """The middle ``seconds`` of a file, mono, at ``sample_rate``; only that part is decoded
    (decoding and resampling whole 10 s clips would cost more than the features)."""
    info = audio_info(path)
    need = min(info.frames, math.ceil(seconds * info.sample_rate))
    try:
        data, rate = sf.read(str(path), start=(info.frames - need) // 2, frames=need,
                             dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioLoadError(f"could not decode {path}: {err}") from err
    wave = torch.from_numpy(data.T.copy()).mean(0)
    return resampler(int(rate), sample_rate)(wave) if rate != sample_rate else wave
