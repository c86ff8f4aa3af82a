"""Playing styles ("roles"): each draws one instrument's notes inside a clip's musical frame.

Every pattern has the signature ``(music, cls, rng, t0) -> list[Note]``: the clip's ``Music``, the
instrument class (its MIDI range and GM keys), the clip's random generator and the entry time
``t0`` in seconds. Patterns may overshoot the clip end or overlap notes; ``clip_spec`` tidies them.
The order of the random draws is part of the corpus: changing it changes every clip.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zskit.data.gm import InstrumentClass
from zskit.data.synth.music import Music, Note

Pattern = Callable[[Music, InstrumentClass, np.random.Generator, float], list[Note]]

MELODY_REST_PROBABILITY = 0.15  # chance that a melody step is a rest
TREMOLO_PICK_SECONDS = 0.07  # mandolin tremolo: about 14 picks a second
STRUM_PATTERNS = (  # strum positions on the eighth-note grid of one bar
    (0,),
    (0, 4),
    (0, 2, 3, 5, 6),
    (0, 3, 6),
    (0, 2, 4, 6),
    (0, 1, 2, 3, 4, 5, 6, 7),
)

# General MIDI percussion keys (channel 10).
KICKS = (35, 36)  # acoustic, electric bass drum
SNARES = (38, 40)  # acoustic, electric snare
SIDE_STICK = 37
CLOSED_HAT, OPEN_HAT = 42, 46
TOMS = (50, 48, 47, 45, 43, 41)  # high to low
RIDES = (51, 59)  # ride cymbal 1 and 2
CRASHES = (49, 57)  # crash cymbal 1 and 2
ACCENT_CYMBALS = (52, 55)  # china, splash
RIDE_BELL = 53


def _keys_in(lo: int, hi: int, pcs: set[int] | tuple[int, ...]) -> list[int]:
    """MIDI keys from ``lo`` to ``hi`` (inclusive) whose pitch class is in ``pcs``."""
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _window(
    cls: InstrumentClass, rng: np.random.Generator, width: int, top: int | None = None
) -> tuple[int, int]:
    """A random range of ``width`` semitones inside the class' range (below ``top`` if given)."""
    high = cls.high if top is None else min(cls.high, max(top, cls.low + width))
    lo = int(rng.integers(cls.low, max(cls.low, high - width) + 1))
    return lo, min(cls.high, lo + width)


def _velocity(m: Music, rng: np.random.Generator, t: float, accent: int = 10) -> int:
    """The clip's velocity, accented on the downbeat, with a little human jitter."""
    on_bar = abs((t / m.bar) - round(t / m.bar)) < 1e-6
    return int(np.clip(m.velocity + (accent if on_bar else 0) + rng.normal(0, 6), 15, 127))


def _step(idx: int, n: int, rng: np.random.Generator) -> int:
    """A random melodic step from index ``idx`` (mostly small), reflected at both ends of ``n``."""
    idx += int(rng.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3)))
    if idx < 0:
        idx = -idx
    if idx >= n:
        idx = 2 * (n - 1) - idx
    return int(np.clip(idx, 0, n - 1))


def _hit(t: float, key: int, vel: float, length: float = 0.2) -> Note:
    """A percussion note of ``length`` seconds, velocity clipped to 15..127."""
    return Note(t, t + length, key, int(np.clip(vel, 15, 127)))


# ----------------------------------------------------------------------------- pitched roles


def _melody(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """A stepwise scale melody in a random window of the class' range, with occasional rests."""
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
        if not notes or rng.random() > MELODY_REST_PROBABILITY:
            idx = _step(idx, len(keys), rng)
            notes.append(Note(t, t + length * legato, keys[idx], _velocity(m, rng, t)))
        t += length
    return notes


def _tremolo(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Mandolin-style tremolo: each melody note re-picked about 14 times a second."""
    notes = []
    for note in _melody(m, cls, rng, t0):
        span = note.end - note.start
        picks = max(1, round(span / TREMOLO_PICK_SECONDS))
        step = span / picks
        for k in range(picks):
            t = note.start + k * step
            velocity = int(np.clip(note.velocity - 12 * (k % 2), 15, 127))
            notes.append(Note(t, t + step * 0.95, note.pitch, velocity))
    return notes


def _chord_hits(
    m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float, hits: int, legato: float
) -> list[Note]:
    """Block chords of 3-4 voices in the lower half of the range, ``hits`` times per bar."""
    lo, hi = _window(cls, rng, int(rng.integers(14, 20)), top=(cls.low + cls.high) // 2 + 12)
    size = int(rng.integers(3, 5))
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
        voicing = _keys_in(lo, hi, m.chords[bar])[:size]
        step = m.bar / hits
        for k in range(hits):
            t = bar * m.bar + k * step
            vel = _velocity(m, rng, t)
            notes.extend(Note(t, t + step * legato, p, vel) for p in voicing)
    return notes


def _chords(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Block chords once, twice or on every beat of a bar."""
    hits = int(rng.choice((1, 2, m.beats_per_bar)))
    return _chord_hits(m, cls, rng, t0, hits, legato=0.9)


def _pad(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """One sustained chord per bar."""
    return _chord_hits(m, cls, rng, t0, hits=1, legato=0.98)


def _arpeggio(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """The bar's chord tones up and down on an eighth- or sixteenth-note grid."""
    lo, _ = _window(cls, rng, 19)
    step = m.beat / (2 if m.beat < 0.6 else 4)
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
        tones = _keys_in(lo, min(cls.high, lo + 19), m.chords[bar])
        cycle = tones + tones[-2:0:-1] if len(tones) > 2 else tones
        n = round(m.bar / step)
        for k in range(n):
            t = bar * m.bar + k * step
            notes.append(
                Note(t, t + step * 0.95, cycle[k % len(cycle)], _velocity(m, rng, t, accent=8))
            )
    return notes


def _strum(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Strummed chords on an eighth-note grid: downstrokes low to high, upstrokes high to low."""
    size = {"ukulele": 4, "banjo": 5}.get(cls.id, 6)  # strings of the instrument
    top = cls.low + 24
    strokes = STRUM_PATTERNS[int(rng.integers(len(STRUM_PATTERNS)))]
    pattern = [p for p in strokes if p < 2 * m.beats_per_bar]
    spread = rng.uniform(0.008, 0.02)  # seconds between the strings of one stroke
    times = [bar * m.bar + p * m.beat / 2 for bar in range(m.bar_at(t0), m.n_bars) for p in pattern]
    notes = []
    for k, t in enumerate(times):
        bar = min(m.bar_at(t), m.n_bars - 1)
        voicing = _keys_in(cls.low, min(cls.high, top), m.chords[bar])[:size]
        down = round((t % m.bar) / (m.beat / 2)) % 2 == 0
        order = voicing if down else voicing[::-1][:3]
        end = times[k + 1] if k + 1 < len(times) else m.duration
        vel = _velocity(m, rng, t) - (0 if down else 15)
        notes.extend(Note(t + j * spread, end, p, max(15, vel)) for j, p in enumerate(order))
    return notes


def _bass(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """A bass line on the chord roots: one of four (beat, interval) patterns per bar."""
    lo, hi = cls.low, min(cls.high, cls.low + 17)
    patterns = (
        ((0, 0),),
        ((0, 0), (2, 7)),
        tuple((b, 0) for b in range(m.beats_per_bar)),
        ((0, 0), (1.5, 0), (2, 7), (3, 12)),
    )
    pattern = [e for e in patterns[int(rng.integers(len(patterns)))] if e[0] < m.beats_per_bar]
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
        root = _keys_in(lo, hi, (m.chords[bar][0],))[0]
        for k, (beat, interval) in enumerate(pattern):
            nxt = pattern[k + 1][0] if k + 1 < len(pattern) else m.beats_per_bar
            t = bar * m.bar + beat * m.beat
            key = root + interval if root + interval <= cls.high else root
            notes.append(Note(t, t + (nxt - beat) * m.beat * 0.9, key, _velocity(m, rng, t)))
    return notes


def _hits(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """Timpani / taiko: a hit on each bar, random hits on other beats, a roll every fourth bar."""
    fixed = int(rng.integers(cls.low, cls.high + 1))
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
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


# ----------------------------------------------------------------------------- percussion roles


def _drum_kit(m: Music, rng: np.random.Generator, t0: float) -> list[Note]:
    """Kick, snare and hi-hat in a rock, four-on-the-floor or half-time feel, with tom fills."""
    kick, snare = int(rng.choice(KICKS)), int(rng.choice(SNARES))
    if m.velocity < 60 and rng.random() < 0.5:
        snare = SIDE_STICK  # for soft clips
    style = str(rng.choice(("rock", "four", "half")))
    hat_div = 4 if m.beat > 0.55 and rng.random() < 0.5 else 2
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
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
                notes.extend(
                    _hit(t + k * m.beat / 4, TOMS[k + int(rng.integers(3))], m.velocity)
                    for k in range(4)
                )
                continue
            for k in range(hat_div):
                open_hat = k == hat_div - 1 and beat == m.beats_per_bar - 1 and rng.random() < 0.3
                notes.append(
                    _hit(
                        t + k * m.beat / hat_div,
                        OPEN_HAT if open_hat else CLOSED_HAT,
                        m.velocity - (0 if k == 0 else 15) + rng.normal(0, 5),
                    )
                )
    return notes


def _cymbals(m: Music, rng: np.random.Generator, t0: float) -> list[Note]:
    """A ride pattern with crashes every 2 or 4 bars and rare china or splash accents."""
    ride, crash = int(rng.choice(RIDES)), int(rng.choice(CRASHES))
    every = int(rng.choice((2, 4)))
    ride_div = int(rng.choice((1, 2)))
    notes = []
    for bar in range(m.bar_at(t0), m.n_bars):
        for beat in range(m.beats_per_bar):
            t = bar * m.bar + beat * m.beat
            if beat == 0 and (bar - m.bar_at(t0)) % every == 0:
                notes.append(_hit(t, crash, m.velocity + 15, 1.5))
                continue
            if rng.random() < 0.08:
                notes.append(_hit(t, int(rng.choice(ACCENT_CYMBALS)), m.velocity + 10, 1.0))
                continue
            for k in range(ride_div):
                key = RIDE_BELL if k == 0 and rng.random() < 0.15 else ride
                notes.append(
                    _hit(t + k * m.beat / ride_div, key, m.velocity - 8 * k + rng.normal(0, 5), 0.8)
                )
    return notes


def _hand_percussion(
    m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float
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
    for bar in range(m.bar_at(t0), m.n_bars):
        for s in base:
            if s and rng.random() < 0.1:
                continue
            t = bar * m.bar + s * m.beat / grid
            accent = 12 if s % grid == 0 else 0
            notes.append(_hit(t, keys[s], m.velocity - 8 + accent + rng.normal(0, 5), 0.25))
    return notes


def _beat(m: Music, cls: InstrumentClass, rng: np.random.Generator, t0: float) -> list[Note]:
    """The percussion part of a kit class: drum kit, cymbals or hand percussion."""
    if cls.id == "drums":
        return _drum_kit(m, rng, t0)
    if cls.id == "cymbals":
        return _cymbals(m, rng, t0)
    return _hand_percussion(m, cls, rng, t0)


#: Role name (``zskit.data.gm.ROLES``) -> pattern.
ROLE_PATTERNS: dict[str, Pattern] = {
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
