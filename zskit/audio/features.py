"""Front-end features of many clips at once, for training models from scratch on a CPU.

Training a spectrogram transformer for several epochs recomputes the same spectrograms every
epoch; :func:`clip_features` computes them once (one centred window per clip) so ``fit`` can train
on an in-memory tensor, and with ``cache_dir`` keeps them on disk so a rerun loads them.
Random-crop or waveform augmentation needs the waveforms instead.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
import torchaudio
from torch import nn
from tqdm.auto import tqdm

from zskit.audio.io import audio_info, check_samples, decode_error, load_audio
from zskit.audio.segments import center_pad
from zskit.devices import module_device
from zskit.errors import ConfigError
from zskit.fileio import atomic_write, load_cache_file

__all__ = ["clip_features", "resampler"]

_CACHE_VERSION = 1  # bump when the stored layout or the computation changes


@torch.no_grad()
def clip_features(paths: Sequence[str | os.PathLike], frontend: nn.Module, sample_rate: int,
                  seconds: float | None = None, progress: bool = True, batch_size: int = 64,
                  cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """``frontend`` applied to each file, stacked: ``(N, *frontend_output_shape)`` float32.

    Each file is loaded at ``sample_rate`` (the front end's rate) and, with ``seconds``, cut to
    its middle ``seconds`` (or zero-padded around, when shorter), so all outputs share one shape;
    then ``batch_size`` clips at a time are resampled and passed through the front end together
    (clip by clip both cost several times more). With ``cache_dir`` the result is stored there
    (atomically) under a key made of the front end (class, ``cfg``, state), the rate, ``seconds``
    and the files' paths, sizes and modification times; a later call with the same key loads it.
    The front end runs where its buffers are (e.g. a GPU); the result is on the CPU.
    """
    if not paths:
        raise ConfigError("clip_features got no files; pass at least one path.")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1.")
    if seconds is not None and not seconds > 0:
        raise ConfigError(f"seconds={seconds!r} must be positive (or None for whole files).")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{_cache_key(paths, frontend, sample_rate, seconds)}.pt"
        if cache.is_file():
            return load_cache_file(cache)
    frontend = frontend.eval()
    device = module_device(frontend) or torch.device("cpu")

    def features(waves: torch.Tensor) -> torch.Tensor:
        return frontend(waves.to(device)).float().cpu()

    if seconds is None:  # whole files: lengths differ, so one at a time
        out = [features(load_audio(p, sample_rate)[None])[0]
               for p in tqdm(paths, desc="features", disable=not progress, leave=False)]
        shapes = {tuple(x.shape) for x in out}
        if len(shapes) > 1:
            raise ConfigError(f"files gave features of different shapes {sorted(shapes)[:3]}; set "
                              "`seconds` (or a front end with a fixed target length).")
        feats = torch.stack(out)
    else:
        starts = range(0, len(paths), batch_size)
        feats = torch.cat([
            features(_middles(paths[i:i + batch_size], seconds, sample_rate))
            for i in tqdm(starts, desc="features", unit="batch", disable=not progress, leave=False)
        ])
    if cache is not None:
        with atomic_write(cache) as fh:
            torch.save(feats, fh)
    return feats


@functools.cache
def resampler(source: int, target: int) -> torchaudio.transforms.Resample:
    """A resampler from ``source`` to ``target`` Hz with its kernel built once (rebuilding it per
    call, as ``torchaudio.functional.resample`` does, costs more than resampling a short clip)."""
    return torchaudio.transforms.Resample(source, target)


def _cache_key(paths: Sequence[str | os.PathLike], frontend: nn.Module, sample_rate: int,
               seconds: float | None) -> str:
    from zskit.cache import files_digest, state_dict_digest  # zskit.cache imports zskit.data

    config = getattr(frontend, "cfg", None)
    files = files_digest([Path(p).resolve() for p in paths])
    text = (f"{_CACHE_VERSION}\0{type(frontend).__qualname__}\0{config!r}\0"
            f"{state_dict_digest(frontend)}\0{sample_rate}\0{seconds!r}\0{files}")
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _middles(paths: Sequence[str | os.PathLike], seconds: float, sample_rate: int) -> torch.Tensor:
    """The middle ``seconds`` of each file at ``sample_rate``, ``(len(paths), samples)``; clips that
    share a source rate and length are resampled together."""
    length = round(seconds * sample_rate)
    raw = [_middle(p, seconds) for p in paths]
    out: list[torch.Tensor | None] = [None] * len(raw)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (wave, rate) in enumerate(raw):
        groups.setdefault((rate, wave.shape[-1]), []).append(i)
    for (rate, _), rows in groups.items():
        waves = torch.stack([raw[i][0] for i in rows])
        if rate != sample_rate:
            waves = resampler(rate, sample_rate)(waves)
        for i, wave in zip(rows, waves):
            out[i] = center_pad(wave, length)
    return torch.stack(out)


def _middle(path: str | os.PathLike, seconds: float) -> tuple[torch.Tensor, int]:
    """The middle ``seconds`` of a file, mono, at the file's rate, and that rate; only that part is
    decoded (decoding whole 10 s clips would cost more than the features)."""
    info = audio_info(path)
    need = min(info.frames, math.ceil(seconds * info.sample_rate))
    try:
        data, rate = sf.read(str(path), start=(info.frames - need) // 2, frames=need,
                             dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise decode_error(Path(path), err) from err
    check_samples(Path(path), data)  # as load_audio: no silent zeros or NaN features
    # mono in numpy: a torch reduction over this (1, T) view costs ~10x more on a busy CPU
    return torch.from_numpy(data.mean(axis=1, dtype="float32")), int(rate)
