"""The embedded default corpus: polyphonic instrument clips rendered from a General MIDI SoundFont.

Each clip holds 1-4 instruments (classes of ``zskit.data.gm``) playing scale-based melodies, chords,
arpeggios, strums, bass lines or drum patterns in one key and tempo. Every instrument is rendered as
its own stem with tinysoundfont and mixed, so its labels are exactly the instruments it holds.

- Audio: mono FLAC (16-bit) at 32 kHz by default, high enough for every encoder (16 and 32 kHz
  front ends resample down). Each stem is levelled to its active RMS plus a random gain (-6..0 dB);
  the mix is set to a loudness drawn from its dynamics (-30..-15 dBFS) and peak-limited to 0.95.
- Determinism: clip ``i`` depends only on ``(seed, i)``: its music on
  ``np.random.default_rng([seed, i])``, its annotation mask on ``[seed, i, 1]`` and its captions on
  ``[seed, i, 2]``; parallel, resumed and repeated runs write identical audio.
- Partial labels, OpenMIC-style: OpenMIC-2018 has ~41,000 crowd answers over 20,000 clips x 20
  classes (about 2 annotated labels per clip, ~10% of all entries). Here a clip's positives are
  annotated with probability 0.8 and each negative with 0.065, which with ~49 classes and ~2.4
  instruments per clip also annotates ~10% of the entries, about 40% of them positive; every clip
  has at least one annotated label. ``labels`` is the truth, ``annotated`` the mask.
- Splits: 70/15/15 train/validation/test by iterative stratification over the labels (Sechidis et
  al., 2011), so every class appears in every split at the default size.
- Layout: ``audio/<clip_id>.flac``, ``manifest.csv``, ``metadata.json`` (written last; with all
  clips present it marks the corpus complete) and ``params.json`` (written first; lets an
  interrupted run resume and refuses a different set of parameters).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from zskit.data import captions as cap
from zskit.data.gm import (
    CLASSES,
    FAMILIES,
    OPENMIC_CLASSES,
    InstrumentClass,
    class_ids,
    get_class,
    hierarchy,
)
from zskit.data.manifest import (
    MANIFEST_NAME,
    METADATA_NAME,
    Corpus,
    join_list,
    load_corpus,
    read_json,
    write_json,
    write_manifest,
)
from zskit.data.splits import stratified_split
from zskit.errors import ConfigError, DataError, missing_dependency
from zskit.paths import data_root

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
DEFAULT_CLIPS = 2000
SMOKE_CLIPS = 100
PARAMS_NAME = "params.json"
SPLITS = ("train", "validation", "test")
FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
_FLUSH_SAMPLES = 2048  # rendered after sounds_off() so a stem's release tail never reaches the next

__all__ = [
    "ClipSpec",
    "Corpus",
    "Note",
    "Renderer",
    "Stem",
    "SynthConfig",
    "annotation_mask",
    "clip_id",
    "clip_spec",
    "default_corpus_dir",
    "ensure_corpus",
    "find_soundfont",
    "generate_corpus",
    "load_corpus",
    "render_clip",
    "soundfont_info",
]


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a corpus' content; recorded in params.json and metadata.json."""

    n_clips: int = DEFAULT_CLIPS
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    max_instruments: int = 4
    p_annotate_positive: float = 0.8
    p_annotate_negative: float = 0.065
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if not isinstance(self.n_clips, (int, np.integer)) or self.n_clips < 1:
            raise ConfigError(f"n_clips={self.n_clips!r}; use a positive integer such as 2000.")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r}; use a non-negative integer.")
        if not 8000 <= self.sample_rate <= 96000:
            raise ConfigError(
                f"sample_rate={self.sample_rate}; use 8000..96000 Hz (32000 is the default)."
            )
        if not 1.0 <= self.clip_seconds <= 60.0:
            raise ConfigError(
                f"clip_seconds={self.clip_seconds}; use 1..60 seconds (10 is the default)."
            )
        if not 1 <= self.max_instruments <= 4:
            raise ConfigError(f"max_instruments={self.max_instruments}; use 1..4.")
        if len(self.split_fractions) != 3 or min(self.split_fractions) <= 0:
            raise ConfigError(
                f"split_fractions={self.split_fractions}; use three positive numbers."
            )

    def params(self) -> dict:
        """The JSON-able parameter record (with the generator version)."""
        record = asdict(self)
        record["split_fractions"] = list(self.split_fractions)
        return {"generator_version": GENERATOR_VERSION, **record}


# ----------------------------------------------------------------------------- clip specification


@dataclass(frozen=True)
class Note:
    """One note: seconds from the clip start, MIDI key (a GM percussion key for drum classes)."""

    start: float
    end: float
    pitch: int
    velocity: int = 100


@dataclass(frozen=True)
class Stem:
    """One instrument of a clip; ``program`` is the GM program (ignored for drum-kit classes)."""

    class_id: str
    notes: tuple[Note, ...]
    program: int = 0
    gain_db: float = 0.0
    role: str = "melody"


@dataclass(frozen=True)
class ClipSpec:
    """What to render; ``render_clip`` turns it into audio. Labels are the stems' classes."""

    stems: tuple[Stem, ...]
    duration: float
    tempo: float = 120.0
    beats_per_bar: int = 4
    key: str = "C"
    scale: str = "major"
    dynamics: str = "moderate"
    loudness_db: float = -20.0

    @property
    def classes(self) -> list[str]:
        """The clip's class ids (its positive labels), in corpus order."""
        present = {s.class_id for s in self.stems}
        return [c for c in class_ids() if c in present]

    @property
    def mood(self) -> str:
        """Bright (major-like scales) or dark (minor-like)."""
        return "bright" if self.scale in _BRIGHT else "dark"

    @property
    def register(self) -> str:
        """Low, middle or high: from the mean MIDI key of the pitched notes."""
        keys = [n.pitch for s in self.stems if not get_class(s.class_id).is_drum for n in s.notes]
        if not keys:
            return "middle"
        mean = float(np.mean(keys))
        return "low" if mean < 55 else "high" if mean > 71 else "middle"


_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
}
_BRIGHT = {"major", "mixolydian", "major pentatonic"}
_HARMONY = {"major pentatonic": "major", "minor pentatonic": "minor"}  # chords of pentatonic tunes
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (0, 3, 0, 4), (5, 3, 0, 4), (0, 5, 4, 0))
_KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_DYNAMICS = {
    "soft": (55, -30.0, -25.0),
    "moderate": (80, -25.0, -20.0),
    "loud": (105, -20.0, -15.0),
}


@dataclass(frozen=True)
class _Music:
    """The shared musical frame of one clip."""

    duration: float
    beat: float
    beats_per_bar: int
    root: int
    scale: tuple[int, ...]
    chords: tuple[tuple[int, ...], ...]  # pitch classes per bar, chord root first
    velocity: int

    @property
    def bar(self) -> float:
        return self.beat * self.beats_per_bar

    @property
    def n_bars(self) -> int:
        return int(np.ceil(self.duration / self.bar))

    def scale_pcs(self) -> set[int]:
        return {(self.root + s) % 12 for s in self.scale}


def _keys_in(lo: int, hi: int, pcs: set[int] | tuple[int, ...]) -> list[int]:
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _window(
    cls: InstrumentClass, rng: np.random.Generator, width: int, top: int | None = None
) -> tuple[int, int]:
    """A random range of ``width`` semitones inside the class' range (below ``top`` if given)."""
    high = cls.high if top is None else min(cls.high, max(top, cls.low + width))
    lo = int(rng.integers(cls.low, max(cls.low, high - width) + 1))
    return lo, min(cls.high, lo + width)


def _velocity(m: _Music, rng: np.random.Generator, t: float, accent: int = 10) -> int:
    on_bar = abs((t / m.bar) - round(t / m.bar)) < 1e-6
    return int(np.clip(m.velocity + (accent if on_bar else 0) + rng.normal(0, 6), 15, 127))


def _step(idx: int, n: int, rng: np.random.Generator) -> int:
    idx += int(rng.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3)))
    if idx < 0:
        idx = -idx
    if idx >= n:
        idx = 2 * (n - 1) - idx
    return int(np.clip(idx, 0, n - 1))


def _melody(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    lo, hi = _window(cls, rng, int(rng.integers(12, 20)))
    keys = _keys_in(lo, hi, m.scale_pcs())
    slow = cls.id in ("tubular_bells",)
    lengths = (
        (1.0, 2.0) if slow else (0.5, 1.0, 1.0, 1.5, 2.0) if m.beat >= 0.4 else (1.0, 1.0, 2.0)
    )
    legato = rng.uniform(0.7, 0.98)
    idx, t, notes = int(rng.integers(len(keys))), t0, []
    while t < m.duration - 0.2:
        length = float(rng.choice(lengths)) * m.beat
        if not notes or rng.random() > 0.15:
            idx = _step(idx, len(keys), rng)
            notes.append(Note(t, t + length * legato, keys[idx], _velocity(m, rng, t)))
        t += length
    return notes


def _tremolo(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Mandolin-style tremolo: each melody note re-picked about 14 times a second."""
    notes = []
    for note in _melody(m, cls, rng, t0):
        span = note.end - note.start
        picks = max(1, round(span / 0.07))
        step = span / picks
        for k in range(picks):
            t = note.start + k * step
            notes.append(
                Note(
                    t,
                    t + step * 0.95,
                    note.pitch,
                    int(np.clip(note.velocity - 12 * (k % 2), 15, 127)),
                )
            )
    return notes


def _chord_hits(
    m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float, hits: int, legato: float
) -> list[Note]:
    lo, hi = _window(cls, rng, int(rng.integers(14, 20)), top=(cls.low + cls.high) // 2 + 12)
    size = int(rng.integers(3, 5))
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        voicing = _keys_in(lo, hi, m.chords[bar])[:size]
        step = m.bar / hits
        for k in range(hits):
            t = bar * m.bar + k * step
            vel = _velocity(m, rng, t)
            notes.extend(Note(t, t + step * legato, p, vel) for p in voicing)
    return notes


def _chords(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    hits = int(rng.choice((1, 2, m.beats_per_bar)))
    return _chord_hits(m, cls, rng, t0, hits, legato=0.9)


def _pad(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    return _chord_hits(m, cls, rng, t0, hits=1, legato=0.98)


def _arpeggio(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    lo, _ = _window(cls, rng, 19)
    step = m.beat / (2 if m.beat < 0.6 else 4)
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        tones = _keys_in(lo, min(cls.high, lo + 19), m.chords[bar])
        cycle = tones + tones[-2:0:-1] if len(tones) > 2 else tones
        n = round(m.bar / step)
        for k in range(n):
            t = bar * m.bar + k * step
            notes.append(
                Note(t, t + step * 0.95, cycle[k % len(cycle)], _velocity(m, rng, t, accent=8))
            )
    return notes


_STRUMS = ((0,), (0, 4), (0, 2, 3, 5, 6), (0, 3, 6), (0, 2, 4, 6), (0, 1, 2, 3, 4, 5, 6, 7))


def _strum(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Strummed chords on an eighth-note grid: downstrokes low to high, upstrokes high to low."""
    size = {"ukulele": 4, "banjo": 5}.get(cls.id, 6)
    top = cls.low + 24
    pattern = [p for p in _STRUMS[int(rng.integers(len(_STRUMS)))] if p < 2 * m.beats_per_bar]
    spread = rng.uniform(0.008, 0.02)
    times = [
        bar * m.bar + p * m.beat / 2
        for bar in range(int(t0 / m.bar + 1e-9), m.n_bars)
        for p in pattern
    ]
    notes = []
    for k, t in enumerate(times):
        bar = min(int(t / m.bar + 1e-9), m.n_bars - 1)
        voicing = _keys_in(cls.low, min(cls.high, top), m.chords[bar])[:size]
        down = round((t % m.bar) / (m.beat / 2)) % 2 == 0
        order = voicing if down else voicing[::-1][:3]
        end = times[k + 1] if k + 1 < len(times) else m.duration
        vel = _velocity(m, rng, t) - (0 if down else 15)
        notes.extend(Note(t + j * spread, end, p, max(15, vel)) for j, p in enumerate(order))
    return notes


def _bass(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    lo, hi = cls.low, min(cls.high, cls.low + 17)
    patterns = (
        ((0, 0),),
        ((0, 0), (2, 7)),
        tuple((b, 0) for b in range(m.beats_per_bar)),
        ((0, 0), (1.5, 0), (2, 7), (3, 12)),
    )
    pattern = [e for e in patterns[int(rng.integers(len(patterns)))] if e[0] < m.beats_per_bar]
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        root = _keys_in(lo, hi, (m.chords[bar][0],))[0]
        for k, (beat, interval) in enumerate(pattern):
            nxt = pattern[k + 1][0] if k + 1 < len(pattern) else m.beats_per_bar
            t = bar * m.bar + beat * m.beat
            key = root + interval if root + interval <= cls.high else root
            notes.append(Note(t, t + (nxt - beat) * m.beat * 0.9, key, _velocity(m, rng, t)))
    return notes


def _hits(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Timpani / taiko: a hit on each bar, random hits on other beats, a roll every fourth bar."""
    fixed = int(rng.integers(cls.low, cls.high + 1))
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        pitch = (
            _keys_in(cls.low, cls.high, (m.chords[bar][0],))[0] if cls.id == "timpani" else fixed
        )
        start = bar * m.bar
        for beat in range(m.beats_per_bar):
            t = start + beat * m.beat
            if bar % 4 == 3 and beat == m.beats_per_bar - 1:
                n = max(2, int(m.beat / 0.06))
                notes.extend(
                    Note(
                        t + k * m.beat / n,
                        t + (k + 1) * m.beat / n,
                        pitch,
                        int(np.clip(m.velocity - 20 + 25 * k / n, 15, 127)),
                    )
                    for k in range(n)
                )
            elif beat == 0 or rng.random() < 0.35:
                notes.append(Note(t, t + m.beat * 0.9, pitch, _velocity(m, rng, t)))
    return notes


def _hit(t: float, key: int, vel: int, length: float = 0.2) -> Note:
    return Note(t, t + length, key, int(np.clip(vel, 15, 127)))


def _drum_kit(m: _Music, rng: np.random.Generator, t0: float) -> list[Note]:
    kick, snare = int(rng.choice((35, 36))), int(rng.choice((38, 40)))
    if m.velocity < 60 and rng.random() < 0.5:
        snare = 37  # side stick for soft clips
    style = str(rng.choice(("rock", "four", "half")))
    hat_div = 4 if m.beat > 0.55 and rng.random() < 0.5 else 2
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        for beat in range(m.beats_per_bar):
            t = bar * m.bar + beat * m.beat
            if (
                style == "four"
                or beat == 0
                or (style == "rock" and beat == 2)
                or (style == "rock" and beat == 3 and rng.random() < 0.3)
            ):
                notes.append(_hit(t, kick, m.velocity + 10))
            if m.beats_per_bar == 3:
                back = beat > 0
            else:
                back = beat == 2 if style == "half" else beat % 2 == 1
            if back:
                notes.append(_hit(t, snare, m.velocity + 5))
            if bar % 4 == 3 and beat == m.beats_per_bar - 1 and rng.random() < 0.6:
                toms = (50, 48, 47, 45, 43, 41)
                notes.extend(
                    _hit(t + k * m.beat / 4, toms[k + int(rng.integers(3))], m.velocity)
                    for k in range(4)
                )
                continue
            for k in range(hat_div):
                open_hat = k == hat_div - 1 and beat == m.beats_per_bar - 1 and rng.random() < 0.3
                notes.append(
                    _hit(
                        t + k * m.beat / hat_div,
                        46 if open_hat else 42,
                        m.velocity - (0 if k == 0 else 15) + rng.normal(0, 5),
                    )
                )
    return notes


def _cymbals(m: _Music, rng: np.random.Generator, t0: float) -> list[Note]:
    ride, crash = int(rng.choice((51, 59))), int(rng.choice((49, 57)))
    every = int(rng.choice((2, 4)))
    ride_div = int(rng.choice((1, 2)))
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        for beat in range(m.beats_per_bar):
            t = bar * m.bar + beat * m.beat
            if beat == 0 and (bar - int(t0 / m.bar + 1e-9)) % every == 0:
                notes.append(_hit(t, crash, m.velocity + 15, 1.5))
                continue
            if rng.random() < 0.08:
                notes.append(_hit(t, int(rng.choice((52, 55))), m.velocity + 10, 1.0))
                continue
            for k in range(ride_div):
                key = 53 if k == 0 and rng.random() < 0.15 else ride
                notes.append(
                    _hit(t + k * m.beat / ride_div, key, m.velocity - 8 * k + rng.normal(0, 5), 0.8)
                )
    return notes


def _hand_percussion(
    m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float
) -> list[Note]:
    """Congas, tambourine, cowbell: a one-bar pattern on a 16th grid, repeated with variations."""
    grid = 4 if m.beat > 0.45 else 2
    steps = grid * m.beats_per_bar
    if cls.id == "tambourine":
        style = int(rng.integers(3))
        base = [
            s
            for s in range(steps)
            if (style == 0 and s % (2 * grid) == grid)
            or (style == 1 and s % (grid // 2) == 0)
            or style == 2
        ]
    elif cls.id == "cowbell":
        base = [s for s in range(steps) if s % grid == 0 or rng.random() < 0.15]
    else:
        base = [s for s in range(steps) if s == 0 or rng.random() < 0.45]
    keys = {s: int(rng.choice(cls.drum_notes)) for s in range(steps)}
    notes = []
    for bar in range(int(t0 / m.bar + 1e-9), m.n_bars):
        for s in base:
            if s and rng.random() < 0.1:
                continue
            t = bar * m.bar + s * m.beat / grid
            accent = 12 if s % grid == 0 else 0
            notes.append(_hit(t, keys[s], m.velocity - 8 + accent + rng.normal(0, 5), 0.25))
    return notes


def _beat(m: _Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    if cls.id == "drums":
        return _drum_kit(m, rng, t0)
    if cls.id == "cymbals":
        return _cymbals(m, rng, t0)
    return _hand_percussion(m, cls, rng, t0)


_ROLE_FUNCS = {
    "melody": _melody,
    "chords": _chords,
    "pad": _pad,
    "arpeggio": _arpeggio,
    "strum": _strum,
    "tremolo": _tremolo,
    "bass": _bass,
    "hits": _hits,
    "beat": _beat,
}


def _tidy(notes: list[Note], duration: float) -> tuple[Note, ...]:
    """Drop notes starting in the last 50 ms, end notes at the clip end, and end each note before
    the next onset of the same key (a note-off would otherwise cut the newer note)."""
    kept = sorted(
        (n for n in notes if 0 <= n.start < duration - 0.05), key=lambda n: (n.start, n.pitch)
    )
    next_start: dict[int, float] = {}
    out = []
    for n in reversed(kept):
        end = min(n.end, duration, next_start.get(n.pitch, duration))
        if end - n.start >= 0.02:
            out.append(Note(round(n.start, 5), round(end, 5), int(n.pitch), int(n.velocity)))
        next_start[n.pitch] = n.start
    return tuple(reversed(out))


def _pick_classes(rng: np.random.Generator, n: int) -> list[str]:
    ids, chosen, groups = class_ids(), [], set()
    while len(chosen) < n:
        options = [c for c in ids if c not in chosen and get_class(c).exclusive not in groups]
        pick = options[int(rng.integers(len(options)))]
        chosen.append(pick)
        if get_class(pick).exclusive:
            groups.add(get_class(pick).exclusive)
    return chosen


def clip_id(index: int) -> str:
    """The id of clip ``index``: ``clip_000042``."""
    return f"clip_{index:06d}"


def clip_spec(
    index: int, seed: int = 0, clip_seconds: float = 10.0, max_instruments: int = 4
) -> ClipSpec:
    """The content of clip ``index``, drawn from ``np.random.default_rng([seed, index])`` only."""
    rng = np.random.default_rng([seed, index])
    tempo = int(rng.integers(60, 161))
    beats_per_bar = 3 if rng.random() < 0.2 else 4
    root = int(rng.integers(12))
    scale = str(rng.choice(list(_SCALES)))
    harmony = _SCALES[_HARMONY.get(scale, scale)]
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    dynamics = str(rng.choice(list(_DYNAMICS)))
    base_velocity, quiet_db, loud_db = _DYNAMICS[dynamics]
    beat = 60.0 / tempo
    n_bars = int(np.ceil(clip_seconds / (beat * beats_per_bar)))
    bars_per_chord = 2 if beat * beats_per_bar < 2.0 and rng.random() < 0.5 else 1
    chords = tuple(
        tuple(
            (root + harmony[(progression[(b // bars_per_chord) % 4] + k) % 7]) % 12
            for k in (0, 2, 4)
        )
        for b in range(n_bars)
    )
    music = _Music(clip_seconds, beat, beats_per_bar, root, _SCALES[scale], chords, base_velocity)
    weights = np.array([0.2, 0.35, 0.3, 0.15])[:max_instruments]
    n_instruments = int(rng.choice(np.arange(1, len(weights) + 1), p=weights / weights.sum()))
    stems = []
    for class_id in _pick_classes(rng, n_instruments):
        cls = get_class(class_id)
        program = int(rng.choice(cls.programs)) if cls.programs else 0
        role = str(rng.choice(cls.roles))
        late = n_bars >= 4 and rng.random() < 0.25
        notes = _tidy(_ROLE_FUNCS[role](music, cls, rng, music.bar if late else 0.0), clip_seconds)
        stems.append(Stem(class_id, notes, program, round(float(rng.uniform(-6.0, 0.0)), 2), role))
    return ClipSpec(
        stems=tuple(stems),
        duration=clip_seconds,
        tempo=float(tempo),
        beats_per_bar=beats_per_bar,
        key=_KEYS[root],
        scale=scale,
        dynamics=dynamics,
        loudness_db=round(float(rng.uniform(quiet_db, loud_db)), 2),
    )


# ----------------------------------------------------------------------------- rendering


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
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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
    return float(np.sqrt(energy[energy > energy.max() * 1e-3].mean()))


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

    def render_stem(self, stem: Stem, n_samples: int) -> np.ndarray:
        """The stem's notes, played alone, as mono float32 of ``n_samples``."""
        cls = get_class(stem.class_id)
        channel = 9 if cls.is_drum else 0
        try:
            if cls.is_drum:
                self.synth.program_select(channel, self.sfid, 128, 0, is_drums=True)
            else:
                self.synth.program_select(channel, self.sfid, 0, stem.program)
        except Exception as err:
            what = "drum kit (bank 128)" if cls.is_drum else f"program {stem.program}"
            raise DataError(
                f"SoundFont {self.soundfont} has no {what} for class {stem.class_id!r} ({err}). "
                "Use a complete General MIDI SoundFont."
            ) from err
        sr = self.sample_rate
        events = sorted(
            [(round(n.start * sr), 1, n.pitch, n.velocity) for n in stem.notes]
            + [(round(n.end * sr), 0, n.pitch, 0) for n in stem.notes]
        )  # at equal times note-offs (0) come before note-ons (1)
        buffer = bytearray(n_samples * 8)
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
        frame = max(1, self.sample_rate // 20)
        stems: dict[str, np.ndarray] = {}
        for stem in spec.stems:
            audio = self.render_stem(stem, n)
            level = _active_rms(audio, frame)
            if level < 1e-6:
                raise DataError(
                    f"Class {stem.class_id!r} (program {stem.program}) renders silence with "
                    f"SoundFont {self.soundfont}. Use a complete General MIDI SoundFont."
                )
            gain = 10 ** ((-20.0 + stem.gain_db) / 20) / level
            stems[stem.class_id] = stems.get(stem.class_id, 0) + audio * gain
        mix = np.sum(list(stems.values()), axis=0) if stems else np.zeros(n, dtype=np.float32)
        level = _active_rms(mix, frame)
        if level > 0:
            mix = mix * (10 ** (spec.loudness_db / 20) / level)
        peak = float(np.max(np.abs(mix))) if n else 0.0
        if peak > 0.95:
            mix = mix * (0.95 / peak)
        return mix.astype(np.float32), stems


@functools.lru_cache(maxsize=2)
def _renderer(soundfont: str, sample_rate: int) -> Renderer:
    return Renderer(soundfont, sample_rate)


def render_clip(
    spec: ClipSpec, *, sample_rate: int = 32000, soundfont: str | Path | None = None
) -> np.ndarray:
    """Render ``spec`` to mono float32 at ``sample_rate``; the SoundFont loads once per process."""
    return _renderer(str(find_soundfont(soundfont)), int(sample_rate)).render(spec)[0]


def _write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC atomically: a temporary file, then os.replace."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    sf.write(tmp, audio, sample_rate, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def _render_job(job: tuple[int, int, float, int, int, str, str]) -> int:
    index, seed, seconds, max_instruments, sample_rate, soundfont, path = job
    spec = clip_spec(index, seed, seconds, max_instruments)
    _write_flac(Path(path), _renderer(soundfont, sample_rate).render(spec)[0], sample_rate)
    return index


def _render_jobs(jobs: list[tuple[int, int, float, int, int, str, str]]) -> list[int]:
    return [_render_job(job) for job in jobs]


def _init_worker(soundfont: str, sample_rate: int) -> None:
    _renderer(soundfont, sample_rate)


# ----------------------------------------------------------------------------- labels and splits


def annotation_mask(positives: np.ndarray, config: SynthConfig, index: int) -> np.ndarray:
    """OpenMIC-style mask of clip ``index`` (which labels were "checked"), from its positives."""
    rng = np.random.default_rng([config.seed, index, 1])
    p = np.where(positives, config.p_annotate_positive, config.p_annotate_negative)
    mask = rng.random(len(positives)) < p
    if not mask.any():
        mask[int(rng.choice(np.flatnonzero(positives)))] = True
    return mask


def _caption_facts(spec: ClipSpec) -> cap.CaptionFacts:
    names = tuple(get_class(s.class_id).name for s in spec.stems)
    families = tuple(dict.fromkeys(FAMILIES[get_class(s.class_id).family] for s in spec.stems))
    return cap.CaptionFacts(
        names,
        tuple(s.role for s in spec.stems),
        families,
        spec.tempo,
        spec.mood,
        spec.register,
        spec.dynamics,
    )


def _manifest(
    specs: list[ClipSpec], config: SynthConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    classes = class_ids()
    labels = np.array([np.isin(classes, s.classes) for s in specs], dtype=bool)
    mask = np.stack([annotation_mask(labels[i], config, i) for i in range(len(specs))])
    split = stratified_split(
        labels, config.split_fractions, np.random.default_rng([config.seed, 0, 0, 3])
    )
    rows = []
    for i, spec in enumerate(specs):
        facts = _caption_facts(spec)
        captions = cap.make_captions(facts, np.random.default_rng([config.seed, i, 2]))
        stems = sorted(spec.stems, key=lambda s: classes.index(s.class_id))
        row = {
            "clip_id": clip_id(i),
            "path": f"audio/{clip_id(i)}.flac",
            "duration": spec.duration,
            "sample_rate": config.sample_rate,
            "split": SPLITS[split[i]],
            "labels": join_list(spec.classes),
            "annotated": join_list(c for c, m in zip(classes, mask[i]) if m),
            "families": join_list(dict.fromkeys(get_class(c).family for c in spec.classes)),
            "n_instruments": len(spec.stems),
            "programs": join_list(
                f"{s.class_id}:{'kit' if get_class(s.class_id).is_drum else s.program}"
                for s in stems
            ),
            "roles": join_list(f"{s.class_id}:{s.role}" for s in stems),
            "tempo": spec.tempo,
            "beats_per_bar": spec.beats_per_bar,
            "key": spec.key,
            "scale": spec.scale,
            "mood": spec.mood,
            "register": spec.register,
            "dynamics": spec.dynamics,
            "loudness_db": spec.loudness_db,
            **{f"caption_{k + 1}": text for k, text in enumerate(captions)},
            "keywords": join_list(cap.make_keywords(facts)),
        }
        rows.append(row)
    return pd.DataFrame(rows), labels, mask


def _metadata(
    config: SynthConfig, soundfont: dict, labels: np.ndarray, mask: np.ndarray, table: pd.DataFrame
) -> dict:
    annotated = mask.sum()
    return {
        "name": "zskit synth",
        "generator": "zskit.data.synth",
        "generator_version": GENERATOR_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": config.params(),
        "soundfont": soundfont,
        "n_clips": config.n_clips,
        "sample_rate": config.sample_rate,
        "clip_seconds": config.clip_seconds,
        "seed": config.seed,
        "audio": {"dir": "audio", "format": "FLAC", "subtype": "PCM_16", "channels": 1},
        "classes": [
            {
                "id": c.id,
                "name": c.name,
                "family": c.family,
                "family_name": FAMILIES[c.family],
                "gm_programs": list(c.programs),
                "gm_drum_notes": list(c.drum_notes),
                "midi_range": [c.low, c.high],
                "roles": list(c.roles),
                "openmic": c.openmic,
                "exclusive_group": c.exclusive,
            }
            for c in CLASSES
        ],
        "openmic_classes": list(OPENMIC_CLASSES),
        "families": [
            {"id": f, "name": FAMILIES[f], "classes": members} for f, members in hierarchy().items()
        ],
        "hierarchy": hierarchy(),
        "mask": {
            "p_annotate_positive": config.p_annotate_positive,
            "p_annotate_negative": config.p_annotate_negative,
            "density": round(float(annotated / mask.size), 4),
            "annotated_per_clip": round(float(annotated / len(mask)), 3),
            "positive_share": round(float((mask & labels).sum() / annotated), 4),
        },
        "splits": {s: int((table["split"] == s).sum()) for s in SPLITS},
        "class_counts": {c: int(n) for c, n in zip(class_ids(), labels.sum(axis=0))},
        "files": {"manifest": MANIFEST_NAME, "audio": "audio/<clip_id>.flac"},
    }


# ----------------------------------------------------------------------------- corpus folders


def default_corpus_dir(smoke: bool = False) -> Path:
    """``data_root()/synth`` (or ``synth-smoke``)."""
    return data_root() / ("synth-smoke" if smoke else "synth")


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(
        f"{k}: existing {old.get(k)!r}, requested {new.get(k)!r}"
        for k in keys
        if old.get(k) != new.get(k)
    )


def _check_folder(out: Path, params: dict, soundfont: dict, explicit_soundfont: bool) -> bool:
    """True when ``out`` already holds this corpus complete; DataError when it holds another.

    A complete corpus made with another SoundFont is accepted unless ``soundfont=`` was explicit;
    an unfinished one is resumed only with the SoundFont it was started with.
    """
    hint = "Choose another output folder (--out) or delete this one."
    meta_path, params_path = out / METADATA_NAME, out / PARAMS_NAME
    if meta_path.is_file() and (out / MANIFEST_NAME).is_file():
        meta = read_json(meta_path)
        if meta.get("params") != params:
            changes = _differences(meta.get("params") or {}, params)
            raise DataError(f"{out} holds a corpus with other parameters ({changes}). {hint}")
        recorded = meta.get("soundfont", {})
        if explicit_soundfont and recorded.get("sha256") != soundfont["sha256"]:
            raise DataError(
                f"{out} was rendered with SoundFont {recorded}, not {soundfont}. {hint}"
            )
        audio = out / "audio"
        if all((audio / f"{clip_id(i)}.flac").is_file() for i in range(params["n_clips"])):
            return True
    if params_path.is_file():
        started = read_json(params_path)
        if started.get("params") != params:
            changes = _differences(started.get("params") or {}, params)
            raise DataError(
                f"{out} holds an unfinished corpus with other parameters ({changes}). {hint}"
            )
        recorded = started.get("soundfont", {})
        if recorded.get("sha256") != soundfont["sha256"]:
            raise DataError(
                f"{out} holds an unfinished corpus rendered with SoundFont {recorded}; this run "
                f"found {soundfont}. Resume it with soundfont={recorded.get('path')!r}, or: "
                f"{hint}"
            )
        return False
    if out.exists() and any(out.iterdir()):
        raise DataError(
            f"{out} is not empty and holds no zskit synth corpus (no {PARAMS_NAME}). {hint}"
        )
    return False


def generate_corpus(
    out_dir: str | Path | None = None,
    n_clips: int | None = None,
    seed: int = 0,
    *,
    smoke: bool = False,
    sample_rate: int = 32000,
    clip_seconds: float = 10.0,
    soundfont: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render the corpus into ``out_dir`` (default ``default_corpus_dir(smoke)``) and return it.

    ``n_clips`` defaults to 2,000 (100 with ``smoke``). A complete corpus with the same parameters
    is returned untouched; an interrupted one is resumed (clips on disk are kept); a folder holding
    other parameters raises DataError. ``workers`` processes (default: all CPUs) each load the
    SoundFont once.
    """
    if n_clips is None:
        n_clips = SMOKE_CLIPS if smoke else DEFAULT_CLIPS
    config = SynthConfig(
        n_clips=n_clips, seed=seed, sample_rate=sample_rate, clip_seconds=float(clip_seconds)
    )
    out = Path(out_dir) if out_dir is not None else default_corpus_dir(smoke)
    sf_path = find_soundfont(soundfont)
    sf_record = {**soundfont_info(sf_path), "path": str(sf_path)}
    params = config.params()
    explicit = bool(soundfont or os.environ.get("ZSKIT_SOUNDFONT"))
    if _check_folder(out, params, sf_record, explicit_soundfont=explicit):
        logger.info("%s already holds the complete corpus; nothing to do.", out)
        return out
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    write_json(out / PARAMS_NAME, {"params": params, "soundfont": sf_record})
    for stale in audio_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)

    missing = [i for i in range(config.n_clips) if not (audio_dir / f"{clip_id(i)}.flac").is_file()]
    logger.info(
        "Rendering %d of %d clips into %s with %s", len(missing), config.n_clips, out, sf_path.name
    )
    _render_missing(missing, config, str(sf_path), audio_dir, workers, progress)

    specs = [
        clip_spec(i, config.seed, config.clip_seconds, config.max_instruments)
        for i in range(config.n_clips)
    ]
    table, labels, mask = _manifest(specs, config)
    write_manifest(table, out / MANIFEST_NAME)
    write_json(out / METADATA_NAME, _metadata(config, sf_record, labels, mask, table))
    return out


def _render_missing(
    missing: list[int],
    config: SynthConfig,
    soundfont: str,
    audio_dir: Path,
    workers: int | None,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    jobs = [
        (
            i,
            config.seed,
            config.clip_seconds,
            config.max_instruments,
            config.sample_rate,
            soundfont,
            str(audio_dir / f"{clip_id(i)}.flac"),
        )
        for i in missing
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with tqdm(total=len(jobs), desc="synth corpus", unit="clip", disable=not progress) as bar:
        if workers > 1:
            try:
                _render_in_pool(jobs, workers, soundfont, config.sample_rate, bar)
                return
            except BrokenProcessPool as err:
                # e.g. a script read from stdin, which spawned workers cannot re-import
                logger.warning(
                    "Worker processes failed (%s); rendering the rest in this process.", err
                )
        for job in jobs:
            if not Path(job[-1]).is_file():
                _render_job(job)
                bar.update()


def _render_in_pool(jobs: list, workers: int, soundfont: str, sample_rate: int, bar) -> None:
    chunks = [jobs[k : k + 8] for k in range(0, len(jobs), 8)]
    ctx = multiprocessing.get_context("spawn")  # safe beside threads (torch) in the parent
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(soundfont, sample_rate)
    ) as pool:
        for done in as_completed([pool.submit(_render_jobs, chunk) for chunk in chunks]):
            bar.update(len(done.result()))


def ensure_corpus(smoke: bool = False, **kwargs) -> Path:
    """The corpus folder (``out_dir`` or the default one), generating only what is missing."""
    out_dir = kwargs.pop("out_dir", None)
    return generate_corpus(
        out_dir if out_dir is not None else default_corpus_dir(smoke), smoke=smoke, **kwargs
    )
