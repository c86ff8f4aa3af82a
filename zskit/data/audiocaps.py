"""AudioCaps (Kim et al., 2019): 10 s AudioSet clips with human captions.

The caption CSVs come from the authors' GitHub repository (``cdjkim/audiocaps``, pinned to one
commit, SHA-256 computed from that commit's files); the audio does not (YouTube videos, shared by
the authors on request): put it in a folder and point :func:`prepare_audiocaps` at it.

Version 1 (paper 4): train 49,838 clips with one caption, val 495 and test 975 clips with five
captions each, 51,308 in all. The manifest has one row per clip (``youtube_id`` + ``start_time``)
with its captions (``caption_1`` ... ``caption_5``; train rows fill only the first) and the
``audiocap_ids``. Splits: train -> ``train``, val -> ``validation``, test -> ``test``.

Audio files are matched by stem against several common namings (:data:`NAME_FORMATS`, e.g.
``<youtube_id>_<start>.wav`` or AudioSet's ``Y<youtube_id>_<start>.000_<end>.000.wav``), or your own
``name_format``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from zskit.data.download import RemoteFile, download
from zskit.data.prepare import (
    check_choices,
    check_missing_policy,
    corpus_root,
    index_audio_files,
    read_csv_file,
    report_missing_audio,
    write_caption_corpus,
)
from zskit.errors import ConfigError, DataError

__all__ = [
    "AUDIOCAPS_COMMIT",
    "AUDIOCAPS_FILES",
    "AUDIOCAPS_SPLITS",
    "NAME_FORMATS",
    "download_audiocaps",
    "prepare_audiocaps",
    "read_audiocaps_csv",
]

#: The commit of github.com/cdjkim/audiocaps whose ``dataset/*.csv`` (AudioCaps 1.0) are used.
AUDIOCAPS_COMMIT = "d004db3ea1b01cf4fd0347dd8d27db90cadc8809"
_RAW = f"https://raw.githubusercontent.com/cdjkim/audiocaps/{AUDIOCAPS_COMMIT}/dataset/"
_LICENCE = ("AudioCaps captions: MIT (repository licence), free for academic use per its README; "
            "audio from YouTube via AudioSet")
#: AudioCaps split -> zskit split name.
AUDIOCAPS_SPLITS = {"train": "train", "val": "validation", "test": "test"}
# SHA-256 of the files at AUDIOCAPS_COMMIT (computed here from that commit's blobs).
_SHA256 = {
    "train": "c0c5223db682b3bf724ce7e7ce58d5b36929f74572e8526a7211f92d2eef7c8e",
    "val": "dab1c96641d5f3053ddb99dca3949450da9a75737bda53e11cc0aa8b102be0c3",
    "test": "b91c4b7ded2f4f6e7db5b9c4983dc1e1dca3d556f505b61e3fd65cac7e1c638a",
}
AUDIOCAPS_FILES: dict[str, RemoteFile] = {
    split: RemoteFile(f"{_RAW}{split}.csv", sha256=digest, licence=_LICENCE)
    for split, digest in _SHA256.items()
}
_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
#: Stems tried for each clip, in order; fields: youtube_id, start (int seconds), end (start + 10),
#: audiocap_id.
NAME_FORMATS: tuple[str, ...] = (
    "{youtube_id}_{start}",
    "Y{youtube_id}_{start}.000_{end}.000",
    "{youtube_id}_{start}_{end}",
    "Y{youtube_id}_{start}_{end}",
    "{youtube_id}_{start}000_{end}000",
    "Y{youtube_id}",
    "{youtube_id}",
    "{audiocap_id}",
)


def download_audiocaps(target_dir: str | os.PathLike | None = None,
                       splits: Iterable[str] = tuple(AUDIOCAPS_SPLITS), *,
                       progress: bool = True) -> Path:
    """Download the caption CSVs (SHA-256 checked) into ``target_dir`` (default
    ``data_root()/audiocaps``). The audio is not downloadable: see the module docstring."""
    root = corpus_root(target_dir, "audiocaps")
    for split in check_choices(splits, AUDIOCAPS_SPLITS, "AudioCaps splits"):
        download(AUDIOCAPS_FILES[split], root, progress=progress)
    return root


def read_audiocaps_csv(path: str | os.PathLike) -> pd.DataFrame:
    """One AudioCaps CSV (``audiocap_id, youtube_id, start_time, caption``), checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; run download_audiocaps() or copy the AudioCaps "
                        "CSV files there.")
    df = read_csv_file(path, "delete it and run download_audiocaps() again",
                       dtype={"audiocap_id": str, "youtube_id": str}, keep_default_na=False)
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks the AudioCaps columns {missing} (has {list(df.columns)}); "
                        "use the CSVs of github.com/cdjkim/audiocaps.")
    return df


def _check_name_format(name_format: str) -> None:
    """Refuse a ``name_format`` that names a field the clips do not have, before any work."""
    try:
        name_format.format(youtube_id="id", start=0, end=10, audiocap_id="1")
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"name_format={name_format!r} does not fit the AudioCaps fields "
                          f"({type(err).__name__}: {err}); use {{youtube_id}}, {{start}}, {{end}} "
                          "and {audiocap_id}, e.g. '{youtube_id}_{start}'.") from None


def _find_audio(index: dict[str, Path], fields: dict[str, object],
                formats: Sequence[str]) -> Path | None:
    for fmt in formats:
        path = index.get(fmt.format(**fields))
        if path is not None:
            return path
    return None


def prepare_audiocaps(csv_dir: str | os.PathLike | None, audio_dir: str | os.PathLike, *,
                      out_dir: str | os.PathLike | None = None,
                      splits: Iterable[str] = tuple(AUDIOCAPS_SPLITS),
                      name_format: str | None = None, missing: str = "drop") -> Path:
    """A zskit corpus folder from the AudioCaps CSVs and your audio folder; returns it.

    ``csv_dir`` holds ``train.csv``, ``val.csv``, ``test.csv`` (default ``data_root()/audiocaps``);
    ``audio_dir`` is searched recursively. ``name_format`` (fields ``youtube_id``, ``start``,
    ``end``, ``audiocap_id``) replaces :data:`NAME_FORMATS`. Clips whose video is gone are common:
    ``missing="drop"`` (default) leaves them out with a warning, ``"raise"`` stops.
    """
    check_missing_policy(missing)
    if name_format:
        _check_name_format(name_format)
    root = corpus_root(csv_dir, "audiocaps")
    formats = (name_format,) if name_format else NAME_FORMATS
    index = index_audio_files(audio_dir)
    rows, absent, total = [], [], 0
    for split in check_choices(splits, AUDIOCAPS_SPLITS, "AudioCaps splits"):
        df = read_audiocaps_csv(root / f"{split}.csv")
        for (ytid, start), group in df.groupby(["youtube_id", "start_time"], sort=False):
            total += 1
            start_s = int(float(start))
            fields = {"youtube_id": ytid, "start": start_s, "end": start_s + 10,
                      "audiocap_id": group["audiocap_id"].iloc[0]}
            path = _find_audio(index, fields, formats)
            if path is None:
                absent.append(f"{ytid}@{start_s}")
                continue
            rows.append({
                "clip_id": f"{ytid}_{start_s}",
                "path": path,
                "split": AUDIOCAPS_SPLITS[split],
                "captions": [c.strip() for c in group["caption"] if c.strip()],
                "youtube_id": ytid,
                "start_time": start_s,
                "audiocap_ids": list(group["audiocap_id"]),
            })
    report_missing_audio(absent, total, "AudioCaps clips", missing,
                   f"check the audio folder {audio_dir} and name_format")
    info = {"name": "AudioCaps", "version": "1.0", "source": f"github.com/cdjkim/audiocaps@"
            f"{AUDIOCAPS_COMMIT}", "licence": _LICENCE, "clips_without_audio": len(absent)}
    return write_caption_corpus(rows, out_dir if out_dir is not None else root, info)
