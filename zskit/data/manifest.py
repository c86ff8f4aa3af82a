"""Manifest helpers and the corpus-folder contract.

A corpus folder holds ``manifest.csv`` (or ``.parquet``; one row per clip) and ``metadata.json``.
The manifest has at least ``clip_id``, ``path`` (relative to the folder), ``split`` and ``labels``
(class ids joined by ``;``); ``annotated`` (the class ids whose label was checked, OpenMIC-style)
and ``caption_1`` ... ``caption_k`` are optional. ``metadata.json`` lists the classes as
``[{"id": ..., "name": ..., "family": ...}, ...]``. ``load_corpus`` turns such a folder into dense
label and mask matrices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zskit.errors import DataError
from zskit.fileio import atomic_write, write_json

__all__ = [
    "CORPUS_COLUMNS",
    "LIST_SEP",
    "MANIFEST_NAME",
    "METADATA_NAME",
    "Corpus",
    "atomic_write_bytes",
    "join_list",
    "load_corpus",
    "multi_hot",
    "read_json",
    "read_manifest",
    "split_list",
    "validate_columns",
    "write_json",  # from zskit.fileio, kept here for the data modules that import it from here
    "write_manifest",
]

LIST_SEP = ";"
MANIFEST_NAME = "manifest.csv"
METADATA_NAME = "metadata.json"
CORPUS_COLUMNS = ("clip_id", "path", "split", "labels")


def join_list(items: Iterable[str]) -> str:
    """Join ids into one manifest cell: ``["a", "b"] -> "a;b"``."""
    items = list(items)
    bad = [i for i in items if LIST_SEP in i]
    if bad:
        raise DataError(f"List item {bad[0]!r} contains the separator {LIST_SEP!r}; rename it.")
    return LIST_SEP.join(items)


def split_list(cell: object) -> list[str]:
    """The ids of one manifest cell; empty or missing cells (None, NaN, ``pd.NA``) give ``[]``."""
    if not isinstance(cell, str) and pd.api.types.is_scalar(cell) and pd.isna(cell):
        return []
    text = str(cell).strip()
    return [part for part in text.split(LIST_SEP) if part] if text else []


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`zskit.fileio.atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)


def read_json(path: str | Path) -> Any:
    """Read a UTF-8 JSON file (as JSON requires, whatever the locale); a missing or broken file
    raises DataError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path} does not exist. Generate or download the data set first."
        ) from None
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8 (a damaged file)
        raise DataError(f"{path} is not valid JSON ({err}). Delete it and regenerate.") from None


_TEXT_COLUMNS = frozenset(CORPUS_COLUMNS) | {"annotated"}


def _is_caption_column(column: object) -> bool:
    """Whether ``column`` is one of ``caption_1`` ... ``caption_k``."""
    return isinstance(column, str) and column.startswith("caption_") and column[8:].isdigit()


def validate_columns(df: pd.DataFrame, required: Sequence[str], source: str | Path) -> None:
    """Raise DataError naming the first column of ``required`` that ``df`` lacks."""
    for column in required:
        if column not in df.columns:
            raise DataError(
                f"Manifest {source} has no column {column!r} "
                f"(columns: {', '.join(map(str, df.columns))})."
                " Regenerate it, or add the column."
            )


def read_manifest(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet manifest and check its ``required`` columns.

    CSV cells are read with empty cells kept as ``""`` (an empty label list); the corpus-contract
    columns (ids, path, split, label lists, captions) as text, so that ids such as ``"07"`` or
    splits such as ``"1"`` keep their spelling; other numbers as numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Manifest {path} does not exist. Generate or prepare the data set first.")
    if path.suffix not in (".csv", ".parquet"):
        raise DataError(f"Manifest {path} must end in .csv or .parquet.")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            header = pd.read_csv(path, nrows=0).columns
            text = {c: str for c in header if c in _TEXT_COLUMNS or _is_caption_column(c)}
            df = pd.read_csv(path, keep_default_na=False, na_values=[], dtype=text)
    except ValueError as err:  # pandas' EmptyDataError/ParserError, pyarrow's ArrowInvalid
        raise DataError(
            f"Manifest {path} cannot be read ({type(err).__name__}: {err}); it is damaged or "
            "truncated. Regenerate it (or prepare the data set again)."
        ) from err
    validate_columns(df, required, path)
    return df


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest atomically, as CSV or Parquet by the file's suffix."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise DataError(f"Manifest {path} must end in .csv or .parquet.")
    with atomic_write(path) as fh:
        if path.suffix == ".parquet":
            df.to_parquet(fh, index=False)
        else:
            df.to_csv(fh, index=False)
    return path


def multi_hot(
    cells: Iterable[object], classes: Sequence[str], source: str | Path = "manifest"
) -> np.ndarray:
    """A (N, C) int8 matrix from ``;``-joined id cells; an unknown id raises DataError."""
    index = {c: j for j, c in enumerate(classes)}
    cells = list(cells)
    out = np.zeros((len(cells), len(classes)), dtype=np.int8)
    for row, cell in enumerate(cells):
        for item in split_list(cell):
            if item not in index:
                raise DataError(
                    f"{source}: row {row} names class {item!r}, which is not among the "
                    f"{len(classes)} classes of its metadata. Regenerate the corpus."
                )
            out[row, index[item]] = 1
    return out


@dataclass(frozen=True)
class Corpus:
    """A corpus folder in memory: manifest rows with dense labels (N, C) and mask (N, C)."""

    root: Path
    manifest: pd.DataFrame
    metadata: dict
    classes: list[str]
    labels: np.ndarray
    mask: np.ndarray
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def class_names(self) -> list[str]:
        """Display names of the classes (the ids when the metadata has none)."""
        names = {c["id"]: c.get("name", c["id"]) for c in self.metadata.get("classes", [])}
        return [names.get(c, c) for c in self.classes]

    @property
    def paths(self) -> list[Path]:
        """Absolute audio paths, one per row."""
        return [self.root / p for p in self.manifest["path"]]

    @property
    def splits(self) -> list[str]:
        """The split names present, in order of first appearance."""
        return list(dict.fromkeys(self.manifest["split"]))

    def split(self, name: str) -> Corpus:
        """The rows of split ``name`` (e.g. "train", "validation", "test")."""
        keep = (self.manifest["split"] == name).to_numpy()
        if not keep.any():
            raise DataError(f"Corpus {self.root} has no split {name!r}; it has {self.splits}.")
        rows = np.flatnonzero(keep)
        return Corpus(
            root=self.root,
            manifest=self.manifest.iloc[rows].reset_index(drop=True),
            metadata=self.metadata,
            classes=self.classes,
            labels=self.labels[rows],
            mask=self.mask[rows],
            captions=[self.captions[i] for i in rows],
        )


def load_corpus(corpus_dir: str | Path) -> Corpus:
    """Read ``manifest.csv`` (or ``manifest.parquet``) and ``metadata.json`` of a corpus folder.

    ``corpus_dir`` may start with ``~``; it is made absolute, so that :attr:`Corpus.paths` stay
    valid after a change of the working directory (DataLoader workers, notebooks).
    """
    root = Path(corpus_dir).expanduser().absolute()
    meta_path = root / METADATA_NAME
    if not meta_path.is_file():
        inner = sorted(p.parent for p in root.glob(f"*/{METADATA_NAME}")) if root.is_dir() else []
        if inner:  # e.g. the folder an archive was extracted into, holding the corpus folder
            raise DataError(
                f"{root} has no {METADATA_NAME}, but {inner[0]} has: pass that folder (for "
                "OpenMIC, zskit.data.openmic.openmic_dataset_folder(root) finds it)."
            )
        raise DataError(
            f"{root} has no {METADATA_NAME}: it is not a complete corpus. Generate it first, e.g. "
            "`zskit data synth --out <dir>` or zskit.data.ensure_corpus()."
        )
    metadata = read_json(meta_path)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file() and (root / "manifest.parquet").is_file():
        manifest_path = root / "manifest.parquet"
    manifest = read_manifest(manifest_path, CORPUS_COLUMNS)
    try:
        classes = [c["id"] for c in metadata["classes"]]
    except (KeyError, TypeError):
        raise DataError(
            f"{meta_path} has no 'classes' list of {{'id': ...}} entries. Regenerate it."
        ) from None
    labels = multi_hot(manifest["labels"], classes, manifest_path)
    if "annotated" in manifest.columns:
        mask = multi_hot(manifest["annotated"], classes, manifest_path).astype(bool)
    else:
        mask = np.ones_like(labels, dtype=bool)
    caption_cols = sorted(filter(_is_caption_column, manifest.columns), key=lambda c: int(c[8:]))
    captions = (
        manifest[caption_cols].astype(str).values.tolist()
        if caption_cols
        else [[] for _ in range(len(manifest))]
    )
    return Corpus(root, manifest, metadata, classes, labels, mask, captions)
