"""zskit.ast_recipes: paper 2's ESC-50 cross-validation and balanced-AudioSet runs on fixture folders
in the official formats, the initialisations, and notebook 02 running the ESC-50 recipe in smoke
mode."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import zskit.ast_recipes as recipes
from zskit.ast_recipes import (
    audioset_balanced,
    esc50_cross_validation,
    recipe_config,
    recipe_encoder,
    run_ast_recipe,
    transfer_ast,
)
from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.audio.io import load_audio
from zskit.data.audioset import prepare_audioset, read_class_labels
from zskit.data.esc50 import ESC50_CLASSES, prepare_esc50
from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.errors import ConfigError, DataError
from zskit.metrics import mean_average_precision, top1_accuracy
from zskit.report import read_metrics
from zskit.train.recipes import AST_RECIPES, BalancedSampler, ast_train_config

TINY = {"n_mels": 32, "embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_dim": 32}
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_audio_spectrogram_transformer.ipynb"


def _tone(path: Path, freq: float, rate: int, seconds: float = 0.5) -> None:
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def write_esc50(root: Path, targets: list[int] | None = None) -> Path:
    """Ten clips in the official layout (meta/esc50.csv + 44.1 kHz audio), two per fold; by default
    each of its own class (targets 0, 5, ..., 45), so a fold's training classes tell which clips it
    trained on."""
    targets = targets or list(range(0, 50, 5))
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for i, target in enumerate(targets):
        fold = i // 2 + 1
        name = f"{fold}-{1000 + i}-A-{target}.wav"
        lines.append(f"{name},{fold},{target},{ESC50_CLASSES[target]},False,{1000 + i},A")
        _tone(root / "audio" / name, 200.0 + 150 * target, 44100)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    prepare_esc50(root)
    return root


def tiny_builder(recipe: str):
    return functools.partial(recipe_encoder, recipe, init="none", **TINY)


def test_esc50_cross_validation_trains_on_four_folds_and_tests_the_fifth(tmp_path, monkeypatch):
    root = write_esc50(tmp_path / "ESC-50-master")
    trained, predicted = [], []
    real_fit, real_predict = recipes.fit, recipes.predict

    def spy_fit(model, data, **kw):
        trained.append(set(data[1].argmax(1).tolist()))  # one class per clip
        return real_fit(model, data, **kw)

    def spy_predict(model, data, **kw):
        predicted.append(real_predict(model, data, **kw))
        return predicted[-1]

    monkeypatch.setattr(recipes, "fit", spy_fit)
    monkeypatch.setattr(recipes, "predict", spy_predict)
    config = ast_train_config("esc50", max_epochs=1, batch_size=4, progress=False, device="cpu")
    run = esc50_cross_validation(root, tiny_builder("esc50"), config=config, progress=False)
    assert run.scores["fold"].tolist() == [1, 2, 3, 4, 5]
    assert run.scores["train_clips"].tolist() == [8] * 5 and run.scores["test_clips"].tolist() == [2] * 5
    for fold, classes in zip(range(1, 6), trained):
        held_out = {10 * (fold - 1), 10 * (fold - 1) + 5}  # targets of the fold's two clips
        assert classes == set(range(0, 50, 5)) - held_out, f"fold {fold} trained on {classes}"
    for fold, scores in zip(range(1, 6), predicted):
        assert scores.shape == (2, 50), "the test fold's two clips, 50 classes"
        want = top1_accuracy(np.array([10 * (fold - 1), 10 * (fold - 1) + 5]), scores.numpy())
        assert run.scores["accuracy"][fold - 1] == pytest.approx(want), f"fold {fold} accuracy"
    assert run.value == pytest.approx(run.scores["accuracy"].mean()) and run.chance == 1 / 50
    assert run.metric == "accuracy" and run.clips == 10 and run.epochs == 1
    with pytest.raises(ConfigError, match="the corpus has folds"):
        esc50_cross_validation(root, tiny_builder("esc50"), config=config, folds=(6,))
    again = esc50_cross_validation(root, tiny_builder("esc50"), config=config, progress=False,
                                   folds=np.array([2, 2]))  # e.g. np.unique(manifest.fold)
    assert again.scores["fold"].tolist() == [2], "a numpy array of folds, each fold run once"


def write_audioset(tmp_path: Path) -> Path:
    """Balanced-train and eval segment lists in the official format and 16 kHz clips for them."""
    mids = read_class_labels()["mid"].tolist()
    header = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
              "# num_ytids={n}, num_segs={n}, num_unique_labels=527, num_positive_labels={n}\n"
              "# YTID, start_seconds, end_seconds, positive_labels\n")
    audio = tmp_path / "clips"
    audio.mkdir()
    lists = {}
    for subset, n, offset in (("balanced_train", 8, 0), ("eval", 4, 100)):
        rows = []
        for i in range(n):
            ytid = f"{subset[:4]}{i:07d}"
            labels = [mids[i % 3], mids[3]] if i % 2 else [mids[i % 3]]
            rows.append(f'{ytid}, {offset + i:.3f}, {offset + i + 10:.3f}, "{",".join(labels)}"\n')
            _tone(audio / f"Y{ytid}.wav", 300.0 + 200 * (i % 3), 16000)
        lists[subset] = tmp_path / f"{subset}.csv"
        lists[subset].write_text(header.format(n=n) + "".join(rows))
    prepare_audioset(audio, tmp_path / "corpus", segment_files=lists)
    return tmp_path / "corpus"


def test_audioset_balanced_samples_balanced_averages_and_scores_the_eval_split(tmp_path,
                                                                               monkeypatch):
    corpus = write_audioset(tmp_path)
    seen = {}
    real_fit, real_predict = recipes.fit, recipes.predict

    def spy_fit(model, data, **kw):
        seen["loader"], seen["config"] = data, kw["config"]
        seen["result"] = real_fit(model, data, **kw)
        return seen["result"]

    def spy_predict(model, data, **kw):
        seen["logits"] = real_predict(model, data, **kw)
        return seen["logits"]

    monkeypatch.setattr(recipes, "fit", spy_fit)
    monkeypatch.setattr(recipes, "predict", spy_predict)
    config = ast_train_config("audioset_balanced", max_epochs=2, batch_size=4, progress=False,
                              device="cpu")
    run = audioset_balanced(corpus, tiny_builder("audioset_balanced"), config=config,
                            balanced=True, num_samples=6)
    assert isinstance(seen["loader"].sampler, BalancedSampler) and len(seen["loader"].sampler) == 6
    assert seen["config"].select == "average" and seen["config"].average_last_k == 2
    assert seen["result"].averaged_state is not None, "weights averaged over the epochs"
    assert seen["loader"].dataset.frontend is not seen["result"].model.encoder.frontend, (
        "the loader needs its own front end: fit moves the model's to the GPU")
    labels = np.zeros((4, 527))
    for i in range(4):
        labels[i, i % 3] = 1
        labels[i, 3] = i % 2
    assert seen["logits"].shape == (4, 527), "every eval clip is scored"
    want = mean_average_precision(labels, seen["logits"].sigmoid().numpy())
    assert run.value == pytest.approx(want) and 0.0 <= run.value <= 1.0
    assert run.metric == "mAP" and 0.0 < run.chance < 1.0
    assert run.scores.to_dict(orient="records")[0] | {"mAP": 0, "train_seconds": 0} == {
        "fold": "eval", "train_clips": 8, "test_clips": 4, "mAP": 0, "train_seconds": 0}
    shuffled = audioset_balanced(corpus, tiny_builder("audioset_balanced"), config=config)
    assert isinstance(seen["loader"], recipes.FbankDataset), "the paper's default: plain shuffling"
    assert shuffled.scores["train_clips"][0] == 8
    with pytest.raises(ConfigError, match="balanced=True"):
        audioset_balanced(corpus, tiny_builder("audioset_balanced"), config=config, num_samples=6)
    with pytest.raises(DataError, match="no split 'validation'"):
        audioset_balanced(corpus, tiny_builder("audioset_balanced"), config=config,
                          eval_split="validation")


def test_audioset_features_are_the_whole_clip_padded_at_the_end_as_ast_pads(tmp_path, monkeypatch):
    corpus = write_audioset(tmp_path)  # 0.5 s clips: AST pads their filter banks to 1,024 frames
    seen = {}

    def spy_fit(model, data, **kw):
        seen["data"] = data
        raise KeyboardInterrupt  # the dataset is all this test needs

    monkeypatch.setattr(recipes, "fit", spy_fit)
    with pytest.raises(KeyboardInterrupt):
        audioset_balanced(corpus, tiny_builder("audioset_balanced"), config=ast_train_config(
            "audioset_balanced", max_epochs=1, progress=False, device="cpu"), balanced=False)
    data = seen["data"]
    features, _ = data[0]
    frontend = KaldiFbank(data.frontend.cfg)
    alone = frontend(load_audio(data.paths[0], 16000))[0]
    torch.testing.assert_close(features, alone, msg="the clip from its start, nothing added")
    frames = frontend.num_frames(8000)  # the real frames of a 0.5 s clip
    padding = -frontend.cfg.norm_mean / (2 * frontend.cfg.norm_std)
    assert features.shape[0] == 1024 and torch.allclose(features[frames:], torch.tensor(padding))
    silence = (np.log(np.finfo(np.float32).eps) - frontend.cfg.norm_mean) / (2 * frontend.cfg.norm_std)
    assert features[:frames].amax(1).min() > silence + 1, "no frames of digital silence in front"


def test_transfer_ast_cuts_the_grid_and_copies_the_transformer():
    torch.manual_seed(0)
    cfg = ASTEncoderConfig.tiny()
    source = ASTEncoder(cfg)  # 128 frames: 2 x 12 patches
    short = ASTEncoderConfig.tiny(frontend=type(cfg.frontend)(num_mel_bins=32, target_length=64))
    target = transfer_ast(source, ASTEncoder(short))
    src, dst = (m.audio_spectrogram_transformer.state_dict() for m in (source, target))
    key = "embeddings.position_embeddings"
    rows, cols = source.cfg.grid
    grid = src[key][0, 2:].reshape(rows, cols, -1)
    start = cols // 2 - target.cfg.grid[1] // 2
    want = grid[:, start:start + target.cfg.grid[1]].reshape(-1, grid.shape[-1])
    torch.testing.assert_close(dst[key][0, 2:], want, msg="time columns cut from the middle")
    torch.testing.assert_close(dst[key][0, :2], src[key][0, :2])
    for name, value in src.items():
        if name != key:
            torch.testing.assert_close(dst[name], value, msg=name)
    with pytest.raises(ConfigError, match="does not fit the target"):
        transfer_ast(source, ASTEncoder(ASTEncoderConfig.tiny(embed_dim=64)))


def test_recipe_encoder_adapts_an_imagenet_checkpoint_from_a_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    deit = transformers.DeiTModel(transformers.DeiTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        image_size=64, patch_size=16))
    deit.save_pretrained(tmp_path / "deit")
    model = recipe_encoder("esc50", 50, "imagenet", source=str(tmp_path / "deit"), **TINY)
    kernel = model.audio_spectrogram_transformer.embeddings.patch_embeddings.projection.weight
    torch.testing.assert_close(kernel, deit.embeddings.patch_embeddings.projection.weight.sum(
        1, keepdim=True), msg="the colour channels summed, as AST's released code does")
    assert model.cfg.max_length == 512 and model.cfg.num_classes == 50, "ESC-50's input, 50 classes"
    with pytest.raises(DataError, match="could not load"):
        recipe_encoder("esc50", 50, "imagenet", source=str(tmp_path / "absent"), **TINY)
    with pytest.raises(ConfigError, match="already trained on AudioSet"):
        recipe_encoder("audioset_balanced", 527, "audioset")
    with pytest.raises(ConfigError, match="init="):
        recipe_encoder("esc50", 50, "random")
    with pytest.raises(ConfigError, match="no AST recipe"):
        recipe_encoder("speechcommands", 35, "none")


def test_recipe_configs():
    assert recipe_config("esc50", "audioset").lr == 1e-5, "AST-P's learning rate"
    assert recipe_config("esc50", "imagenet").lr == AST_RECIPES["esc50"]["lr"]
    assert recipe_config("esc50", "audioset", lr=3e-4, epochs=3).lr == 3e-4
    short = recipe_config("audioset_balanced", epochs=4)
    assert (short.max_epochs, short.average_last_k, short.select) == (4, 4, "average")
    one = ast_train_config("audioset_balanced", max_epochs=1)
    assert (one.average_last_k, one.select) == (0, "last"), "one epoch: nothing to average"
    assert ast_train_config("audioset_balanced").average_last_k == 20
    assert short.warmup_steps == 1000, "AST's AudioSet runs warm up over 1,000 steps"
    assert recipe_config("esc50", "audioset").warmup_steps is None, "run_esc.sh: warmup=False"
    with pytest.raises(ConfigError, match="recipe 'openmic'"):
        run_ast_recipe("openmic", ".")
    with pytest.raises(DataError, match="prepare_esc50"):
        run_ast_recipe("esc50", "/nonexistent/esc50")


def test_notebook_names_the_window_and_the_sampling_the_code_uses():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    window = {"hanning": "Hann", "hamming": "Hamming"}[KaldiFbankConfig.ast().window_type]
    said = re.search(r"AST feeds a Kaldi filter bank \(([^)]*)\)", text).group(1)
    assert f"{window} windows" in said, f"section 1 describes AST's window as: {said}"
    shuffles = inspect.signature(audioset_balanced).parameters["balanced"].default is False
    assert ("balanced-set recipe (shuffled clips" in text) == shuffles, "section 5's sampling"


def test_notebook_runs_the_esc50_recipe_in_smoke_mode(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    root = write_esc50(tmp_path / "esc50", targets=[0, 1] * 5)  # both classes in every fold
    monkeypatch.setenv("ZSKIT_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "run.ipynb"), kernel_name="python3", progress_bar=False,
        cwd=str(NOTEBOOK.parent),
        parameters={"smoke": True, "out_dir": str(out), "recipe_data": "esc50",
                    "recipe_dir": str(root), "recipe_model": "small", "recipe_init": "none"})
    metrics = read_metrics(out)
    recipe = metrics["recipe"]
    assert [row["fold"] for row in recipe["scores"]] == [1, 2, 3, 4, 5]
    assert recipe["value"] == pytest.approx(np.mean([r["accuracy"] for r in recipe["scores"]]))
    names = [f["name"] for f in metrics["figures"]]
    assert any(n.startswith("ESC-50") for n in names), names
    assert any("ESC-50" in row["setting"] for row in metrics["paper_table"]), "a table row"
    spec = importlib.util.spec_from_file_location("checks_02", Path(__file__).with_name("checks_02.py"))
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    checks.check(metrics)


@pytest.mark.parametrize("norm_mean", [-4.2677393, None], ids=["normalised", "raw"])
def test_spec_augment_masks_to_the_raw_filterbank_zero(norm_mean):
    """AST masks the filterbank before normalising it: a masked cell of the normalised features
    holds -mean / (2 std) (0.467 with AudioSet's statistics), 0 when features are not normalised."""
    frontend = KaldiFbankConfig(num_mel_bins=32, target_length=64, norm_mean=norm_mean)
    model = recipes._classifier(ASTEncoder(ASTEncoderConfig.tiny(frontend=frontend)), "esc50")
    augment = next(m for m in model.modules() if type(m).__name__ == "SpecAugment")
    expected = 0.0 if norm_mean is None else -norm_mean / (2 * frontend.norm_std)
    assert augment.mask_value == pytest.approx(expected)
    if norm_mean is not None:
        assert augment.mask_value == pytest.approx(0.467, abs=1e-3)
