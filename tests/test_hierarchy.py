"""zskit.hierarchy: building, checking and using a two-level tag hierarchy."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from zskit.data import gm
from zskit.errors import ConfigError, DataError
from zskit.hierarchy import Hierarchy, HierarchyError, hierarchies_dir, load_hierarchy

GROUPS = {"winds": ["flute", "clarinet"], "strings": ["violin", "cello", "guitar"], "voice": ["voice"]}
ORDER = ["violin", "flute", "voice", "cello", "guitar", "clarinet"]


def test_from_dict_orders_and_parents():
    h = Hierarchy.from_dict(GROUPS, ORDER, name="toy")
    assert h.fine == tuple(ORDER), f"fine tags must follow fine_order, got {h.fine}"
    assert h.coarse == ("winds", "strings", "voice"), f"coarse order is the dict's, got {h.coarse}"
    for tag in ORDER:
        expected = next(c for c, kids in GROUPS.items() if tag in kids)
        assert h.parent_of(tag) == expected, f"{tag}: parent {h.parent_of(tag)} != {expected}"
    assert h.to_dict() == {c: [t for t in ORDER if t in kids] for c, kids in GROUPS.items()}


def test_matrix_is_one_hot_membership():
    h = Hierarchy.from_dict(GROUPS, ORDER)
    m = h.matrix()
    assert m.shape == (6, 3), f"matrix shape {m.shape}"
    assert (m.sum(axis=1) == 1).all(), "each fine tag must have exactly one parent column"
    for j, c in enumerate(h.coarse):
        kids = sorted(h.fine[i] for i in np.flatnonzero(m[:, j]))
        assert kids == sorted(GROUPS[c]), f"column {c}: {kids}"
        assert sorted(h.fine[i] for i in h.children(c)) == kids, "children() disagrees with matrix"
    assert h.tensor().numpy().tolist() == m.tolist(), "tensor() must equal matrix()"


def test_order_defaults_to_first_appearance():
    h = Hierarchy.from_dict(GROUPS)
    assert h.fine == ("flute", "clarinet", "violin", "cello", "guitar", "voice"), h.fine


def test_rejects_doubly_assigned_tag():
    with pytest.raises(HierarchyError, match=r"'flute'.*'winds'.*'strings'"):
        Hierarchy.from_dict({"winds": ["flute"], "strings": ["violin", "flute"]})


def test_rejects_unknown_tag():
    with pytest.raises(HierarchyError, match="'oboe'"):
        Hierarchy.from_dict({"winds": ["flute", "oboe"]}, fine_order=["flute"])


def test_rejects_data_tag_without_parent():
    with pytest.raises(HierarchyError, match="'piano'"):
        Hierarchy.from_dict({"winds": ["flute"]}, fine_order=["flute", "piano"])


def test_rejects_empty_group_and_malformed_input():
    with pytest.raises(HierarchyError, match="'drums'"):
        Hierarchy.from_dict({"winds": ["flute"], "drums": []})
    with pytest.raises(HierarchyError, match="list of fine tags"):
        Hierarchy.from_dict({"winds": "flute"})
    with pytest.raises(HierarchyError, match="non-empty mapping"):
        Hierarchy.from_dict({})
    with pytest.raises(HierarchyError, match="appears twice"):
        Hierarchy(("a", "a"), ("x",), (0, 0))
    assert issubclass(HierarchyError, ConfigError), "HierarchyError must be a ConfigError"


def test_json_round_trip(tmp_path):
    h = Hierarchy.from_dict(GROUPS, ORDER, name="toy")
    path = h.to_json(tmp_path / "toy.json", licence="CC0-1.0")
    assert json.loads(path.read_text())["licence"] == "CC0-1.0", "extra fields must be written"
    back = Hierarchy.from_json(path)
    assert back == h, f"round trip changed the hierarchy: {back} != {h}"
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(GROUPS))
    assert Hierarchy.from_json(plain, ORDER).to_dict() == h.to_dict(), "a bare mapping must load"


def test_json_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.json"):
        Hierarchy.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        Hierarchy.from_json(bad)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(["flute"]))
    with pytest.raises(DataError, match="list.json holds a list"):
        Hierarchy.from_json(listed)
    with pytest.raises(DataError, match="openmic_tone"):
        load_hierarchy("no_such_hierarchy")


def test_openmic_tone_file_covers_openmic():
    assert hierarchies_dir() is not None and (hierarchies_dir() / "openmic_tone.json").is_file()
    h = load_hierarchy("openmic_tone", fine_order=gm.OPENMIC_CLASSES)
    assert h.n_fine == 20 and set(h.fine) == set(gm.OPENMIC_CLASSES), h.fine
    assert sorted(h.to_dict()["woodwinds"]) == ["clarinet", "flute", "saxophone"], (
        "paper 3 states Woodwind = flute, clarinet, saxophone"
    )
    assert h.parent_of("drums") == h.parent_of("cymbals"), "drums and cymbals share a group"


def test_synth_hierarchy_matches_gm_family_matrix():
    ids = gm.class_ids()
    metadata = {"name": "synth", "hierarchy": gm.hierarchy()}
    h = Hierarchy.from_metadata(metadata, ids)
    reference, families = gm.family_matrix(ids)
    assert list(h.coarse) == families, f"coarse tags {h.coarse} != gm families {families}"
    np.testing.assert_array_equal(h.matrix(np.int8), reference)
    with pytest.raises(DataError, match="hierarchy"):
        Hierarchy.from_metadata({}, ids)


def _brute_coarse(h, labels, mask, rule):
    n = len(labels)
    y = np.zeros((n, h.n_coarse), np.int8)
    known = np.zeros((n, h.n_coarse), bool)
    for i, j in itertools.product(range(n), range(h.n_coarse)):
        kids = h.children(j)
        pos = [labels[i, k] == 1 and mask[i, k] for k in kids]
        neg = [labels[i, k] == 0 and mask[i, k] for k in kids]
        y[i, j] = any(pos)
        known[i, j] = any(pos) or (any(neg) if rule == "any" else all(neg))
    return y, known


@pytest.mark.parametrize("rule", ["any", "all"])
def test_coarse_labels_against_brute_force(rule):
    rng = np.random.default_rng(0)
    h = Hierarchy.from_dict(GROUPS, ORDER)
    labels = (rng.random((60, 6)) < 0.3).astype(np.int8)
    mask = rng.random((60, 6)) < 0.6
    y, known = h.coarse_labels(labels, mask, rule)
    ref_y, ref_known = _brute_coarse(h, labels, mask, rule)
    np.testing.assert_array_equal(known, ref_known, err_msg=f"coarse mask differs ({rule})")
    np.testing.assert_array_equal(y, ref_y, err_msg=f"coarse labels differ ({rule})")


def test_coarse_labels_without_mask_are_gm_families():
    ids = gm.class_ids()
    h = Hierarchy.from_dict(gm.hierarchy(), ids)
    labels = (np.random.default_rng(1).random((40, len(ids))) < 0.05).astype(np.int8)
    y, known = h.coarse_labels(labels)
    assert known.all(), "with every fine label known, every coarse label is known"
    np.testing.assert_array_equal(y, gm.to_families(labels, ids))


def test_coarse_labels_checks_shapes():
    h = Hierarchy.from_dict(GROUPS, ORDER)
    with pytest.raises(DataError, match=r"\(N, 6\)"):
        h.coarse_labels(np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="rule"):
        h.coarse_labels(np.zeros((3, 6)), rule="some")
