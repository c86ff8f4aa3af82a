"""Speech Commands V2: the official split rule, prepare on the official layout (and its download
from a local server), and the eSpeak NG stand-in written in that layout."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from zskit.audio.io import audio_info, load_audio, save_audio
from zskit.data import load_corpus
from zskit.data.download import RemoteFile
from zskit.data.speech import (
    SPEECH_COMMANDS_V2_WORDS,
    KeywordSynthConfig,
    download_speech_commands,
    prepare_speech_commands,
    speak,
    synthesize_keywords,
    which_set,
)
from zskit.errors import ConfigError, DataError


def test_35_words():
    assert len(SPEECH_COMMANDS_V2_WORDS) == 35 == len(set(SPEECH_COMMANDS_V2_WORDS))
    assert {"marvin", "sheila", "visual", "learn", "follow", "forward", "backward"} <= set(
        SPEECH_COMMANDS_V2_WORDS), "V2's five added words and the two names"


def test_which_set_splits_by_speaker_about_80_10_10():
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(16**8):08x}" for _ in range(4000)]
    splits = [which_set(f"dog/{s}_nohash_0.wav") for s in speakers]
    shares = {k: splits.count(k) / len(splits) for k in ("training", "validation", "testing")}
    assert abs(shares["validation"] - 0.1) < 0.02 and abs(shares["testing"] - 0.1) < 0.02, shares
    for s, split in zip(speakers[:50], splits):
        assert which_set(f"cat/{s}_nohash_7.wav") == split, "only the speaker part counts"
    assert which_set("x/a_nohash_0.wav", 0, 0) == "training"
    assert which_set("x/a_nohash_0.wav", 100, 0) == "validation"


def official_layout(root, words=("yes", "no"), speakers=("aa11", "bb22", "cc33")):
    """A tiny folder in the official layout: word folders, noise folder, the two lists."""
    for w in words:
        for s in speakers:
            save_audio(root / w / f"{s}_nohash_0.wav", torch.zeros(16000), 16000)
    save_audio(root / "_background_noise_" / "white_noise.wav", torch.zeros(1600), 16000)
    (root / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\nno/bb22_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nno/cc33_nohash_0.wav\n")


def test_prepare_uses_the_official_lists(tmp_path):
    official_layout(tmp_path)
    manifest = prepare_speech_commands(tmp_path, words=("yes", "no"))
    by_speaker = manifest.groupby("speaker")["split"].unique().to_dict()
    assert {k: list(v) for k, v in by_speaker.items()} == {
        "aa11": ["train"], "bb22": ["validation"], "cc33": ["test"]}, by_speaker
    corpus = load_corpus(tmp_path)
    assert corpus.classes == ["yes", "no"] and corpus.labels.sum(1).tolist() == [1] * 6
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="testing_list.txt"):
        prepare_speech_commands(tmp_path, words=("yes", "no"))
    with pytest.raises(DataError, match="no .wav"):
        official_layout(tmp_path)
        prepare_speech_commands(tmp_path, words=("yes", "stop"))



def test_prepare_refuses_a_file_in_both_lists_and_reads_windows_lists(tmp_path):
    official_layout(tmp_path)
    (tmp_path / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nyes/bb22_nohash_0.wav\n")
    with pytest.raises(DataError, match="both validation_list.txt and testing_list.txt"):
        prepare_speech_commands(tmp_path, words=("yes", "no"))
    # Lists re-saved on Windows (byte-order mark, CRLF, backslashes) still assign the same splits.
    (tmp_path / "testing_list.txt").write_text("yes\\cc33_nohash_0.wav\r\nno\\cc33_nohash_0.wav\r\n")
    (tmp_path / "validation_list.txt").write_bytes(
        b"\xef\xbb\xbfyes/bb22_nohash_0.wav\r\nno/bb22_nohash_0.wav\r\n")
    splits = prepare_speech_commands(tmp_path, words=("yes", "no")).set_index("path")["split"]
    assert splits["no/cc33_nohash_0.wav"] == "test"
    assert splits["yes/bb22_nohash_0.wav"] == "validation", "not leaked into train"


def test_download_from_a_server_then_prepare(http_dir, tmp_path):
    folder, url = http_dir
    src = tmp_path / "src"
    official_layout(src)
    with tarfile.open(folder / "speech_commands_v0.02.tar.gz", "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)))  # no top folder, as the original
    remote = RemoteFile(f"{url}/speech_commands_v0.02.tar.gz")
    root = download_speech_commands(tmp_path / "sc", remote=remote, progress=False)
    assert (root / "yes" / "aa11_nohash_0.wav").is_file(), sorted(root.iterdir())
    assert len(prepare_speech_commands(root, words=("yes", "no"))) == 6
    assert download_speech_commands(tmp_path / "sc", remote=remote, progress=False) == root


def test_speak_gives_speech_that_depends_on_the_voice():
    a = speak("seven", "en-us", rate=160, pitch=50)
    b = speak("seven", "en-us+f3", rate=160, pitch=80)
    assert 0.2 * 16000 < len(a) < 1.5 * 16000 and a.abs().max() > 0.05, f"{len(a)} samples"
    assert len(a) != len(b) or not torch.allclose(a, b), "another voice must sound different"
    again = speak("seven", "en-us", rate=160, pitch=50)  # eSpeak varies by a few samples
    assert abs(len(again) - len(a)) < 0.01 * len(a), f"{len(again)} vs {len(a)} samples"
    with pytest.raises(ConfigError, match="no voice"):
        speak("seven", "xx-nowhere")


def test_stand_in_has_the_official_layout_and_splits(tmp_path):
    config = KeywordSynthConfig(n_speakers=8, takes=1, words=("yes", "no", "marvin"), seed=1)
    root = synthesize_keywords(tmp_path / "kw", config, progress=False)
    corpus = load_corpus(root)
    assert len(corpus) == 24 and corpus.classes == ["yes", "no", "marvin"]
    for rel, split in zip(corpus.manifest["path"], corpus.manifest["split"]):
        official = {"training": "train", "validation": "validation", "testing": "test"}
        assert official[which_set(rel)] == split, f"{rel}: {split}"
        info = audio_info(root / rel)
        assert (info.sample_rate, info.frames) == (16000, 16000), f"{rel}: {info}"
    assert len(corpus.manifest["speaker"].unique()) == 8
    clip = load_audio(root / corpus.manifest["path"][0], 16000)
    assert clip.abs().max() > 0.01, "a spoken word, not silence"
    assert sorted(p.name for p in (root / "_background_noise_").iterdir()) == [
        "brown_noise.wav", "pink_noise.wav", "white_noise.wav"]
    assert synthesize_keywords(tmp_path / "kw", config, progress=False) == root, "re-run: no-op"
    assert config.folder_name != KeywordSynthConfig(n_speakers=8, takes=1, seed=1).folder_name
    with pytest.raises(ConfigError, match="other settings"):
        synthesize_keywords(tmp_path / "kw", KeywordSynthConfig(n_speakers=2, seed=1), progress=False)
