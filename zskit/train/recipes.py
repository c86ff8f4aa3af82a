"""Training recipes of AST and PaSST (papers 1 and 2) as pieces that plug into :func:`fit`.

- **Balanced sampling** for multi-label data (PANNs, PSLA/AST): clips are drawn with replacement
  with a weight that sums, over the clip's labels, the inverse frequency of each label, so rare
  classes are seen about as often as frequent ones. :class:`BalancedSampler` re-seeds itself per
  epoch (fit calls its ``set_epoch``), so runs and resumed runs draw the same clips;
  :func:`balanced_loader` wraps it in the DataLoader that ``fit`` takes as ``train_data``.
- **Mixup as a loss**: :func:`mixup_loss` mixes inputs, targets (and OpenMIC-style masks) of each
  training batch, then applies the criterion; validation batches are left alone. On spectrograms
  this mixes features, not sounds as AST does (:data:`AST_AUGMENT` says how they differ).
- **Augmentation modules** (``SpecAugment``, ``RandomShift``, ``RandomGain`` in
  ``zskit.audio.augment``) are active only in training mode: put them in front of the model in an
  ``nn.Sequential``.
- **Weight averaging**: ``TrainConfig(average_last_k=k, select="average")`` averages the weights
  of the last ``k`` epoch ends inside fit; :func:`average_checkpoints` does the same for files.
- **Ensembles** of checkpoints or seeds: :class:`Ensemble` averages the members' probabilities.
- **AST's schedules**: :func:`ast_train_config` gives paper 2's settings per data set with AST's
  Adam and AudioSet warm-up; their per-epoch learning-rate cuts are fit's ``schedule="step"``
  (piecewise constant per epoch).
  :data:`AST_AUGMENT` holds each recipe's SpecAugment sizes and mixup share;
  ``zskit.ast_recipes`` runs the recipes on ESC-50 and balanced AudioSet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from zskit.audio.augment import mix, mixup_pairs
from zskit.errors import ConfigError, DataError
from zskit.losses import masked_bce
from zskit.train.batches import data_tensor
from zskit.train.checkpoint import average_state_dicts, load_checkpoint
from zskit.train.config import TrainConfig

__all__ = [
    "AST_ADAM",
    "AST_AUGMENT",
    "AST_RECIPES",
    "BalancedSampler",
    "Ensemble",
    "SpectrogramClassifier",
    "ast_train_config",
    "average_checkpoints",
    "balanced_loader",
    "balanced_weights",
    "mixup_loss",
]


# --------------------------------------------------------------------------- balanced sampling


def balanced_weights(labels: Any) -> np.ndarray:
    """Per-clip sampling weights ``sum_c y[i, c] / n_c`` (``n_c``: clips with label ``c``).

    Clips without any positive label get weight 0 (they are never drawn), as in PSLA/AST.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise DataError(f"balanced sampling needs multi-hot labels (clips, classes), got {y.shape}.")
    counts = y.sum(0)
    inverse = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    weights = y @ inverse
    if not weights.sum() > 0:
        raise DataError("no clip has a positive label; balanced sampling has nothing to draw. "
                        "Check the labels (multi-hot, 1 = present) or use an unbalanced loader.")
    return weights


class BalancedSampler(Sampler[int]):
    """Indices drawn with replacement with :func:`balanced_weights`; ``num_samples`` per epoch
    (default: the number of clips). Epoch ``e`` uses a generator seeded with ``seed + e``."""

    def __init__(self, labels: Any, num_samples: int | None = None, seed: int = 0) -> None:
        self.weights = torch.as_tensor(balanced_weights(labels))
        self.num_samples = len(self.weights) if num_samples is None else int(num_samples)
        if self.num_samples <= 0:
            raise ConfigError(f"num_samples={num_samples!r} must be positive.")
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by fit at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(self.weights, self.num_samples, replacement=True,
                                     generator=gen).tolist()

    def __len__(self) -> int:
        return self.num_samples


def balanced_loader(data: Dataset | Sequence[torch.Tensor], labels: Any, batch_size: int, *,
                    seed: int = 0, num_samples: int | None = None, num_workers: int = 0,
                    drop_last: bool = False) -> DataLoader:
    """A DataLoader of ``data`` (a Dataset, or tensors ``(X, Y[, mask])``) drawing balanced
    batches; pass it to ``fit`` as ``train_data``. ``labels`` are the multi-hot labels of ``data``."""
    if isinstance(data, (tuple, list)):
        data = TensorDataset(*(data_tensor(t) for t in data))
    if len(labels) != len(data):
        raise DataError(f"{len(labels)} label rows for {len(data)} examples; pass the labels of "
                        "the training data.")
    sampler = BalancedSampler(labels, num_samples=num_samples, seed=seed)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last)


# --------------------------------------------------------------------------- mixup


def mixup_loss(criterion: Callable[..., torch.Tensor] = masked_bce, alpha: float = 10.0,
               prob: float = 0.5) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A ``fit`` loss for batches ``(inputs, targets[, mask])`` that mixes training batches.

    In training mode a fraction ``prob`` of the examples is mixed with a random partner
    (:func:`zskit.audio.augment.mixup_pairs`; the defaults are AST's: half the examples, ``lam ~
    Beta(10, 10)``; PANNs mixes every example with ``alpha=1``). Targets are mixed like the inputs;
    a mixed example's mask keeps only entries known for both partners (an example left unmixed
    keeps its own). In eval mode the batch is used as it is. Integer targets reach the criterion
    as float in both modes. It mixes whatever the batch holds (here: normalised filter banks);
    AST's own code mixes the waveforms of two clips before the filter bank (see
    :data:`AST_AUGMENT`).
    """

    def loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        inputs, targets, *rest = batch
        if not targets.is_floating_point():
            if targets.ndim < 2:
                raise ConfigError("mixup_loss mixes targets, so they must be multi-hot or one-hot "
                                  "rows (B, C), not class indices; one-hot encode them first.")
            targets = targets.float()
        if model.training:
            perm, lam = mixup_pairs(inputs.shape[0], alpha, prob=prob, device=inputs.device)
            inputs, targets = mix(inputs, perm, lam), mix(targets, perm, lam)
            mixed = lam < 1
            rest = [torch.where(mixed.view(-1, *([1] * (m.ndim - 1))),
                                m & m[perm] if m.dtype == torch.bool else m * m[perm], m)
                    for m in rest]
        return criterion(model(inputs), targets, *rest)

    return loss


# --------------------------------------------------------------------------- models for fit


class SpectrogramClassifier(nn.Module):
    """An encoder's logits from precomputed spectrograms, behind training-only augmentation.

    ``forward(spec)`` runs ``augment`` (modules such as ``SpecAugment`` that act only in training
    mode), then ``getattr(encoder, method)(spec)`` (e.g. AST's ``forward_fbank``, PaSST's
    ``forward_spectrogram``) and returns its ``logits``: the ``nn.Module`` ``fit`` trains.
    """

    def __init__(self, encoder: nn.Module, method: str, augment: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        if not callable(getattr(encoder, method, None)):
            raise ConfigError(f"{type(encoder).__name__} has no method {method!r}; name the one "
                              "that maps spectrograms to an EncoderOutput.")
        self.augment = nn.Sequential(*augment)
        self.encoder = encoder
        self.method = method

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        out = getattr(self.encoder, self.method)(self.augment(spec))
        if out.logits is None:
            raise ConfigError(f"{type(self.encoder).__name__} was built without a classifier; "
                              "build it with num_classes > 0.")
        return out.logits


# --------------------------------------------------------------------------- averaging, ensembles


def average_checkpoints(sources: Sequence[str | os.PathLike | dict[str, torch.Tensor] | nn.Module]
                        ) -> dict[str, torch.Tensor]:
    """The mean of several checkpoints' weights (paper 2's weight averaging, done afterwards).

    Each source is a state dict, a model (its state dict), a file holding one (fit's
    ``model.pt``), or a fit ``checkpoint.pt`` (its ``model`` entry is used).
    """
    states = []
    for source in sources:
        if isinstance(source, nn.Module):
            source = source.state_dict()
        elif not isinstance(source, (dict, str, os.PathLike)):
            raise ConfigError(f"average_checkpoints got a {type(source).__name__}; pass state "
                              "dicts, models or checkpoint files.")
        state = source if isinstance(source, dict) else load_checkpoint(source)
        if "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        states.append(state)
    if states and any(s.keys() != states[0].keys() for s in states):
        raise DataError("the checkpoints hold different parameters; average only checkpoints of "
                        "one architecture.")
    return average_state_dicts(states)


class Ensemble(nn.Module):
    """The mean prediction of several models (checkpoints or seeds), as AST's ensembles.

    ``activation``: ``"sigmoid"`` (multi-label; the output is a probability, not a logit),
    ``"softmax"`` (single-label) or ``None`` (average the raw outputs).
    """

    def __init__(self, models: Sequence[nn.Module], activation: str | None = "sigmoid") -> None:
        super().__init__()
        if not models:
            raise ConfigError("an Ensemble needs at least one model.")
        if activation not in ("sigmoid", "softmax", None):
            raise ConfigError(f"activation={activation!r}: use 'sigmoid', 'softmax' or None.")
        self.members = nn.ModuleList(models)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [m(x) for m in self.members]
        if self.activation == "sigmoid":
            outs = [o.sigmoid() for o in outs]
        elif self.activation == "softmax":
            outs = [o.softmax(-1) for o in outs]
        return torch.stack(outs).mean(0)


# --------------------------------------------------------------------------- AST's settings

#: Paper 2's training settings per data set (Sections 3.1.1 and 3.2) as TrainConfig fields,
#: checked against AST's released scripts (``egs/*/run*.sh``, ``src/traintest.py``). The per-epoch
#: cuts (torch's MultiStepLR over ``range(start, 1000, step)``, stepped at each epoch end): full
#: AudioSet halves the lr every epoch after the 2nd, balanced AudioSet every 5 epochs after the
#: 10th, ESC-50 and Speech Commands multiply it by 0.85 every epoch after the 5th. Weight averaging
#: covers every epoch (full set: epochs 1-5) or the last 20 (balanced set: 6-25). The AudioSet
#: recipes warm the lr up over the first 1,000 steps, as AST's code does (``warmup=True``; ESC-50
#: and Speech Commands do not); zskit's ramp is linear per step, AST's a staircase that raises the
#: lr every 50 steps from 0. Where the scripts and the paper differ we follow the paper: ESC-50
#: trains 20 epochs (``run_esc.sh``: 25), Speech Commands 20 (``run_sc.sh``: 30). Not held here:
#: the loss (BCE for AudioSet and Speech Commands, cross-entropy for ESC-50, as in the scripts)
#: and Speech Commands' model selection: AST keeps the epoch of best validation *accuracy*;
#: ``select="best"`` monitors ``val_loss`` unless fit gets a ``metric_fn`` and
#: ``monitor="val_metric", mode="max"``.
AST_RECIPES: dict[str, dict[str, Any]] = {
    "audioset_full": {"lr": 1e-5, "batch_size": 12, "max_epochs": 5, "schedule": "step",
                      "step_after": 2, "step_every": 1, "gamma": 0.5, "warmup_steps": 1000,
                      "average_last_k": 5, "select": "average"},
    "audioset_balanced": {"lr": 5e-5, "batch_size": 12, "max_epochs": 25, "schedule": "step",
                          "step_after": 10, "step_every": 5, "gamma": 0.5, "warmup_steps": 1000,
                          "average_last_k": 20, "select": "average"},
    "esc50": {"lr": 1e-4, "batch_size": 48, "max_epochs": 20, "schedule": "step",
              "step_after": 5, "step_every": 1, "gamma": 0.85, "select": "last"},
    "speechcommands": {"lr": 2.5e-4, "batch_size": 128, "max_epochs": 20, "schedule": "step",
                       "step_after": 5, "step_every": 1, "gamma": 0.85, "select": "best"},
}

#: AST's optimiser for every data set (``src/traintest.py``): Adam with beta1 0.95 and an L2
#: weight decay of 5e-7 (the paper only says "Adam").
AST_ADAM: dict[str, Any] = {"optimizer": "adam", "betas": (0.95, 0.999), "weight_decay": 5e-7}


#: Augmentation of each recipe, from AST's released run scripts (the paper names the methods and,
#: for AudioSet, the sizes): SpecAugment's largest frequency / time mask (bins / frames) and the
#: share of training clips mixed (mixup, ``lam ~ Beta(10, 10)``). Speech Commands also adds noise
#: and a random time roll to the filter bank (not done here). AST mixes *waveforms* before the
#: filter bank, each clip with one drawn from the whole training set; :func:`mixup_loss` mixes the
#: normalised filter banks of clips in the same batch, which is not the filter bank of the mixed
#: sound (the log of a sum is not the sum of the logs), so it is a near stand-in, not AST's mixup.
AST_AUGMENT: dict[str, dict[str, float]] = {
    "audioset_full": {"freq_mask": 48, "time_mask": 192, "mixup_prob": 0.5},
    "audioset_balanced": {"freq_mask": 48, "time_mask": 192, "mixup_prob": 0.5},
    "esc50": {"freq_mask": 24, "time_mask": 96, "mixup_prob": 0.0},
    "speechcommands": {"freq_mask": 48, "time_mask": 48, "mixup_prob": 0.6},
}


def ast_train_config(recipe: str, **overrides: Any) -> TrainConfig:
    """Paper 2's settings for ``recipe`` (a key of :data:`AST_RECIPES`) with AST's Adam
    (:data:`AST_ADAM`), as a TrainConfig; ``overrides`` replace fields (e.g. ``lr=1e-5`` for
    AudioSet-pretrained ESC-50, ``warmup_steps=0`` to drop the AudioSet warm-up).

    A shorter run (``max_epochs`` below the recipe's averaging window, and ``average_last_k`` not
    given) averages every epoch it has, or keeps the last weights when it has only one epoch; the
    full-AudioSet recipe averages every epoch of a run of any length, as the paper does.
    """
    if recipe not in AST_RECIPES:
        raise ConfigError(f"unknown AST recipe {recipe!r}; choose one of {sorted(AST_RECIPES)}.")
    settings = {**AST_ADAM, **AST_RECIPES[recipe], **overrides}
    if "average_last_k" in settings and "average_last_k" not in overrides:
        window = settings["average_last_k"]
        if recipe == "audioset_full":  # "from the first to the last epoch"
            window = settings["max_epochs"]
        settings["average_last_k"] = min(window, settings["max_epochs"])
        if settings["average_last_k"] < 2 and settings.get("select") == "average":
            settings.update(average_last_k=0, select="last")
    return TrainConfig(**settings)
