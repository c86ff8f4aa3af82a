"""The shared recipe steps of zskit.data.prepare (Clotho, AudioCaps and WavCaps use them)."""

from __future__ import annotations

import logging

import pytest

from zskit.data.manifest import load_corpus
from zskit.data.prepare import (
    check_choices,
    check_missing_policy,
    corpus_root,
    index_audio_files,
    read_json_file,
    report_missing_audio,
    write_caption_corpus,
)
from zskit.errors import ConfigError, DataError

SPLITS = {"development": "train", "evaluation": "test"}


def test_corpus_root_defaults_under_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSKIT_DATA", str(tmp_path / "data"))
    assert corpus_root(None, "clotho") == tmp_path / "data" / "clotho"
    assert corpus_root(tmp_path / "mine", "clotho") == tmp_path / "mine"


def test_check_choices_keeps_order_and_names_the_valid_ones():
    assert check_choices(iter(["evaluation", "development"]), SPLITS, "Clotho splits") == [
        "evaluation", "development"], "a generator is read once and its order kept"
    with pytest.raises(ConfigError, match=r"Clotho splits \['test'\] unknown.*'development'"):
        check_choices(["development", "test"], SPLITS, "Clotho splits")
    with pytest.raises(ConfigError, match=r"\[\] unknown"):
        check_choices([], SPLITS, "Clotho splits")


def test_read_json_file_says_how_to_get_the_file(tmp_path):
    good = tmp_path / "ok.json"
    good.write_text('{"data": ["café"]}', encoding="utf-8")
    assert read_json_file(good, "fetch it") == {"data": ["café"]}
    with pytest.raises(DataError, match=r"does not exist; run fetch_x\(\)\.$"):
        read_json_file(tmp_path / "absent.json", "run fetch_x()")
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"not valid JSON .*; delete it\.$"):
        read_json_file(broken, "run fetch_x()", "delete it")



def test_read_json_file_rejects_non_utf8(tmp_path):
    latin1 = tmp_path / "ontology.json"
    latin1.write_bytes(b'[{"id": "/m/0", "name": "Caf\xe9"}]')
    with pytest.raises(DataError, match=r"not valid JSON .*; delete it\.$"):
        read_json_file(latin1, "run fetch_x()", "delete it")


def test_index_audio_files_by_name_and_stem(tmp_path):
    (tmp_path / "b").mkdir()
    for rel in ("a/x.wav", "b/x.flac", "b/y.OGG", "b/notes.txt"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    index = index_audio_files(tmp_path)
    assert index["x"] == tmp_path / "a" / "x.wav", "a repeated stem keeps the first sorted file"
    assert index["x.flac"] == tmp_path / "b" / "x.flac"
    assert index["y"] == tmp_path / "b" / "y.OGG", "suffixes match case-insensitively"
    assert "notes" not in index and "notes.txt" not in index
    with pytest.raises(DataError, match="audio folder"):
        index_audio_files(tmp_path / "nowhere")


def test_missing_audio_policy(caplog):
    check_missing_policy("drop")
    with pytest.raises(ConfigError, match="missing='skip'"):
        check_missing_policy("skip")
    report_missing_audio([], 3, "clips", "raise", "look")  # nothing absent: nothing to say
    with pytest.raises(DataError, match=r"2 of 5 clips .*\['a', 'b'\]\); look there or pass"):
        report_missing_audio(["a", "b"], 5, "clips", "raise", "look there")
    with caplog.at_level(logging.WARNING, logger="zskit.data.prepare"):
        report_missing_audio(["a"], 5, "clips", "drop", "look")
    assert "1 of 5 clips have no audio file" in caplog.text


def test_write_caption_corpus_pads_captions_and_refuses_duplicates(tmp_path):
    audio = tmp_path / "audio" / "a.wav"
    rows = [{"clip_id": "a", "path": audio, "split": "train", "captions": ["one", "two"],
             "keywords": ["k1", "k2"]},
            {"clip_id": "b", "path": tmp_path.parent / "b.wav", "split": "test",
             "captions": ["three"], "keywords": []}]
    out = write_caption_corpus(rows, tmp_path, {"name": "toy"})
    corpus = load_corpus(out)
    assert corpus.manifest["path"].tolist() == ["audio/a.wav", str((tmp_path.parent / "b.wav").resolve())]
    assert corpus.captions == [["one", "two"], ["three", ""]], "padded with empty cells"
    assert corpus.manifest["keywords"].iloc[0] == "k1;k2"
    assert corpus.metadata["name"] == "toy" and corpus.metadata["captions_per_clip"] == 2
    assert corpus.metadata["splits"] == {"train": 1, "test": 1} and corpus.classes == []
    with pytest.raises(DataError, match=r"\['a'\] occur twice"):
        write_caption_corpus([rows[0], rows[0]], tmp_path / "dup", {"name": "toy"})
    with pytest.raises(DataError, match="no clip to write"):
        write_caption_corpus([], tmp_path / "empty", {"name": "toy"})


def test_user_given_folders_expand_the_home_tilde(tmp_path, monkeypatch):
    """A folder given as "~/..." (as users type it in a notebook) means the home folder, not a
    folder named "~" under the working directory."""
    from zskit.data.prepare import corpus_root
    from zskit.report import Figure, write_metrics

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert corpus_root("~/esc50", "esc50") == tmp_path / "home" / "esc50"
    written = write_metrics("~/run", [Figure("x", 1.0, None, "here", "data", "weights", "%")])
    assert written.parent == tmp_path / "home" / "run" and written.is_file()
    assert not (tmp_path / "~").exists()
