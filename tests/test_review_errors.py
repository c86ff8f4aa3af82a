"""Review of error paths: common user mistakes give a ZskitError subclass that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from zskit.errors import AudioLoadError, ConfigError, DataError, NotebookError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------ third-party errors now wrapped


def test_read_metrics_cut_off_json_is_notebook_error(tmp_path):
    from zskit.report import read_metrics

    _write(tmp_path / "metrics.json", '{"figures": [')
    with pytest.raises(NotebookError, match="not valid JSON.*Run the notebook again"):
        read_metrics(tmp_path)


def test_read_overlap_list_empty_csv_is_data_error(tmp_path):
    from zskit.data.ontology import read_overlap_list

    with pytest.raises(DataError, match="not a readable CSV.*exclusions/README.md"):
        read_overlap_list(_write(tmp_path / "overlap.csv", ""))


def test_read_audiocaps_csv_empty_is_data_error(tmp_path):
    from zskit.data.audiocaps import read_audiocaps_csv

    with pytest.raises(DataError, match="not a readable CSV.*download_audiocaps"):
        read_audiocaps_csv(_write(tmp_path / "train.csv", ""))


def test_read_clotho_csv_missing_or_empty_is_data_error(tmp_path):
    from zskit.data.clotho import read_clotho_csv

    with pytest.raises(DataError, match="does not exist.*download_clotho"):
        read_clotho_csv(tmp_path / "clotho_captions_development.csv")
    with pytest.raises(DataError, match="not a readable CSV.*download_clotho"):
        read_clotho_csv(_write(tmp_path / "clotho_captions_development.csv", ""))


def test_openmic_class_map_that_is_not_an_object_is_data_error(tmp_path):
    from zskit.data.openmic import CLASS_MAP_NAME, NPZ_NAME, read_class_map

    (tmp_path / NPZ_NAME).write_bytes(b"")
    _write(tmp_path / CLASS_MAP_NAME, '["cello", "flute"]')
    with pytest.raises(DataError, match="holds a list.*download the data set again"):
        read_class_map(tmp_path)


def test_load_cache_file_damaged_says_delete(tmp_path):
    from zskit.fileio import load_cache_file

    good = tmp_path / "good.pt"
    torch.save({"x": torch.arange(3)}, good)
    assert torch.equal(load_cache_file(good)["x"], torch.arange(3))
    bad = _write(tmp_path / "bad.pt", "not a torch file")
    with pytest.raises(DataError, match=r"bad\.pt could not be read.*delete it and run again"):
        load_cache_file(bad)


def test_clip_features_damaged_cache_is_data_error(tmp_path):
    from zskit.audio.features import clip_features

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    cache_dir = tmp_path / "cache"
    first = clip_features([wav], nn.Identity(), 16000, seconds=0.05, progress=False,
                          cache_dir=cache_dir)
    (cached,) = cache_dir.glob("*.pt")
    assert torch.equal(clip_features([wav], nn.Identity(), 16000, seconds=0.05, progress=False,
                                     cache_dir=cache_dir), first)
    cached.write_bytes(cached.read_bytes()[:20])  # a copy cut short
    with pytest.raises(DataError, match="delete it and run again"):
        clip_features([wav], nn.Identity(), 16000, seconds=0.05, progress=False,
                      cache_dir=cache_dir)


# ------------------------------------------------------------ messages that now say what to do


def test_clip_features_decode_failure_says_how_to_fix(tmp_path, monkeypatch):
    from zskit.audio import features

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)

    def broken_read(*args, **kwargs):
        raise sf.SoundFileError("decoder failed mid-file")

    monkeypatch.setattr(features.sf, "read", broken_read)
    with pytest.raises(AudioLoadError, match="re-download or re-generate it, or convert it to wav"):
        features.clip_features([wav], nn.Identity(), 16000, seconds=0.05, progress=False)


def test_esc50_meta_with_foreign_classes_says_download_again(tmp_path):
    from zskit.data.esc50 import read_esc50_meta

    meta = _write(tmp_path / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
                  "1-1-A-0.wav,1,0,spaceship,False,1,A\n")
    with pytest.raises(DataError, match="spaceship.*Download ESC-50 again"):
        read_esc50_meta(meta)


def test_speech_commands_empty_word_folder_says_download_again(tmp_path):
    from zskit.data.speech import prepare_speech_commands

    _write(tmp_path / "validation_list.txt", "")
    _write(tmp_path / "testing_list.txt", "")
    (tmp_path / "yes").mkdir()
    with pytest.raises(DataError, match="no .wav files.*download_speech_commands"):
        prepare_speech_commands(tmp_path, words=("yes",))


def test_class_folds_out_of_range_index_says_valid_range():
    from zskit.data.splits import class_folds

    labels = np.eye(4, dtype=np.float32).repeat(3, axis=0)
    with pytest.raises(ConfigError, match=r"pass indices 0\.\.3 or class names"):
        class_folds(labels, n_folds=2, always_train=[7])


def test_per_class_ap_figure_length_mismatch_says_one_per_class():
    from zskit.viz import per_class_ap_figure

    with pytest.raises(ConfigError, match="pass one AP per class name"):
        per_class_ap_figure(np.array([0.5, 0.7]), ["a", "b", "c"])


def test_tagging_data_bad_mask_or_groups_says_what_to_pass():
    from zskit.zeroshot_eval import TaggingData

    base = {"embeddings": np.zeros((2, 3)), "labels": np.zeros((2, 2)),
            "splits": np.array(["train", "test"]), "classes": ["a", "b"], "names": ["a", "b"]}
    with pytest.raises(DataError, match="pass a mask of the labels' shape"):
        TaggingData(**base, mask=np.ones((2, 3), dtype=bool))
    with pytest.raises(DataError, match="one group per label column"):
        TaggingData(**base, groups=["g"])


def test_balanced_weights_without_positives_says_check_labels():
    from zskit.train.recipes import balanced_weights

    assert balanced_weights(np.eye(2)).sum() > 0
    with pytest.raises(DataError, match="Check the labels"):
        balanced_weights(np.zeros((3, 2)))
