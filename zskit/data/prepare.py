"""Shared steps of the ``download_x`` / ``prepare_x`` recipes for the caption data sets.

Clotho, AudioCaps and WavCaps each download a few files, find the audio the user supplies, and
write a zskit corpus folder (``manifest.csv`` + ``metadata.json``). What they share lives here once,
so that the three recipes check their arguments, report absent audio and lay out a corpus alike:

- :func:`corpus_root` and :func:`check_choices`: the target folder and the splits or sources asked for;
- :func:`read_json_file`: a downloaded JSON file, with an error that says how to get it again;
- :func:`audio_files`, :func:`index_audio_files`, :func:`check_missing_policy`,
  :func:`report_missing_audio`: matching clips to audio files, and what to do with clips that
  have none;
- :func:`write_caption_corpus`: the corpus folder itself.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from zskit.data.manifest import MANIFEST_NAME, METADATA_NAME, join_list, write_manifest
from zskit.errors import ConfigError, DataError
from zskit.fileio import write_json
from zskit.paths import data_root

__all__ = [
    "AUDIO_EXTENSIONS",
    "MISSING_POLICIES",
    "audio_files",
    "check_choices",
    "check_missing_policy",
    "corpus_root",
    "index_audio_files",
    "read_csv_file",
    "read_json_file",
    "report_missing_audio",
    "write_caption_corpus",
]

log = logging.getLogger(__name__)

#: Audio file suffixes :func:`index_audio_files` looks for.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: What a recipe may do with clips that have no audio file.
MISSING_POLICIES = ("raise", "drop")


def corpus_root(path: str | os.PathLike | None, name: str) -> Path:
    """``path``, or ``data_root()/name`` when it is None: where a data set is downloaded to."""
    return Path(path).expanduser() if path is not None else data_root() / name


def check_choices(chosen: Iterable[str], valid: Mapping[str, Any] | Sequence[str],
                  what: str) -> list[str]:
    """``chosen`` as a list, after checking it is non-empty and every item is one of ``valid``.

    ``what`` names the items in the error (e.g. ``"Clotho splits"``), which lists the valid ones.
    """
    chosen = list(chosen)
    bad = [c for c in chosen if c not in valid]
    if bad or not chosen:
        raise ConfigError(f"{what} {bad or chosen} unknown; choose from {list(valid)}.")
    return chosen


def read_json_file(path: str | os.PathLike, missing_hint: str,
                   invalid_hint: str = "download it again") -> Any:
    """The parsed content of a JSON file (UTF-8).

    A missing file raises :class:`DataError` ending in ``missing_hint`` (how to get the file), a
    broken one ending in ``invalid_hint``; callers check the structure they expect.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {missing_hint}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); {invalid_hint}.") from None


def read_csv_file(path: str | os.PathLike, invalid_hint: str, source: Any = None,
                  **read_csv_kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv(source or path, **read_csv_kwargs)``; an empty or malformed file (pandas'
    EmptyDataError, ParserError, a bad encoding) raises :class:`DataError` naming ``path`` and
    ending in ``invalid_hint``. ``source`` is an already-decoded buffer of ``path``, if any."""
    try:
        return pd.read_csv(path if source is None else source, **read_csv_kwargs)
    except ValueError as err:  # EmptyDataError and ParserError are ValueErrors, as is bad UTF-8
        raise DataError(f"{path} is not a readable CSV ({type(err).__name__}: {err}); "
                        f"{invalid_hint}.") from err


def audio_files(audio_dir: str | os.PathLike,
                extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Every audio file under ``audio_dir`` (recursively), sorted.

    Hidden folders (``.name``) are left out: they hold the half-unpacked files of an interrupted
    extraction (:func:`zskit.data.clotho.extract_7z` unpacks into ``.extract-*`` first), which
    must never stand in for a clip.
    """
    root = Path(audio_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"audio folder {root} does not exist; download or copy the audio there "
                        "first, or pass the folder that holds it.")
    return [path for path in sorted(root.rglob("*"))
            if path.suffix.lower() in extensions and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(root).parts[:-1])]


def index_audio_files(audio_dir: str | os.PathLike,
                      extensions: Sequence[str] = AUDIO_EXTENSIONS) -> dict[str, Path]:
    """Every audio file under ``audio_dir`` (:func:`audio_files`) by file name and by stem.

    A stem that occurs twice (the same clip in two formats or folders) keeps its first file in
    sorted order.
    """
    index: dict[str, Path] = {}
    for path in audio_files(audio_dir, extensions):
        index.setdefault(path.name, path)
        index.setdefault(path.stem, path)
    return index


def check_missing_policy(missing: str) -> None:
    """Refuse a ``missing=`` argument other than "raise" or "drop" before any work is done."""
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing={missing!r}; use 'raise' or 'drop'.")


def report_missing_audio(absent: Sequence[str], total: int, what: str, policy: str,
                         hint: str) -> None:
    """Apply the ``missing=`` policy to the clips in ``absent`` (of ``total``) that lack audio.

    "raise" stops with an error naming the first few and ending in ``hint``; "drop" logs a warning
    (the caller has already left them out). ``what`` names the clips, e.g. ``"Clotho clips"``.
    """
    if not absent:
        return
    if policy == "raise":
        raise DataError(f"{len(absent)} of {total} {what} have no audio file (first: "
                        f"{list(absent[:3])}); {hint} or pass missing='drop'.")
    log.warning("%d of %d %s have no audio file and are left out (first: %s)", len(absent),
                total, what, list(absent[:3]))


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
    out = Path(out_dir).expanduser()
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
