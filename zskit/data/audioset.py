"""AudioSet: its metadata files, segment lists and a corpus folder over audio the user provides.

Metadata (see ``data/audioset/README.md``): ``ontology.json`` (632 nodes, CC BY-SA 4.0),
``class_labels_indices.csv`` (the 527 released classes, CC BY 4.0) and the segment lists
``balanced_train_segments.csv`` and ``eval_segments.csv`` are committed under ``data/audioset/``;
``unbalanced_train_segments.csv`` (101 MB) is downloaded on first use. :func:`audioset_file` finds
a file in this order: the checkout's ``data/audioset/``, then ``cache_dir()/audioset/`` (by
default ``data_root()/downloads/audioset/``: earlier downloads, or a copy put there by hand), then
the official URL (downloaded into that folder). An installed zskit without the checkout therefore
downloads the small files once; offline, put them in ``cache_dir()/audioset/``.

AudioSet audio is not distributed: users fetch the YouTube segments themselves and point
:func:`prepare_audioset` at the folder. Accepted file names (any folder depth; extensions
``.wav .flac .ogg .mp3 .opus``) for the segment ``YTID, start, end``:

- ``<YTID>.wav`` and ``Y<YTID>.wav`` (the ``Y`` prefix of PANNs' ``audioset_tagging_cnn``);
- ``<YTID>_<start>.wav`` and ``<YTID>_<start>_<end>.wav``, with or without the ``Y`` prefix, the
  times in seconds (``30``, ``30.0``, ``30.000``) or milliseconds (``30000``).

A file whose name carries a start time must match the segment's start. Segments without a file
are listed in ``missing_clips.csv`` beside the manifest and counted in the metadata; that is not
an error, as YouTube videos disappear.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from zskit.data.download import RemoteFile, cache_dir, download
from zskit.data.manifest import (
    LIST_SEP,
    MANIFEST_NAME,
    METADATA_NAME,
    split_list,
    write_json,
    write_manifest,
)
from zskit.errors import ConfigError, DataError
from zskit.paths import project_root

__all__ = [
    "AUDIOSET_FILES",
    "AUDIO_EXTENSIONS",
    "DEFAULT_SPLITS",
    "PAPER_SPLITS",
    "SUBSETS",
    "audioset_file",
    "download_audioset_metadata",
    "find_audio",
    "parse_audio_name",
    "prepare_audioset",
    "read_class_labels",
    "read_segments",
]

log = logging.getLogger(__name__)

_CSV_URL = "https://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/"
_ONTOLOGY_URL = "https://raw.githubusercontent.com/audioset/ontology/master/ontology.json"

#: The official AudioSet metadata files. No checksums are published for them: a download is
#: checked by its structure instead (node and class counts, the segment count in the header).
AUDIOSET_FILES: dict[str, RemoteFile] = {
    "ontology.json": RemoteFile(_ONTOLOGY_URL, licence="CC BY-SA 4.0"),
    "class_labels_indices.csv": RemoteFile(_CSV_URL + "class_labels_indices.csv",
                                           licence="CC BY 4.0"),
    "eval_segments.csv": RemoteFile(_CSV_URL + "eval_segments.csv", licence="CC BY 4.0"),
    "balanced_train_segments.csv": RemoteFile(_CSV_URL + "balanced_train_segments.csv",
                                              licence="CC BY 4.0"),
    "unbalanced_train_segments.csv": RemoteFile(_CSV_URL + "unbalanced_train_segments.csv",
                                                licence="CC BY 4.0"),
}

#: Subset name -> segment list file.
SUBSETS: dict[str, str] = {
    "eval": "eval_segments.csv",
    "balanced_train": "balanced_train_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
}

#: Paper 1's protocol: train on the unbalanced set, select on the balanced set, test on eval.
PAPER_SPLITS: dict[str, str] = {
    "unbalanced_train": "train",
    "balanced_train": "validation",
    "eval": "test",
}

#: A set-up that needs no 101 MB segment list: balanced set for training, eval for testing.
DEFAULT_SPLITS: dict[str, str] = {"balanced_train": "train", "eval": "test"}

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus")
_YTID = re.compile(r"[A-Za-z0-9_-]{11}")
_TIMES = re.compile(r"_(\d+(?:\.\d+)?)(?:_\d+(?:\.\d+)?)?")
_HEADER_COUNT = re.compile(r"num_segs=(\d+)")


# ----------------------------------------------------------------------------- metadata files


def _committed_dir() -> Path | None:
    root = project_root()
    folder = root / "data" / "audioset" if root is not None else None
    return folder if folder is not None and folder.is_dir() else None


def audioset_file(name: str, *, download_missing: bool = True) -> Path:
    """The path of an AudioSet metadata file (a key of :data:`AUDIOSET_FILES`), fetched if needed.

    Looks in the checkout's ``data/audioset/``, then ``cache_dir()/audioset/``, then downloads it
    there (unless ``download_missing=False``, which raises DataError instead).
    """
    if name not in AUDIOSET_FILES:
        raise ConfigError(f"Unknown AudioSet metadata file {name!r}; choose one of "
                          f"{sorted(AUDIOSET_FILES)}.")
    committed = _committed_dir()
    if committed is not None and (committed / name).is_file():
        return committed / name
    local = cache_dir() / "audioset"
    if (local / name).is_file():
        return local / name
    if not download_missing:
        raise DataError(
            f"AudioSet metadata file {name} is neither in the checkout's data/audioset/ nor in "
            f"{local}. Download it from {AUDIOSET_FILES[name].url} into {local}, or call "
            f"audioset_file({name!r}) while online."
        )
    return download(AUDIOSET_FILES[name], local)


def download_audioset_metadata(
    names: Iterable[str] = ("ontology.json", "class_labels_indices.csv", *SUBSETS.values()),
) -> dict[str, Path]:
    """Make sure the given metadata files are available (downloading what is missing)."""
    return {name: audioset_file(name) for name in names}


def read_class_labels(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """``class_labels_indices.csv`` as a DataFrame (index, mid, display_name), sorted by index."""
    path = Path(path) if path is not None else audioset_file("class_labels_indices.csv")
    try:
        df = pd.read_csv(path, dtype={"mid": str, "display_name": str}, keep_default_na=False)
    except (OSError, ValueError) as err:  # ValueError: empty file, not UTF-8, parser errors
        raise DataError(f"Could not read {path} ({err}); delete it and fetch it again.") from None
    missing = {"index", "mid", "display_name"} - set(df.columns)
    if missing:
        raise DataError(f"{path} lacks the columns {sorted(missing)} of class_labels_indices.csv "
                        f"(it has {list(df.columns)}); fetch the official file again.")
    df = df.sort_values("index").reset_index(drop=True)
    if df["index"].tolist() != list(range(len(df))) or df["mid"].duplicated().any():
        raise DataError(f"{path}: indices are not 0..{len(df) - 1} or a mid repeats; fetch the "
                        f"official file again.")
    return df


def read_segments(path: str | os.PathLike) -> pd.DataFrame:
    """An AudioSet segment list as a DataFrame (ytid, start_seconds, end_seconds, labels).

    ``labels`` holds the positive label mids of a segment joined by ``;`` (the manifest's list
    format: ``zskit.data.manifest.split_list`` turns a cell into a list). The leading lines starting
    with ``#`` are comments; when one states ``num_segs=N``, the number of rows read must be N
    (a truncated file raises DataError).
    """
    path = Path(path)
    expected: int | None = None
    n_comments = 0
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a copy re-saved by a Windows editor
            for line in f:
                if not line.startswith("#"):
                    break
                n_comments += 1
                match = _HEADER_COUNT.search(line)
                expected = int(match.group(1)) if match else expected
    except FileNotFoundError:
        raise DataError(f"Segment list {path} does not exist; see zskit.data.audioset."
                        "audioset_file for where to get it.") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a UTF-8 text file ({err}); it is not an AudioSet segment "
                        "list. Fetch the official file again.") from None
    columns = ["ytid", "start_seconds", "end_seconds", "labels"]
    try:
        df = pd.read_csv(
            path, skiprows=n_comments, header=None, names=columns, skipinitialspace=True,
            dtype={"ytid": object, "labels": object}, keep_default_na=False, engine="c",
            encoding="utf-8-sig",
        )
        df["start_seconds"] = df["start_seconds"].astype(float)
        df["end_seconds"] = df["end_seconds"].astype(float)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path} is not an AudioSet segment list (YTID, start, end, \"labels\") "
                        f"({err}). Fetch the official file again.") from None
    if (df["ytid"].str.len() == 0).any() or (df["labels"].str.len() == 0).any():
        raise DataError(f"{path} has rows without a YTID or labels; fetch the official file "
                        "again.")
    if expected is not None and expected != len(df):
        raise DataError(f"{path} announces {expected} segments but holds {len(df)}: it is "
                        f"truncated or edited. Delete it and fetch it again.")
    df["labels"] = df["labels"].str.replace(" ", "", regex=False).str.replace(",", LIST_SEP,
                                                                              regex=False)
    return df


# ----------------------------------------------------------------------------- audio files


def parse_audio_name(stem: str) -> list[tuple[str, float | None]]:
    """Every ``(ytid, start_seconds or None)`` reading of a file stem under the naming rules.

    YouTube ids have 11 characters, so ``Y<id>`` and ``<id>`` are told apart by length; an id
    that itself starts with ``Y`` gives two readings, and the segment list decides. A whole
    number in the name is read both as seconds and as milliseconds.
    """
    readings: list[tuple[str, float | None]] = []
    for rest in (stem, stem[1:]) if stem.startswith("Y") else (stem,):
        ytid, tail = rest[:11], rest[11:]
        if not _YTID.fullmatch(ytid):
            continue
        if not tail:
            readings.append((ytid, None))
            continue
        match = _TIMES.fullmatch(tail)
        if match is None:
            continue
        start = match.group(1)
        readings.append((ytid, float(start)))
        if "." not in start:
            readings.append((ytid, int(start) / 1000.0))
    return list(dict.fromkeys(readings))


def find_audio(
    segments: pd.DataFrame, audio_dir: str | os.PathLike
) -> list[Path | None]:
    """For each segment row, its audio file under ``audio_dir`` (searched recursively) or None."""
    root = Path(audio_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"Audio folder {root} does not exist; pass the folder holding your "
                        "AudioSet clips.")
    by_start: dict[tuple[str, float], Path] = {}
    by_id: dict[str, Path] = {}
    wanted = set(segments["ytid"])
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            for ytid, start in parse_audio_name(stem):
                if ytid not in wanted:
                    continue
                path = Path(dirpath) / name
                if start is None:
                    by_id.setdefault(ytid, path)
                else:
                    by_start.setdefault((ytid, round(start, 3)), path)
    found: list[Path | None] = []
    for ytid, start in zip(segments["ytid"], segments["start_seconds"]):
        found.append(by_start.get((ytid, round(float(start), 3))) or by_id.get(ytid))
    return found


# ----------------------------------------------------------------------------- corpus folder


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def prepare_audioset(
    audio_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    splits: Mapping[str, str] = DEFAULT_SPLITS,
    segment_files: Mapping[str, str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Write an AudioSet corpus folder (manifest + metadata) over the clips found in ``audio_dir``.

    ``splits`` maps AudioSet subsets (``eval``, ``balanced_train``, ``unbalanced_train``) to the
    split names of the manifest (:data:`DEFAULT_SPLITS`; paper 1 uses :data:`PAPER_SPLITS`).
    ``segment_files`` overrides where a subset's segment list is read from. The corpus folder
    ``out_dir`` (default: ``audio_dir``) gets ``manifest.csv`` (paths relative to it), a
    ``metadata.json`` listing the 527 classes (id = mid, name = display name) and
    ``missing_clips.csv`` with the segments that have no audio. Returns the manifest.
    """
    unknown = set(splits) - set(SUBSETS)
    if unknown or not splits:
        raise ConfigError(f"splits={dict(splits)} must map some of {sorted(SUBSETS)} to split "
                          "names, e.g. {'balanced_train': 'train', 'eval': 'test'}.")
    unused = set(segment_files or {}) - set(splits)
    if unused:  # a misspelt subset would silently read the official list instead of the user's
        raise ConfigError(f"segment_files has {sorted(unused)}, which are not among the subsets of "
                          f"splits={dict(splits)}; use keys from {sorted(splits)}.")
    audio_dir = Path(audio_dir).expanduser()
    out = Path(out_dir).expanduser() if out_dir is not None else audio_dir
    classes = read_class_labels()
    known = set(classes["mid"])
    rows, missing, stats = [], [], {}
    seen: set[str] = set()
    for subset, split in splits.items():
        source = (segment_files or {}).get(subset) or audioset_file(SUBSETS[subset])
        segments = read_segments(source)
        unknown_mids = {m for cell in set(segments["labels"]) for m in split_list(cell)} - known
        if unknown_mids:
            raise DataError(f"{source} uses label ids not in class_labels_indices.csv: "
                            f"{sorted(unknown_mids)[:5]}; use matching metadata files.")
        files = find_audio(segments, audio_dir)
        n_dup = 0
        for seg, path in zip(segments.itertuples(index=False), files):
            if path is None:
                missing.append({"subset": subset, "ytid": seg.ytid,
                                "start_seconds": seg.start_seconds,
                                "end_seconds": seg.end_seconds})
                continue
            if seg.ytid in seen:
                n_dup += 1
                continue
            seen.add(seg.ytid)
            rows.append({
                "clip_id": seg.ytid,
                "path": _relative(path, out),
                "split": split,
                "labels": seg.labels,
                "subset": subset,
                "start_seconds": seg.start_seconds,
                "end_seconds": seg.end_seconds,
            })
        found = sum(p is not None for p in files)
        stats[subset] = {"split": split, "listed": len(segments), "found": found,
                         "missing": len(segments) - found, "duplicates_dropped": n_dup}
        log.info("AudioSet %s: %d of %d segments have audio", subset, found, len(segments))
        if n_dup:
            log.warning("AudioSet %s: %d segments repeat a YTID already taken; dropped", subset,
                        n_dup)
    out.mkdir(parents=True, exist_ok=True)
    missing_df = pd.DataFrame(missing, columns=["subset", "ytid", "start_seconds", "end_seconds"])
    write_manifest(missing_df, out / "missing_clips.csv")
    if missing:
        log.warning("%d AudioSet segments have no audio under %s; listed in %s", len(missing),
                    audio_dir, out / "missing_clips.csv")
    if not rows:
        raise DataError(
            f"No audio for any segment of {sorted(splits)} was found under {audio_dir}. Check the "
            f"folder and the file names (YTID.wav, YYTID.wav, YTID_start_end.wav; see "
            f"zskit.data.audioset)."
        )
    manifest = pd.DataFrame(rows)
    write_manifest(manifest, out / MANIFEST_NAME)
    write_json(out / METADATA_NAME, {
        "name": "AudioSet",
        "source": "https://research.google.com/audioset/",
        "licence": "labels CC BY 4.0; ontology CC BY-SA 4.0; audio: YouTube, per-video terms",
        "audio_dir": str(audio_dir.resolve()),
        "subsets": stats,
        "n_missing": len(missing),
        "missing_list": "missing_clips.csv",
        "classes": [{"id": m, "name": n, "index": int(i)} for i, m, n in
                    classes[["index", "mid", "display_name"]].itertuples(index=False)],
    })
    return manifest
