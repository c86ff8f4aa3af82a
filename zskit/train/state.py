"""What ``fit`` shares with its caller: the live ``TrainState``, ``Callback``s, ``FitResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from zskit.errors import ZskitError
from zskit.train.config import TrainConfig

__all__ = ["Callback", "FitResult", "TrainState", "TrainingError"]


class TrainingError(ZskitError):
    """Training diverged: a NaN or infinite loss or gradient norm. ``step`` is the failing step."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class TrainState:
    """The live state of a run, handed to callbacks (set ``should_stop = True`` to stop)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    rank: int = 0
    world_size: int = 1
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    step_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    lr: float = 0.0  # learning rate of the last step
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    should_stop: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


PROGRESS_FIELDS = (  # the TrainState fields a checkpoint saves
    "epoch", "step", "step_in_epoch", "epoch_loss_sum", "epoch_batches", "lr",
    "best_value", "best_epoch", "bad_epochs", "stopped_early", "history",
)  # fmt: skip


class Callback:
    """Hooks of ``fit``; override any. Each gets the live :class:`TrainState`."""

    def on_train_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState, loss: float) -> None: ...

    def on_validation_end(self, state: TrainState, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, state: TrainState, row: dict[str, float]) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns; ``model`` holds the weights chosen by ``config.select``."""

    model: nn.Module
    history: pd.DataFrame  # one row per epoch: epoch, step, train_loss, val_*, lr, seconds
    steps: int
    best_epoch: int | None
    best_value: float | None
    best_state: dict[str, torch.Tensor] | None
    averaged_state: dict[str, torch.Tensor] | None
    ema_model: nn.Module | None
    stopped_early: bool
    checkpoint: Path | None
