"""Training: ``fit()`` (one loop), ``TrainConfig``, schedules, checkpoints and DDP helpers.

>>> from zskit.train import TrainConfig, fit
>>> result = fit(model, (X, Y), val_data=(Xv, Yv), config=TrainConfig(lr=1e-3, max_epochs=10))
>>> result.history  # one row per epoch

Device and precision choices (``resolve_device``, ``resolve_amp``) live in ``zskit.devices``.
"""

from zskit.train.checkpoint import atomic_save, average_state_dicts, load_checkpoint
from zskit.train.config import TrainConfig
from zskit.train.distributed import DistInfo, cleanup_distributed, setup_distributed, shard_indices
from zskit.train.loop import CHECKPOINT_FILE, MODEL_FILE, fit, predict, supervised
from zskit.train.schedules import (
    LRSchedule,
    cosine_decay,
    exponential_warmup,
    linear_decay,
    linear_warmup,
    lr_factor,
    step_decay,
)
from zskit.train.state import Callback, FitResult, TrainingError, TrainState

__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "Callback",
    "DistInfo",
    "FitResult",
    "LRSchedule",
    "TrainConfig",
    "TrainState",
    "TrainingError",
    "atomic_save",
    "average_state_dicts",
    "cleanup_distributed",
    "cosine_decay",
    "exponential_warmup",
    "fit",
    "linear_decay",
    "linear_warmup",
    "load_checkpoint",
    "lr_factor",
    "predict",
    "setup_distributed",
    "shard_indices",
    "step_decay",
    "supervised",
]
