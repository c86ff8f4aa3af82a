"""Paper 2's recipes on the real data sets, for users with a GPU and the data (notebook 02).

- **ESC-50** (:func:`esc50_cross_validation`): the official 5-fold cross-validation. Each fold
  trains a fresh AST on the other four folds with the ``esc50`` recipe (Adam, lr x0.85 per epoch
  after the 5th, SpecAugment 24 bins / 96 frames, no mixup, cross-entropy) and reports the test
  fold's top-1 accuracy with the last epoch's weights; the paper reports the mean over the folds.
  AST's script (``egs/esc50/get_esc_result.py``) instead reports every fold at the one epoch (of
  25) whose accuracy averaged over the five test folds is highest: a choice made on the test
  folds, which zskit does not copy.
  Filter banks (512 frames, ESC-50's statistics) are computed once for the 2,000 clips and reused
  by every fold (kept in ``cache_dir`` when given).
- **Balanced AudioSet** (:func:`audioset_balanced`): the ``audioset_balanced`` recipe (shuffled
  clips: the paper samples balanced batches on the full set only; SpecAugment 48 / 192, mixup of
  half the clips, BCE, lr warmed up over 1,000 steps, then halved every 5 epochs after the 10th,
  the weights of the last 20 epochs averaged), scored by mAP on the eval split. Mixup mixes the
  filter banks of clips in a batch, where AST mixes waveforms before the filter bank (see
  :data:`zskit.train.recipes.AST_AUGMENT`). AudioSet's filter banks do not fit in memory, so they
  are computed per clip in the data loader (``TrainConfig.num_workers`` processes), as AST's own
  code does: each whole clip's frames, cut or padded (in the log domain) at the end to 1,024.
- **Initialisation** (:func:`recipe_encoder`): ``"imagenet"`` adapts DeiT-B/384 (paper 2's AST-S),
  ``"audioset"`` starts from MIT's AudioSet AST with its positional grid cut to the recipe's
  length (AST-P, for ESC-50), ``"none"`` is random (the paper's "no pretrain" rows; with smaller
  sizes it is a CPU check of the pipeline).

Both runs go through :func:`zskit.train.fit`, so ``TrainConfig.device`` / ``amp`` pick CUDA with
mixed precision when there is a GPU and the CPU otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from zskit.adapt import adapt_position_grid, adapt_vision_transformer, position_grid
from zskit.audio.augment import SpecAugment
from zskit.audio.features import clip_features
from zskit.audio.frontends import KaldiFbank, KaldiFbankConfig
from zskit.audio.io import load_audio
from zskit.audio.segments import center_pad
from zskit.data.manifest import Corpus, load_corpus
from zskit.encoders.audio.ast import (
    AST_PRETRAINED,
    ASTEncoder,
    ASTEncoderConfig,
    load_ast_pretrained,
)
from zskit.errors import ConfigError, DataError, require
from zskit.losses import masked_bce
from zskit.metrics import mean_average_precision, random_map, top1_accuracy
from zskit.train import TrainConfig, fit, predict
from zskit.train.recipes import (
    AST_AUGMENT,
    SpectrogramClassifier,
    ast_train_config,
    balanced_loader,
    mixup_loss,
)

__all__ = [
    "DEIT_CHECKPOINT",
    "INITS",
    "RECIPE_FRONTENDS",
    "FbankDataset",
    "RecipeRun",
    "audioset_balanced",
    "esc50_cross_validation",
    "recipe_config",
    "recipe_encoder",
    "run_ast_recipe",
    "transfer_ast",
]

#: Paper 2's ImageNet starting point (DeiT with distillation, 384 px: a 24 x 24 grid).
DEIT_CHECKPOINT = "facebook/deit-base-distilled-patch16-384"
INITS = ("imagenet", "audioset", "none")
#: AST's input for each recipe: frames and the data set's normalisation statistics.
RECIPE_FRONTENDS: dict[str, Callable[[], KaldiFbankConfig]] = {
    "esc50": KaldiFbankConfig.ast_esc50,
    "audioset_balanced": KaldiFbankConfig.ast,
}
ESC50_FOLDS = (1, 2, 3, 4, 5)

EncoderBuilder = Callable[[int], ASTEncoder]


@dataclass(frozen=True)
class RecipeRun:
    """The outcome of one recipe run; ``scores`` has one row per ESC-50 fold (or one ``eval`` row
    for AudioSet) with the clip counts, the score and the training time."""

    recipe: str
    metric: str  # "accuracy" (ESC-50) or "mAP" (AudioSet)
    value: float  # ESC-50: mean accuracy over the folds; AudioSet: eval mAP of the averaged weights
    chance: float  # 1 / classes, or the exact random-ranking mAP of the eval clips
    scores: pd.DataFrame
    clips: int
    epochs: int

    @property
    def spread(self) -> float:
        """Standard deviation of the score over the folds (0 for a single evaluation)."""
        return float(self.scores[self.metric].std(ddof=0))


# --------------------------------------------------------------------------- models


def transfer_ast(source: ASTEncoder, target: ASTEncoder, positions: str = "bilinear") -> ASTEncoder:
    """Copy ``source``'s transformer into ``target``, an AST for inputs of another length.

    The positional grid is cut from the middle or interpolated to ``target``'s grid (as AST's code
    does when it starts ESC-50 from its AudioSet model: 101 time columns cut to 50); the
    classifier is left as built. Returns ``target``.
    """
    state = source.audio_spectrogram_transformer.state_dict()
    key = "embeddings.position_embeddings"
    fitted = adapt_position_grid(position_grid(source), target.cfg.grid, positions)
    state[key] = torch.cat([state[key][:, :2], fitted.flatten(1).T[None]], dim=1)
    try:
        target.audio_spectrogram_transformer.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"the source AST does not fit the target ({err}); build the target with "
                          "the source's embed_dim, depth, num_heads, mlp_dim and patches.") from None
    return target


def recipe_encoder(recipe: str, num_classes: int, init: str = "imagenet", *,
                   source: str | None = None, n_mels: int | None = None,
                   **overrides: Any) -> ASTEncoder:
    """An AST with ``recipe``'s input (:data:`RECIPE_FRONTENDS`) and ``num_classes`` outputs.

    ``init`` (:data:`INITS`): ``"imagenet"`` adapts a ViT/DeiT (``source``: hub id or local
    directory, default :data:`DEIT_CHECKPOINT`); ``"audioset"`` starts from an AudioSet AST
    (``source``, default MIT's checkpoint) via :func:`transfer_ast`; ``"none"`` is random.
    ``n_mels`` and ``overrides`` (ASTEncoderConfig fields such as ``embed_dim``, ``depth``) change
    the model; pretrained weights need the paper's sizes.
    """
    if recipe not in RECIPE_FRONTENDS:
        raise ConfigError(f"no AST recipe {recipe!r} for real data; choose one of "
                          f"{sorted(RECIPE_FRONTENDS)}.")
    if init not in INITS:
        raise ConfigError(f"init={init!r} is not one of {list(INITS)}.")
    frontend = RECIPE_FRONTENDS[recipe]()
    if n_mels is not None:
        frontend = dataclasses.replace(frontend, num_mel_bins=n_mels)
    model = ASTEncoder(ASTEncoderConfig(frontend=frontend, num_classes=num_classes, **overrides))
    if init == "imagenet":
        transformers = require("transformers", "ImageNet initialisation of the AST")
        name = source or DEIT_CHECKPOINT
        try:
            vision = transformers.AutoModel.from_pretrained(name)
        except OSError as err:
            raise DataError(f"could not load {name} ({err}); it is downloaded from the Hugging "
                            "Face hub, so go online once, or pass a local directory as source.") from err
        # AST's released code sums the colour channels (the paper says "average"); the sum is
        # what produced the published figures, and it is exactly the ViT on a 3-channel copy.
        adapt_vision_transformer(model, vision, channel_reduction="sum")
    elif init == "audioset":
        if recipe.startswith("audioset"):
            raise ConfigError("init='audioset' starts from a model already trained on AudioSet; "
                              "use 'imagenet' (or 'none') for an AudioSet recipe.")
        hub_id = source or next(w.extra["hf_id"] for w in AST_PRETRAINED if w.tag == "audioset")
        audioset = ASTEncoder(ASTEncoderConfig())  # the AudioSet model: 1024 frames, 527 classes
        transfer_ast(load_ast_pretrained(audioset, hub_id), model)
    return model


def recipe_config(recipe: str, init: str = "imagenet", *, epochs: int = 0, lr: float = 0.0,
                  **overrides: Any) -> TrainConfig:
    """:func:`~zskit.train.recipes.ast_train_config` for ``recipe``; ``epochs`` / ``lr`` of 0 keep
    the recipe's (ESC-50 from AudioSet weights, AST-P: 1e-5 as in the paper)."""
    if epochs:
        overrides["max_epochs"] = epochs
    if lr:
        overrides["lr"] = lr
    elif recipe == "esc50" and init == "audioset":
        overrides["lr"] = 1e-5
    return ast_train_config(recipe, **overrides)


# --------------------------------------------------------------------------- data


class FbankDataset(Dataset):
    """``(features, target)`` of each file at ``sample_rate`` through ``frontend``; computed per
    item, so the data loader's workers do it.

    ``seconds``: the middle ``seconds`` of each file (zero-padded around when shorter); ``None``
    (AST's AudioSet input) the whole file from its start, which a ``KaldiFbank`` with a
    ``target_length`` cuts or pads at the end in the log domain, so a short clip gets no frames of
    digital silence (files shorter than one frame are zero-padded to it).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], targets: torch.Tensor,
                 frontend: nn.Module, sample_rate: int, seconds: float | None) -> None:
        if len(paths) != len(targets):
            raise DataError(f"{len(paths)} files but {len(targets)} target rows; pass one per file.")
        self.paths, self.targets, self.frontend = list(paths), targets, frontend.eval()
        self.sample_rate = sample_rate
        self.length = None if seconds is None else round(seconds * sample_rate)

    def __len__(self) -> int:
        return len(self.paths)

    @torch.no_grad()
    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        wave = load_audio(self.paths[i], self.sample_rate)
        if self.length is not None:
            wave = center_pad(wave, self.length)
        else:
            shortest = getattr(getattr(self.frontend, "cfg", None), "frame_length", 1)
            wave = F.pad(wave, (0, max(0, shortest - wave.shape[-1])))
        return self.frontend(wave)[0], self.targets[i]


def _classifier(encoder: ASTEncoder, recipe: str) -> SpectrogramClassifier:
    """The AST behind the recipe's SpecAugment (AST's input is (B, frames, bins)).

    AST masks the log-mel filterbank before normalising it, so a masked cell holds 0 in the raw
    filterbank: after ``(x - mean) / (2 std)`` that is ``-mean / (2 std)`` (0.47 with AudioSet's
    statistics), the value masked cells get here, since the encoder's features are normalised.
    """
    aug = AST_AUGMENT[recipe]
    fe = encoder.cfg.frontend
    masked = 0.0 if fe.norm_mean is None else -fe.norm_mean / (2 * fe.norm_std)
    return SpectrogramClassifier(encoder, "forward_fbank", [SpecAugment(
        int(aug["freq_mask"]), int(aug["time_mask"]), mask_value=masked, freq_dim=-1,
        time_dim=-2)])


def _clip_seconds(corpus: Corpus, encoder: ASTEncoder) -> float:
    """The corpus' clip length (its metadata), else what the encoder's frames cover."""
    return float(corpus.metadata.get("clip_seconds") or encoder.cfg.max_length * encoder.cfg.frontend.frame_shift_ms / 1000)


# --------------------------------------------------------------------------- runs


def esc50_cross_validation(corpus_dir: str | os.PathLike, build_encoder: EncoderBuilder, *,
                           config: TrainConfig | None = None, folds: Sequence[int] = ESC50_FOLDS,
                           cache_dir: str | os.PathLike | None = None,
                           progress: bool = True) -> RecipeRun:
    """ESC-50's 5-fold cross-validation with the ``esc50`` recipe (see the module docstring).

    ``corpus_dir``: a folder prepared by :func:`zskit.data.esc50.prepare_esc50` (its manifest
    keeps the official ``fold`` of each clip). ``build_encoder(num_classes)`` returns a fresh AST
    for each fold (e.g. ``functools.partial(recipe_encoder, "esc50", init="imagenet")``).
    ``config``: default ``ast_train_config("esc50")``. ``folds``: the test folds to run.
    """
    corpus = load_corpus(corpus_dir)
    if "fold" not in corpus.manifest.columns:
        raise DataError(f"{corpus.root} has no 'fold' column; prepare it with "
                        "zskit.data.esc50.prepare_esc50.")
    clip_folds = corpus.manifest["fold"].to_numpy()
    folds = list(dict.fromkeys(int(f) for f in folds))  # any sequence (a numpy array too), once each
    unknown = sorted(set(folds) - set(clip_folds.tolist()))
    if unknown or not folds:
        raise ConfigError(f"folds={list(folds)}: the corpus has folds "
                          f"{sorted(set(clip_folds.tolist()))}.")
    config = config or ast_train_config("esc50")
    targets = corpus.labels.argmax(1)
    onehot = torch.as_tensor(corpus.labels, dtype=torch.float32)
    loss = mixup_loss(F.cross_entropy, prob=AST_AUGMENT["esc50"]["mixup_prob"])
    features, rows = None, []
    for fold in folds:
        torch.manual_seed(config.seed)
        encoder = build_encoder(len(corpus.classes))
        if features is None:  # one filter bank per clip, shared by the folds
            features = clip_features(corpus.paths, encoder.frontend, encoder.cfg.sample_rate,
                                     _clip_seconds(corpus, encoder), progress=progress,
                                     cache_dir=cache_dir)
        test = clip_folds == fold
        if test.all():
            raise DataError(f"every clip of {corpus.root} is in fold {fold}: nothing to train on.")
        tic = time.perf_counter()
        result = fit(_classifier(encoder, "esc50"), (features[~test], onehot[~test]),
                     config=config, loss_fn=loss)
        seconds = time.perf_counter() - tic
        scores = predict(result.model, features[test], batch_size=config.batch_size)
        rows.append({"fold": int(fold), "train_clips": int((~test).sum()),
                     "test_clips": int(test.sum()),
                     "accuracy": top1_accuracy(targets[test], scores.float().numpy()),
                     "train_seconds": seconds})
    table = pd.DataFrame(rows)
    return RecipeRun("esc50", "accuracy", float(table["accuracy"].mean()),
                     1 / len(corpus.classes), table, len(corpus), config.max_epochs)


def audioset_balanced(corpus_dir: str | os.PathLike, build_encoder: EncoderBuilder, *,
                      config: TrainConfig | None = None, train_split: str = "train",
                      eval_split: str = "test", balanced: bool = False,
                      num_samples: int | None = None) -> RecipeRun:
    """Balanced AudioSet with the ``audioset_balanced`` recipe (see the module docstring).

    ``corpus_dir``: a folder written by :func:`zskit.data.audioset.prepare_audioset` (default
    splits: ``balanced_train`` -> ``train``, ``eval`` -> ``test``). ``balanced``: draw clips with
    :class:`~zskit.train.recipes.BalancedSampler` (``num_samples`` per epoch, default the number of
    training clips) instead of shuffling them; off by default, as in the paper ("balanced
    sampling (for full set experiments only)", Section 3.1.1): the balanced set is balanced by
    construction. Scored with the weights ``config.select`` keeps (the recipe: the average of the
    last epochs).
    """
    corpus = load_corpus(corpus_dir)
    train, test = corpus.split(train_split), corpus.split(eval_split)
    if num_samples is not None and not balanced:
        raise ConfigError("num_samples sets the clips BalancedSampler draws per epoch; pass "
                          "balanced=True with it (shuffling uses every clip once).")
    config = config or ast_train_config("audioset_balanced")
    torch.manual_seed(config.seed)
    encoder = build_encoder(len(corpus.classes))

    def dataset(part: Corpus) -> FbankDataset:  # its own front end: fit moves the encoder's
        return FbankDataset(part.paths, torch.as_tensor(part.labels, dtype=torch.float32),
                            KaldiFbank(encoder.cfg.frontend), encoder.cfg.sample_rate, None)

    train_data = balanced_loader(dataset(train), train.labels, config.batch_size,
                                 seed=config.seed, num_samples=num_samples,
                                 num_workers=config.num_workers) if balanced else dataset(train)
    tic = time.perf_counter()
    result = fit(_classifier(encoder, "audioset_balanced"), train_data, config=config,
                 loss_fn=mixup_loss(masked_bce, prob=AST_AUGMENT["audioset_balanced"]["mixup_prob"]))
    train_seconds = time.perf_counter() - tic
    logits = predict(result.model, DataLoader(dataset(test), batch_size=config.batch_size,
                                              num_workers=config.num_workers))
    value = mean_average_precision(test.labels, logits.float().sigmoid().numpy())
    table = pd.DataFrame([{"fold": "eval", "train_clips": len(train), "test_clips": len(test),
                           "mAP": value, "train_seconds": train_seconds}])
    return RecipeRun("audioset_balanced", "mAP", value, random_map(test.labels), table,
                     len(corpus), config.max_epochs)


def run_ast_recipe(recipe: str, corpus_dir: str | os.PathLike, *, init: str = "imagenet",
                   source: str | None = None, epochs: int = 0, lr: float = 0.0,
                   encoder_overrides: dict[str, Any] | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True,
                   **config_overrides: Any) -> RecipeRun:
    """Run ``recipe`` (``"esc50"`` or ``"audioset_balanced"``) on a prepared corpus folder: the
    notebook's entry point. ``init``/``source``/``encoder_overrides`` go to
    :func:`recipe_encoder`, ``epochs``/``lr``/``config_overrides`` to :func:`recipe_config`."""
    if recipe not in RECIPE_FRONTENDS:
        raise ConfigError(f"recipe {recipe!r}: use one of {sorted(RECIPE_FRONTENDS)}.")
    if not str(corpus_dir) or not Path(corpus_dir).is_dir():
        raise DataError(f"{corpus_dir!r} is not a folder; pass the corpus folder prepared with "
                        f"zskit.data.{'esc50.prepare_esc50' if recipe == 'esc50' else 'audioset.prepare_audioset'}.")

    def build(num_classes: int) -> ASTEncoder:
        return recipe_encoder(recipe, num_classes, init, source=source, **(encoder_overrides or {}))

    config = recipe_config(recipe, init, epochs=epochs, lr=lr, progress=progress, **config_overrides)
    if recipe == "esc50":
        return esc50_cross_validation(corpus_dir, build, config=config, cache_dir=cache_dir,
                                      progress=progress)
    return audioset_balanced(corpus_dir, build, config=config)
