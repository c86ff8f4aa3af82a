"""Checkpoint files: atomic writes, safe loads (``weights_only=True``), RNG states, averaging.

A checkpoint is a dict of tensors and plain Python values (no pickled objects), so it loads with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zskit.errors import DataError
from zskit.fileio import atomic_write

__all__ = [
    "atomic_save",
    "average_state_dicts",
    "cpu_state_dict",
    "get_rng_state",
    "load_checkpoint",
    "set_rng_state",
]


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    A reader never sees a half-written file, and a failed save leaves the previous file intact.
    """
    path = Path(path)
    with atomic_write(path) as fh:
        torch.save(obj, fh)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save` onto the CPU, with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; train with out_dir set to write one.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise DataError(
            f"checkpoint {path} could not be read ({exc}); delete it to start afresh."
        ) from exc


def cpu_state_dict(
    module_or_state: torch.nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's ``state_dict`` (or of a state dict)."""
    state = (
        module_or_state.state_dict()
        if isinstance(module_or_state, torch.nn.Module)
        else module_or_state
    )
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating-point entries; other entries (counters) from the last.

    Computed on the CPU (the result lives there), so states may come from any device, and from
    several: a model on a GPU with files loaded onto the CPU; MPS, moreover, has no float64.
    """
    if not states:
        raise DataError("average_state_dicts got no states; keep at least one epoch's weights.")
    last = states[-1]
    out = {}
    for key, value in last.items():
        if value.is_floating_point():
            parts = [s[key].detach().cpu().to(torch.float64) for s in states]
            out[key] = torch.stack(parts).mean(0).to(value.dtype)
        else:
            out[key] = value.detach().cpu().clone()
    return out


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (plain values, tensors)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators saved by :func:`get_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # one state per GPU of the writing machine:
        # those this machine has (a run of a 2-GPU machine resumed on a 1-GPU Colab)
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    if state.get("mps") is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def _as_tuple(value: Any) -> Any:
    """Lists back to tuples, recursively (``random.setstate`` wants tuples)."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
