"""The training loop: ``fit(model, train_data, config=TrainConfig(...))``.

One loop serves every notebook: device choice, mixed precision, gradient clipping, a per-step
schedule, EMA and weight averaging, validation with model selection and early stopping, atomic
checkpoints with exact resume, callbacks and DDP under ``torchrun``.

``loss_fn(model, batch) -> scalar tensor`` computes the loss of one batch. The default unpacks
``batch = (inputs, targets[, mask])`` and applies masked BCE to ``model(inputs)``; wrap any
criterion the same way with :func:`supervised`. During training ``model`` is the
``DistributedDataParallel`` wrapper under torchrun, so reach everything the loss needs through
``model(...)`` (a dual encoder's ``forward`` returns audio and text embeddings and its scale, as in
open_clip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from zskit.devices import module_device, resolve_amp, resolve_device, seed_everything
from zskit.errors import ConfigError, DataError
from zskit.losses import masked_bce
from zskit.train.batches import batch_size_of, make_batches, to_device
from zskit.train.checkpoint import (
    atomic_save,
    average_state_dicts,
    cpu_state_dict,
    get_rng_state,
    load_checkpoint,
    set_rng_state,
)
from zskit.train.config import TrainConfig
from zskit.train.distributed import (
    all_reduce_mean,
    broadcast_object,
    gather_objects,
    setup_distributed,
)
from zskit.train.schedules import LRSchedule
from zskit.train.state import PROGRESS_FIELDS, Callback, FitResult, TrainingError, TrainState

__all__ = ["CHECKPOINT_FILE", "MODEL_FILE", "fit", "predict", "supervised"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"  # the last state, for resume=True
MODEL_FILE = "model.pt"  # the selected weights (state_dict) at the end of fit

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MetricFn = Callable[[nn.Module, Any], "float | Mapping[str, float]"]


def supervised(criterion: Callable[..., torch.Tensor]) -> LossFn:
    """A ``fit`` loss from ``criterion(outputs, targets[, mask])`` for batches ``(inputs, ...)``."""

    def loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        inputs, *targets = batch
        return criterion(model(inputs), *targets)

    return loss


@functools.cache
def _has_fused_kernel(
    cls: type[torch.optim.Optimizer], device: torch.device, dtype: torch.dtype
) -> bool:
    """Whether this torch can step ``cls(..., fused=True)`` on parameters of ``device`` and
    ``dtype`` (fused CPU kernels came with torch 2.4; torch checks only at the first step, so a
    one-element parameter takes a step here)."""
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        cls([probe], lr=0.0, fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _build_optimizer(
    model: nn.Module, config: TrainConfig, param_groups: Iterable[Any] | None
) -> torch.optim.Optimizer:
    """The optimiser of ``config``, fused where torch has a kernel for every parameter.

    A fused step updates each parameter in one kernel instead of a dozen elementwise ops: on a
    CPU it takes half the time of the default step or less for the small heads trained on
    cached embeddings, where the step is a large share of the work (see benchmarks/RESULTS.md).
    """
    if param_groups is None:
        param_groups = [p for p in model.parameters() if p.requires_grad]
    groups, params = [], []
    for group in param_groups:  # dicts may hold generators of parameters: read them once
        if isinstance(group, Mapping):
            members = group["params"]
            members = [members] if isinstance(members, torch.Tensor) else list(members)
            groups.append({**group, "params": members})
        else:
            groups.append(group)
            members = [group]
        params.extend(members)
    if not params:
        raise ConfigError(
            f"{type(model).__name__} has no trainable parameters; unfreeze some or pass "
            "param_groups."
        )
    if config.optimizer == "sgd":
        cls: type[torch.optim.Optimizer] = torch.optim.SGD
        options = {"momentum": config.momentum}
    else:
        cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        options = {"betas": config.betas}
    fused = all(_has_fused_kernel(cls, *kind) for kind in {(p.device, p.dtype) for p in params})
    return cls(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None,
               **options)


def _metric_columns(value: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {(k if k.startswith("val_") else f"val_{k}"): float(v) for k, v in value.items()}
    return {"val_metric": float(value)}


class _Run:
    """The pieces of one ``fit`` call and the loop over them."""

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        val_data: Any,
        config: TrainConfig,
        loss_fn: LossFn,
        metric_fn: MetricFn | None,
        callbacks: Sequence[Any],
        out_dir: Path | None,
        param_groups: Iterable[Any] | None,
    ) -> None:
        self.config, self.loss_fn, self.metric_fn = config, loss_fn, metric_fn
        self.callbacks = callbacks
        self.device = resolve_device(config.device)
        self.dist = setup_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(config.seed + self.dist.rank)
        self.model = self.net = model.to(self.device)
        common = {"device": self.device, "seed": config.seed, "num_workers": config.num_workers}
        self.train = make_batches(
            train_data,
            config.batch_size,
            shuffle=True,
            drop_last=config.drop_last,
            dist=self.dist,
            **common,
        )
        self.val_data = val_data
        self.val = (
            None
            if val_data is None
            else make_batches(val_data, config.batch_size, shuffle=False, **common)
        )
        self.steps_per_epoch = len(self.train)
        if self.steps_per_epoch == 0:
            raise DataError(
                f"the training data gives no batch of {config.batch_size} per epoch; lower "
                "batch_size or set drop_last=False."
            )
        self.total_steps = config.max_epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        if (
            (config.early_stopping_patience or config.schedule == "plateau")
            and val_data is None
            and config.monitor.startswith("val_")
        ):
            raise ConfigError(
                f"early stopping / the plateau schedule monitor {config.monitor!r}, which needs "
                "val_data; pass val_data or monitor 'train_loss'."
            )
        self.optimizer = _build_optimizer(model, config, param_groups)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.schedule = LRSchedule(self.optimizer, config, self.steps_per_epoch, self.total_steps)
        self.amp_dtype, use_scaler = resolve_amp(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.ema = None
        if config.ema_decay is not None:
            ema_fn = get_ema_multi_avg_fn(config.ema_decay)
            self.ema = AveragedModel(model, multi_avg_fn=ema_fn, use_buffers=True)
        self.recent: deque[dict[str, torch.Tensor]] = deque(maxlen=config.average_last_k)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.state = TrainState(model, self.optimizer, config, self.dist.rank, self.dist.world_size)
        self.checkpoint = None if out_dir is None else out_dir / CHECKPOINT_FILE
        self.saved_step: int | None = None
        self.read_every = config.loss_read_every or (1 if self.device.type == "cpu" else 16)
        self.kept_losses: list[torch.Tensor] = []  # losses not yet read, on the device
        self.kept_norms: list[torch.Tensor] = []  # gradient norms likewise (with grad_clip)

    # -- one step, one validation, one epoch end -------------------------------------------------
    def _autocast(self) -> AbstractContextManager:
        if self.amp_dtype is None:  # a disabled autocast still costs a few µs per step
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _diverged(self, what: str, value: float) -> TrainingError:
        """The error for a non-finite ``what`` at step ``state.step + 1`` (the step being taken,
        or, for losses read later, the step that :meth:`_read_losses` has counted up to)."""
        s = self.state
        step, batch = s.step + 1, s.step_in_epoch + 1
        kept = (
            f"the last good checkpoint {self.checkpoint} (step {self.saved_step}) is kept; "
            "resume=True continues from it"
            if self.saved_step is not None
            else "no checkpoint was written yet (set out_dir and checkpoint_every to keep one)"
        )
        return TrainingError(
            f"training diverged: the {what} is {value} at step {step} (epoch "
            f"{s.epoch + 1}, batch {batch}); {kept}. Lower lr, set grad_clip, "
            "or check that batch's inputs.",
            step=step,
        )

    def _read_losses(self) -> float | None:
        """Read the losses (and gradient norms) kept on the device since the last read, in one
        transfer: check them step by step and add them to the epoch's sum. Returns the last loss
        (None if nothing was kept)."""
        if not self.kept_losses:
            return None
        s, kept = self.state, len(self.kept_losses)
        losses = torch.stack(self.kept_losses)
        if self.dist.enabled:
            losses = all_reduce_mean(losses, self.dist)
        norms = torch.stack(self.kept_norms).tolist() if self.kept_norms else [0.0] * kept
        self.kept_losses.clear()
        self.kept_norms.clear()
        s.step -= kept  # report each value at its own step
        s.step_in_epoch -= kept
        for value, norm in zip(losses.tolist(), norms):
            if not math.isfinite(value):
                raise self._diverged("loss", value)
            if not math.isfinite(norm):
                raise self._diverged("gradient norm", norm)
            s.step += 1
            s.step_in_epoch += 1
            s.epoch_loss_sum += value
        return value

    def _step(self, batch: Any) -> float | None:
        s, config = self.state, self.config
        if not self.train.on_device:
            batch = to_device(batch, self.device)
        with self._autocast():
            loss = self.loss_fn(self.net, batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ConfigError(
                f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                f"{getattr(loss, 'shape', '')}; reduce it with .mean()."
            )
        # Read every step (the default on a CPU), the loss is checked before the update; on one
        # process item() reads it directly (detach and cast cost a few µs per step). Otherwise
        # it stays on the device until _read_losses.
        value = None
        if self.read_every > 1:
            self.kept_losses.append(loss.detach().float())
        elif self.dist.enabled:
            value = float(all_reduce_mean(loss.detach().float(), self.dist))
        else:
            value = loss.item()
        if value is not None and not math.isfinite(value):
            raise self._diverged("loss", value)
        scaling = self.scaler.is_enabled()  # fp16 only; the calls are skipped when off
        (self.scaler.scale(loss) if scaling else loss).backward()
        if config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
            # (under fp16 an infinite norm is no error: the scaler skips that step)
            if not scaling and self.read_every > 1:
                self.kept_norms.append(norm.detach().float())
            elif not scaling and not math.isfinite(float(norm)):
                raise self._diverged("gradient norm", float(norm))
        s.lr = self.optimizer.param_groups[0]["lr"]
        if scaling:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        s.step += 1
        s.step_in_epoch += 1
        if value is not None:
            s.epoch_loss_sum += value
        s.epoch_batches += 1
        self.schedule.step(s.step)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return value

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        if self.val is None:
            return {}
        model, was_training = self.model, self.model.training
        model.eval()
        total_type = torch.float32 if self.device.type == "mps" else torch.float64  # MPS: no fp64
        total, count = torch.zeros((), dtype=total_type, device=self.device), 0
        for batch in self.val.epoch(0):
            if not self.val.on_device:
                batch = to_device(batch, self.device)
            with self._autocast():
                loss = self.loss_fn(model, batch)
            n = batch_size_of(batch)
            total += loss.detach().to(total.dtype) * n  # summed on the device: one read below
            count += n
        metrics = {"val_loss": total.item() / max(count, 1)}
        if self.metric_fn is not None:
            metrics.update(_metric_columns(self.metric_fn(model, self.val_data)))
        model.train(was_training)
        self._call("on_validation_end", self.state, metrics)
        return metrics

    def _row(self, seconds: float) -> dict[str, float]:
        s = self.state
        self._read_losses()
        done = s.step_in_epoch == self.steps_per_epoch
        row = {
            "epoch": s.epoch + 1 if done else s.epoch + s.step_in_epoch / self.steps_per_epoch,
            "step": s.step,
            "train_loss": s.epoch_loss_sum / max(s.epoch_batches, 1),
            **self._validate(),
            "lr": s.lr,
            "seconds": seconds,
        }
        return broadcast_object(row, self.dist)  # identical decisions on every rank

    def _end_epoch(self, seconds: float) -> None:
        s, config = self.state, self.config
        row = self._row(seconds)
        value = row.get(config.monitor)
        selects = config.select == "best" and (self.val is not None
                                                or not config.monitor.startswith("val_"))
        if value is None and (config.early_stopping_patience or config.schedule == "plateau"
                              or selects):  # a mistyped monitor would silently keep the last
            raise ConfigError(
                f"monitor={config.monitor!r} is not a history column; choose one of {list(row)}."
            )
        self.schedule.epoch_end(value)
        if value is not None:
            better = not math.isnan(value) and (  # a NaN epoch is never the best one
                s.best_value is None
                or (value < s.best_value if config.mode == "min" else value > s.best_value)
            )
            if better:
                s.best_value, s.best_epoch, s.bad_epochs = value, s.epoch + 1, 0
                self.best_state = cpu_state_dict(self.model)
            else:
                s.bad_epochs += 1
                if (
                    config.early_stopping_patience
                    and s.bad_epochs >= config.early_stopping_patience
                ):
                    s.should_stop = s.stopped_early = True
        if self.recent.maxlen:
            self.recent.append(cpu_state_dict(self.model))
        s.history.append(row)
        logger.info("epoch %s: %s", row["epoch"], {k: round(v, 6) for k, v in row.items()})
        s.epoch, s.step_in_epoch, s.epoch_loss_sum, s.epoch_batches = s.epoch + 1, 0, 0.0, 0
        self._save()
        self._call("on_epoch_end", s, row)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(*args)

    # -- checkpoints ------------------------------------------------------------------------------
    def _save(self) -> None:
        self._read_losses()  # a NaN kept on the device must not reach a checkpoint
        if self.checkpoint is None:
            return
        rng = gather_objects(get_rng_state(), self.dist)  # every rank's generators, saved by rank 0
        if self.dist.is_main:
            atomic_save(
                {
                    "format": 1,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "ema": None if self.ema is None else self.ema.state_dict(),
                    "recent": list(self.recent),
                    "best_state": self.best_state,
                    "progress": {name: getattr(self.state, name) for name in PROGRESS_FIELDS},
                    "rng": rng,
                    "loader_generators": self.train.generator_states(
                        mid_epoch=0 < self.state.step_in_epoch < self.steps_per_epoch),
                    "config": dataclasses.asdict(self.config),
                },
                self.checkpoint,
            )
        self.saved_step = self.state.step

    def _restore(self) -> None:
        ckpt = load_checkpoint(self.checkpoint)
        if not isinstance(ckpt, dict) or ckpt.get("format") != 1:
            raise DataError(
                f"{self.checkpoint} is not a checkpoint written by zskit's fit (e.g. a bare "
                "state_dict); pass another out_dir, or delete it and run with resume=False."
            )
        try:
            self._load_states(ckpt)
        except (KeyError, RuntimeError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"{self.checkpoint} was written for another model or optimiser ({first_line}); "
                "pass another out_dir, or delete it and run with resume=False."
            ) from exc

    def _load_states(self, ckpt: dict[str, Any]) -> None:
        changed = sorted(
            k for k, v in dataclasses.asdict(self.config).items() if ckpt["config"].get(k) != v
        )
        if changed:
            logger.warning("resuming %s with changed settings %s", self.checkpoint, changed)
        self.model.load_state_dict(ckpt["model"])
        fused = [group.get("fused") for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group, flag in zip(self.optimizer.param_groups, fused):  # this machine's probe
            group["fused"] = flag  # decides, not the machine that wrote the checkpoint
        saved_lr = ckpt["config"].get("lr", self.config.lr)
        self.schedule.load_state_dict(ckpt["schedule"], lr_scale=self.config.lr / saved_lr)
        if ckpt["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        elif ckpt["scaler"] or self.scaler.is_enabled():  # e.g. a bf16 GPU's run on a T4 (fp16)
            logger.warning("resuming %s with another mixed precision: the gradient scaler starts "
                           "afresh", self.checkpoint)
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.recent.extend(ckpt["recent"])
        self.best_state = ckpt["best_state"]
        for name, value in ckpt["progress"].items():
            setattr(self.state, name, value)
        self.state.should_stop = self.state.stopped_early  # an early-stopped run stays stopped
        rng = ckpt["rng"]
        if len(rng) != self.dist.world_size:
            logger.warning(
                "%s was written by %d processes, resuming with %d",
                self.checkpoint,
                len(rng),
                self.dist.world_size,
            )
        set_rng_state(rng[self.dist.rank % len(rng)])
        self.train.set_generator_states(ckpt.get("loader_generators", []))  # older: none kept
        self.saved_step = self.state.step
        logger.info(
            "resumed from %s at step %d (epoch %d)",
            self.checkpoint,
            self.state.step,
            self.state.epoch,
        )

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, resume: bool) -> FitResult:
        s, config = self.state, self.config
        if resume and self.checkpoint.is_file():
            self._restore()
        elif resume:
            logger.warning("resume=True but %s does not exist: starting afresh", self.checkpoint)
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self._call("on_train_start", s)
        if s.step_in_epoch == self.steps_per_epoch:  # resumed from a checkpoint saved on an
            self._end_epoch(float("nan"))  # epoch's last step, before its end: do it now
        show = config.progress and self.dist.is_main
        bar = tqdm(total=self.total_steps, initial=s.step, desc="fit", unit="step", disable=not show)
        on_step_end = [hook for c in self.callbacks  # (Callback's own is a no-op: left out)
                       if (hook := getattr(c, "on_step_end", None)) is not None
                       and getattr(hook, "__func__", hook) is not Callback.on_step_end]
        if on_step_end:  # each hook is handed each step's loss
            self.read_every = 1
        every = 10 if self.read_every == 1 else self.read_every  # progress bar's loss
        try:
            while not s.should_stop and s.step < self.total_steps and s.epoch < config.max_epochs:
                start = time.perf_counter()
                for batch in self.train.epoch(s.epoch, skip=s.step_in_epoch):
                    loss = self._step(batch)
                    if self.read_every > 1 and s.step % self.read_every == 0:
                        loss = self._read_losses()
                    if show:
                        bar.update(1)
                        if loss is not None and (s.step % every == 0 or s.step == self.total_steps):
                            bar.set_postfix(loss=f"{loss:.4g}", lr=f"{s.lr:.3g}", refresh=False)
                    for hook in on_step_end:
                        hook(s, loss)
                    if config.checkpoint_every and s.step % config.checkpoint_every == 0:
                        self._save()
                    if s.should_stop or s.step >= self.total_steps:
                        break
                seconds = time.perf_counter() - start
                if s.step_in_epoch == self.steps_per_epoch:
                    self._end_epoch(seconds)
                else:  # stopped mid-epoch: save first (to resume this epoch), then report
                    self._save()
                    s.history.append(self._row(seconds))
                    break
        finally:
            bar.close()
        return self._finish()

    def _finish(self) -> FitResult:
        s, config = self.state, self.config
        averaged = average_state_dicts(list(self.recent)) if len(self.recent) > 1 else None
        if config.select == "best" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif config.select == "average" and averaged is not None:
            self.model.load_state_dict(averaged)
        elif config.select == "ema":
            self.model.load_state_dict(self.ema.module.state_dict())
        if self.checkpoint is not None and self.dist.is_main:
            atomic_save(self.model.state_dict(), self.checkpoint.with_name(MODEL_FILE))
        self._call("on_train_end", s)
        return FitResult(
            model=self.model,
            history=pd.DataFrame(s.history),
            steps=s.step,
            best_epoch=s.best_epoch,
            best_value=s.best_value,
            best_state=self.best_state,
            averaged_state=averaged,
            ema_model=None if self.ema is None else self.ema.module,
            stopped_early=s.stopped_early,
            checkpoint=self.checkpoint,
        )


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    val_data: Any = None,
    config: TrainConfig | None = None,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    out_dir: str | Path | None = None,
    param_groups: Iterable[Any] | None = None,
) -> FitResult:
    """Train ``model`` and return a :class:`FitResult`.

    ``train_data`` / ``val_data``: a tuple of tensors ``(X, Y[, mask])`` (the fast path: held on the
    device, batches are index slices of a seeded permutation), a map-style Dataset, or a DataLoader.
    ``loss_fn(model, batch)``: see the module docstring; default masked BCE on ``model(X)``.
    ``metric_fn(model, val_data)``: a float (column ``val_metric``) or a dict (columns
    ``val_<key>``), computed after each epoch in eval mode under ``no_grad``; :func:`predict` helps.
    ``callbacks``: objects with any of the :class:`Callback` hooks.
    ``out_dir``: where ``checkpoint.pt`` (the last state) and ``model.pt`` (the selected weights)
    are written; ``resume=True`` continues from ``out_dir/checkpoint.pt`` with the same result as an
    uninterrupted run. ``param_groups``: optimiser parameter groups (e.g. a smaller lr for early
    layers); default all trainable parameters.

    Under ``torchrun`` (one process per device): ``config.batch_size`` is per process, each process
    trains on its shard of every epoch, gradients are averaged by DDP, every process validates on
    the whole ``val_data`` (rank 0's row is broadcast so decisions agree), and only rank 0 writes
    files and shows progress.
    """
    config = config or TrainConfig()
    out = None if out_dir is None else Path(out_dir)
    if resume and out is None:
        raise ConfigError("resume=True needs out_dir, the folder holding checkpoint.pt; pass it.")
    if out is not None:  # before training: a bad folder must not cost an epoch's work
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"out_dir={out} cannot be created ({exc.strerror or exc}); pass a writable folder."
            ) from exc
    run = _Run(
        model,
        train_data,
        val_data,
        config,
        loss_fn or supervised(masked_bce),
        metric_fn,
        callbacks,
        out,
        param_groups,
    )
    return run.run(resume)


@torch.no_grad()
def predict(
    model: nn.Module, data: Any, *, batch_size: int = 256, device: str | torch.device | None = None
) -> Any:
    """``model(inputs)`` over ``data`` in order, in eval mode without autograd, concatenated on
    the CPU.

    ``data``: a tensor of inputs, a tuple ``(X, ...)`` (X is used), a Dataset or DataLoader whose
    batches start with the inputs. Tuple outputs give a tuple of concatenated tensors.
    ``device``: where the inputs go (``"auto"``, ``"cpu"``, ``"cuda"``, ...); ``None`` = the
    model's own device. The model itself is not moved.
    """
    if device is None:
        device = module_device(model) or torch.device("cpu")  # no parameters: CPU
    elif not isinstance(device, torch.device):
        device = resolve_device(str(device))
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = (data,)
    batches = make_batches(data, batch_size, device=device, shuffle=False)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.no_grad():
            for batch in batches.epoch(0):
                if not batches.on_device:
                    batch = to_device(batch, device)
                out = model(batch[0] if isinstance(batch, (list, tuple)) else batch)
                outputs.append(tuple(o.cpu() for o in out) if isinstance(out, (tuple, list))
                               else out.cpu())
    finally:
        model.train(was_training)
    if outputs and isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)
