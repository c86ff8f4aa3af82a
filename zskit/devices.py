"""Device, mixed-precision and seeding choices shared by training (``fit``) and embedding (``zskit.cache``)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from zskit.errors import ConfigError

__all__ = ["module_device", "resolve_amp", "resolve_device", "seed_everything"]


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter (or buffer); None when it has neither."""
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return None if tensor is None else tensor.device


def resolve_device(name: str) -> torch.device:
    """``'auto'``: CUDA, then MPS, then CPU; otherwise the named device, which must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"device={name!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'mps'."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device={name!r} but MPS is not available here; use device='auto' or 'cpu'."
        )
    return device


def _bf16_native(device: torch.device) -> bool:
    """Whether the GPU computes bfloat16 in hardware (compute capability 8.0+, Ampere on).

    Not ``torch.cuda.is_bf16_supported()``: it also says yes on a T4 or V100, which only emulate
    bfloat16 (slowly, and cuDNN has no bfloat16 convolutions there); those get float16 with a
    gradient scaler instead.
    """
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_amp(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for ``amp`` on ``device``."""
    cuda = device.type == "cuda"
    if amp == "off" or (amp == "auto" and not cuda):
        return None, False
    if amp == "auto":
        return (torch.bfloat16, False) if _bf16_native(device) else (torch.float16, True)
    if amp == "fp16":
        if not cuda:
            raise ConfigError(
                f"amp='fp16' needs CUDA but the device is {device}; use amp='bf16' or 'off'."
            )
        return torch.float16, True
    if cuda and not _bf16_native(device):
        raise ConfigError(
            "amp='bf16' but this GPU has no bfloat16 support; use amp='fp16' or 'auto'."
        )
    return torch.bfloat16, False


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
