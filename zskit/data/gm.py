"""Instrument classes of the synthetic corpus, their General MIDI sounds and a 2-level hierarchy.

Every class has an id (``snake_case``), a plain-English display name that word vectors and sentence
encoders understand, a family (the coarse level of the hierarchy), the General MIDI programs
(0-based) or GM percussion keys that render it, a realistic MIDI note range and the playing styles
("roles") the generator may give it.

Design decisions (documented here because labels depend on them):

- The 20 OpenMIC-2018 instruments come first, with OpenMIC's ids. GM has no mandolin and no
  ukulele: ``mandolin`` is the steel-string guitar (program 25) played in the mandolin register with
  tremolo picking, ``ukulele`` the nylon guitar (program 24) strummed in the ukulele register
  (C4-A5). ``guitar`` also uses programs 24 and 25, so the three share the exclusive group
  ``"guitar"``: a clip never holds two of them, and never two classes that are the same sound.
- ``mallet_percussion`` (OpenMIC) is vibraphone + marimba; xylophone and glockenspiel are classes of
  their own. All four sit in the family "pitched percussion".
- ``cymbals`` are the kit's crash, ride, ride bell, china and splash; ``drums`` are kick, snare,
  side stick, toms and hi-hats. Congas, tambourine and cowbell are further kit classes.
- No two classes share a program or a percussion key except within an exclusive group, so a clip's
  labels are exactly the sounds it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zskit.errors import ConfigError

#: Playing styles the generator knows (see ``zskit.data.synth``).
ROLES = ("melody", "chords", "pad", "arpeggio", "strum", "tremolo", "bass", "hits", "beat")


@dataclass(frozen=True)
class InstrumentClass:
    """One fine-level class: how it sounds, where it sits in the hierarchy, how it may play."""

    id: str
    name: str
    family: str
    programs: tuple[int, ...] = ()
    drum_notes: tuple[int, ...] = ()
    low: int = 48
    high: int = 84
    roles: tuple[str, ...] = ("melody",)
    openmic: bool = False
    exclusive: str | None = None

    @property
    def is_drum(self) -> bool:
        """True for classes played on the GM percussion channel (keys, not programs)."""
        return bool(self.drum_notes)


#: Family id -> display name (the coarse level of the hierarchy).
FAMILIES: dict[str, str] = {
    "bowed_strings": "bowed strings",
    "plucked_strings": "plucked strings",
    "woodwinds": "woodwinds",
    "brass": "brass",
    "keyboards": "keyboards",
    "free_reeds": "free reeds",
    "pitched_percussion": "pitched percussion",
    "drums_percussion": "percussion",
    "vocals": "vocals",
    "electronic": "electronic instruments",
}

_MEL = ("melody",)
_KEYS = ("chords", "arpeggio", "melody")


def _pitched(id: str, name: str, family: str, programs: tuple[int, ...], low: int, high: int,
             roles: tuple[str, ...] = _MEL, openmic: bool = False,
             exclusive: str | None = None) -> InstrumentClass:
    return InstrumentClass(id, name, family, programs, (), low, high, roles, openmic, exclusive)


def _kit(id: str, name: str, notes: tuple[int, ...], openmic: bool = False) -> InstrumentClass:
    return InstrumentClass(id, name, "drums_percussion", (), notes, 0, 127, ("beat",), openmic)


_P, _OM = _pitched, True

#: Every class, the 20 OpenMIC-2018 instruments first. MIDI ranges are the rendered key ranges.
# fmt: off
CLASSES: tuple[InstrumentClass, ...] = (
    # --- OpenMIC-2018 ---
    _P("accordion", "accordion", "free_reeds", (21, 23), 53, 81, ("melody", "pad", "chords"), _OM),
    _P("banjo", "banjo", "plucked_strings", (105,), 50, 79, ("strum", "arpeggio", "melody"), _OM),
    _P("bass", "bass", "plucked_strings", (32, 33, 34, 35), 28, 55, ("bass",), _OM),
    _P("cello", "cello", "bowed_strings", (42,), 36, 69, ("melody", "bass", "pad"), _OM),
    _P("clarinet", "clarinet", "woodwinds", (71,), 50, 84, _MEL, _OM),
    _kit("cymbals", "cymbals", (49, 51, 52, 53, 55, 57, 59), _OM),  # crash, ride, china, splash
    _kit("drums", "drums", (35, 36, 37, 38, 40, 41, 42, 43, 44, 45, 46, 47, 48, 50), _OM),
    _P("flute", "flute", "woodwinds", (73,), 60, 93, _MEL, _OM),
    _P("guitar", "guitar", "plucked_strings", (24, 25, 26, 27, 29, 30), 40, 76,
       ("strum", "arpeggio", "melody"), _OM, "guitar"),
    _P("mallet_percussion", "mallet percussion", "pitched_percussion", (11, 12), 53, 89,
       ("melody", "arpeggio"), _OM),
    _P("mandolin", "mandolin", "plucked_strings", (25,), 55, 84, ("tremolo", "melody"), _OM,
       "guitar"),
    _P("organ", "organ", "keyboards", (16, 17, 18, 19, 20), 36, 84, ("pad", "chords", "melody"),
       _OM),
    _P("piano", "piano", "keyboards", (0, 1, 2, 3), 33, 96, _KEYS, _OM),
    _P("saxophone", "saxophone", "woodwinds", (64, 65, 66, 67), 44, 72, _MEL, _OM),
    _P("synthesizer", "synthesizer", "electronic",
       (80, 81, 83, 84, 86, 87, 88, 89, 90, 92, 93, 94, 95), 36, 84, ("pad", "melody", "arpeggio"),
       _OM),
    _P("trombone", "trombone", "brass", (57,), 40, 72, ("melody", "bass"), _OM),
    _P("trumpet", "trumpet", "brass", (56, 59), 54, 82, _MEL, _OM),
    _P("ukulele", "ukulele", "plucked_strings", (24,), 60, 81, ("strum",), _OM, "guitar"),
    _P("violin", "violin", "bowed_strings", (40,), 55, 91, ("melody", "pad"), _OM),
    _P("voice", "voice", "vocals", (52, 53, 54), 48, 79, ("melody", "pad"), _OM),
    # --- further General MIDI instruments ---
    _P("string_section", "string section", "bowed_strings", (48, 49), 43, 84, ("pad",)),
    _P("harp", "harp", "plucked_strings", (46,), 36, 91, ("arpeggio", "melody")),
    _P("sitar", "sitar", "plucked_strings", (104,), 48, 77),
    _P("koto", "koto", "plucked_strings", (107,), 55, 84, ("melody", "arpeggio")),
    _P("shamisen", "shamisen", "plucked_strings", (106,), 52, 79),
    _P("oboe", "oboe", "woodwinds", (68,), 60, 86),
    _P("bassoon", "bassoon", "woodwinds", (70,), 34, 67, ("melody", "bass")),
    _P("recorder", "recorder", "woodwinds", (74,), 65, 93),
    _P("pan_flute", "pan flute", "woodwinds", (75,), 60, 88),
    _P("ocarina", "ocarina", "woodwinds", (79,), 60, 84),
    _P("whistle", "whistle", "woodwinds", (78,), 60, 78),  # TimGM6mb's whistle stops at 78
    _P("bagpipes", "bagpipes", "woodwinds", (109,), 67, 81),
    _P("harmonica", "harmonica", "free_reeds", (22,), 60, 84, ("melody", "chords")),
    _P("tuba", "tuba", "brass", (58,), 28, 58, ("bass", "melody")),
    _P("french_horn", "french horn", "brass", (60,), 41, 72, ("melody", "pad")),
    _P("electric_piano", "electric piano", "keyboards", (4, 5), 41, 84, _KEYS),
    _P("harpsichord", "harpsichord", "keyboards", (6,), 41, 89, _KEYS),
    _P("clavinet", "clavinet", "keyboards", (7,), 41, 84, ("chords", "melody")),
    _P("celesta", "celesta", "pitched_percussion", (8,), 60, 96, ("melody", "arpeggio")),
    _P("glockenspiel", "glockenspiel", "pitched_percussion", (9,), 79, 105),
    _P("xylophone", "xylophone", "pitched_percussion", (13,), 65, 96),
    _P("tubular_bells", "tubular bells", "pitched_percussion", (14,), 60, 77),
    _P("steel_drums", "steel drums", "pitched_percussion", (114,), 55, 84, ("melody", "arpeggio")),
    _P("kalimba", "kalimba", "pitched_percussion", (108,), 60, 88, ("arpeggio", "melody")),
    _P("timpani", "timpani", "drums_percussion", (47,), 40, 57, ("hits",)),
    _P("taiko_drum", "taiko drum", "drums_percussion", (116,), 40, 55, ("hits",)),
    _kit("congas", "congas", (62, 63, 64)),
    _kit("tambourine", "tambourine", (54,)),
    _kit("cowbell", "cowbell", (56,)),
)
# fmt: on

#: The 20 OpenMIC-2018 class ids, in OpenMIC's order.
OPENMIC_CLASSES: tuple[str, ...] = tuple(c.id for c in CLASSES if c.openmic)

_BY_ID = {c.id: c for c in CLASSES}


def class_ids() -> list[str]:
    """All class ids in the corpus order."""
    return [c.id for c in CLASSES]


def get_class(class_id: str) -> InstrumentClass:
    """The class called ``class_id``; the error lists the valid ids."""
    try:
        return _BY_ID[class_id]
    except KeyError:
        raise ConfigError(
            f"Unknown instrument class {class_id!r}. Choose one of: {', '.join(_BY_ID)}."
        ) from None


def hierarchy(class_list: list[str] | None = None) -> dict[str, list[str]]:
    """Family id -> its class ids (only families with at least one of ``class_list``)."""
    ids = class_ids() if class_list is None else list(class_list)
    out: dict[str, list[str]] = {}
    for family in FAMILIES:
        members = [i for i in ids if get_class(i).family == family]
        if members:
            out[family] = members
    return out


def family_matrix(class_list: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """A (n_classes, n_families) 0/1 matrix mapping fine classes to families, and the family ids."""
    ids = class_ids() if class_list is None else list(class_list)
    families = list(hierarchy(ids))
    matrix = np.zeros((len(ids), len(families)), dtype=np.int8)
    for row, class_id in enumerate(ids):
        matrix[row, families.index(get_class(class_id).family)] = 1
    return matrix, families


def to_families(labels: np.ndarray, class_list: list[str] | None = None) -> np.ndarray:
    """Coarse labels from fine labels (N, C): a family is positive when any of its classes is."""
    matrix, _ = family_matrix(class_list)
    return (np.asarray(labels) @ matrix > 0).astype(np.int8)
