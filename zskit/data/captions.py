"""Clotho-like captions and keywords for synthetic clips, built from the generation parameters.

Each caption comes from a different template (so the five captions of a clip always differ), with
synonyms and instrument order drawn at random; every caption names at least one instrument of the
clip by its display name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zskit.errors import ConfigError

# Display names used without an article: plurals take a plural verb ("drums keep a beat"), mass
# nouns a singular one ("mallet percussion plays a melody").
PLURAL_NAMES = frozenset(
    {"drums", "cymbals", "congas", "steel drums", "timpani", "bagpipes", "tubular bells"}
)
MASS_NAMES = frozenset({"mallet percussion"})
_NO_ARTICLE = PLURAL_NAMES | MASS_NAMES
# Word beginnings whose vowel letter sounds like a consonant ("a ukulele", "a useful", "a one").
_CONSONANT_SOUND = ("uk", "use", "usu", "eu", "one")

_TEMPO = {
    "slow": ("slow", "leisurely", "unhurried", "calm"),
    "moderate": ("moderate", "medium", "steady", "relaxed"),
    "fast": ("fast", "quick", "lively", "upbeat"),
}
_MOOD = {
    "bright": ("cheerful", "bright", "happy", "uplifting"),
    "dark": ("melancholic", "dark", "somber", "sad"),
}
_REGISTER = {"low": ("low", "deep"), "middle": ("middle", "medium"), "high": ("high", "bright")}
_DYN_ADJ = {
    "soft": ("soft", "quiet", "gentle"),
    "moderate": ("moderately loud", "medium-loud", "balanced"),
    "loud": ("loud", "powerful", "forceful"),
}
_DYN_ADV = {
    "soft": ("softly", "quietly", "gently"),
    "moderate": ("at a moderate volume", "at a medium volume"),
    "loud": ("loudly", "forcefully", "energetically"),
}
_PIECE = ("piece", "tune", "track", "passage", "piece of music")
_TEXTURE = {1: ("solo",), 2: ("duet", "duo"), 3: ("trio",), 4: ("quartet", "small ensemble")}
# Verb phrases in the plural ("drums keep a steady beat"); _t_role makes the singular.
_ROLE = {
    "melody": ("play a melody", "play a tune", "carry the melody"),
    "chords": ("play chords", "play rhythmic chords"),
    "pad": ("hold long chords", "sustain chords"),
    "arpeggio": ("play arpeggios", "play broken chords"),
    "strum": ("strum chords", "strum along"),
    "tremolo": ("play a rapid tremolo", "pick fast repeated notes"),
    "bass": ("play a bass line", "hold down the bass line"),
    "hits": ("boom on the beat", "pound out deep hits"),
    "beat": ("keep a steady beat", "play a rhythm"),
}


@dataclass(frozen=True)
class CaptionFacts:
    """What a caption may say about a clip; instruments are display names, roles align with them."""

    instruments: tuple[str, ...]
    roles: tuple[str, ...]
    families: tuple[str, ...]
    tempo_bpm: float
    mood: str  # "bright" or "dark"
    register: str  # "low", "middle" or "high"
    dynamics: str  # "soft", "moderate" or "loud"


def tempo_word(bpm: float) -> str:
    """The tempo class: slow below 85 BPM, fast above 125, else moderate."""
    return "slow" if bpm < 85 else "fast" if bpm > 125 else "moderate"


def noun_phrase(name: str) -> str:
    """The display name with its article: a piano, an organ, drums."""
    if name in _NO_ARTICLE:
        return name
    return _a(name)


def article(word: str) -> str:
    """The indefinite article for ``word`` by its first sound: "an" upbeat, "a" slow, "a" ukulele."""
    lower = word.lower()
    vowel = lower[:1] in ("a", "e", "i", "o", "u") and not lower.startswith(_CONSONANT_SOUND)
    return "an" if vowel else "a"


def _a(word: str) -> str:
    """The word with its indefinite article: "an upbeat", "a slow", "a ukulele"."""
    return f"{article(word)} {word}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(names: list[str]) -> bool:
    """True when ``names`` as a subject takes a plural verb."""
    return len(names) > 1 or names[0] in PLURAL_NAMES


class _Ctx:
    """Random choices for one caption."""

    def __init__(self, facts: CaptionFacts, rng: np.random.Generator):
        self.f, self.rng = facts, rng
        order = rng.permutation(len(facts.instruments))
        self.names = [facts.instruments[i] for i in order]
        self.roles = [facts.roles[i] for i in order]

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def inst(self, names: list[str] | None = None) -> str:
        return _join([noun_phrase(n) for n in (names or self.names)])

    def tempo(self) -> str:
        return self.pick(_TEMPO[tempo_word(self.f.tempo_bpm)])

    def verb(self, singular: str, plural: str, names: list[str] | None = None) -> str:
        return plural if _plural(names or self.names) else singular


def _t_played_on(c: _Ctx) -> str:
    return f"{_a(c.tempo())} {c.pick(_MOOD[c.f.mood])} {c.pick(_PIECE)} played on {c.inst()}."


def _t_play_tempo(c: _Ctx) -> str:
    return (
        f"{c.inst()} {c.verb('plays', 'play')} {_a(c.pick(_MOOD[c.f.mood]))} {c.pick(_PIECE)} "
        f"at {_a(c.tempo())} tempo."
    )


def _t_role(c: _Ctx) -> str:
    main = c.names[0]
    plural = _plural([main])
    verb, _, rest = c.pick(_ROLE[c.roles[0]]).partition(" ")
    if not plural:
        consonant_y = verb.endswith("y") and verb[-2] not in "aeiou"
        verb = verb[:-1] + "ies" if consonant_y else verb + "s"
    text = f"{noun_phrase(main)} {verb} {rest}"
    if len(c.names) > 1:
        others = c.names[1:]
        pronoun = "them" if plural else "it"
        text += f" while {c.inst(others)} {c.verb('accompanies', 'accompany', others)} {pronoun}"
    return text + "."


def _t_families(c: _Ctx) -> str:
    families = _join(list(c.f.families))
    return f"{c.pick(_DYN_ADJ[c.f.dynamics])} music for {families}, featuring {c.inst()}."


def _t_texture(c: _Ctx) -> str:
    adv = c.pick(_DYN_ADV[c.f.dynamics])
    register = c.pick(_REGISTER[c.f.register])
    if len(c.names) == 1:
        lead = f"solo {c.names[0]}" if c.names[0] in _NO_ARTICLE else f"a solo {c.names[0]}"
    else:
        lead = f"a {c.pick(_TEXTURE[min(len(c.names), 4)])} of {c.inst()}"
    return f"{lead} playing {adv} in a {register} register."


def _t_someone(c: _Ctx) -> str:
    return f"someone plays {c.inst()} {c.pick(_DYN_ADV[c.f.dynamics])}."


def _t_music_with(c: _Ctx) -> str:
    return f"{c.tempo()} {c.pick(_MOOD[c.f.mood])} music with {c.inst()}."


def _t_hear(c: _Ctx) -> str:
    return f"you can hear {c.inst()} in this {c.tempo()} {c.pick(_PIECE)}."


def _t_key(c: _Ctx) -> str:
    key = "major" if c.f.mood == "bright" else "minor"
    return (
        f"a {c.pick(_PIECE)} in a {key} key where {c.inst()} "
        f"{c.verb('plays', 'play')} {c.pick(_DYN_ADV[c.f.dynamics])}."
    )


def _t_sound(c: _Ctx) -> str:
    names = c.names[:2]
    return (
        f"{c.inst(names)} {c.verb('sounds', 'sound', names)} "
        f"{c.pick(_DYN_ADJ[c.f.dynamics])} and {c.pick(_MOOD[c.f.mood])} at {_a(c.tempo())} pace."
    )


_TEMPLATES: tuple[Callable[[_Ctx], str], ...] = (
    _t_played_on,
    _t_play_tempo,
    _t_role,
    _t_families,
    _t_texture,
    _t_someone,
    _t_music_with,
    _t_hear,
    _t_key,
    _t_sound,
)


def make_captions(facts: CaptionFacts, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` captions, each from a different template, so no two are identical."""
    if not 1 <= n <= len(_TEMPLATES):
        raise ConfigError(f"n={n} captions requested; choose 1 to {len(_TEMPLATES)}.")
    chosen = rng.choice(len(_TEMPLATES), size=n, replace=False)
    captions = []
    for index in chosen:
        text = _TEMPLATES[int(index)](_Ctx(facts, rng))
        captions.append(text[0].upper() + text[1:])
    return captions


def make_keywords(facts: CaptionFacts) -> list[str]:
    """Instruments, families, tempo, mood, register and dynamics words, without duplicates."""
    words = [
        *facts.instruments,
        *facts.families,
        tempo_word(facts.tempo_bpm),
        facts.mood,
        facts.register,
        facts.dynamics,
        "solo" if len(facts.instruments) == 1 else "ensemble",
    ]
    return list(dict.fromkeys(words))
