"""WavCaps: prepare from fixture JSON files in the official format and a user audio folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from zskit.data.manifest import load_corpus
from zskit.data.wavcaps import WAVCAPS_FILES, prepare_wavcaps, read_wavcaps_json
from zskit.errors import ConfigError, DataError

AS = {"num_captions_per_audio": 1, "data": [
    {"id": "Y--0w1YA1Hm4_30.000_40.000.wav", "caption": "A vehicle engine revs.",
     "audio": "wav_path", "duration": 10.0},
    {"id": "Y-gone_0.000_10.000.wav", "caption": "Missing audio.", "audio": "wav_path",
     "duration": 10.0},
]}
FSD = {"num_captions_per_audio": 1, "data": [
    {"id": "180913", "file_name": "UK Mello.wav", "href": "/people/x/sounds/180913/",
     "tags": ["Standard", "ringtone", "basic"], "description": "...", "author": "x",
     "duration": 3.0, "download_link": "https://freesound.org/...", "caption":
     "A ringtone plays a melody."},
    {"id": "42", "caption": "Overlaps Clotho's evaluation set.", "duration": 20.0},
]}


def write_fixture(root):
    for source, name, data in (("AudioSet_SL", "as_final.json", AS),
                               ("FreeSound", "fsd_final.json", FSD)):
        folder = root / "json_files" / source
        folder.mkdir(parents=True)
        (folder / name).write_text(json.dumps(data))
    for rel in ("audio/AudioSet_SL/Y--0w1YA1Hm4_30.000_40.000.flac",
                "audio/FreeSound/180913.flac", "audio/FreeSound/42.flac"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(320, np.float32), 32000)


def test_prepare_wavcaps(tmp_path):
    write_fixture(tmp_path)
    out = prepare_wavcaps(tmp_path, tmp_path / "audio", sources=["AudioSet_SL", "FreeSound"],
                          exclude=["42"])
    corpus = load_corpus(out)
    assert corpus.manifest["clip_id"].tolist() == ["AudioSet_SL/Y--0w1YA1Hm4_30.000_40.000",
                                                   "FreeSound/180913"]
    assert set(corpus.manifest["split"]) == {"train"}
    assert corpus.captions == [["A vehicle engine revs."], ["A ringtone plays a melody."]]
    assert corpus.manifest["keywords"].tolist() == ["", "Standard;ringtone;basic"]
    assert corpus.manifest["path"].iloc[1] == "audio/FreeSound/180913.flac"
    assert corpus.metadata["excluded"] == 1 and corpus.metadata["clips_without_audio"] == 1
    assert all(p.is_file() for p in corpus.paths)


def test_prepare_wavcaps_errors(tmp_path):
    write_fixture(tmp_path)
    with pytest.raises(DataError, match="AudioSet_SL/Y-gone"):
        prepare_wavcaps(tmp_path, tmp_path / "audio", sources=["AudioSet_SL"], missing="raise",
                        out_dir=tmp_path / "x")
    with pytest.raises(DataError, match="download_wavcaps"):
        prepare_wavcaps(tmp_path, tmp_path / "audio", sources=["SoundBible"])
    with pytest.raises(ConfigError, match="unknown"):
        prepare_wavcaps(tmp_path, tmp_path / "audio", sources=["YouTube"])
    bad = tmp_path / "bad.json"
    for content in ({"data": [{"caption": "no id"}]}, {"data": [1]}, [1, 2]):
        bad.write_text(json.dumps(content))
        with pytest.raises(DataError, match="not a WavCaps metadata file"):
            read_wavcaps_json(bad)
    bad.write_text('{"data": [')
    with pytest.raises(DataError, match="not valid JSON"):
        read_wavcaps_json(bad)


def test_files_are_pinned_to_a_revision():
    for source, remote in WAVCAPS_FILES.items():
        assert "/resolve/85a0c21e26fa7696a5a74ce54fada99a9b43c6de/json_files/" in remote.url
        assert f"/{source}/" in remote.url and remote.sha256 is None and remote.md5 is None
