"""ClothoV2.1 (Drossos et al., 2020): 10-30 s Freesound clips with five crowd-sourced captions each.

``download_clotho(target_dir)`` fetches the caption and metadata CSVs and the audio archives of
Zenodo record 4783391 (MD5-checked) and unpacks the ``.7z`` archives with ``py7zr`` (an optional
package: ``pip install py7zr``; or unpack them with ``7z x`` yourself into ``<target>/audio``).
``prepare_clotho(target_dir)`` writes a zskit corpus folder (``manifest.csv`` + ``metadata.json``)
with one row per clip, its five captions (``caption_1`` ... ``caption_5``) and its keywords.

Splits as in paper 4: development -> ``train`` (3,839 clips), validation -> ``validation``
(1,045), evaluation -> ``test`` (1,045). Folder layout::

    <target>/csv/clotho_captions_<split>.csv, clotho_metadata_<split>.csv
    <target>/archives/clotho_audio_<split>.7z
    <target>/audio/<split>/<file_name>.wav

The helpers :func:`index_audio_files` and :func:`write_caption_corpus` are shared with the
AudioCaps and WavCaps modules.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from zskit.data.download import RemoteFile, UnsafeArchiveError, download
from zskit.data.manifest import (
    MANIFEST_NAME,
    METADATA_NAME,
    join_list,
    split_list,
    write_json,
    write_manifest,
)
from zskit.errors import ConfigError, DataError, missing_dependency
from zskit.paths import data_root

__all__ = [
    "AUDIO_EXTENSIONS",
    "CLOTHO_FILES",
    "CLOTHO_SPLITS",
    "download_clotho",
    "extract_7z",
    "index_audio_files",
    "prepare_clotho",
    "read_clotho_csv",
    "write_caption_corpus",
]

log = logging.getLogger(__name__)

_ZENODO = "https://zenodo.org/records/4783391/files/"
_LICENCE = ("Clotho: see the LICENSE of Zenodo record 4783391; audio from Freesound under each "
            "file's own licence (column 'license' of the metadata CSV)")
#: Clotho split -> zskit split name (paper 4's train/validation/test).
CLOTHO_SPLITS = {"development": "train", "validation": "validation", "evaluation": "test"}
# MD5 digests as published with the record (the same files aac-datasets checks).
_MD5 = {
    "development": {"audio": "c8b05bc7acdb13895bb3c6a29608667e",
                    "captions": "d4090b39ce9f2491908eebf4d5b09bae",
                    "metadata": "170d20935ecfdf161ce1bb154118cda5"},
    "validation": {"audio": "7dba730be08bada48bd15dc4e668df59",
                   "captions": "5879e023032b22a2c930aaa0528bead4",
                   "metadata": "2e010427c56b1ce6008b0f03f41048ce"},
    "evaluation": {"audio": "4569624ccadf96223f19cb59fe4f849f",
                   "captions": "1b16b9e57cf7bdb7f13a13802aeb57e2",
                   "metadata": "13946f054d4e1bf48079813aac61bf77"},
}
_NAMES = {"audio": "clotho_audio_{}.7z", "captions": "clotho_captions_{}.csv",
          "metadata": "clotho_metadata_{}.csv"}
#: split -> kind ("audio", "captions", "metadata") -> the file on Zenodo.
CLOTHO_FILES: dict[str, dict[str, RemoteFile]] = {
    split: {kind: RemoteFile(_ZENODO + _NAMES[kind].format(split), md5=md5, licence=_LICENCE)
            for kind, md5 in digests.items()}
    for split, digests in _MD5.items()
}
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
_MARKER = ".zskit-clotho-audio"


# ---------------------------------------------------------------------------------------------
# Shared helpers for caption data sets


def index_audio_files(audio_dir: str | os.PathLike,
                      extensions: Sequence[str] = AUDIO_EXTENSIONS) -> dict[str, Path]:
    """Every audio file under ``audio_dir`` (recursively) by file name and by stem.

    A stem that occurs twice (the same clip in two formats or folders) keeps its first file in
    sorted order.
    """
    root = Path(audio_dir)
    if not root.is_dir():
        raise DataError(f"audio folder {root} does not exist; download or copy the audio there "
                        "first, or pass the folder that holds it.")
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in extensions and path.is_file():
            index.setdefault(path.name, path)
            index.setdefault(path.stem, path)
    return index


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())  # outside the corpus folder: kept absolute


def write_caption_corpus(rows: list[dict[str, Any]], out_dir: str | os.PathLike,
                         info: dict[str, Any]) -> Path:
    """Write a caption corpus folder: ``manifest.csv`` and ``metadata.json``; returns the folder.

    ``rows`` hold ``clip_id``, ``path`` (absolute), ``split`` and ``captions`` (a list), plus any
    extra columns (``keywords`` as a list). Captions become ``caption_1`` ... ``caption_k`` (k the
    most of any clip; shorter lists are padded with empty cells). The corpus has no classes.
    """
    out = Path(out_dir)
    if not rows:
        raise DataError(f"no clip to write into {out}: every clip lacked its audio or captions. "
                        "Check the audio folder.")
    n_cap = max(len(r["captions"]) for r in rows)
    table = []
    for r in rows:
        row = {"clip_id": r["clip_id"], "path": _relative(Path(r["path"]), out),
               "split": r["split"], "labels": ""}
        row.update({f"caption_{k + 1}": (r["captions"][k] if k < len(r["captions"]) else "")
                    for k in range(n_cap)})
        for key, value in r.items():
            if key not in ("clip_id", "path", "split", "captions"):
                row[key] = join_list(value) if isinstance(value, (list, tuple)) else value
        table.append(row)
    df = pd.DataFrame(table)
    dup = df["clip_id"][df["clip_id"].duplicated()]
    if len(dup):
        raise DataError(f"clip ids {sorted(set(dup))[:5]} occur twice; the source lists a clip "
                        "twice, drop the duplicates first.")
    write_manifest(df, out / MANIFEST_NAME)
    splits = {s: int((df["split"] == s).sum()) for s in dict.fromkeys(df["split"])}
    write_json(out / METADATA_NAME, {**info, "classes": [], "n_clips": len(df), "splits": splits,
                                     "captions_per_clip": n_cap,
                                     "files": {"manifest": MANIFEST_NAME}})
    log.info("wrote %d clips (%s) to %s", len(df), splits, out)
    return out


def _drop_or_raise(missing: list[str], total: int, what: str, policy: str, hint: str) -> None:
    if not missing:
        return
    if policy == "raise":
        raise DataError(f"{len(missing)} of {total} {what} have no audio file (first: "
                        f"{missing[:3]}); {hint} or pass missing='drop'.")
    log.warning("%d of %d %s have no audio file and are left out (first: %s)", len(missing),
                total, what, missing[:3])


def _check_policy(missing: str) -> None:
    if missing not in ("raise", "drop"):
        raise ConfigError(f"missing={missing!r}; use 'raise' or 'drop'.")


# ---------------------------------------------------------------------------------------------
# Clotho


def _check_splits(splits: Iterable[str]) -> list[str]:
    splits = list(splits)
    bad = [s for s in splits if s not in CLOTHO_SPLITS]
    if bad or not splits:
        raise ConfigError(f"Clotho splits {bad or splits} unknown; choose from "
                          f"{list(CLOTHO_SPLITS)}.")
    return splits


def extract_7z(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a ``.7z`` archive into ``dest_dir`` with ``py7zr`` (safely; atomic; re-runs free).

    Members with absolute paths or ``..`` are refused. Without py7zr, raises an error saying how
    to unpack by hand.
    """
    archive, dest = Path(archive), Path(dest_dir)
    marker = dest / _MARKER
    if marker.is_file() and archive.name in marker.read_text().split():
        return dest
    try:
        import py7zr
    except ImportError as err:
        raise missing_dependency(
            "py7zr", f"unpacking {archive.name}",
            f'pip install py7zr, or run `7z x "{archive}" -o"{dest}"` yourself and call '
            "prepare_clotho again") from err
    if not archive.is_file():
        raise DataError(f"archive {archive} does not exist; run download_clotho first.")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with py7zr.SevenZipFile(archive, mode="r") as zf:
            for name in zf.getnames():
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if PurePosixPath(name).is_absolute() or ".." in parts:
                    raise UnsafeArchiveError(f"{archive}: member {name!r} would be written "
                                             "outside the destination; fetch a trusted copy.")
            zf.extractall(path=tmp)
        for item in tmp.iterdir():
            target = dest / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = marker.read_text().split() if marker.is_file() else []
    marker.write_text("\n".join([*done, archive.name]) + "\n")
    return dest


def download_clotho(target_dir: str | os.PathLike | None = None,
                    splits: Iterable[str] = tuple(CLOTHO_SPLITS), *, audio: bool = True,
                    progress: bool = True) -> Path:
    """Download ClothoV2.1 (CSVs, and the audio unless ``audio=False``) into ``target_dir``
    (default ``data_root()/clotho``), verified by MD5; unpack the audio. Safe to re-run."""
    root = Path(target_dir) if target_dir is not None else data_root() / "clotho"
    for split in _check_splits(splits):
        files = CLOTHO_FILES[split]
        for kind in ("captions", "metadata"):
            download(files[kind], root / "csv", progress=progress)
        if audio:
            archive = download(files["audio"], root / "archives", progress=progress)
            extract_7z(archive, root / "audio")
    return root


def read_clotho_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A Clotho CSV as text columns (UTF-8, or ISO-8859-1 as the v2 metadata files are encoded)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                       quoting=csv.QUOTE_MINIMAL)


def _find_csv(root: Path, name: str) -> Path:
    for candidate in (root / "csv" / name, root / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{name} is not in {root / 'csv'} or {root}; run download_clotho({root}) "
                    "or copy the Clotho CSV files there.")


def prepare_clotho(target_dir: str | os.PathLike | None = None,
                   splits: Iterable[str] = tuple(CLOTHO_SPLITS), *,
                   out_dir: str | os.PathLike | None = None, missing: str = "raise") -> Path:
    """A zskit corpus folder from downloaded (or hand-placed) ClothoV2.1 files; returns it.

    Looks for the CSVs in ``<target>/csv`` (or ``<target>``) and the audio in
    ``<target>/audio/<split>/`` (any folder under ``<target>`` is searched by file name).
    ``out_dir`` defaults to ``target_dir``. ``missing``: "raise" or "drop" clips without audio.
    """
    _check_policy(missing)
    root = Path(target_dir) if target_dir is not None else data_root() / "clotho"
    splits = _check_splits(splits)
    audio = index_audio_files(root / "audio" if (root / "audio").is_dir() else root)
    rows, absent, total = [], [], 0
    for split in splits:
        captions = read_clotho_csv(_find_csv(root, _NAMES["captions"].format(split)))
        meta_path = root / "csv" / _NAMES["metadata"].format(split)
        meta = read_clotho_csv(meta_path) if meta_path.is_file() else None
        if "file_name" not in captions.columns:
            raise DataError(f"the Clotho captions CSV of {split} has no file_name column "
                            f"(columns: {list(captions.columns)}); re-download it.")
        meta_rows = {} if meta is None else {r["file_name"]: r for r in meta.to_dict("records")}
        for rec in captions.to_dict("records"):
            total += 1
            name = rec["file_name"]
            path = _clotho_audio(root, split, name, audio)
            if path is None:
                absent.append(f"{split}/{name}")
                continue
            extra = meta_rows.get(name, {})
            rows.append({
                "clip_id": Path(name).stem,
                "path": path,
                "split": CLOTHO_SPLITS[split],
                "captions": [rec[f"caption_{k}"].strip() for k in range(1, 6)
                             if rec.get(f"caption_{k}", "").strip()],
                "keywords": [k.strip() for k in split_list(extra.get("keywords", "")) if k.strip()],
                "clotho_split": split,
                "sound_id": extra.get("sound_id", ""),
                "sound_link": extra.get("sound_link", ""),
                "license": extra.get("license", ""),
            })
    _drop_or_raise(absent, total, "Clotho clips", missing,
                   f"run download_clotho({str(root)!r}) or unpack the archives into {root}/audio")
    info = {"name": "ClothoV2.1", "source": _ZENODO.rsplit("/files/", 1)[0], "licence": _LICENCE,
            "clotho_splits": {s: CLOTHO_SPLITS[s] for s in splits}}
    return write_caption_corpus(rows, out_dir if out_dir is not None else root, info)


def _clotho_audio(root: Path, split: str, name: str, index: dict[str, Path]) -> Path | None:
    """``<root>/audio/<split>/<name>`` (or ``<root>/<split>/<name>``), else any file so named."""
    for folder in (root / "audio" / split, root / split):
        if (folder / name).is_file():
            return folder / name
    return index.get(name)
