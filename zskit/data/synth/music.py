"""What a clip is made of: notes, stems, the clip specification and the musical tables behind them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zskit.data.gm import class_ids, get_class

# A clip's register is "low" when the mean MIDI key of its pitched notes is below G3 (55), "high"
# above B4 (71), "middle" otherwise; captions describe it.
LOW_REGISTER_BELOW = 55
HIGH_REGISTER_ABOVE = 71

#: Scale name -> semitones above the root.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
}
#: Scales whose clips are described as "bright"; all others are "dark".
BRIGHT_SCALES = frozenset({"major", "mixolydian", "major pentatonic"})
#: Pentatonic tunes take their chords from the seven-note scale of the same mode.
HARMONY = {"major pentatonic": "major", "minor pentatonic": "minor"}
#: Four-chord progressions as scale degrees (0 = I), one per bar or per two bars.
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (0, 3, 0, 4), (5, 3, 0, 4), (0, 5, 4, 0))
#: Key names by pitch class.
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: Dynamics -> (base MIDI velocity, quietest and loudest mix loudness in dBFS).
DYNAMICS = {
    "soft": (55, -30.0, -25.0),
    "moderate": (80, -25.0, -20.0),
    "loud": (105, -20.0, -15.0),
}


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
        return "bright" if self.scale in BRIGHT_SCALES else "dark"

    @property
    def register(self) -> str:
        """Low, middle or high: from the mean MIDI key of the pitched notes."""
        keys = [n.pitch for s in self.stems if not get_class(s.class_id).is_drum for n in s.notes]
        if not keys:
            return "middle"
        mean = float(np.mean(keys))
        if mean < LOW_REGISTER_BELOW:
            return "low"
        return "high" if mean > HIGH_REGISTER_ABOVE else "middle"


@dataclass(frozen=True)
class Music:
    """The shared musical frame of one clip: every instrument's pattern is drawn inside it."""

    duration: float
    beat: float  # seconds per beat
    beats_per_bar: int
    root: int  # pitch class of the key
    scale: tuple[int, ...]
    chords: tuple[tuple[int, ...], ...]  # pitch classes per bar, chord root first
    velocity: int  # base MIDI velocity of the clip's dynamics

    @property
    def bar(self) -> float:
        """Seconds per bar."""
        return self.beat * self.beats_per_bar

    @property
    def n_bars(self) -> int:
        """Bars needed to cover the clip (the last one may be cut)."""
        return int(np.ceil(self.duration / self.bar))

    def scale_pcs(self) -> set[int]:
        """The pitch classes of the clip's scale."""
        return {(self.root + s) % 12 for s in self.scale}

    def bar_at(self, t: float) -> int:
        """The index of the bar that holds time ``t`` (seconds)."""
        return int(t / self.bar + 1e-9)
