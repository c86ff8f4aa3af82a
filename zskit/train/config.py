"""``TrainConfig``: every setting of :func:`zskit.train.fit` in one frozen dataclass.

Override fields with ``dataclasses.replace(config, lr=1e-4)``. Epoch-valued schedule fields may be
fractional; they are turned into optimiser steps with the number of batches per epoch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from zskit.devices import AMP_CHOICES
from zskit.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "linear", "cosine", "step", "plateau")
WARMUPS = ("linear", "exponential")
MODES = ("min", "max")
SELECTIONS = ("best", "last", "average", "ema")


def _choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"TrainConfig.{field}={value!r} is not one of {list(choices)}; pick one of those."
        )


def _positive(
    field: str, value: float | None, *, allow_none: bool = False, strict: bool = True
) -> None:
    if value is None and allow_none:
        return
    if value is None or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ConfigError(f"TrainConfig.{field}={value!r} must be {bound}; set a value in range.")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one run (defaults: AdamW, constant lr, keep the best validation epoch)."""

    # optimiser
    lr: float = 1e-3  # peak learning rate (after warm-up)
    optimizer: str = "adamw"  # adam | adamw | sgd (torch's fused step where it has one)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw
    momentum: float = 0.9  # sgd
    grad_clip: float | None = None  # max global L2 norm of the gradients; None = no clipping
    batch_size: int = 64  # per process: the global batch is batch_size x number of processes
    max_epochs: int = 10
    max_steps: int | None = None  # stop after this many optimiser steps (schedules end there too)

    # learning-rate schedule (multiplies lr; applied per optimiser step)
    schedule: str = "constant"  # constant | linear | cosine | step | plateau
    warmup: str = "linear"  # linear | exponential ramp from ~0 to lr
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None  # overrides warmup_epochs
    min_lr: float = 0.0  # linear / cosine: final lr; plateau: lowest lr
    decay_start: float | None = None  # linear: epoch where the decay starts (None: end of warm-up)
    decay_end: float | None = None  # linear: epoch where lr reaches min_lr (None: end of training)
    step_after: int = 2  # step: number of epochs at full lr before the first decay
    step_every: int = 1  # step: epochs between two decays
    gamma: float = 0.5  # step: factor applied at each decay
    plateau_factor: float = 0.1  # plateau: factor applied when the monitor stalls
    plateau_patience: int = 2  # plateau: epochs without improvement before a decay

    # precision, device, randomness
    amp: str = "auto"  # auto (CUDA: bf16 if supported else fp16) | off | bf16 | fp16 (CUDA only)
    device: str = "auto"  # auto (CUDA, then MPS, then CPU) or a torch device such as "cuda:1"
    seed: int = 0  # seeds shuffling and torch / numpy / random (+ rank under torchrun)

    # weights: averaging, monitoring, selection, early stopping
    ema_decay: float | None = None  # keep an exponential moving average of the weights
    average_last_k: int = 0  # average the weights of the last k epoch ends (AST); 0 = off
    monitor: str = "val_loss"  # history column used for selection, early stopping and plateau
    mode: str = "min"  # min | max: which direction of `monitor` is better
    early_stopping_patience: int | None = None  # stop after this many epochs without improvement
    select: str = (
        "best"  # weights left in the model: best (falls back to last) | last | average | ema
    )

    # data and bookkeeping
    num_workers: int = 0  # DataLoader workers when train_data is a Dataset
    drop_last: bool = False  # drop the last incomplete batch of each epoch
    checkpoint_every: int | None = None  # steps between checkpoints (also one at every epoch end)
    progress: bool = True  # tqdm progress bar (rank 0 only)
    # Steps between reads of the loss on the host (the divergence check, the progress bar, the
    # epoch's train_loss). Each read waits for the GPU, so on a GPU the losses are kept there and
    # read in groups; a NaN is still reported at its own step, and never reaches a checkpoint.
    # None: 1 on a CPU (a read costs nothing there), 16 on a GPU; 1 whenever a callback defines
    # on_step_end (it is handed each step's loss).
    loss_read_every: int | None = None

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("warmup", self.warmup, WARMUPS)
        _choice("amp", self.amp, AMP_CHOICES)
        _choice("mode", self.mode, MODES)
        _choice("select", self.select, SELECTIONS)
        _positive("lr", self.lr)
        _positive("batch_size", self.batch_size)
        _positive("max_epochs", self.max_epochs)
        _positive("max_steps", self.max_steps, allow_none=True)
        _positive("grad_clip", self.grad_clip, allow_none=True)
        _positive("checkpoint_every", self.checkpoint_every, allow_none=True)
        _positive("loss_read_every", self.loss_read_every, allow_none=True)
        _positive("step_every", self.step_every)
        _positive("weight_decay", self.weight_decay, strict=False)
        _positive("warmup_epochs", self.warmup_epochs, strict=False)
        _positive("warmup_steps", self.warmup_steps, allow_none=True, strict=False)
        _positive("min_lr", self.min_lr, strict=False)
        _positive("decay_start", self.decay_start, allow_none=True, strict=False)
        _positive("decay_end", self.decay_end, allow_none=True)
        _positive("num_workers", self.num_workers, strict=False)
        _positive("average_last_k", self.average_last_k, strict=False)
        _positive("early_stopping_patience", self.early_stopping_patience, allow_none=True)
        for name in ("batch_size", "max_epochs", "max_steps", "checkpoint_every", "step_every",
                     "loss_read_every",
                     "warmup_steps", "num_workers", "average_last_k", "early_stopping_patience",
                     "step_after", "plateau_patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Integral)):
                raise ConfigError(f"TrainConfig.{name}={value!r} must be a whole number (int).")
        _positive("step_after", self.step_after, strict=False)
        _positive("plateau_patience", self.plateau_patience, strict=False)
        _positive("momentum", self.momentum, strict=False)
        _positive("gamma", self.gamma)
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"TrainConfig.plateau_factor={self.plateau_factor} must lie in "
                              "(0, 1), e.g. 0.1 (the lr is multiplied by it on a plateau).")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"TrainConfig.betas={self.betas} must be two values in [0, 1), "
                              "e.g. (0.9, 0.999).")
        if self.min_lr > self.lr:
            raise ConfigError(
                f"TrainConfig.min_lr={self.min_lr} exceeds lr={self.lr}; lower min_lr."
            )
        if None not in (self.decay_start, self.decay_end) and self.decay_end <= self.decay_start:
            raise ConfigError(f"TrainConfig.decay_end={self.decay_end} must come after decay_start="
                              f"{self.decay_start} (epochs); move one of them.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(
                f"TrainConfig.ema_decay={self.ema_decay} must lie in (0, 1), e.g. 0.999."
            )
        if self.select == "average" and self.average_last_k < 2:
            raise ConfigError("TrainConfig.select='average' needs average_last_k >= 2; set it.")
        if self.select == "ema" and self.ema_decay is None:
            raise ConfigError("TrainConfig.select='ema' needs ema_decay (e.g. 0.999); set it.")
