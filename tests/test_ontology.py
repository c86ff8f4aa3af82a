"""zskit.data.ontology: the AudioSet graph against brute force, exclusion rules, committed lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from zskit.data.audioset import read_class_labels
from zskit.data.esc50 import CLASS_NAMES, ESC50_CLASSES
from zskit.data.ontology import (
    MUSICAL_INSTRUMENT,
    Ontology,
    excluded_classes,
    exclusion_table,
    label_similarity,
    load_ontology,
    normalise_label,
    read_overlap_list,
    similar_classes,
)
from zskit.errors import ConfigError, DataError

# A small graph with a node of two parents (Growl under Dog and Cat) and restrictions.
TOY = [
    {"id": "a", "name": "Animal", "child_ids": ["d", "c", "b"], "restrictions": ["abstract"]},
    {"id": "d", "name": "Dog", "child_ids": ["bk", "g"]},
    {"id": "c", "name": "Cat", "child_ids": ["m", "g"]},
    {"id": "b", "name": "Bird", "child_ids": ["bs"]},
    {"id": "bs", "name": "Bird vocalization, bird song", "child_ids": ["ch"]},
    {"id": "ch", "name": "Chirp, tweet", "child_ids": []},
    {"id": "bk", "name": "Bark", "child_ids": []},
    {"id": "m", "name": "Meow", "child_ids": []},
    {"id": "g", "name": "Growling", "child_ids": [], "restrictions": ["blacklist"]},
    {"id": "w", "name": "Whimper (dog)", "child_ids": []},
    {"id": "h", "name": "Church bell", "child_ids": []},
]


@pytest.fixture(scope="module")
def toy() -> Ontology:
    return Ontology.from_json(TOY)


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return load_ontology()


def _reachability(onto: Ontology) -> tuple[list[str], np.ndarray]:
    """Brute force: R[i, j] = j is reachable from i by child edges (boolean matrix closure)."""
    ids = list(onto.nodes)
    pos = {i: k for k, i in enumerate(ids)}
    adj = np.zeros((len(ids), len(ids)), dtype=bool)
    for node in onto.nodes.values():
        for child in node.child_ids:
            adj[pos[node.id], pos[child]] = True
    reach = adj.copy()
    while True:
        nxt = reach | ((reach.astype(np.int32) @ adj.astype(np.int32)) > 0)
        if (nxt == reach).all():
            return ids, reach
        reach = nxt


# ----------------------------------------------------------------------------- graph


def test_toy_structure(toy: Ontology) -> None:
    assert toy.parents("Growling") == {"d", "c"}, "a node may have several parents"
    assert toy.ancestors("g") == {"d", "c", "a"}
    assert toy.descendants("Animal") == {"d", "c", "b", "bs", "ch", "bk", "m", "g"}
    assert toy.descendants("Bark") == set() and toy.ancestors("Animal") == set()
    assert toy.roots() == {"a", "w", "h"}
    assert toy.depth("ch") == 3 and toy.depth("a") == 0
    assert toy.is_abstract("Animal") and not toy.is_abstract("Dog")
    assert toy.is_blacklisted("g") and toy.restrictions("Dog") == ()


def test_lookup_and_errors(toy: Ontology) -> None:
    assert toy.id_of("dog") == "d", "names are matched case-insensitively"
    assert toy.name_of("bk") == "Bark" and toy["Cat"].id == "c"
    assert "Meow" in toy and "m" in toy and "Moo" not in toy
    with pytest.raises(ConfigError, match="Close names.*Dog"):
        toy.id_of("Dogg")
    with pytest.raises(DataError, match="unknown child"):
        Ontology.from_json([{"id": "x", "name": "X", "child_ids": ["missing"]}])
    with pytest.raises(DataError, match="appears twice"):
        Ontology.from_json([{"id": "x", "name": "X"}, {"id": "x", "name": "Y"}])
    with pytest.raises(DataError, match="'id' and 'name'"):
        Ontology.from_json([{"name": "no id"}])


def test_match_synonyms_qualifiers_and_plurals(toy: Ontology) -> None:
    assert toy.match("bird song") == {"bs"}, "a comma-separated part is a synonym"
    assert toy.match("Tweet") == {"ch"}
    assert toy.match("whimper") == {"w"}, "a parenthesised qualifier may be left out"
    assert toy.match("church_bells") == {"h"}, "underscores and a plural still match"
    assert toy.match("dogs") == {"d"}
    assert toy.match("giraffe") == set()
    assert normalise_label("  Crying_Baby ") == "crying baby"


def test_related(toy: Ontology) -> None:
    assert toy.related(["Dog"]) == {"d", "a", "bk", "g"}
    assert toy.related(["Dog"], ancestors=False) == {"d", "bk", "g"}
    assert toy.related(["Dog", "Meow"], descendants=False) == {"d", "a", "m", "c"}


def test_real_ontology_matches_brute_force_closure(onto: Ontology) -> None:
    assert len(onto) == 632, f"ontology.json has 632 nodes, read {len(onto)}"
    ids, reach = _reachability(onto)
    for k, node in enumerate(ids):
        want_desc = {ids[j] for j in np.flatnonzero(reach[k])}
        want_anc = {ids[j] for j in np.flatnonzero(reach[:, k])}
        assert onto.descendants(node) == want_desc, f"descendants of {onto.name_of(node)}"
        assert onto.ancestors(node) == want_anc, f"ancestors of {onto.name_of(node)}"
    assert not reach.diagonal().any(), "the ontology has no cycles"


def test_real_ontology_facts(onto: Ontology) -> None:
    assert onto.names(onto.roots()) == sorted([
        "Human sounds", "Animal", "Music", "Natural sounds", "Sounds of things",
        "Source-ambiguous sounds", "Channel, environment and background"])
    assert onto.names(onto.ancestors("Bark")) == ["Animal", "Dog", "Domestic animals, pets"]
    assert "Bark" in onto.names(onto.descendants("Dog"))
    assert onto.name_of(MUSICAL_INSTRUMENT) == "Musical instrument"
    assert "Violin, fiddle" in onto.names(onto.descendants(MUSICAL_INSTRUMENT))
    n_abstract = sum(onto.is_abstract(i) for i in onto.nodes)
    n_black = sum(onto.is_blacklisted(i) for i in onto.nodes)
    assert (n_abstract, n_black) == (23, 67), f"restrictions: {n_abstract} abstract, {n_black}"
    classes = read_class_labels()
    for mid, name in zip(classes["mid"], classes["display_name"]):
        assert onto.name_of(mid) == name, f"class {mid} is {name!r} in the class list"


# ----------------------------------------------------------------------------- exclusion rules


class FakeEncoder:
    """Fixed vectors per name, so cosines are known exactly."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode_labels(self, names):
        return np.array([self.vectors[n] for n in names], dtype=np.float32)


ENC = FakeEncoder({
    "dog": [1, 0, 0], "Dog": [1, 0, 0], "Bark": [0.9, 0.1, 0], "Cat": [0.6, 0.8, 0],
    "Meow": [0.5, 0.9, 0], "Church bell": [0, 0, 1], "church bells": [0, 0.1, 1],
    "Whimper (dog)": [0.7, 0, 0.7],
})


def test_label_similarity_is_cosine() -> None:
    a, b = ["Dog", "Cat", "Church bell"], ["dog", "church bells"]
    got = label_similarity(a, b, ENC)
    want = cosine_similarity(ENC.encode_labels(a), ENC.encode_labels(b))
    np.testing.assert_allclose(got, want, atol=1e-6, err_msg="cosine against scikit-learn")
    assert label_similarity([], b, ENC).shape == (0, 2)


def test_similar_classes_threshold() -> None:
    cands = ["Dog", "Bark", "Cat", "Whimper (dog)"]
    out = similar_classes(cands, ["dog"], ENC, threshold=0.65)
    assert set(out) == {"Dog", "Bark", "Whimper (dog)"}, "Cat (0.60) is below, Whimper (0.71) above"
    assert out["Whimper (dog)"][1] == pytest.approx(0.5**0.5, abs=1e-6)
    assert out["Dog"] == ("dog", pytest.approx(1.0))
    with pytest.raises(ConfigError, match="threshold"):
        similar_classes(cands, ["dog"], ENC, threshold=1.5)


def test_exclusion_table_rules(toy: Ontology) -> None:
    cands = ["Dog", "Bark", "Cat", "Meow", "Church bell", "Whimper (dog)"]
    table = exclusion_table(cands, ["dog"], ontology=toy, encoder=ENC, threshold=0.995,
                            explicit=["Church bell"])
    rules = {(r.candidate, r.rule) for r in table.itertuples()}
    assert rules == {("Dog", "ontology:same"), ("Bark", "ontology:descendant"),
                     ("Dog", "similarity"), ("Church bell", "explicit")}, table
    with_anc = excluded_classes(["Animal", "Cat", "Growling"], ["Bark"], ontology=toy,
                                ancestors=True)
    assert with_anc == {"Animal"}, "ancestors of Bark: Dog and Animal; Growling is a sibling"
    assert excluded_classes(["Animal"], ["Bark"], ontology=toy) == set(), "no ancestors by default"
    assert excluded_classes(cands, ["giraffe"], ontology=toy) == set()
    with pytest.raises(ConfigError, match="both encoder and threshold"):
        exclusion_table(cands, ["dog"], encoder=ENC)


# ----------------------------------------------------------------------------- committed lists


@pytest.mark.parametrize("which", ["esc50", "openmic"])
def test_committed_overlap_lists_agree_with_metadata(which: str, onto: Ontology) -> None:
    full = read_overlap_list(which, include_kept=True)
    kept = read_overlap_list(which)
    classes = read_class_labels()
    name_of = dict(zip(classes["mid"], classes["display_name"]))
    assert set(full["exclude"]) == {"yes", "no"} and (kept["exclude"] == "yes").all()
    assert set(full["relation"]) <= {"name", "descendant", "manual", "similarity"}
    for row in full.itertuples():
        assert name_of.get(row.mid) == row.name, f"{row.mid} is not {row.name!r} in the 527"
        assert -1 <= float(row.similarity) <= 1, row
        if row.relation == "manual" or row.exclude == "no":
            assert row.note, f"{row.name} for {row.target}: manual decisions give a reason"
    assert not {"Speech", "Music"} & set(kept["name"]), "Speech and Music always train"
    assert not full.duplicated(["target", "mid"]).any(), "one row per (target, class)"


def test_esc50_list_covers_targets_and_ontology_rule(onto: Ontology) -> None:
    full = read_overlap_list("esc50", include_kept=True)
    targets = [CLASS_NAMES[c] for c in ESC50_CLASSES]
    without = set(targets) - set(full["target"])
    assert without == {"drinking, sipping", "can opening", "washing machine"}, (
        "only the three classes documented as having no AudioSet counterpart lack rows")
    names = read_class_labels()["display_name"].tolist()
    auto = exclusion_table(names, targets, ontology=onto)
    listed = set(zip(full["target"], full["name"]))
    missing = set(zip(auto["target"], auto["candidate"])) - listed
    assert not missing, f"ontology-rule candidates absent from the list: {sorted(missing)[:5]}"
    kept = read_overlap_list("esc50")
    assert {"Dog", "Bark", "Baby cry, infant cry", "Church bell"} <= set(kept["name"])
    assert not {"Animal", "Wind chime", "French horn"} & set(kept["name"]), "reviewed as kept"


def test_openmic_list_covers_every_instrument() -> None:
    kept = read_overlap_list("openmic")
    assert len(set(kept["target"])) == 20, sorted(set(kept["target"]))
    assert {"Violin, fiddle", "Drum kit", "Singing", "Double bass"} <= set(kept["name"])
    assert "Musical instrument" not in set(kept["name"])


def test_read_overlap_list_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_overlap_list(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"target": ["x"], "name": ["y"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="lacks the columns"):
        read_overlap_list(bad)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"target": ["x"], "mid": ["/m/1"], "name": ["y"], "relation": ["manual"],
                  "exclude": ["maybe"]}).to_csv(wrong, index=False)
    with pytest.raises(DataError, match="yes or no"):
        read_overlap_list(wrong)
