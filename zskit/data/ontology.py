"""The AudioSet ontology, and which training classes to exclude because they overlap test classes.

:class:`Ontology` reads ``ontology.json`` (632 nodes; found by
:func:`zskit.data.audioset.audioset_file`) and answers: name <-> id, parents, children,
ancestors, descendants, restrictions (``abstract``: a grouping node never used as a label;
``blacklist``: a node AudioSet left out or found unreliable) and :meth:`Ontology.related`, the
test classes with their ancestors and descendants.

Paper 1 trains on AudioSet "after carefully excluding all classes that semantically overlap"
the test classes. Three rules, combined by :func:`exclusion_table`:

- ontology: a training class that is a test class, or an ancestor or descendant of one;
- similarity: a training class whose label-embedding cosine to some test class exceeds a
  threshold (any label encoder with ``encode_labels(names)``, e.g. GloVe or MiniLM);
- an explicit list, e.g. the reviewed ESC-50 and OpenMIC overlap lists in ``data/exclusions/``
  (:func:`read_overlap_list`), which record how each entry was found.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from zskit._arrays import to_numpy
from zskit.data.prepare import read_csv_file, read_json_file
from zskit.errors import ConfigError, DataError
from zskit.paths import project_root

__all__ = [
    "MUSICAL_INSTRUMENT",
    "OVERLAP_LISTS",
    "LabelEncoder",
    "Ontology",
    "OntologyNode",
    "excluded_classes",
    "exclusion_table",
    "label_similarity",
    "load_ontology",
    "normalise_label",
    "read_overlap_list",
    "similar_classes",
]

log = logging.getLogger(__name__)

#: The ontology node "Musical instrument": its descendants are paper 1's C_inst (OpenMIC).
MUSICAL_INSTRUMENT = "/m/04szw"

#: Short names of the committed overlap lists (files under ``data/exclusions/``).
OVERLAP_LISTS = {
    "esc50": "esc50_audioset_overlap.csv",
    "openmic": "openmic_audioset_overlap.csv",
}

_SEPARATORS = re.compile(r"[_\s]+")
_PARENTHESIS = re.compile(r"\s*\([^)]*\)")


def normalise_label(text: str) -> str:
    """Lowercase, underscores to spaces, single spaces: ``"Crying_baby "`` -> ``"crying baby"``."""
    return _SEPARATORS.sub(" ", text.lower()).strip()


def _synonyms(name: str) -> set[str]:
    """The forms a node name may be matched by: the whole name, each comma-separated part, and
    the same without parenthesised qualifiers (``"Whimper (dog)"`` -> ``"whimper"``)."""
    wholes = {name, _PARENTHESIS.sub("", name)}
    parts = {part for whole in wholes for part in whole.split(",")}
    return {normalise_label(f) for f in wholes | parts if f.strip()}


def _singular(text: str) -> str:
    """A crude singular of each word (``"sea waves"`` -> ``"sea wave"``), for name matching."""
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                    for w in text.split())


@dataclass(frozen=True)
class OntologyNode:
    """One entry of ``ontology.json``."""

    id: str
    name: str
    description: str = ""
    child_ids: tuple[str, ...] = ()
    restrictions: tuple[str, ...] = ()
    citation_uri: str = ""
    positive_examples: tuple[str, ...] = ()


class Ontology:
    """The AudioSet ontology as a graph of :class:`OntologyNode` (a node may have several parents).

    >>> onto = load_ontology()
    >>> onto.name_of(onto.id_of("Dog")), sorted(onto.names(onto.children("Dog")))[:2]
    ('Dog', ['Bark', 'Bay'])
    """

    def __init__(self, nodes: Iterable[OntologyNode]) -> None:
        self.nodes: dict[str, OntologyNode] = {}
        for node in nodes:
            if node.id in self.nodes:
                raise DataError(f"Ontology node id {node.id!r} appears twice; fix the file.")
            self.nodes[node.id] = node
        self._by_name = {node.name.lower(): node.id for node in self.nodes.values()}
        self._parents: dict[str, set[str]] = {i: set() for i in self.nodes}
        for node in self.nodes.values():
            for child in node.child_ids:
                if child not in self.nodes:
                    raise DataError(f"Ontology node {node.name!r} lists unknown child {child!r}; "
                                    "the file is incomplete. Fetch the official ontology.json.")
                self._parents[child].add(node.id)
        self._check_acyclic()
        self._synonym_index: dict[str, set[str]] = {}
        for node in self.nodes.values():
            for form in _synonyms(node.name):
                self._synonym_index.setdefault(form, set()).add(node.id)

    def _check_acyclic(self) -> None:
        """DataError naming a cycle of ``child_ids``: a node cannot be its own ancestor, and
        :meth:`depth` would never reach a root."""
        try:
            TopologicalSorter({i: n.child_ids for i, n in self.nodes.items()}).prepare()
        except CycleError as err:
            # graphlib lists each node before the node that lists it as a child; reverse that
            path = " -> ".join(f"{self.nodes[i].name!r} ({i})" for i in reversed(err.args[1]))
            raise DataError(f"The ontology has a cycle (each node lists the next as a child): "
                            f"{path}. Remove one of these child_ids, or fetch the official "
                            "ontology.json.") from None

    # --------------------------------------------------------------- construction

    @classmethod
    def from_json(cls, entries: Sequence[dict]) -> Ontology:
        """Build from the parsed ``ontology.json`` list."""
        try:
            return cls(
                OntologyNode(
                    id=e["id"], name=e["name"], description=e.get("description", ""),
                    child_ids=tuple(e.get("child_ids", ())),
                    restrictions=tuple(e.get("restrictions", ())),
                    citation_uri=e.get("citation_uri", ""),
                    positive_examples=tuple(e.get("positive_examples", ())),
                )
                for e in entries
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise DataError(f"Ontology entries must be objects with 'id' and 'name' ({err!r}); "
                            "fetch the official ontology.json.") from None

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Ontology:
        """Read ``ontology.json`` (default: :func:`zskit.data.audioset.audioset_file`)."""
        if path is None:
            from zskit.data.audioset import audioset_file

            path = audioset_file("ontology.json")
        entries = read_json_file(path, "see zskit.data.audioset.audioset_file",
                                 "delete it and fetch it again")
        if not isinstance(entries, list):
            raise DataError(f"{path} must hold a JSON list of nodes; fetch the official file.")
        return cls.from_json(entries)

    # --------------------------------------------------------------- lookup

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.nodes or key.lower() in self._by_name)

    def __getitem__(self, key: str) -> OntologyNode:
        return self.nodes[self.id_of(key)]

    def id_of(self, key: str) -> str:
        """The id of a node given by id or exact name (case-insensitive)."""
        if key in self.nodes:
            return key
        found = self._by_name.get(key.lower())
        if found is None:
            close = difflib.get_close_matches(key, [n.name for n in self.nodes.values()], n=5)
            hint = f" Close names: {close}." if close else ""
            raise ConfigError(f"{key!r} is neither an id nor a name of the AudioSet ontology."
                              f"{hint} Use Ontology.match() to search synonyms.")
        return found

    def name_of(self, key: str) -> str:
        """The display name of a node given by id or name."""
        return self.nodes[self.id_of(key)].name

    def names(self, keys: Iterable[str]) -> list[str]:
        """Display names of the given ids (or names), sorted."""
        return sorted(self.name_of(k) for k in keys)

    def match(self, label: str) -> set[str]:
        """Ids of nodes that ``label`` names: the whole name, a comma-separated synonym, or either
        without a parenthesised qualifier, compared after :func:`normalise_label` and also in a
        crude singular (``"Church_bells"`` -> Church bell; ``"rooster"`` -> Chicken, rooster)."""
        text = normalise_label(label)
        found = set(self._synonym_index.get(text, ()))
        if not found:
            singular = _singular(text)
            for form, ids in self._synonym_index.items():
                if _singular(form) == singular:
                    found |= ids
        return found

    # --------------------------------------------------------------- structure

    def parents(self, key: str) -> set[str]:
        """Ids of the direct parents."""
        return set(self._parents[self.id_of(key)])

    def children(self, key: str) -> set[str]:
        """Ids of the direct children."""
        return set(self.nodes[self.id_of(key)].child_ids)

    def _closure(self, key: str, step) -> set[str]:
        out: set[str] = set()
        todo = list(step(self.id_of(key)))
        while todo:
            node = todo.pop()
            if node not in out:
                out.add(node)
                todo.extend(step(node))
        return out

    def ancestors(self, key: str) -> set[str]:
        """Ids of all nodes above ``key`` (through every parent), without ``key``."""
        return self._closure(key, lambda i: self._parents[i])

    def descendants(self, key: str) -> set[str]:
        """Ids of all nodes below ``key``, without ``key``."""
        return self._closure(key, lambda i: self.nodes[i].child_ids)

    def roots(self) -> set[str]:
        """Ids of the top-level categories (nodes without a parent)."""
        return {i for i, parents in self._parents.items() if not parents}

    def depth(self, key: str) -> int:
        """Shortest number of edges from a root (a root has depth 0)."""
        level, frontier = 0, {self.id_of(key)}
        while not any(not self._parents[i] for i in frontier):
            frontier = set().union(*(self._parents[i] for i in frontier))
            level += 1
        return level

    def restrictions(self, key: str) -> tuple[str, ...]:
        """The node's restrictions: ``()``, ``("abstract",)``, ``("blacklist",)`` or both."""
        return self.nodes[self.id_of(key)].restrictions

    def is_abstract(self, key: str) -> bool:
        """True for grouping nodes that are never used as labels."""
        return "abstract" in self.restrictions(key)

    def is_blacklisted(self, key: str) -> bool:
        """True for nodes AudioSet marks ``blacklist`` (left out of, or unreliable in, the release)."""
        return "blacklist" in self.restrictions(key)

    def related(
        self, keys: Iterable[str], *, ancestors: bool = True, descendants: bool = True
    ) -> set[str]:
        """Ids of the given nodes (ids or names) together with their ancestors and descendants.

        The set to exclude from training "by ontology" when ``keys`` are the test classes.
        Ancestors reach up to the top-level categories (e.g. "Animal"); pass
        ``ancestors=False`` to keep broader classes.
        """
        out: set[str] = set()
        for key in keys:
            node = self.id_of(key)
            out.add(node)
            if ancestors:
                out |= self.ancestors(node)
            if descendants:
                out |= self.descendants(node)
        return out


def load_ontology(path: str | os.PathLike | None = None) -> Ontology:
    """:meth:`Ontology.load` (the committed or downloaded ``ontology.json`` by default)."""
    return Ontology.load(path)


# ----------------------------------------------------------------------------- exclusion rules


class LabelEncoder(Protocol):
    """Anything with ``encode_labels(names) -> (n, d)`` (zskit text encoders, tensors or arrays)."""

    def encode_labels(self, names: Sequence[str]): ...


def _unit(x) -> np.ndarray:
    x = to_numpy(x).astype(np.float64)  # also a bfloat16 tensor, which numpy cannot take
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def label_similarity(
    names_a: Sequence[str], names_b: Sequence[str], encoder: LabelEncoder
) -> np.ndarray:
    """Cosine similarity ``(len(names_a), len(names_b))`` of the encoder's label embeddings."""
    if not len(names_a) or not len(names_b):
        return np.zeros((len(names_a), len(names_b)))
    a, b = _unit(encoder.encode_labels(list(names_a))), _unit(encoder.encode_labels(list(names_b)))
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"The encoder gave {a.shape[1]}-d and {b.shape[1]}-d embeddings; it "
                          "must embed every name in one space.")
    return a @ b.T


def similar_classes(
    candidates: Sequence[str], targets: Sequence[str], encoder: LabelEncoder, threshold: float
) -> dict[str, tuple[str, float]]:
    """Candidates whose cosine to some target exceeds ``threshold``: ``{name: (target, cos)}``."""
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold={threshold} is a cosine similarity; choose it in [-1, 1].")
    sim = label_similarity(candidates, targets, encoder)
    out = {}
    for i, name in enumerate(candidates):
        if sim.shape[1] and sim[i].max() > threshold:
            j = int(sim[i].argmax())
            out[name] = (targets[j], float(sim[i, j]))
    return out


def _exclusions_dir() -> Path:
    root = project_root()
    if root is None:
        raise DataError(
            "The overlap lists live in the zskit checkout's data/exclusions/, which this "
            "installed zskit does not have. Pass the path of a list file instead."
        )
    return root / "data" / "exclusions"


def read_overlap_list(
    name_or_path: str | os.PathLike, *, include_kept: bool = False
) -> pd.DataFrame:
    """A committed overlap list (``"esc50"``, ``"openmic"``) or any CSV in the same format.

    Columns: ``target`` (the test-set class), ``mid`` and ``name`` (the AudioSet class),
    ``relation`` (how it was found: ``name``, ``descendant``, ``manual``, ``similarity``),
    ``similarity`` (MiniLM cosine to the target), ``exclude`` (``yes``, or ``no`` for a candidate
    the review kept for training) and ``note``. Only ``exclude == "yes"`` rows are returned
    unless ``include_kept``. The classes to drop: ``set(read_overlap_list("esc50")["name"])``.
    """
    key = str(name_or_path)
    path = _exclusions_dir() / OVERLAP_LISTS[key] if key in OVERLAP_LISTS else Path(key)
    if not path.is_file():
        raise DataError(f"Overlap list {path} does not exist; use one of {sorted(OVERLAP_LISTS)} "
                        "or the path of a CSV with columns target, mid, name, relation.")
    df = read_csv_file(path, "see data/exclusions/README.md for the format (columns target, mid, "
                       "name, relation)", dtype=str, keep_default_na=False)
    missing = {"target", "mid", "name", "relation"} - set(df.columns)
    if missing:
        raise DataError(f"Overlap list {path} lacks the columns {sorted(missing)}; see "
                        "data/exclusions/README.md for the format.")
    if "exclude" in df.columns:
        bad = set(df["exclude"]) - {"yes", "no"}
        if bad:
            raise DataError(f"Overlap list {path}: column 'exclude' must be yes or no, found "
                            f"{sorted(bad)}.")
        if not include_kept:
            df = df[df["exclude"] == "yes"].reset_index(drop=True)
    return df


def _nodes_named(ontology: Ontology, label: str) -> set[str]:
    """The node a label is (exact id or name), else the nodes it matches by synonym."""
    return {ontology.id_of(label)} if label in ontology else ontology.match(label)


def exclusion_table(
    candidates: Sequence[str],
    targets: Sequence[str],
    *,
    ontology: Ontology | None = None,
    ancestors: bool = False,
    descendants: bool = True,
    encoder: LabelEncoder | None = None,
    threshold: float | None = None,
    explicit: Iterable[str] = (),
) -> pd.DataFrame:
    """Why each overlapping candidate (training class name) should be excluded for ``targets``.

    - ontology (when given): a candidate that names the same node as a target
      (:meth:`Ontology.match`), or a descendant (and, with ``ancestors=True``, an ancestor) of one;
    - similarity (when ``encoder`` and ``threshold`` are given): cosine above ``threshold``;
    - ``explicit``: candidate names to exclude in any case (e.g. ``read_overlap_list(...).name``).

    Returns one row per (candidate, rule) with columns candidate, rule, target, detail; a
    candidate may appear under several rules. Candidates are compared by name, as given.
    """
    if (encoder is None) != (threshold is None):
        raise ConfigError("Give both encoder and threshold for the similarity rule, or neither.")
    rows: list[dict] = []
    if ontology is not None:
        cand_ids = {c: _nodes_named(ontology, c) for c in candidates}
        for target in targets:
            target_ids = _nodes_named(ontology, target)
            if not target_ids:
                log.debug("test class %r names no ontology node; ontology rule skipped", target)
            for tid in target_ids:
                rel = {tid: "same"}
                if descendants:
                    rel.update({d: "descendant" for d in ontology.descendants(tid) if d != tid})
                if ancestors:
                    rel.update({a: "ancestor" for a in ontology.ancestors(tid) if a not in rel})
                for cand, ids in cand_ids.items():
                    for cid in ids & rel.keys():
                        rows.append({"candidate": cand, "rule": f"ontology:{rel[cid]}",
                                     "target": target, "detail": ontology.name_of(tid)})
    if encoder is not None:
        for cand, (target, cos) in similar_classes(candidates, targets, encoder,
                                                   threshold).items():
            rows.append({"candidate": cand, "rule": "similarity", "target": target,
                         "detail": f"cosine {cos:.3f} > {threshold}"})
    wanted = set(explicit)
    unknown = wanted - set(candidates)
    if unknown:
        log.warning("explicit exclusions not among the candidates (ignored): %s", sorted(unknown))
    rows += [{"candidate": c, "rule": "explicit", "target": "", "detail": ""}
             for c in candidates if c in wanted]
    table = pd.DataFrame(rows, columns=["candidate", "rule", "target", "detail"])
    # every column in the key: a target naming several nodes gives rows that differ in detail
    # only, collected in set order, which changes from process to process
    return table.drop_duplicates().sort_values(list(table.columns)).reset_index(drop=True)


def excluded_classes(candidates: Sequence[str], targets: Sequence[str], **rules) -> set[str]:
    """The candidate names :func:`exclusion_table` flags under any rule."""
    return set(exclusion_table(candidates, targets, **rules)["candidate"])
