"""Learning-rate schedules as plain functions of the optimiser step (or epoch).

Each function returns the factor that multiplies the peak learning rate. :func:`lr_factor` combines
a warm-up with a decay into the function handed to ``torch.optim.lr_scheduler.LambdaLR``; the
plateau schedule uses ``ReduceLROnPlateau`` after the warm-up. Step ``k`` is the ``k``-th optimiser
step counted from 0, so ``factor(0)`` is the factor of the very first update.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from zskit.train.config import TrainConfig

__all__ = [
    "LRSchedule",
    "cosine_decay",
    "exponential_warmup",
    "linear_decay",
    "linear_warmup",
    "lr_factor",
    "step_decay",
    "warmup_steps",
]


def linear_warmup(step: int, warmup: int) -> float:
    """Linear ramp: (step + 1) / warmup during the warm-up, then 1."""
    return 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)


def exponential_warmup(step: int, warmup: int) -> float:
    """Exponential ramp exp(-5 (1 - t)^2), t = (step + 1) / warmup (paper 1; ~0.007 at t = 0)."""
    return math.exp(-5.0 * (1.0 - linear_warmup(step, warmup)) ** 2)


def linear_decay(step: int, start: float, end: float, final: float) -> float:
    """1 until ``start``, then a straight line down to ``final`` at ``end``, then ``final``."""
    if step <= start:
        return 1.0
    if step >= end:
        return final
    return 1.0 + (final - 1.0) * (step - start) / (end - start)


def cosine_decay(step: int, start: float, end: float, final: float) -> float:
    """1 until ``start``, then half a cosine down to ``final`` at ``end``, then ``final``."""
    progress = min(1.0, max(0.0, (step - start) / max(end - start, 1.0)))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_decay(epoch: int, after: int, every: int, gamma: float) -> float:
    """``gamma`` ** decays so far: the first after ``after`` epochs, then one every ``every``.

    AST, full AudioSet: ``after=2, every=1, gamma=0.5`` (epochs 1-2 at lr, epoch 3 at lr/2, ...).
    ``epoch`` counts from 0.
    """
    decays = 0 if epoch < after else (epoch - after) // every + 1
    return gamma**decays


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """The warm-up length in optimiser steps."""
    if config.warmup_steps is not None:
        return config.warmup_steps
    return round(config.warmup_epochs * steps_per_epoch)


def lr_factor(
    config: TrainConfig, steps_per_epoch: int, total_steps: int
) -> Callable[[int], float]:
    """The per-step factor of ``config``: warm-up times decay (plateau: warm-up only)."""
    warm = warmup_steps(config, steps_per_epoch)
    ramp = linear_warmup if config.warmup == "linear" else exponential_warmup
    final = config.min_lr / config.lr
    start = warm if config.decay_start is None else config.decay_start * steps_per_epoch
    end = total_steps if config.decay_end is None else config.decay_end * steps_per_epoch

    def factor(step: int) -> float:
        value = ramp(step, warm)
        if config.schedule == "linear":
            value *= linear_decay(step, start, end, final)
        elif config.schedule == "cosine":
            value *= cosine_decay(step, warm, total_steps, final)
        elif config.schedule == "step":
            epoch = step // steps_per_epoch
            value *= step_decay(epoch, config.step_after, config.step_every, config.gamma)
        return value

    return factor


class LRSchedule:
    """The schedule of one run: ``LambdaLR`` stepped per optimiser step.

    For ``schedule='plateau'``, ``LambdaLR`` only ramps up; then ``ReduceLROnPlateau`` takes over,
    stepped once per epoch with the monitored value. A constant schedule without warm-up only
    counts the steps (its factor is always 1): ``LambdaLR.step`` recomputes and sets every
    group's lr, a share of each step that is measurable for small heads on a CPU.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        steps_per_epoch: int,
        total_steps: int,
    ) -> None:
        self.warmup = warmup_steps(config, steps_per_epoch)
        self.constant = config.schedule == "constant" and self.warmup == 0
        self.per_step = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(config, steps_per_epoch, total_steps)
        )
        self.plateau = None
        if config.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=config.mode,
                factor=config.plateau_factor,
                patience=config.plateau_patience,
                min_lr=config.min_lr,
            )

    def step(self, steps_done: int) -> None:
        """Call after each optimiser step; ``steps_done`` counts the steps taken so far."""
        if self.constant:  # the state a step would leave, without the work
            self.per_step.last_epoch = steps_done
        elif self.plateau is None or steps_done <= self.warmup:
            self.per_step.step()

    def epoch_end(self, monitored: float | None) -> None:
        """Call at each epoch end with the monitored value (plateau schedule only; from the end of
        the warm-up on: a cut during the warm-up would apply to one step, then be overwritten)."""
        if (self.plateau is not None and monitored is not None
                and self.per_step.last_epoch >= self.warmup):
            self.plateau.step(monitored)

    def state_dict(self) -> dict[str, Any]:
        return {
            "per_step": self.per_step.state_dict(),
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], lr_scale: float = 1.0) -> None:
        """Restore a saved schedule; ``lr_scale`` (new peak lr / saved peak lr) applies a peak lr
        changed on resume to every group's base lr."""
        self.per_step.load_state_dict(state["per_step"])
        if lr_scale != 1.0:
            self.per_step.base_lrs = [base * lr_scale for base in self.per_step.base_lrs]
            for group in self.per_step.optimizer.param_groups:
                if "initial_lr" in group:
                    group["initial_lr"] *= lr_scale
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
        ps = self.per_step
        # The lr this schedule gives at the restored step (the optimiser's state holds the old
        # schedule's when a resumed run changes it, and the constant shortcut would never correct
        # it). After the warm-up the plateau schedule's lr is the optimiser's (ReduceLROnPlateau
        # keeps it there; LambdaLR, no longer stepped, stays at the warm-up's last step).
        if self.plateau is None or ps.last_epoch < self.warmup:
            for group, base, factor in zip(ps.optimizer.param_groups, ps.base_lrs, ps.lr_lambdas):
                group["lr"] = base * factor(ps.last_epoch)
            ps._last_lr = [group["lr"] for group in ps.optimizer.param_groups]
        elif lr_scale != 1.0:  # ReduceLROnPlateau holds the lr in the optimiser: scale it there
            for group in ps.optimizer.param_groups:
                group["lr"] *= lr_scale
