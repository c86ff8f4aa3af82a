"""Second review of the paper-4 code: each test fails on the bug it is named after."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from zskit.data import clotho
from zskit.data.audiocaps import prepare_audiocaps
from zskit.data.clotho import prepare_clotho
from zskit.data.manifest import Corpus, load_corpus
from zskit.data.prepare import index_audio_files
from zskit.data.wavcaps import prepare_wavcaps
from zskit.errors import ConfigError, DataError
from zskit.models.dual_encoder import (
    DualEncoder,
    RetrievalPairs,
    clip_recordings,
    contrastive_loss,
    pretraining_corpora,
)
from zskit.text_augment import CaptionSwap


def _model() -> DualEncoder:
    torch.manual_seed(0)
    return DualEncoder.from_embeddings(8, 6, dim=4)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(5, 8), torch.randn(5, 6)


def test_logit_scale_at_its_cap_still_gets_a_gradient():
    model = _model()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    contrastive_loss(model, _batch()).backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs() > 0, (
        "exp(log 100) rounds above 100: a clamp after exp passes no gradient at the cap")


def test_logit_scale_above_its_cap_is_pulled_back_and_can_come_down():
    model = _model()
    with torch.no_grad():
        model.logit_scale.fill_(7.0)  # an optimiser step overshot log(100) = 4.6
    audio, text = _batch()
    loss = contrastive_loss(model, (audio, text)) + contrastive_loss(model, (audio, text))
    loss.backward()  # two forwards before one backward: the in-place clamp must not break it
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))
    assert model.scale.item() == pytest.approx(100.0, rel=1e-5)
    assert model.logit_scale.grad.abs() > 0, "a scale over the cap was stuck there for good"
    fixed = DualEncoder.from_embeddings(8, 6, dim=4, learn_scale=False, init_temperature=0.5)
    fixed(audio, text)
    assert fixed.logit_scale.item() == pytest.approx(math.log(2.0)), "a fixed scale is left alone"


def _tone(path, value: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(320, value, np.float32), 32000)


def test_wavcaps_never_takes_audio_from_another_sources_folder(tmp_path):
    """SoundBible and Freesound number their clips independently: SoundBible 1748 is not
    Freesound 1748, whose file sorts first in the archives' ``*_flac`` folders."""
    sb = {"data": [{"id": "1748", "caption": "A bell rings.", "duration": 1.0},
                   {"id": "2219", "caption": "An airplane lands.", "duration": 1.0}]}
    fsd = {"data": [{"id": "1748", "caption": "A door creaks.", "duration": 1.0}]}
    for source, name, data in (("SoundBible", "sb_final.json", sb),
                               ("FreeSound", "fsd_final.json", fsd)):
        folder = tmp_path / "json_files" / source
        folder.mkdir(parents=True)
        (folder / name).write_text(json.dumps(data))
    audio = tmp_path / "waveforms"
    _tone(audio / "FreeSound_flac" / "1748.flac", 0.1)
    _tone(audio / "FreeSound_flac" / "2219.flac", 0.1)  # a Freesound clip WavCaps did not keep
    _tone(audio / "SoundBible_flac" / "1748.flac", 0.2)
    corpus = load_corpus(prepare_wavcaps(tmp_path, audio, sources=["FreeSound", "SoundBible"],
                                         out_dir=tmp_path / "out"))
    paths = dict(zip(corpus.manifest["clip_id"], corpus.paths))
    assert paths["SoundBible/1748"].parent.name == "SoundBible_flac"
    assert paths["FreeSound/1748"].parent.name == "FreeSound_flac"
    assert "SoundBible/2219" not in paths, "no SoundBible file; Freesound's 2219 is another clip"
    # exclusions per source, as WavCaps' blacklist files give them ("AudioSet" = AudioSet_SL)
    out = prepare_wavcaps(tmp_path, audio, sources=["FreeSound", "SoundBible"],
                          exclude={"FreeSound": ["1748.wav"], "AudioSet": []},
                          out_dir=tmp_path / "out2")
    assert load_corpus(out).manifest["clip_id"].tolist() == ["SoundBible/1748"]
    with pytest.raises(ConfigError, match="exclude names the source 'Clotho'"):
        prepare_wavcaps(tmp_path, audio, exclude={"Clotho": ["1"]}, out_dir=tmp_path / "x")


def _clotho_captions(root) -> None:
    """Clotho's evaluation captions CSV with one clip, ``rain.wav``."""
    header = "file_name," + ",".join(f"caption_{k}" for k in range(1, 6))
    (root / "csv").mkdir()
    (root / "csv" / "clotho_captions_evaluation.csv").write_text(
        f"{header}\nrain.wav,a,b,c,d,e\n", "utf-8")


def test_half_unpacked_files_of_an_interrupted_extraction_are_not_audio(tmp_path):
    _clotho_captions(tmp_path)
    _tone(tmp_path / "audio" / ".extract-k2j4" / "evaluation" / "rain.wav", 0.1)  # killed mid-way
    assert "rain" not in index_audio_files(tmp_path / "audio")
    with pytest.raises(DataError, match="1 of 1 Clotho clips have no audio file"):
        prepare_clotho(tmp_path, ["evaluation"])


def test_validation_batches_are_the_same_every_epoch(tmp_path):
    """Clips longer than max_seconds were cropped at random and captions swapped for rewrites in
    validation batches too, so the validation loss moved between epochs without any training."""
    path = tmp_path / "long.wav"
    sf.write(path, np.linspace(-0.5, 0.5, 3 * 8000, dtype=np.float32), 8000)
    pairs = RetrievalPairs([str(path)], [["a ramp"]], [[["a rewrite"]]], swap=CaptionSwap(1.0),
                           sample_rate=8000, max_seconds=1.0)
    torch.manual_seed(0)
    batches = [next(iter(pairs.loader(4, shuffle=False))) for _ in range(5)]
    first = torch.from_numpy(sf.read(path, dtype="float32")[0][:8000])
    for batch in batches:
        assert batch["text"] == ["a ramp"]
        assert torch.allclose(batch["audio"][0], first, atol=1e-4), "the start, as evaluated"
    train = [next(iter(pairs.loader(4, shuffle=True))) for _ in range(5)]
    assert {b["text"][0] for b in train} == {"a rewrite"}, "training still swaps"
    assert len({round(float(b["audio"][0, 0]), 3) for b in train}) > 1, "and crops at random"
    assert pairs.augment, "the training pairs keep augmenting"


def test_download_clotho_does_not_fetch_an_archive_it_already_unpacked(http_dir, tmp_path,
                                                                        monkeypatch):
    """The 7z archives are GBs; deleting them after unpacking is common, and a re-run of the
    "safe to re-run" download fetched them all again."""
    served, base = http_dir
    (served / "clotho_captions_development.csv").write_text("file_name,caption_1\n", "utf-8")
    files = {"development": {
        kind: dataclasses.replace(remote, url=f"{base}/{remote.name}", md5=None)
        for kind, remote in clotho.CLOTHO_FILES["development"].items()}}
    files["development"]["metadata"] = files["development"]["captions"]
    monkeypatch.setattr(clotho, "CLOTHO_FILES", files)
    root = tmp_path / "clotho"
    (root / "audio").mkdir(parents=True)
    (root / "audio" / ".zskit-clotho-audio").write_text("clotho_audio_development.7z\n")
    assert clotho.download_clotho(root, ["development"], progress=False) == root
    assert not (root / "archives").exists(), "the unpacked archive was fetched again"


def test_clotho_clips_whose_sound_id_is_not_found_are_not_one_shared_recording(tmp_path):
    """Clotho's metadata says "Not found" for the sound_id of some clips: they all counted as one
    Freesound recording, so a training clip "Not found" leaked with any test clip "Not found"."""
    manifest = pd.DataFrame({"clip_id": ["dog", "rain", "cafe"],
                             "path": ["dog.wav", "rain.wav", "cafe.wav"],
                             "split": ["train", "test", "test"],
                             "sound_id": ["Not found", "Not found", "102.0"]})
    corpus = Corpus(tmp_path, manifest, {"name": "ClothoV2.1"}, [], np.zeros((3, 0), np.int8),
                    np.zeros((3, 0), bool), [["x"]] * 3)
    assert clip_recordings(corpus) == ["", "", "freesound:102"]
    kept = pretraining_corpora([corpus], corpus)
    assert kept[0].manifest["clip_id"].tolist() == ["dog"]


def test_an_audiocaps_name_format_with_an_unknown_field_says_which_fields_exist(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                        "91139,r1nicOVtvkQ,130,Water pours\n")
    for bad in ("{ytid}_{start}", "{0}.wav", "{start:q}"):  # was a bare KeyError/IndexError
        with pytest.raises(ConfigError, match=r"use \{youtube_id\}, \{start\}, \{end\}"):
            prepare_audiocaps(tmp_path, tmp_path / "audio", splits=["train"], name_format=bad)


def test_clotho_audio_converted_to_flac_is_found(tmp_path):
    _clotho_captions(tmp_path)
    _tone(tmp_path / "audio" / "evaluation" / "rain.flac", 0.1)
    corpus = load_corpus(prepare_clotho(tmp_path, ["evaluation"]))
    assert corpus.manifest["path"].tolist() == ["audio/evaluation/rain.flac"]
