"""AudioCaps: prepare from fixture CSVs in the official format and a user audio folder; download
the CSVs through a local HTTP server with SHA-256 checks."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import soundfile as sf

from zskit.data import audiocaps
from zskit.data.audiocaps import download_audiocaps, prepare_audiocaps, read_audiocaps_csv
from zskit.data.download import ChecksumError
from zskit.data.manifest import load_corpus
from zskit.errors import ConfigError, DataError

HEADER = "audiocap_id,youtube_id,start_time,caption\n"
TRAIN = HEADER + (
    '91139,r1nicOVtvkQ,130,A woman talks nearby as water pours\n'
    '58146,UDGBjjwyaqE,20,Multiple clanging and clanking sounds\n'
    '11111,-gone-video,0,"A dog barks, then a car passes"\n'
)
VAL = HEADER + "".join(
    f'{97151 + k},vfY_TJq7n_U,130,"Ducks quack and water splashes, take {k}"\n' for k in range(5))
TEST = HEADER + "".join(
    f"{103549 + k},7fmOlUlwoNg,20,Constant rattling noise {k}\n" for k in range(5))


def write_csvs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        (folder / f"{name}.csv").write_text(text)


def write_audio(folder, stems):
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        sf.write(folder / f"{stem}.wav", np.zeros(1600, np.float32), 16000)


def test_prepare_groups_captions_per_clip_and_finds_audio_by_common_names(tmp_path):
    write_csvs(tmp_path / "csv")
    write_audio(tmp_path / "audio" / "train", ["r1nicOVtvkQ_130", "YUDGBjjwyaqE_20.000_30.000"])
    write_audio(tmp_path / "audio" / "val", ["vfY_TJq7n_U_130"])
    write_audio(tmp_path / "audio" / "test", ["7fmOlUlwoNg"])
    out = prepare_audiocaps(tmp_path / "csv", tmp_path / "audio", out_dir=tmp_path / "corpus")
    corpus = load_corpus(out)
    assert corpus.manifest["clip_id"].tolist() == [
        "r1nicOVtvkQ_130", "UDGBjjwyaqE_20", "vfY_TJq7n_U_130", "7fmOlUlwoNg_20"]
    assert corpus.manifest["split"].tolist() == ["train", "train", "validation", "test"]
    assert corpus.captions[0] == ["A woman talks nearby as water pours", "", "", "", ""]
    assert len([c for c in corpus.captions[2] if c]) == 5, "val clips keep all five captions"
    assert corpus.captions[2][0] == "Ducks quack and water splashes, take 0"
    assert corpus.manifest["audiocap_ids"].iloc[3] == "103549;103550;103551;103552;103553"
    assert all(p.is_file() for p in corpus.paths)
    assert corpus.metadata["clips_without_audio"] == 1, "the vanished video is dropped"


def test_prepare_name_format_and_missing_policy(tmp_path):
    write_csvs(tmp_path / "csv")
    write_audio(tmp_path / "audio", ["clip-91139", "clip-58146", "clip-11111", "clip-97151",
                                     "clip-103549"])
    out = prepare_audiocaps(tmp_path / "csv", tmp_path / "audio", out_dir=tmp_path / "c",
                            name_format="clip-{audiocap_id}", missing="raise")
    assert len(load_corpus(out)) == 5
    with pytest.raises(DataError, match="-gone-video@0"):
        prepare_audiocaps(tmp_path / "csv", tmp_path / "audio", out_dir=tmp_path / "d",
                          missing="raise")
    with pytest.raises(ConfigError, match="unknown"):
        prepare_audiocaps(tmp_path / "csv", tmp_path / "audio", splits=["dev"])
    with pytest.raises(DataError, match="audio folder"):
        prepare_audiocaps(tmp_path / "csv", tmp_path / "nowhere")


def test_read_csv_checks_columns(tmp_path):
    (tmp_path / "train.csv").write_text("id,caption\n1,x\n")
    with pytest.raises(DataError, match="youtube_id"):
        read_audiocaps_csv(tmp_path / "train.csv")
    with pytest.raises(DataError, match="download_audiocaps"):
        read_audiocaps_csv(tmp_path / "val.csv")


def test_download_through_local_server_with_sha256(http_dir, tmp_path, monkeypatch):
    served, base = http_dir
    base += "/"
    write_csvs(served)
    files = {s: dataclasses.replace(r, url=f"{base}{s}.csv",
                                    sha256=hashlib.sha256((served / f"{s}.csv").read_bytes())
                                    .hexdigest())
             for s, r in audiocaps.AUDIOCAPS_FILES.items()}
    monkeypatch.setattr(audiocaps, "AUDIOCAPS_FILES", files)
    root = download_audiocaps(tmp_path / "ac", progress=False)
    assert (root / "val.csv").read_text() == VAL
    files["test"] = dataclasses.replace(files["test"], sha256="0" * 64)
    with pytest.raises(ChecksumError):
        download_audiocaps(tmp_path / "ac2", ["test"], progress=False)


def test_pinned_files():
    for split, remote in audiocaps.AUDIOCAPS_FILES.items():
        assert audiocaps.AUDIOCAPS_COMMIT in remote.url and remote.url.endswith(f"/{split}.csv")
        assert len(remote.sha256) == 64
