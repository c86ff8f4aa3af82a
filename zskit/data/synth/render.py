"""Rendering clips with a General MIDI SoundFont (tinysoundfont), and the corpus' worker jobs."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from zskit.data.gm import get_class
from zskit.data.synth.clips import clip_spec
from zskit.data.synth.music import ClipSpec, Stem
from zskit.errors import DataError, missing_dependency
from zskit.fileio import atomic_write, file_sha256

FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # Debian's fluid-soundfont-gm

STEM_LEVEL_DB = -20.0  # active RMS of every stem before its random gain (dBFS)
PEAK_LIMIT = 0.95  # the mix is scaled down when its peak exceeds this
LEVEL_FRAMES_PER_SECOND = 20  # active RMS is measured on 50 ms frames...
ACTIVE_FRAME_THRESHOLD = 1e-3  # ...that hold over 1/1000 of the loudest frame's energy
SILENT_RMS = 1e-6  # a stem below this active RMS is an error (the SoundFont lacks the sound)
DRUM_CHANNEL, DRUM_BANK = 9, 128  # GM percussion: MIDI channel 10, SoundFont bank 128
FLAC_SUBTYPE = "PCM_16"
_FLUSH_SAMPLES = 2048  # rendered after sounds_off() so a stem's release tail never reaches the next


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """``soundfont`` if given, else the ``ZSKIT_SOUNDFONT`` environment variable, else Debian's
    FluidR3_GM.sf2 if installed, else TimGM6mb.sf2 (shipped in pretty_midi)."""
    soundfont = soundfont or os.environ.get("ZSKIT_SOUNDFONT") or None
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise DataError(
                f"SoundFont {path} does not exist. Pass the path of a General MIDI .sf2/.sf3 file."
            )
        return path
    if FLUID_R3.is_file():
        return FLUID_R3
    try:
        import pretty_midi
    except ImportError:
        raise missing_dependency(
            "pretty_midi", "the synthetic corpus (its TimGM6mb SoundFont)"
        ) from None
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise DataError(
            f"{path} is missing from pretty_midi. Reinstall pretty_midi, or install "
            "fluid-soundfont-gm (apt) for FluidR3_GM.sf2, or pass soundfont=<file.sf2>."
        )
    return path


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256; ``size`` and ``mtime_ns`` key the cache, so a changed file is re-read."""
    return file_sha256(path)


def soundfont_info(path: str | Path) -> dict:
    """Name and sha256 prefix (16 hex digits) of a SoundFont file."""
    path = Path(path)
    stat = path.stat()
    return {"name": path.name, "sha256": _sha256(str(path), stat.st_size, stat.st_mtime_ns)[:16]}


def _tinysoundfont():
    try:
        import tinysoundfont
    except ImportError:
        raise missing_dependency(
            "tinysoundfont", "the synthetic corpus", 'pip install --no-deps "tinysoundfont>=0.3.7"'
        ) from None
    return tinysoundfont


def _active_rms(x: np.ndarray, frame: int) -> float:
    """RMS over the frames that sound (energy above 1/1000 of the loudest frame)."""
    n = len(x) // frame * frame
    energy = (x[:n].reshape(-1, frame) ** 2).mean(axis=1) if n else np.array([np.mean(x**2)])
    if energy.max() <= 0:
        return 0.0
    return float(np.sqrt(energy[energy > energy.max() * ACTIVE_FRAME_THRESHOLD].mean()))


class Renderer:
    """A SoundFont loaded once into a tinysoundfont synth; renders stems and mixes clips."""

    def __init__(self, soundfont: str | Path, sample_rate: int = 32000):
        tsf = _tinysoundfont()
        self.soundfont = Path(soundfont)
        self.sample_rate = int(sample_rate)
        self.synth = tsf.Synth(samplerate=self.sample_rate)
        try:
            self.sfid = self.synth.sfload(str(self.soundfont))
        except Exception as err:  # tinysoundfont raises plain exceptions on unreadable files
            raise DataError(
                f"Cannot load SoundFont {self.soundfont} ({err}). Pass a valid .sf2/.sf3 file."
            ) from err

    def _select(self, stem: Stem) -> int:
        """Select the stem's program (or the drum kit) and return its MIDI channel."""
        is_drum = get_class(stem.class_id).is_drum
        channel = DRUM_CHANNEL if is_drum else 0
        try:
            if is_drum:
                self.synth.program_select(channel, self.sfid, DRUM_BANK, 0, is_drums=True)
            else:
                self.synth.program_select(channel, self.sfid, 0, stem.program)
        except Exception as err:
            what = f"drum kit (bank {DRUM_BANK})" if is_drum else f"program {stem.program}"
            raise DataError(
                f"SoundFont {self.soundfont} has no {what} for class {stem.class_id!r} ({err}). "
                "Use a complete General MIDI SoundFont."
            ) from err
        return channel

    def render_stem(self, stem: Stem, n_samples: int) -> np.ndarray:
        """The stem's notes, played alone, as mono float32 of ``n_samples``."""
        channel = self._select(stem)
        sr = self.sample_rate
        events = sorted(
            [(round(n.start * sr), 1, n.pitch, n.velocity) for n in stem.notes]
            + [(round(n.end * sr), 0, n.pitch, 0) for n in stem.notes]
        )  # at equal times note-offs (0) come before note-ons (1)
        buffer = bytearray(n_samples * 8)  # interleaved stereo float32: 8 bytes per sample
        view, pos = memoryview(buffer), 0
        for t, is_on, key, velocity in events:
            t = min(t, n_samples)
            if t > pos:
                self.synth.generate_simple(t - pos, buffer=view[pos * 8 : t * 8])
                pos = t
            if is_on:
                self.synth.noteon(channel, key, velocity)
            else:
                self.synth.noteoff(channel, key)
        if pos < n_samples:
            self.synth.generate_simple(n_samples - pos, buffer=view[pos * 8 :])
        self.synth.sounds_off()
        self.synth.generate_simple(_FLUSH_SAMPLES)
        stereo = np.frombuffer(buffer, dtype=np.float32)
        return (stereo[0::2] + stereo[1::2]) * np.float32(0.5)

    def render(self, spec: ClipSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The mix (mono float32, peak <= 0.95) and the levelled stems by class id."""
        n = round(spec.duration * self.sample_rate)
        frame = max(1, self.sample_rate // LEVEL_FRAMES_PER_SECOND)
        stems: dict[str, np.ndarray] = {}
        for stem in spec.stems:
            audio = self.render_stem(stem, n)
            level = _active_rms(audio, frame)
            if level < SILENT_RMS:
                raise DataError(
                    f"Class {stem.class_id!r} (program {stem.program}) renders silence with "
                    f"SoundFont {self.soundfont}. Use a complete General MIDI SoundFont."
                )
            gain = 10 ** ((STEM_LEVEL_DB + stem.gain_db) / 20) / level
            stems[stem.class_id] = stems.get(stem.class_id, 0) + audio * gain
        mix = np.sum(list(stems.values()), axis=0) if stems else np.zeros(n, dtype=np.float32)
        level = _active_rms(mix, frame)
        if level > 0:
            mix = mix * (10 ** (spec.loudness_db / 20) / level)
        peak = float(np.max(np.abs(mix))) if n else 0.0
        if peak > PEAK_LIMIT:
            mix = mix * (PEAK_LIMIT / peak)
        return mix.astype(np.float32), stems


@functools.lru_cache(maxsize=2)
def _renderer(soundfont: str, sample_rate: int) -> Renderer:
    return Renderer(soundfont, sample_rate)


def render_clip(
    spec: ClipSpec, *, sample_rate: int = 32000, soundfont: str | Path | None = None
) -> np.ndarray:
    """Render ``spec`` to mono float32 at ``sample_rate``; the SoundFont loads once per process."""
    return _renderer(str(find_soundfont(soundfont)), int(sample_rate)).render(spec)[0]


# ----------------------------------------------------------------------------- worker jobs


class RenderJob(NamedTuple):
    """One clip of a corpus for a worker process: what to render and where to write it."""

    index: int
    seed: int
    clip_seconds: float
    max_instruments: int
    sample_rate: int
    soundfont: str
    path: str


def _write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC atomically (``zskit.audio.io.save_audio`` would import torch per worker)."""
    with atomic_write(path, "w+b") as fh:  # soundfile seeks back to finish the FLAC header
        sf.write(fh, audio, sample_rate, format="FLAC", subtype=FLAC_SUBTYPE)


def _render_job(job: RenderJob) -> int:
    """Render and write one clip; returns its index."""
    spec = clip_spec(job.index, job.seed, job.clip_seconds, job.max_instruments)
    audio = _renderer(job.soundfont, job.sample_rate).render(spec)[0]
    _write_flac(Path(job.path), audio, job.sample_rate)
    return job.index


def _render_jobs(jobs: list[RenderJob]) -> list[int]:
    """A chunk of jobs in one worker task (fewer round trips than one task per clip)."""
    return [_render_job(job) for job in jobs]


def _init_worker(soundfont: str, sample_rate: int) -> None:
    """Load the SoundFont once when a worker process starts."""
    _renderer(soundfont, sample_rate)
