"""WavCaps (Mei et al., 2023): ~400k clips with ChatGPT-written captions, for pre-training.

The JSON metadata comes from the Hugging Face data set ``cvssp/WavCaps`` (pinned to one revision;
no checksums are published, so the files are not verified); the audio (about 800 GB of FLAC in
split zip archives) is left to you: put it in a folder and point :func:`prepare_wavcaps` at it.

Each JSON file is ``{"num_captions_per_audio": 1, "data": [{"id", "caption", "duration", ...}]}``
for one source: AudioSet_SL (``as_final.json``, ids ``Y<youtube>_<start>.wav``),
BBC_Sound_Effects, FreeSound and SoundBible (ids without extension). Audio files are matched by
stem (``<id without .wav>`` in any audio format) within the folder of their source: a folder whose
name starts with the source's (``FreeSound/``, ``SoundBible_flac/``, at any depth). The sources
number their clips independently (SoundBible's ids 1 to about 2,200 are also Freesound ids), so a
file in another source's folder is never taken; files outside every source folder match any
source. All clips go to the ``train`` split (paper 4 pre-trains on WavCaps); ``exclude`` drops ids
that overlap an evaluation set (e.g. Clotho's evaluation clips among the FreeSound ones), for every
source or per source as WavCaps' own blacklist files list them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from zskit.data.download import RemoteFile, download
from zskit.data.prepare import (
    audio_files,
    check_choices,
    check_missing_policy,
    corpus_root,
    read_json_file,
    report_missing_audio,
    write_caption_corpus,
)
from zskit.errors import ConfigError, DataError

__all__ = ["WAVCAPS_FILES", "WAVCAPS_REVISION", "WAVCAPS_SOURCES", "download_wavcaps",
           "prepare_wavcaps", "read_wavcaps_json"]

#: The revision of huggingface.co/datasets/cvssp/WavCaps whose JSON files are used.
WAVCAPS_REVISION = "85a0c21e26fa7696a5a74ce54fada99a9b43c6de"
_HF = f"https://huggingface.co/datasets/cvssp/WavCaps/resolve/{WAVCAPS_REVISION}/json_files/"
_LICENCE = ("WavCaps: academic use only (see the data set card); audio under each source's "
            "licence (FreeSound, BBC Sound Effects RemArc, SoundBible, AudioSet)")
#: source -> JSON file name (inside ``json_files/<source>/``).
WAVCAPS_SOURCES = {"AudioSet_SL": "as_final.json", "BBC_Sound_Effects": "bbc_final.json",
                   "FreeSound": "fsd_final.json", "SoundBible": "sb_final.json"}
WAVCAPS_FILES: dict[str, RemoteFile] = {
    source: RemoteFile(f"{_HF}{source}/{name}", licence=_LICENCE)  # no published checksum
    for source, name in WAVCAPS_SOURCES.items()
}


def download_wavcaps(target_dir: str | os.PathLike | None = None,
                     sources: Iterable[str] = tuple(WAVCAPS_SOURCES), *,
                     progress: bool = True) -> Path:
    """Download the JSON metadata into ``target_dir/json_files/<source>/`` (default
    ``data_root()/wavcaps``). The audio is not fetched: see the module docstring."""
    root = corpus_root(target_dir, "wavcaps")
    for source in check_choices(sources, WAVCAPS_SOURCES, "WavCaps sources"):
        download(WAVCAPS_FILES[source], root / "json_files" / source, progress=progress)
    return root


def read_wavcaps_json(path: str | os.PathLike) -> list[dict]:
    """The ``data`` list of one WavCaps JSON file, each entry with ``id`` and ``caption``."""
    data = read_json_file(path, "run download_wavcaps() or copy the WavCaps json_files there")
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and "id" in e and "caption" in e for e in entries):
        raise DataError(f"{path} is not a WavCaps metadata file: expected "
                        '{"data": [{"id": ..., "caption": ...}, ...]}; delete it and run '
                        "download_wavcaps() again.")
    return entries


#: Source names used by WavCaps' blacklist files (``blacklist_exclude_*.json``).
_BLACKLIST_KEYS = {"AudioSet": "AudioSet_SL"}


def _stem(entry_id: str) -> str:
    return entry_id[:-4] if entry_id.lower().endswith(".wav") else entry_id


def _exclusions(exclude: Iterable[str] | Mapping[str, Iterable[str]]) -> dict[str | None, set[str]]:
    """``exclude`` as ``{source: stems}``; the key None holds ids excluded from every source."""
    if not isinstance(exclude, Mapping):
        return {None: {_stem(str(x)) for x in exclude}}
    out: dict[str | None, set[str]] = {}
    for key, ids in exclude.items():
        source = _BLACKLIST_KEYS.get(key, key)
        if source not in WAVCAPS_SOURCES:
            raise ConfigError(f"exclude names the source {key!r}; use one of "
                            f"{list(WAVCAPS_SOURCES)} (or a WavCaps blacklist file's keys).")
        out.setdefault(source, set()).update(_stem(str(x)) for x in ids)
    return out


def _source_of(path: Path, root: Path) -> str | None:
    """The WavCaps source whose folder holds ``path`` (the innermost such folder), else None."""
    for part in reversed(path.relative_to(root).parts[:-1]):
        for source in WAVCAPS_SOURCES:
            if part.lower().startswith(source.lower()):
                return source
    return None


def _audio_by_source(audio_root: Path) -> dict[tuple[str | None, str], Path]:
    """``{(source or None, stem): file}`` over every audio file under ``audio_root`` (a stem
    twice in one source keeps its first file in sorted order)."""
    index: dict[tuple[str | None, str], Path] = {}
    for path in audio_files(audio_root):
        index.setdefault((_source_of(path, audio_root), path.stem), path)
    return index


def prepare_wavcaps(json_dir: str | os.PathLike | None, audio_dir: str | os.PathLike, *,
                    out_dir: str | os.PathLike | None = None,
                    sources: Iterable[str] = tuple(WAVCAPS_SOURCES),
                    exclude: Iterable[str] | Mapping[str, Iterable[str]] = (),
                    missing: str = "drop") -> Path:
    """A zskit corpus folder from WavCaps JSON files and your audio folder; returns it.

    ``json_dir`` holds ``json_files/<source>/<name>.json`` or the JSON files directly (default
    ``data_root()/wavcaps``). ``exclude``: ids (with or without ``.wav``) to leave out of every
    source, or ``{source: ids}`` (e.g. a WavCaps blacklist JSON, whose ``"AudioSet"`` stands for
    AudioSet_SL). ``missing``: "drop" (default) or "raise" for clips without an audio file.
    """
    check_missing_policy(missing)
    root = corpus_root(json_dir, "wavcaps")
    audio_root = Path(audio_dir).expanduser()
    skip = _exclusions(exclude)
    index = _audio_by_source(audio_root)
    rows, absent, total, excluded = [], [], 0, 0
    for source in check_choices(sources, WAVCAPS_SOURCES, "WavCaps sources"):
        name = WAVCAPS_SOURCES[source]
        path = next((p for p in (root / "json_files" / source / name, root / source / name,
                                 root / name) if p.is_file()), root / "json_files" / source / name)
        for entry in read_wavcaps_json(path):
            stem = _stem(str(entry["id"]))
            if stem in skip.get(None, ()) or stem in skip.get(source, ()):
                excluded += 1
                continue
            total += 1
            audio = index.get((source, stem)) or index.get((None, stem))
            if audio is None:
                absent.append(f"{source}/{stem}")
                continue
            caption = str(entry["caption"]).strip()
            if not caption:
                continue
            tags = entry.get("tags") or []
            rows.append({
                "clip_id": f"{source}/{stem}",
                "path": audio,
                "split": "train",
                "captions": [caption],
                "keywords": [str(t).strip() for t in tags if str(t).strip()],
                "source": source,
                "duration": float(entry.get("duration") or 0.0),
            })
    report_missing_audio(absent, total, "WavCaps clips", missing,
                   f"check the audio folder {audio_root}")
    info = {"name": "WavCaps", "source": f"huggingface.co/datasets/cvssp/WavCaps@{WAVCAPS_REVISION}",
            "licence": _LICENCE, "sources": list(sources), "excluded": excluded,
            "clips_without_audio": len(absent)}
    return write_caption_corpus(rows, out_dir if out_dir is not None else root, info)
