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

The steps shared with the AudioCaps and WavCaps recipes live in :mod:`zskit.data.prepare`.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pandas as pd

from zskit.data.download import RemoteFile, UnsafeArchiveError, download
from zskit.data.manifest import split_list
from zskit.data.prepare import (
    check_choices,
    check_missing_policy,
    corpus_root,
    index_audio_files,
    read_csv_file,
    report_missing_audio,
    write_caption_corpus,
)
from zskit.errors import DataError, missing_dependency
from zskit.fileio import atomic_write

__all__ = [
    "CLOTHO_FILES",
    "CLOTHO_SPLITS",
    "download_clotho",
    "extract_7z",
    "prepare_clotho",
    "read_clotho_csv",
]

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
_MARKER = ".zskit-clotho-audio"


def _marker_lines(dest: Path) -> dict[str, list[str]]:
    """``dest``'s record of unpacked archives: archive name -> the top-level items it gave (a
    tab-separated line each; a line of older zskit versions holds the archive name only)."""
    marker = dest / _MARKER
    lines = marker.read_text(encoding="utf-8").splitlines() if marker.is_file() else []
    return {fields[0]: fields[1:] for fields in (line.split("\t") for line in lines) if fields[0]}


def _unpacked(dest: Path, archive_name: str) -> bool:
    """Whether :func:`extract_7z` has unpacked an archive of this name into ``dest`` and what it
    gave is still there (a deleted ``audio/evaluation`` folder is unpacked again)."""
    items = _marker_lines(dest).get(archive_name)
    return items is not None and all((dest / item).exists() for item in items)


def extract_7z(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a ``.7z`` archive into ``dest_dir`` with ``py7zr`` (safely; atomic; re-runs free).

    Members with absolute paths or ``..`` are refused. Without py7zr, raises an error saying how
    to unpack by hand.
    """
    archive, dest = Path(archive).expanduser(), Path(dest_dir).expanduser()
    if _unpacked(dest, archive.name):
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
        items = sorted(item.name for item in tmp.iterdir())
        for name in items:
            target = dest / name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = {**_marker_lines(dest), archive.name: items}
    with atomic_write(dest / _MARKER, "w") as fh:
        fh.write("".join("\t".join([name, *got]) + "\n" for name, got in done.items()))
    return dest


def download_clotho(target_dir: str | os.PathLike | None = None,
                    splits: Iterable[str] = tuple(CLOTHO_SPLITS), *, audio: bool = True,
                    progress: bool = True) -> Path:
    """Download ClothoV2.1 (CSVs, and the audio unless ``audio=False``) into ``target_dir``
    (default ``data_root()/clotho``), verified by MD5; unpack the audio. Safe to re-run: an
    archive already unpacked is not fetched again, even after you deleted it to save space."""
    root = corpus_root(target_dir, "clotho")
    for split in check_choices(splits, CLOTHO_SPLITS, "Clotho splits"):
        files = CLOTHO_FILES[split]
        for kind in ("captions", "metadata"):
            download(files[kind], root / "csv", progress=progress)
        if audio and not _unpacked(root / "audio", files["audio"].name):
            archive = download(files["audio"], root / "archives", progress=progress)
            extract_7z(archive, root / "audio")
    return root


def read_clotho_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A Clotho CSV as text columns (UTF-8, or ISO-8859-1 as the v2 metadata files are encoded)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; run download_clotho() or copy the Clotho CSV "
                        "files there.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    return read_csv_file(path, "delete it and run download_clotho() again", io.StringIO(text),
                         dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)


def _csv_path(root: Path, name: str) -> Path | None:
    """``<root>/csv/<name>``, else ``<root>/<name>``, else None."""
    return next((c for c in (root / "csv" / name, root / name) if c.is_file()), None)


def _find_csv(root: Path, name: str) -> Path:
    found = _csv_path(root, name)
    if found is not None:
        return found
    raise DataError(f"{name} is not in {root / 'csv'} or {root}; run download_clotho({root}) "
                    "or copy the Clotho CSV files there, or leave that split out (splits=[...]).")


def prepare_clotho(target_dir: str | os.PathLike | None = None,
                   splits: Iterable[str] = tuple(CLOTHO_SPLITS), *,
                   out_dir: str | os.PathLike | None = None, missing: str = "raise") -> Path:
    """A zskit corpus folder from downloaded (or hand-placed) ClothoV2.1 files; returns it.

    Looks for the CSVs in ``<target>/csv`` (or ``<target>``) and the audio in
    ``<target>/audio/<split>/`` (any folder under ``<target>`` is searched by file name, then by
    stem in any audio format).
    ``out_dir`` defaults to ``target_dir``. ``missing``: "raise" or "drop" clips without audio.
    """
    check_missing_policy(missing)
    root = corpus_root(target_dir, "clotho")
    splits = check_choices(splits, CLOTHO_SPLITS, "Clotho splits")
    audio = index_audio_files(root / "audio" if (root / "audio").is_dir() else root)
    rows, absent, total = [], [], 0
    for split in splits:
        captions = read_clotho_csv(_find_csv(root, _NAMES["captions"].format(split)))
        meta_path = _csv_path(root, _NAMES["metadata"].format(split))  # as the captions CSV
        meta = read_clotho_csv(meta_path) if meta_path is not None else None
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
    report_missing_audio(absent, total, "Clotho clips", missing,
                   f"run download_clotho({str(root)!r}) or unpack the archives into {root}/audio")
    info = {"name": "ClothoV2.1", "source": _ZENODO.rsplit("/files/", 1)[0], "licence": _LICENCE,
            "clotho_splits": {s: CLOTHO_SPLITS[s] for s in splits}}
    return write_caption_corpus(rows, out_dir if out_dir is not None else root, info)


def _clotho_audio(root: Path, split: str, name: str, index: dict[str, Path]) -> Path | None:
    """``<root>/audio/<split>/<name>`` (or ``<root>/<split>/<name>``), else any file so named,
    else any audio file of that stem (the clip converted to FLAC, say, as WavCaps ships it)."""
    for folder in (root / "audio" / split, root / split):
        if (folder / name).is_file():
            return folder / name
    return index.get(name) or index.get(Path(name).stem)
