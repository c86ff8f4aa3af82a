"""A two-level tag hierarchy: every fine tag has exactly one coarse parent (paper 3).

>>> h = Hierarchy.from_dict({"woodwinds": ["flute", "clarinet"], "brass": ["trumpet"]})
>>> h.matrix()  # (n_fine, n_coarse) 0/1: column c marks the children of coarse tag c
>>> coarse, coarse_mask = h.coarse_labels(fine_labels, fine_mask)

A hierarchy is written as a mapping ``coarse tag -> [fine tags]`` (a dict, or JSON holding one);
``fine_order`` fixes the column order of the fine tags (the data's class order), otherwise the
order of first appearance is used. Errors name the offending tag: a fine tag under two parents,
a tag the data does not have, a data tag without a parent, an empty coarse group.

Coarse labels from partial (masked) fine labels follow the max rule over the *known* fine labels:
a coarse tag is a known positive when one of its children is a known positive. When none is, it
is a known negative under ``rule="any"`` as soon as one child is a known negative (unknown children
count as absent; this keeps coarse negatives on OpenMIC-style data, where few clips have every
child checked), and under ``rule="all"`` only when every child is a known negative.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zskit.errors import ConfigError, DataError
from zskit.fileio import write_json
from zskit.paths import project_root

__all__ = ["COARSE_RULES", "Hierarchy", "HierarchyError", "hierarchies_dir", "load_hierarchy"]

COARSE_RULES = ("any", "all")


class HierarchyError(ConfigError):
    """A hierarchy is malformed or does not fit the data's tags."""


@dataclass(frozen=True)
class Hierarchy:
    """Fine tags, coarse tags and the parent (coarse index) of every fine tag."""

    fine: tuple[str, ...]
    coarse: tuple[str, ...]
    parent: tuple[int, ...]  # parent[i] is the index into ``coarse`` of fine tag i
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.parent) != len(self.fine):
            raise HierarchyError(
                f"hierarchy {self.name!r}: {len(self.fine)} fine tags but {len(self.parent)} "
                "parents; give one parent index per fine tag."
            )
        for kind, tags in (("fine", self.fine), ("coarse", self.coarse)):
            seen: set[str] = set()
            for tag in tags:
                if tag in seen:
                    raise HierarchyError(
                        f"hierarchy {self.name!r}: {kind} tag {tag!r} appears twice; list it once."
                    )
                seen.add(tag)
        bad = [p for p in self.parent if not 0 <= p < len(self.coarse)]
        if bad:
            raise HierarchyError(
                f"hierarchy {self.name!r}: parent index {bad[0]} is outside 0..{len(self.coarse) - 1}."
            )
        empty = sorted(set(range(len(self.coarse))) - set(self.parent))
        if empty:
            raise HierarchyError(
                f"hierarchy {self.name!r}: coarse tag {self.coarse[empty[0]]!r} has no fine tag; "
                "give it children or drop it."
            )

    # ---------------------------------------------------------------------------- construction
    @classmethod
    def from_dict(
        cls,
        groups: Mapping[str, Sequence[str]],
        fine_order: Sequence[str] | None = None,
        name: str = "",
    ) -> Hierarchy:
        """From ``{coarse: [fine, ...]}``; ``fine_order`` (the data's tags) checks and orders them."""
        if not isinstance(groups, Mapping) or not groups:
            raise HierarchyError(
                f"hierarchy {name!r} must be a non-empty mapping coarse tag -> list of fine tags, "
                f"got {type(groups).__name__}."
            )
        parent_of: dict[str, str] = {}
        for coarse, children in groups.items():
            if isinstance(children, str) or not isinstance(children, Sequence):
                raise HierarchyError(
                    f"hierarchy {name!r}: coarse tag {coarse!r} maps to {children!r}; give a list "
                    "of fine tags."
                )
            for tag in children:
                if parent_of.get(tag) == coarse:
                    raise HierarchyError(
                        f"hierarchy {name!r}: fine tag {tag!r} is listed twice under {coarse!r}; "
                        "list it once."
                    )
                if tag in parent_of:
                    raise HierarchyError(
                        f"hierarchy {name!r}: fine tag {tag!r} is assigned to both "
                        f"{parent_of[tag]!r} and {coarse!r}; keep it under one parent."
                    )
                parent_of[tag] = coarse
        if fine_order is None:
            fine = list(parent_of)
        else:
            fine = list(fine_order)
            unknown = [t for t in parent_of if t not in set(fine)]
            if unknown:
                raise HierarchyError(
                    f"hierarchy {name!r} names fine tag(s) {unknown} that the data does not have "
                    f"(its tags: {fine}); fix the spelling or drop them."
                )
            orphans = [t for t in fine if t not in parent_of]
            if orphans:
                raise HierarchyError(
                    f"hierarchy {name!r} gives no coarse tag to fine tag(s) {orphans}; assign each "
                    "to one coarse tag."
                )
        coarse = list(groups)
        index = {c: j for j, c in enumerate(coarse)}
        return cls(tuple(fine), tuple(coarse), tuple(index[parent_of[t]] for t in fine), name)

    @classmethod
    def from_json(
        cls, path: str | os.PathLike, fine_order: Sequence[str] | None = None
    ) -> Hierarchy:
        """From a JSON file: ``{"hierarchy": {coarse: [fine...]}, "fine": [...], "name": ...}``.

        A file holding only the mapping works too. ``fine_order`` overrides the file's "fine" list.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"hierarchy file {path} does not exist; check the path.") from None
        except json.JSONDecodeError as err:
            raise DataError(f"hierarchy file {path} is not valid JSON ({err}); fix it.") from None
        if not isinstance(data, dict):
            raise DataError(
                f"hierarchy file {path} holds a {type(data).__name__}; write an object "
                '{"hierarchy": {coarse: [fine, ...]}} or the bare mapping.'
            )
        groups = data.get("hierarchy", data)
        order = fine_order if fine_order is not None else data.get("fine")
        return cls.from_dict(groups, order, name=str(data.get("name", path.stem)))

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], fine_order: Sequence[str]) -> Hierarchy:
        """From a corpus' ``metadata.json`` (its ``"hierarchy"`` mapping), e.g. the synth corpus."""
        groups = metadata.get("hierarchy")
        if not groups:
            raise DataError(
                "the corpus metadata has no 'hierarchy' mapping; pass one with "
                "Hierarchy.from_dict or Hierarchy.from_json."
            )
        return cls.from_dict(groups, fine_order, name=str(metadata.get("name", "")))

    def to_dict(self) -> dict[str, list[str]]:
        """``{coarse: [fine, ...]}`` in this hierarchy's orders."""
        return {c: [self.fine[i] for i in self.children(j)] for j, c in enumerate(self.coarse)}

    def to_json(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write ``{"name", "fine", "hierarchy", **extra}`` as indented JSON."""
        payload = {"name": self.name, **extra, "fine": list(self.fine), "hierarchy": self.to_dict()}
        return write_json(path, payload)

    # ---------------------------------------------------------------------------- structure
    @property
    def n_fine(self) -> int:
        return len(self.fine)

    @property
    def n_coarse(self) -> int:
        return len(self.coarse)

    def children(self, coarse: int | str) -> list[int]:
        """Indices of the fine tags under coarse tag ``coarse`` (index or name)."""
        j = self._coarse_index(coarse)
        return [i for i, p in enumerate(self.parent) if p == j]

    def parent_of(self, fine: str) -> str:
        """The coarse tag of fine tag ``fine``."""
        try:
            return self.coarse[self.parent[self.fine.index(fine)]]
        except ValueError:
            raise HierarchyError(
                f"{fine!r} is not a fine tag of hierarchy {self.name!r}; its tags: {list(self.fine)}."
            ) from None

    def matrix(self, dtype: type = np.float32) -> np.ndarray:
        """``(n_fine, n_coarse)`` 0/1 membership: ``M[i, j] = 1`` when fine i is under coarse j."""
        m = np.zeros((self.n_fine, self.n_coarse), dtype=dtype)
        m[np.arange(self.n_fine), list(self.parent)] = 1
        return m

    def tensor(self) -> torch.Tensor:
        """:meth:`matrix` as a float32 tensor (for the heads' buffers)."""
        return torch.from_numpy(self.matrix(np.float32))

    def parent_index(self) -> torch.Tensor:
        """``(n_fine,)`` long tensor of parent indices."""
        return torch.tensor(self.parent, dtype=torch.long)

    def _coarse_index(self, coarse: int | str) -> int:
        if isinstance(coarse, str):
            if coarse not in self.coarse:
                raise HierarchyError(
                    f"{coarse!r} is not a coarse tag of hierarchy {self.name!r}; its coarse tags: "
                    f"{list(self.coarse)}."
                )
            return self.coarse.index(coarse)
        if not 0 <= coarse < self.n_coarse:
            raise HierarchyError(f"coarse index {coarse} is outside 0..{self.n_coarse - 1}.")
        return int(coarse)

    # ---------------------------------------------------------------------------- labels
    def coarse_labels(
        self, labels: np.ndarray, mask: np.ndarray | None = None, rule: str = "any"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coarse labels ``(N, n_coarse)`` int8 and their mask (bool) from fine ones (see module doc)."""
        if rule not in COARSE_RULES:
            raise ConfigError(f"rule={rule!r} is not one of {COARSE_RULES}; pick one of those.")
        y = np.asarray(labels)
        if y.ndim != 2 or y.shape[1] != self.n_fine:
            raise DataError(
                f"fine labels have shape {y.shape}; hierarchy {self.name!r} needs (N, {self.n_fine})."
            )
        known = np.ones(y.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
        if known.shape != y.shape:
            raise DataError(f"mask has shape {known.shape} but labels {y.shape}; they must match.")
        m = self.matrix(np.int64)
        pos = ((y > 0) & known).astype(np.int64) @ m > 0
        neg = (((y <= 0) & known).astype(np.int64) @ m)
        if rule == "any":
            neg_known = neg > 0
        else:
            neg_known = neg == m.sum(axis=0)
        return pos.astype(np.int8), pos | neg_known


def hierarchies_dir() -> Path | None:
    """``data/hierarchies`` of the checkout (None for an installed wheel without it)."""
    root = project_root()
    return None if root is None else root / "data" / "hierarchies"


def load_hierarchy(name_or_path: str | os.PathLike, fine_order: Sequence[str] | None = None
                   ) -> Hierarchy:
    """A hierarchy JSON file, or one of ``data/hierarchies/<name>.json`` (e.g. "openmic_tone")."""
    path = Path(name_or_path)
    if path.is_file():
        return Hierarchy.from_json(path, fine_order)
    folder = hierarchies_dir()
    known = sorted(p.stem for p in folder.glob("*.json")) if folder and folder.is_dir() else []
    if folder is not None and (folder / f"{path.name}.json").is_file():
        return Hierarchy.from_json(folder / f"{path.name}.json", fine_order)
    raise DataError(
        f"no hierarchy file {str(name_or_path)!r}: pass a JSON path, or a name among {known} "
        "(files of data/hierarchies in the zskit checkout)."
    )
