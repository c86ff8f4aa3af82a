"""ClothoV2.1: prepare a corpus from fixture files in the official layout and encodings, download
through a local HTTP server with MD5 checks, and the 7z path."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util

import numpy as np
import pytest
import soundfile as sf

from zskit.data import clotho
from zskit.data.clotho import download_clotho, extract_7z, prepare_clotho
from zskit.data.download import ChecksumError
from zskit.data.manifest import load_corpus
from zskit.errors import ConfigError, DataError, DependencyError

CAPTIONS = {
    "development": [("dog bark.wav", "A dog barks twice.", "A dog is barking.",
                     "Barking from a dog.", "A dog barks, loud.", "Someone's dog barks.")],
    "validation": [("rain, roof.wav", "Rain falls on a roof.", "Rain on a tin roof.",
                    "Heavy rain outside.", "Rain patters on a roof.", "It rains on a roof.")],
    "evaluation": [("café ambience.wav", "People chat in a café.", "Cups clink in a café.",
                    "Voices in a busy café.", "A café full of people.", "Chatter in a café.")],
}


def _csv(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if "," in value else value

    return "\n".join([",".join(header), *(",".join(cell(v) for v in r) for r in rows)]) + "\n"


def write_clotho(root, with_audio: bool = True) -> None:
    """Captions as UTF-8, metadata as ISO-8859-1 (as Clotho v2 ships them), audio per split."""
    (root / "csv").mkdir(parents=True, exist_ok=True)
    header = ("file_name", *(f"caption_{k}" for k in range(1, 6)))
    meta_header = ("file_name", "keywords", "sound_id", "sound_link", "start_end_samples",
                   "manufacturer", "license")
    for i, (split, rows) in enumerate(CAPTIONS.items()):
        (root / "csv" / f"clotho_captions_{split}.csv").write_text(_csv(rows, header), "utf-8")
        meta = [(r[0], "dog;bark;animal" if i == 0 else "rain;roof", str(100 + i),
                 f"https://freesound.org/s/{100 + i}", "[0, 441000]", "someone",
                 "http://creativecommons.org/licenses/by/3.0/") for r in rows]
        (root / "csv" / f"clotho_metadata_{split}.csv").write_bytes(
            _csv(meta, meta_header).encode("iso-8859-1"))
        if with_audio:
            (root / "audio" / split).mkdir(parents=True, exist_ok=True)
            for name, *_ in rows:
                sf.write(root / "audio" / split / name, np.zeros(4410, np.float32), 44100)


def test_prepare_clotho_writes_a_corpus(tmp_path):
    write_clotho(tmp_path)
    out = prepare_clotho(tmp_path)
    corpus = load_corpus(out)
    assert len(corpus) == 3 and corpus.classes == []
    assert corpus.manifest["split"].tolist() == ["train", "validation", "test"]
    assert corpus.captions[0] == list(CAPTIONS["development"][0][1:]), "five captions, in order"
    assert corpus.captions[1][0] == "Rain falls on a roof."
    assert corpus.manifest["clip_id"].tolist() == ["dog bark", "rain, roof", "café ambience"]
    assert corpus.manifest["keywords"].iloc[0] == "dog;bark;animal"
    assert corpus.manifest["path"].iloc[2] == "audio/evaluation/café ambience.wav"
    assert all(p.is_file() for p in corpus.paths)
    assert corpus.metadata["name"] == "ClothoV2.1" and corpus.metadata["captions_per_clip"] == 5
    assert corpus.metadata["splits"] == {"train": 1, "validation": 1, "test": 1}


def test_prepare_clotho_missing_audio_and_splits(tmp_path):
    write_clotho(tmp_path)
    (tmp_path / "audio" / "validation" / "rain, roof.wav").unlink()
    with pytest.raises(DataError, match="validation/rain, roof.wav"):
        prepare_clotho(tmp_path)
    out = prepare_clotho(tmp_path, out_dir=tmp_path / "corpus", missing="drop")
    corpus = load_corpus(out)
    assert corpus.manifest["clip_id"].tolist() == ["dog bark", "café ambience"]
    assert corpus.manifest["path"].iloc[0].startswith("/"), "audio outside out_dir: absolute"
    assert all(p.is_file() for p in corpus.paths), "paths resolve from another out_dir"
    only_dev = load_corpus(prepare_clotho(tmp_path, ["development"], out_dir=tmp_path / "dev"))
    assert len(only_dev) == 1
    with pytest.raises(ConfigError, match="unknown"):
        prepare_clotho(tmp_path, ["test"])
    with pytest.raises(ConfigError, match="missing="):
        prepare_clotho(tmp_path, missing="skip")


def test_prepare_clotho_without_csv_says_what_to_do(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(DataError, match="download_clotho"):
        prepare_clotho(tmp_path)


def test_download_clotho_csvs_from_a_local_server(http_dir, tmp_path, monkeypatch):
    served, base = http_dir
    base += "/"
    write_clotho(served, with_audio=False)
    files = {}
    for split, kinds in clotho.CLOTHO_FILES.items():
        files[split] = {}
        for kind, remote in kinds.items():
            local = served / "csv" / remote.name
            md5 = hashlib.md5(local.read_bytes()).hexdigest() if local.is_file() else None
            files[split][kind] = dataclasses.replace(remote, url=base + "csv/" + remote.name,
                                                     md5=md5)
    monkeypatch.setattr(clotho, "CLOTHO_FILES", files)
    root = download_clotho(tmp_path / "clotho", audio=False, progress=False)
    assert sorted(p.name for p in (root / "csv").glob("*.csv")) == sorted(
        p.name for p in (served / "csv").glob("*.csv"))
    bad = dict(files)
    bad["development"] = {**files["development"],
                          "captions": dataclasses.replace(files["development"]["captions"],
                                                          md5="0" * 32)}
    monkeypatch.setattr(clotho, "CLOTHO_FILES", bad)
    with pytest.raises(ChecksumError, match="md5"):
        download_clotho(tmp_path / "other", ["development"], audio=False, progress=False)


def test_published_checksums_are_well_formed():
    for split, kinds in clotho.CLOTHO_FILES.items():
        assert set(kinds) == {"audio", "captions", "metadata"}, split
        for remote in kinds.values():
            assert remote.md5 and len(remote.md5) == 32, remote
            assert remote.url.startswith("https://zenodo.org/records/4783391/files/clotho_")


@pytest.mark.skipif(importlib.util.find_spec("py7zr") is not None, reason="py7zr installed")
def test_extract_7z_without_py7zr_says_how(tmp_path):
    with pytest.raises(DependencyError, match=r"py7zr.*7z x"):
        extract_7z(tmp_path / "clotho_audio_development.7z", tmp_path / "audio")


def _archive(tmp_path, split):
    """``clotho_audio_<split>.7z`` holding ``<split>/a.wav``, as Clotho's archives are laid out."""
    import py7zr

    src = tmp_path / split
    src.mkdir()
    (src / "a.wav").write_bytes(b"RIFF")
    archive = tmp_path / f"clotho_audio_{split}.7z"
    with py7zr.SevenZipFile(archive, "w") as zf:
        zf.writeall(src, split)
    return archive


@pytest.mark.skipif(importlib.util.find_spec("py7zr") is None, reason="py7zr not installed")
def test_extract_7z_round_trip(tmp_path):
    archive = _archive(tmp_path, "development")
    dest = extract_7z(archive, tmp_path / "audio")
    assert (dest / "development" / "a.wav").read_bytes() == b"RIFF"
    assert extract_7z(archive, dest) == dest, "a second call is free"


@pytest.mark.skipif(importlib.util.find_spec("py7zr") is None, reason="py7zr not installed")
def test_an_unpacked_folder_deleted_later_is_unpacked_again(tmp_path):
    """The marker said "unpacked" after its folder was deleted: download_clotho and extract_7z
    then did nothing and prepare_clotho kept telling the user to run download_clotho."""
    archive = _archive(tmp_path, "evaluation")
    dest = tmp_path / "audio"
    extract_7z(archive, dest)
    (dest / "evaluation" / "a.wav").unlink()
    (dest / "evaluation").rmdir()
    extract_7z(archive, dest)
    assert (dest / "evaluation" / "a.wav").read_bytes() == b"RIFF"
    (dest / ".zskit-clotho-audio").write_text("clotho_audio_evaluation.7z\n")  # older marker
    archive.unlink()
    assert extract_7z(archive, dest) == dest, "an older marker still counts as unpacked"


def test_prepare_clotho_reads_the_metadata_beside_hand_placed_captions(tmp_path):
    write_clotho(tmp_path)
    for path in list((tmp_path / "csv").iterdir()):  # every CSV directly in the target folder
        path.rename(tmp_path / path.name)
    (tmp_path / "csv").rmdir()
    corpus = load_corpus(prepare_clotho(tmp_path))
    assert corpus.manifest["keywords"].tolist() == ["dog;bark;animal", "rain;roof", "rain;roof"]
    assert corpus.manifest["sound_id"].tolist() == [100, 101, 102]
