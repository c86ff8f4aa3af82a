"""From ``(seed, index)`` to a clip: key, tempo, chords, instruments and their notes."""

from __future__ import annotations

import numpy as np

from zskit.data.gm import class_ids, get_class
from zskit.data.synth.music import (
    DYNAMICS,
    HARMONY,
    KEYS,
    PROGRESSIONS,
    SCALES,
    ClipSpec,
    Music,
    Note,
    Stem,
)
from zskit.data.synth.patterns import ROLE_PATTERNS
from zskit.errors import DataError

# P(1, 2, 3, 4 instruments): 2.4 instruments per clip on average, truncated at max_instruments.
INSTRUMENT_COUNT_WEIGHTS = (0.2, 0.35, 0.3, 0.15)
TEMPO_RANGE = (60, 160)  # beats per minute, inclusive
P_TRIPLE_METER = 0.2  # share of clips in 3/4
P_SLOW_HARMONY = 0.5  # chance of two bars per chord when a bar is shorter than 2 s
P_LATE_ENTRY = 0.25  # chance that an instrument enters one bar late (clips of 4+ bars)
STEM_GAIN_RANGE_DB = (-6.0, 0.0)  # random gain of each stem over its level in the mix
END_MARGIN_SECONDS = 0.05  # notes starting this close to the clip end are dropped
MIN_NOTE_SECONDS = 0.02  # shorter notes (after trimming) are dropped
MAX_PART_REDRAWS = 8  # new draws of a part that left a (very short) clip silent


def clip_id(index: int) -> str:
    """The id of clip ``index``: ``clip_000042``."""
    return f"clip_{index:06d}"


def _tidy(notes: list[Note], duration: float) -> tuple[Note, ...]:
    """Drop notes starting in the last 50 ms, end notes at the clip end, and end each note before
    the next onset of the same key (a note-off would otherwise cut the newer note)."""
    kept = sorted(
        (n for n in notes if 0 <= n.start < duration - END_MARGIN_SECONDS),
        key=lambda n: (n.start, n.pitch),
    )
    next_start: dict[int, float] = {}
    out = []
    for n in reversed(kept):
        end = min(n.end, duration, next_start.get(n.pitch, duration))
        if end - n.start >= MIN_NOTE_SECONDS:
            out.append(Note(round(n.start, 5), round(end, 5), int(n.pitch), int(n.velocity)))
        next_start[n.pitch] = n.start
    return tuple(reversed(out))


def _pick_classes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct classes, at most one of each exclusive group."""
    ids, chosen, groups = class_ids(), [], set()
    while len(chosen) < n:
        options = [c for c in ids if c not in chosen and get_class(c).exclusive not in groups]
        pick = options[int(rng.integers(len(options)))]
        chosen.append(pick)
        if get_class(pick).exclusive:
            groups.add(get_class(pick).exclusive)
    return chosen


def clip_spec(
    index: int, seed: int = 0, clip_seconds: float = 10.0, max_instruments: int = 4
) -> ClipSpec:
    """The content of clip ``index``, drawn from ``np.random.default_rng([seed, index])`` only."""
    rng = np.random.default_rng([seed, index])
    # the musical frame: tempo, meter, key, scale, chord progression, dynamics
    tempo = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
    beats_per_bar = 3 if rng.random() < P_TRIPLE_METER else 4
    root = int(rng.integers(12))
    scale = str(rng.choice(list(SCALES)))
    harmony = SCALES[HARMONY.get(scale, scale)]
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    dynamics = str(rng.choice(list(DYNAMICS)))
    base_velocity, quiet_db, loud_db = DYNAMICS[dynamics]
    beat = 60.0 / tempo
    n_bars = int(np.ceil(clip_seconds / (beat * beats_per_bar)))
    slow = beat * beats_per_bar < 2.0 and rng.random() < P_SLOW_HARMONY
    bars_per_chord = 2 if slow else 1
    chords = tuple(
        tuple(
            (root + harmony[(progression[(b // bars_per_chord) % 4] + k) % 7]) % 12
            for k in (0, 2, 4)  # a triad on the scale degree
        )
        for b in range(n_bars)
    )
    music = Music(clip_seconds, beat, beats_per_bar, root, SCALES[scale], chords, base_velocity)

    # the instruments and their parts
    weights = np.array(INSTRUMENT_COUNT_WEIGHTS)[:max_instruments]
    n_instruments = int(rng.choice(np.arange(1, len(weights) + 1), p=weights / weights.sum()))
    stems = []
    for class_id in _pick_classes(rng, n_instruments):
        cls = get_class(class_id)
        program = int(rng.choice(cls.programs)) if cls.programs else 0
        role = str(rng.choice(cls.roles))
        late = n_bars >= 4 and rng.random() < P_LATE_ENTRY
        entry = music.bar if late else 0.0
        notes = _tidy(ROLE_PATTERNS[role](music, cls, rng, entry), clip_seconds)
        for _ in range(MAX_PART_REDRAWS):  # a sparse part can miss a very short clip entirely
            if notes:
                break
            notes = _tidy(ROLE_PATTERNS[role](music, cls, rng, 0.0), clip_seconds)
        if not notes:
            raise DataError(
                f"{class_id} ({role}) played no note in a {clip_seconds} s clip after "
                f"{MAX_PART_REDRAWS} redraws; use longer clips (clip_seconds >= 2)."
            )
        gain_db = round(float(rng.uniform(*STEM_GAIN_RANGE_DB)), 2)
        stems.append(Stem(class_id, notes, program, gain_db, role))
    return ClipSpec(
        stems=tuple(stems),
        duration=clip_seconds,
        tempo=float(tempo),
        beats_per_bar=beats_per_bar,
        key=KEYS[root],
        scale=scale,
        dynamics=dynamics,
        loudness_db=round(float(rng.uniform(quiet_db, loud_db)), 2),
    )
