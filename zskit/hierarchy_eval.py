"""Paper 3's protocol: train each hierarchical head, search lambda, evaluate both levels.

>>> data = HierarchicalData.from_arrays(X, corpus.labels, corpus.mask, hierarchy)
>>> train_idx, val_idx, test_idx = split_indices(corpus, val_fraction=0.15, seed=0)
>>> table = run_methods(data.subset(train_idx), data.subset(val_idx), data.subset(test_idx),
...                     hierarchy, seeds=range(8))
>>> table.summary()  # mean and std over seeds of fine / coarse ROC-AUC, PR-AUC and F1

- Every loss and metric counts only the known (masked-in) labels.
- lambda of Eq. 2 is searched over ``config.lambdas`` (paper: 0.70 ... 0.90) on the first seed by
  the lowest validation *fine* loss; the other seeds reuse the chosen value. The flat baseline has
  no coarse loss and no lambda. Within a run, the epoch with the lowest validation fine loss is
  kept (early stopping on the same criterion).
- F1 uses one threshold per tag, tuned on the validation split (:func:`zskit.metrics.tune_thresholds`).
- Frozen path: ``X`` are cached clip embeddings, standardised with the training statistics
  (:func:`standardize`); :func:`run_methods` trains every head with ``zskit.train.fit``. Fine-tuned
  path: :class:`HierarchicalTagger` (an audio encoder + head) over :class:`ClipDataset` waveforms,
  through the same :func:`train_head` (:func:`finetune_method`).
- Reading results: :meth:`MethodTable.compare_with_paper` (Table 1), :func:`box_figure` (Fig. 3),
  :func:`attention_figure` and :func:`blocked_errors` (Fig. 4), :func:`pooling_comparison` and
  :func:`reference_logistic` (reference points).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from zskit._arrays import to_numpy
from zskit.audio.augment import SpecAugment
from zskit.audio.io import load_audio
from zskit.audio.segments import random_crop
from zskit.data.manifest import Corpus
from zskit.data.splits import stratified_split
from zskit.errors import ConfigError, DataError
from zskit.heads.hierarchy import (
    HierarchicalHead,
    HierarchicalOutput,
    create_hierarchical_head,
    grouped_max,
    grouped_mean,
    hierarchy_loss,
    list_hierarchical_heads,
)
from zskit.hierarchy import Hierarchy
from zskit.metrics import macro_f1, macro_roc_auc, mean_average_precision, tune_thresholds
from zskit.train import FitResult, TrainConfig, fit

__all__ = [
    "LAMBDAS",
    "METHODS",
    "METRICS",
    "PAPER_TABLE_1",
    "ClipDataset",
    "HierarchicalData",
    "HierarchicalTagger",
    "HierarchyTrainConfig",
    "MethodTable",
    "attention_figure",
    "blocked_errors",
    "box_figure",
    "clip_datasets",
    "finetune_method",
    "level_metrics",
    "level_thresholds",
    "pool_coarse",
    "pooled_thresholds",
    "pooling_comparison",
    "predict_outputs",
    "reference_logistic",
    "run_methods",
    "score_outputs",
    "split_indices",
    "standardize",
    "train_head",
]

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = tuple(list_hierarchical_heads())
LAMBDAS: tuple[float, ...] = (0.70, 0.75, 0.80, 0.85, 0.90)
METRICS: tuple[str, ...] = tuple(
    f"{level}_{m}" for level in ("fine", "coarse") for m in ("roc_auc", "pr_auc", "f1")
)

#: Paper 3, Table 1 (%, mean over 8 seeds; OpenMIC-2018, tone-based hierarchy, CNN14 fine-tuned),
#: in the order of :data:`METRICS`: fine ROC-AUC, PR-AUC, F1, coarse ROC-AUC, PR-AUC, F1.
PAPER_TABLE_1: dict[str, tuple[float, ...]] = {
    "baseline": (91.7, 85.6, 83.3, 92.4, 89.6, 84.4),
    "level_wise": (91.9, 85.8, 83.7, 93.0, 90.4, 85.2),
    "top_down": (91.9, 85.4, 83.6, 93.0, 90.4, 85.3),
    "gap": (91.7, 85.6, 83.2, 91.7, 87.6, 84.6),
    "lp": (91.8, 85.8, 83.6, 75.3, 70.9, 67.6),
    "gmp": (91.9, 85.9, 83.6, 93.1, 90.7, 85.4),
    "resatt": (92.0, 86.0, 83.7, 93.1, 90.7, 85.5),
}


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class HierarchicalData:
    """Inputs with fine and coarse targets and masks, as float/bool tensors of equal length."""

    x: torch.Tensor  # (N, D) embeddings (or any model input)
    fine: torch.Tensor  # (N, F) 0/1 float
    fine_mask: torch.Tensor  # (N, F) bool: known fine labels
    coarse: torch.Tensor  # (N, C) 0/1 float
    coarse_mask: torch.Tensor  # (N, C) bool: known coarse labels

    def __post_init__(self) -> None:
        n = {len(t) for t in self.tensors()}
        if len(n) != 1:
            raise DataError(
                f"HierarchicalData tensors have different lengths {[len(t) for t in self.tensors()]};"
                " build it with HierarchicalData.from_arrays."
            )

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray | torch.Tensor,
        labels: np.ndarray,
        mask: np.ndarray | None,
        hierarchy: Hierarchy,
        rule: str = "any",
    ) -> HierarchicalData:
        """Fine labels and mask as given; coarse ones by :meth:`Hierarchy.coarse_labels`."""
        labels = np.asarray(labels)
        mask = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
        coarse, coarse_mask = hierarchy.coarse_labels(labels, mask, rule)
        if len(x) != len(labels):
            raise DataError(f"{len(x)} inputs but {len(labels)} label rows; pass one row per clip.")
        return cls(
            torch.tensor(np.asarray(x), dtype=torch.float32),  # a copy: memmaps are read-only
            torch.as_tensor((labels > 0).astype(np.float32)),
            torch.as_tensor(mask),
            torch.as_tensor(coarse.astype(np.float32)),
            torch.as_tensor(coarse_mask),
        )

    def __len__(self) -> int:
        return len(self.x)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """``(x, fine, fine_mask, coarse, coarse_mask)``: a batch layout ``fit`` accepts."""
        return (self.x, self.fine, self.fine_mask, self.coarse, self.coarse_mask)

    def subset(self, index: np.ndarray | Sequence[int] | Sequence[bool]) -> HierarchicalData:
        """The rows ``index``: row numbers, or a boolean mask with one entry per row."""
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise DataError(f"a boolean row mask needs {len(self)} entries (one per row), "
                                f"got shape {index.shape}.")
            index = np.flatnonzero(index)
        idx = torch.as_tensor(index, dtype=torch.long)
        return HierarchicalData(*(t[idx] for t in self.tensors()))

    def with_x(self, x: torch.Tensor) -> HierarchicalData:
        """The same targets with other inputs (e.g. standardised embeddings)."""
        return dataclasses.replace(self, x=torch.as_tensor(x, dtype=torch.float32))


def standardize(train: HierarchicalData, *others: HierarchicalData) -> list[HierarchicalData]:
    """Inputs centred with the training split's per-feature mean and divided by one global scale
    (the training features' root-mean-square deviation).

    Not per-feature scaling: YAMNet's clip embeddings are sparse, and hundreds of their features
    barely vary in training; dividing by their tiny deviations would blow up the slightest change
    at test time.
    """
    mean = train.x.mean(0)
    scale = (train.x - mean).pow(2).mean().sqrt().clamp_min(1e-12)
    return [d.with_x((d.x - mean) / scale) for d in (train, *others)]


_EMPTY_VALIDATION = ("the validation split is empty ({what}); raise val_fraction (paper 3: 0.15) "
                     "or use more clips: validation picks the best epoch, lambda and thresholds.")


def split_indices(
    corpus: Corpus, val_fraction: float = 0.15, seed: int = 0, train: str = "train",
    validation: str = "validation", test: str = "test",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test.

    A corpus with a ``validation`` split keeps it (the synth corpus made it by iterative
    stratification). Otherwise (OpenMIC: train/test only) ``val_fraction`` of the training rows
    are held out by iterative stratification on their known positive labels.
    """
    splits = corpus.manifest["split"].to_numpy()
    found = set(splits)
    for name in (train, test):
        if name not in found:
            raise DataError(f"corpus {corpus.root} has no split {name!r}; it has {sorted(found)}.")
    test_idx = np.flatnonzero(splits == test)
    if validation in found:
        return np.flatnonzero(splits == train), np.flatnonzero(splits == validation), test_idx
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} must lie in (0, 1), e.g. 0.15.")
    pool = np.flatnonzero(splits == train)
    known_pos = (corpus.labels[pool] > 0) & corpus.mask[pool]
    side = stratified_split(known_pos, (1.0 - val_fraction, val_fraction),
                            np.random.default_rng(seed))
    if not (side == 1).any():
        raise DataError(_EMPTY_VALIDATION.format(
            what=f"val_fraction={val_fraction} of {len(pool)} training clips"))
    return pool[side == 0], pool[side == 1], test_idx


class ClipDataset(Dataset):
    """Waveforms of a corpus' rows with their hierarchical targets, for the fine-tuned path.

    ``crop_seconds``: a random crop of that length (training); ``None``: the whole clip, padded
    or cut to ``clip_seconds`` so that clips batch together.
    """

    def __init__(self, paths: Sequence[str | Path], targets: HierarchicalData, sample_rate: int,
                 clip_seconds: float, crop_seconds: float | None = None, seed: int = 0) -> None:
        if len(paths) != len(targets):
            raise DataError(f"{len(paths)} paths but {len(targets)} target rows; pass one per clip.")
        self.paths, self.targets, self.sample_rate = list(paths), targets, sample_rate
        self.length = round(clip_seconds * sample_rate)
        self.crop = None if crop_seconds is None else round(crop_seconds * sample_rate)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        wav = load_audio(self.paths[i], self.sample_rate)
        if self.crop is not None:
            wav = random_crop(wav, self.crop, generator=self.generator, pad=True)
        else:
            wav = torch.nn.functional.pad(wav[: self.length], (0, max(0, self.length - len(wav))))
        return (wav, *(t[i] for t in self.targets.tensors()[1:]))


def clip_datasets(corpus: Corpus, indices: Sequence[np.ndarray],
                  targets: Sequence[HierarchicalData], sample_rate: int,
                  crop_seconds: float | None, seed: int = 0,
                  limits: Sequence[int | None] | None = None) -> list[ClipDataset]:
    """:class:`ClipDataset` s for (train, validation, test) of ``corpus``: random crops for the
    first, whole clips for the others. ``limits`` keeps the first rows of each (CPU budgets)."""
    clip_seconds = float(corpus.metadata.get("clip_seconds", 10.0))
    paths = corpus.paths
    limits = list(limits) if limits is not None else [None] * len(indices)
    out = []
    for k, (idx, part, limit) in enumerate(zip(indices, targets, limits)):
        idx = np.asarray(idx)[:limit]
        out.append(ClipDataset([paths[i] for i in idx], part.subset(range(len(idx))), sample_rate,
                               clip_seconds, crop_seconds if k == 0 else None, seed))
    return out


class HierarchicalTagger(nn.Module):
    """An audio encoder and a hierarchical head trained together (the fine-tuned path).

    ``spec_augment`` masks the encoder's spectrogram in training mode: a forward hook on
    ``encoder.frontend`` (when the encoder has one) that lives only for the length of one training
    call, so the encoder is left as it was, fit for embedding afterwards.
    """

    def __init__(self, encoder: nn.Module, head: HierarchicalHead,
                 spec_augment: SpecAugment | None = None) -> None:
        super().__init__()
        if getattr(encoder, "embed_dim", head.in_dim) != head.in_dim:
            raise ConfigError(
                f"the encoder gives {encoder.embed_dim}-d embeddings but the head expects "
                f"{head.in_dim}; build the head with in_dim=encoder.embed_dim."
            )
        self.encoder, self.head, self.spec_augment = encoder, head, spec_augment

    def forward(self, waveforms: torch.Tensor) -> HierarchicalOutput:
        frontend = getattr(self.encoder, "frontend", None)
        if self.spec_augment is None or not self.training or not isinstance(frontend, nn.Module):
            return self.head(self.encoder(waveforms))
        augment = self.spec_augment
        handle = frontend.register_forward_hook(lambda module, inputs, output: augment(output))
        try:
            return self.head(self.encoder(waveforms))
        finally:
            handle.remove()


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class HierarchyTrainConfig:
    """Settings shared by every method of one comparison (paper 3, Sec. 4.2, unless noted)."""

    lr: float = 1e-3  # peak lr (paper: 1e-4 fine-tuning CNN14; a linear head on frozen features
    #                   learns faster)
    weight_decay: float = 1e-4  # Adam's L2 weight decay
    batch_size: int = 16
    max_epochs: int = 60
    warmup_epochs: float = 5.0  # linear warm-up, then constant
    early_stopping_patience: int | None = 10  # epochs without a better validation fine loss
    lambdas: tuple[float, ...] = LAMBDAS  # searched on the first seed
    consistency_weight: float = 1.0  # weight of the level-wise hierarchy terms
    device: str = "cpu"  # the small heads train fastest on the CPU; "auto" for fine-tuning
    amp: str = "auto"  # mixed precision where the device has it (TrainConfig.amp)
    encoder_lr: float | None = None  # fine-tuned path: the encoder's lr (None: lr; 0: frozen)
    num_threads: int | None = 1  # torch CPU threads while run_methods trains the small heads
    #                              (1 is fastest for them; None leaves torch's setting alone)

    def __post_init__(self) -> None:
        if self.num_threads is not None and (
                isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
                or self.num_threads < 1):
            raise ConfigError(f"num_threads={self.num_threads!r} must be an int >= 1 (1 is "
                              "fastest for the small heads) or None to leave torch's setting.")
        if not self.lambdas or any(not 0.0 <= lam <= 1.0 for lam in self.lambdas):
            raise ConfigError(f"lambdas={self.lambdas} must be values in [0, 1], e.g. {LAMBDAS}.")
        if self.consistency_weight < 0:
            raise ConfigError(f"consistency_weight={self.consistency_weight} must be >= 0.")
        if self.encoder_lr is not None and not self.encoder_lr >= 0:
            raise ConfigError(f"encoder_lr={self.encoder_lr} must be >= 0 (0 keeps the encoder "
                              "frozen) or None to use lr.")

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`zskit.train.TrainConfig` of one run."""
        return TrainConfig(
            lr=self.lr, optimizer="adam", weight_decay=self.weight_decay,
            batch_size=self.batch_size, max_epochs=self.max_epochs,
            warmup_epochs=min(self.warmup_epochs, self.max_epochs - 1), monitor="val_loss",
            mode="min", select="best", early_stopping_patience=self.early_stopping_patience,
            amp=self.amp, device=self.device, seed=seed, progress=False,
        )


def _head_of(model: nn.Module) -> HierarchicalHead:
    head = model if isinstance(model, HierarchicalHead) else getattr(model, "head", None)
    if not isinstance(head, HierarchicalHead):
        raise ConfigError(
            f"{type(model).__name__} is neither a hierarchical head nor has one as .head; build it "
            "with create_hierarchical_head or HierarchicalTagger."
        )
    return head


def _loader(data: HierarchicalData | Dataset, batch_size: int) -> Iterable:
    if isinstance(data, HierarchicalData):
        n = len(data)
        return (tuple(t[a:a + batch_size] for t in data.tensors()) for a in range(0, n, batch_size))
    return DataLoader(data, batch_size=batch_size, shuffle=False)


@torch.no_grad()
def predict_outputs(model: nn.Module, data: HierarchicalData | Dataset, batch_size: int = 512
                    ) -> HierarchicalOutput:
    """The model's outputs over ``data`` in order (eval mode, on the CPU, no logits kept)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    fine, coarse, attention = [], [], []
    for batch in _loader(data, batch_size):
        out = model(batch[0].to(device))
        fine.append(out.fine.cpu())
        coarse.append(out.coarse.cpu())
        if out.attention is not None:
            attention.append(out.attention.cpu())
    model.train(was_training)
    return HierarchicalOutput(torch.cat(fine), torch.cat(coarse),
                              attention=torch.cat(attention) if attention else None)


def train_head(
    model: nn.Module,
    train: HierarchicalData | Dataset,
    val: HierarchicalData | Dataset | None,
    lam: float,
    config: HierarchyTrainConfig,
    seed: int = 0,
    param_groups: Iterable[Any] | None = None,
) -> FitResult:
    """Train ``model`` (a head, or a :class:`HierarchicalTagger`) with Eq. 2's loss via ``fit``.

    In training mode the loss is Eq. 2 (plus the level-wise terms); in eval mode it is the masked
    fine BCE alone, so ``fit``'s ``val_loss`` column is the validation *fine* loss, the criterion
    that keeps the best epoch (and that the lambda search compares) in one pass over ``val``.
    ``HierarchicalData`` is validated in one batch, so that is exactly the masked BCE over all of
    ``val``; a Dataset is validated in training-size batches (the mean of their masked means).
    ``val=None`` trains without validation and keeps the last epoch (set
    ``early_stopping_patience=None``).
    """
    head = _head_of(model)
    weight = config.consistency_weight
    if val is not None and len(val) == 0:
        raise DataError(_EMPTY_VALIDATION.format(what="0 validation clips were passed"))

    def loss_fn(net: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        x, *targets = batch
        parts = hierarchy_loss(head, net(x), *targets, lam=lam, consistency_weight=weight)
        return parts["total"] if net.training else parts["fine"]

    train_data = train.tensors() if isinstance(train, HierarchicalData) else train
    val_data = (DataLoader(TensorDataset(*val.tensors()), batch_size=len(val))
                if isinstance(val, HierarchicalData) else val)  # None stays None
    return fit(model, train_data, val_data=val_data, config=config.train_config(seed),
               loss_fn=loss_fn, param_groups=param_groups)


# ----------------------------------------------------------------------------- evaluation


def pool_coarse(fine: torch.Tensor | np.ndarray, hierarchy: Hierarchy, pooling: str = "max"
                ) -> np.ndarray:
    """Coarse scores from fine probabilities by grouped ``"max"`` or ``"mean"`` pooling."""
    if pooling not in ("max", "mean"):
        raise ConfigError(f"pooling={pooling!r} must be 'max' or 'mean'.")
    p = torch.as_tensor(to_numpy(fine), dtype=torch.float32)  # a model's output: any device
    pool = grouped_max if pooling == "max" else grouped_mean
    return pool(p, hierarchy.tensor()).numpy()


def level_metrics(y_val: np.ndarray, score_val: np.ndarray, mask_val: np.ndarray,
                  y_test: np.ndarray, score_test: np.ndarray, mask_test: np.ndarray
                  ) -> dict[str, float]:
    """Masked macro ROC-AUC, PR-AUC (mAP) and F1 on test, thresholds tuned on validation."""
    thresholds = tune_thresholds(y_val, score_val, mask_val)
    return {
        "roc_auc": macro_roc_auc(y_test, score_test, mask_test),
        "pr_auc": mean_average_precision(y_test, score_test, mask_test),
        "f1": macro_f1(y_test, score_test, thresholds, mask_test),
    }


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def score_outputs(val_out: HierarchicalOutput, val: HierarchicalData,
                  test_out: HierarchicalOutput, test: HierarchicalData) -> dict[str, float]:
    """``fine_roc_auc`` ... ``coarse_f1`` (see :data:`METRICS`) of one trained model's outputs:
    its validation outputs tune the F1 thresholds, its test outputs are scored."""
    result = {}
    for level in ("fine", "coarse"):
        v_mask, t_mask = getattr(val, f"{level}_mask"), getattr(test, f"{level}_mask")
        scores = level_metrics(
            _np(getattr(val, level)).astype(int), _np(getattr(val_out, level)), _np(v_mask),
            _np(getattr(test, level)).astype(int), _np(getattr(test_out, level)), _np(t_mask),
        )
        result.update({f"{level}_{k}": v for k, v in scores.items()})
    return result


@dataclass
class MethodTable:
    """Results of :func:`run_methods`: one row per (method, seed), and the lambda search."""

    results: pd.DataFrame  # method, seed, lam, best_epoch, val_fine_loss, fine_* and coarse_*
    lambda_search: pd.DataFrame  # method, lam, val_fine_loss (first seed)
    models: dict[tuple[str, int], nn.Module] = field(default_factory=dict)
    val_outputs: dict[tuple[str, int], HierarchicalOutput] = field(default_factory=dict)
    test_outputs: dict[tuple[str, int], HierarchicalOutput] = field(default_factory=dict)

    @property
    def chosen_lambda(self) -> dict[str, float | None]:
        """Method -> the lambda used for its seeds (None for the flat baseline)."""
        first = self.results.drop_duplicates("method")
        return {m: (None if math.isnan(lam) else float(lam))
                for m, lam in zip(first["method"], first["lam"])}

    def summary(self) -> pd.DataFrame:
        """Mean and std over seeds of every metric, one row per method (in run order)."""
        order = list(dict.fromkeys(self.results["method"]))
        stats = self.results.groupby("method")[list(METRICS)].agg(["mean", "std"])
        return stats.loc[order]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{method: {"lambda", "seeds", "fine": {metric: {"mean", "std"}}, "coarse": ...}}``."""
        summary, lambdas = self.summary(), self.chosen_lambda
        out: dict[str, dict[str, Any]] = {}
        for method in summary.index:
            entry: dict[str, Any] = {"lambda": lambdas[method],
                                     "seeds": int((self.results["method"] == method).sum())}
            for level in ("fine", "coarse"):
                entry[level] = {
                    m: {"mean": float(summary.loc[method, (f"{level}_{m}", "mean")]),
                        "std": float(summary.loc[method, (f"{level}_{m}", "std")])}
                    for m in ("roc_auc", "pr_auc", "f1")
                }
            out[method] = entry
        return out

    def compare_with_paper(self) -> pd.DataFrame:
        """Our mean (%) beside paper 3's Table 1 (%) for every method and metric."""
        summary = self.summary()
        rows = []
        for method in summary.index:
            paper = PAPER_TABLE_1.get(method, (np.nan,) * len(METRICS))
            row: dict[str, Any] = {"method": method}
            for metric, published in zip(METRICS, paper):
                row[(metric, "ours")] = 100 * float(summary.loc[method, (metric, "mean")])
                row[(metric, "paper")] = published
            rows.append(row)
        table = pd.DataFrame(rows).set_index("method")
        table.columns = pd.MultiIndex.from_tuples(table.columns)
        return table


def _fit_one(method: str, hierarchy: Hierarchy, train: HierarchicalData, val: HierarchicalData,
             lam: float, config: HierarchyTrainConfig, seed: int) -> tuple[nn.Module, FitResult]:
    torch.manual_seed(seed)  # the head's initial weights
    head = create_hierarchical_head(method, train.x.shape[1], hierarchy)
    result = train_head(head, train, val, lam, config, seed)
    return head, result


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, restoring the previous number afterwards."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_methods(
    train: HierarchicalData,
    val: HierarchicalData,
    test: HierarchicalData,
    hierarchy: Hierarchy,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = tuple(range(8)),
    config: HierarchyTrainConfig | None = None,
    keep_models: bool = True,
    progress: bool = True,
) -> MethodTable:
    """Train and evaluate every method on (frozen) inputs; lambda searched on ``seeds[0]`` by
    the masked validation fine BCE (see :func:`train_head`)."""
    config = config or HierarchyTrainConfig()
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; pass at least one seed, e.g. range(8).")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {list(METHODS)}.")
    table = MethodTable(pd.DataFrame(), pd.DataFrame())
    rows, search = [], []

    def record(method: str, seed: int, lam: float | None, model: nn.Module, fit_result: FitResult
               ) -> None:
        val_out, test_out = predict_outputs(model, val), predict_outputs(model, test)
        rows.append({"method": method, "seed": seed, "lam": np.nan if lam is None else lam,
                     "best_epoch": fit_result.best_epoch, "val_fine_loss": fit_result.best_value,
                     **score_outputs(val_out, val, test_out, test)})
        table.val_outputs[(method, seed)] = val_out
        table.test_outputs[(method, seed)] = test_out
        if keep_models:
            table.models[(method, seed)] = model

    n_fits = sum((1 if m == "baseline" else len(config.lambdas)) + len(seeds) - 1 for m in methods)
    with _torch_threads(config.num_threads), tqdm(total=n_fits, desc="hierarchical heads",
                                                   unit="fit", disable=not progress) as bar:
        for method in methods:
            candidates = [1.0] if method == "baseline" else list(config.lambdas)
            best = None
            for lam in candidates:
                model, result = _fit_one(method, hierarchy, train, val, lam, config, seeds[0])
                bar.update()
                if method != "baseline":
                    search.append({"method": method, "lam": lam, "val_fine_loss": result.best_value})
                if best is None or result.best_value < best[2].best_value:
                    best = (lam, model, result)
            lam, model, result = best
            chosen = None if method == "baseline" else lam
            record(method, seeds[0], chosen, model, result)
            for seed in seeds[1:]:
                model, result = _fit_one(method, hierarchy, train, val, lam, config, seed)
                bar.update()
                record(method, seed, chosen, model, result)
            log.info("%s: lambda %s, fine PR-AUC %.4f", method, chosen,
                     np.mean([r["fine_pr_auc"] for r in rows if r["method"] == method]))
    table.results = pd.DataFrame(rows)
    table.lambda_search = pd.DataFrame(search, columns=["method", "lam", "val_fine_loss"])
    return table


# ----------------------------------------------------------------------------- fine-tuned path


def finetune_method(
    encoder: nn.Module,
    method: str,
    hierarchy: Hierarchy,
    train: ClipDataset,
    val: ClipDataset,
    test: ClipDataset,
    lam: float,
    config: HierarchyTrainConfig,
    seed: int = 0,
    spec_augment: SpecAugment | None = None,
) -> tuple[HierarchicalTagger, dict[str, float]]:
    """Train ``encoder`` + the head of ``method`` end to end; return the model and its metrics.

    The encoder learns at ``config.encoder_lr`` (default ``config.lr``; 0 keeps it frozen), the
    new head at ``config.lr``. To spare the CPU, the weights after the last epoch are kept (no validation
    pass per epoch); ``val`` only tunes the F1 thresholds. Validation and test use whole clips.
    """
    torch.manual_seed(seed)
    head = create_hierarchical_head(method, int(encoder.embed_dim), hierarchy)
    model = HierarchicalTagger(encoder, head, spec_augment)
    encoder_lr = config.lr if config.encoder_lr is None else config.encoder_lr  # 0: frozen
    groups = [{"params": list(encoder.parameters()), "lr": encoder_lr},
              {"params": list(head.parameters()), "lr": config.lr}]
    config = dataclasses.replace(config, early_stopping_patience=None)
    train_head(model, train, None, lam, config, seed, param_groups=groups)
    batch = max(1, config.batch_size)
    val_out, test_out = predict_outputs(model, val, batch), predict_outputs(model, test, batch)
    return model, score_outputs(val_out, val.targets, test_out, test.targets)


def pooling_comparison(table: MethodTable, val: HierarchicalData, test: HierarchicalData,
                       hierarchy: Hierarchy, method: str = "baseline",
                       poolings: Sequence[str] = ("max", "mean")) -> pd.DataFrame:
    """Coarse metrics of ``method``'s fine probabilities pooled at inference (max or mean),
    averaged over its seeds: one row per pooling, columns ``coarse_roc_auc`` ... ``coarse_f1``."""
    seeds = sorted(s for m, s in table.test_outputs if m == method)
    if not seeds:
        raise ConfigError(f"the table has no run of {method!r}; run it with run_methods first.")
    rows = {}
    for pooling in poolings:
        per_seed = [
            level_metrics(
                _np(val.coarse).astype(int), pool_coarse(table.val_outputs[(method, s)].fine,
                                                         hierarchy, pooling),
                _np(val.coarse_mask), _np(test.coarse).astype(int),
                pool_coarse(table.test_outputs[(method, s)].fine, hierarchy, pooling),
                _np(test.coarse_mask))
            for s in seeds
        ]
        rows[pooling] = pd.DataFrame(per_seed).mean().add_prefix("coarse_")
    return pd.DataFrame(rows).T.rename_axis(f"{method}: pooling")


def reference_logistic(train: HierarchicalData, val: HierarchicalData, test: HierarchicalData,
                       hierarchy: Hierarchy, c: float = 1.0
                       ) -> tuple[HierarchicalOutput, HierarchicalOutput]:
    """A converged flat reference: one scikit-learn logistic regression per fine tag, fitted on
    that tag's known training labels (L2, ``C=c``); coarse scores by grouped max pooling.

    Returns (validation, test) outputs for :func:`score_outputs`. It shows how far the SGD-trained
    flat head of ``run_methods`` is from the optimum of the same model.
    """
    from sklearn.linear_model import LogisticRegression

    outs = []
    scores = {"val": np.zeros(tuple(val.fine.shape)), "test": np.zeros(tuple(test.fine.shape))}
    x, y, known = _np(train.x), _np(train.fine), _np(train.fine_mask)
    for j in range(hierarchy.n_fine):
        rows = known[:, j]
        labels = y[rows, j]
        if len(set(labels.tolist())) < 2:  # no label or one class only: a constant score
            for values in scores.values():
                values[:, j] = labels[0] if len(labels) else 0.5
            continue
        model = LogisticRegression(C=c, max_iter=2000).fit(x[rows], labels)
        scores["val"][:, j] = model.predict_proba(_np(val.x))[:, 1]
        scores["test"][:, j] = model.predict_proba(_np(test.x))[:, 1]
    for key in ("val", "test"):
        fine = torch.tensor(scores[key], dtype=torch.float32)
        outs.append(HierarchicalOutput(fine, grouped_max(fine, hierarchy.tensor())))
    return outs[0], outs[1]


# ----------------------------------------------------------------------------- reading results


def level_thresholds(out: HierarchicalOutput, data: HierarchicalData
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-tag F1 thresholds (fine, coarse) tuned on validation outputs ``out`` of ``data``."""
    return (
        tune_thresholds(_np(data.fine).astype(int), _np(out.fine), _np(data.fine_mask)),
        tune_thresholds(_np(data.coarse).astype(int), _np(out.coarse), _np(data.coarse_mask)),
    )


def pooled_thresholds(out: HierarchicalOutput, data: HierarchicalData, hierarchy: Hierarchy,
                      pooling: str = "max") -> np.ndarray:
    """Per-coarse-tag F1 thresholds for the fine probabilities of ``out`` pooled by ``pooling``
    (:func:`pool_coarse`), tuned on validation outputs ``out`` of ``data``."""
    return tune_thresholds(_np(data.coarse).astype(int),
                           pool_coarse(out.fine, hierarchy, pooling), _np(data.coarse_mask))


def blocked_errors(out: HierarchicalOutput, data: HierarchicalData, hierarchy: Hierarchy,
                   fine_thresholds: np.ndarray, coarse_thresholds: np.ndarray,
                   gmp_thresholds: np.ndarray) -> pd.DataFrame:
    """Fine false positives that did *not* reach the coarse level (paper 3, Fig. 4, lower map).

    A row per (clip, fine tag) where the fine tag is a known negative predicted positive
    (``p_fine >= its threshold``), its coarse parent is a known negative, and the coarse
    prediction stays below its threshold. ``gmp_coarse`` is what grouped max pooling of the same
    fine probabilities gives the parent, and ``gmp_passes`` whether that crosses the parent's
    ``gmp_thresholds`` entry: thresholds tuned for the GMP-pooled scores themselves
    (:func:`pooled_thresholds` on validation), not the coarse head's, whose scores live on
    another scale. Sorted by ``p_fine``, highest first.
    """
    fine, coarse = _np(out.fine), _np(out.coarse)
    gmp = pool_coarse(fine, hierarchy, "max")
    fine_fp = (fine >= fine_thresholds) & _np(data.fine_mask) & (_np(data.fine) == 0)
    rows = []
    for clip, tag in zip(*np.nonzero(fine_fp)):
        parent = hierarchy.parent[tag]
        known_negative = bool(data.coarse_mask[clip, parent]) and data.coarse[clip, parent] == 0
        if not known_negative or coarse[clip, parent] >= coarse_thresholds[parent]:
            continue
        rows.append({
            "clip": int(clip), "fine": hierarchy.fine[tag], "p_fine": float(fine[clip, tag]),
            "fine_threshold": float(fine_thresholds[tag]), "coarse": hierarchy.coarse[parent],
            "p_coarse": float(coarse[clip, parent]),
            "coarse_threshold": float(coarse_thresholds[parent]),
            "attention": (float(out.attention[clip, tag, parent])
                          if out.attention is not None else np.nan),
            "gmp_coarse": float(gmp[clip, parent]),
            "gmp_threshold": float(gmp_thresholds[parent]),
            "gmp_passes": bool(gmp[clip, parent] >= gmp_thresholds[parent]),
        })
    columns = ["clip", "fine", "p_fine", "fine_threshold", "coarse", "p_coarse",
               "coarse_threshold", "attention", "gmp_coarse", "gmp_threshold", "gmp_passes"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("p_fine", ascending=False, ignore_index=True)


def attention_figure(attention: torch.Tensor | np.ndarray, fine: torch.Tensor | np.ndarray,
                     coarse: torch.Tensor | np.ndarray, hierarchy: Hierarchy,
                     fine_names: Sequence[str] | None = None,
                     coarse_names: Sequence[str] | None = None, title: str = "ResAtt attention"
                     ) -> Any:
    """Plotly heatmap of one clip's attention map ``(F, C)`` (in %), tags labelled with their
    predicted probabilities (%), the fine tags grouped by parent (paper 3, Fig. 4); drawn by
    :func:`zskit.viz.attention_map_figure`."""
    from zskit import viz

    shape = tuple(np.shape(attention))
    if shape != (hierarchy.n_fine, hierarchy.n_coarse):
        raise ConfigError(
            f"attention has shape {shape}; one clip's map is ({hierarchy.n_fine}, "
            f"{hierarchy.n_coarse}). Index the batch first, e.g. out.attention[i]."
        )
    fig = viz.attention_map_figure(
        attention, list(fine_names or hierarchy.fine), list(coarse_names or hierarchy.coarse),
        parents=hierarchy.parent, fine_probs=fine, coarse_probs=coarse, title=title)
    fig.update_layout(xaxis_title="coarse tag (P_coarse)", yaxis_title="fine tag (P_fine)",
                      height=max(300, 16 * hierarchy.n_fine + 160))
    return fig


def box_figure(results: pd.DataFrame, metrics: Sequence[str] = ("fine_roc_auc", "fine_pr_auc",
                                                                  "fine_f1"),
               title: str = "fine-level metrics over seeds") -> Any:
    """Plotly box plots of ``metrics`` per method over seeds (paper 3, Fig. 3)."""
    import plotly.express as px

    missing = [m for m in [*metrics, "method", "seed"] if m not in results.columns]
    if missing:
        raise ConfigError(f"results lack columns {missing}; pass MethodTable.results.")
    long = results.melt(id_vars=["method", "seed"], value_vars=list(metrics),
                        var_name="metric", value_name="value")
    fig = px.box(long, x="method", y="value", color="method", facet_col="metric", points="all",
                 title=title)
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.update_layout(showlegend=False, height=420)
    return fig
