"""Device, mixed-precision and seeding choices shared by training (``fit``) and embedding (``zskit.cache``)."""

from __future__ import annotations

import random
import warnings

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
    """``'auto'``: CUDA (if this torch build supports the GPU), then MPS, then CPU; otherwise the
    named device, which must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            problem = _cuda_unsupported(0)
            if problem is None:
                return torch.device("cuda")
            warnings.warn(f"device='auto' skips the GPU: {problem}.", stacklevel=2)
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
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:  # else the first tensor moved there fails with a raw error
            raise ConfigError(
                f"device={name!r} but this machine has {count} CUDA device(s), numbered from 0; "
                f"use 'cuda' or 'cuda:0'..'cuda:{count - 1}' (nvidia-smi lists them)."
            )
    if device.type == "cuda" and (problem := _cuda_unsupported(device.index or 0)):
        raise ConfigError(f"device={name!r}: {problem}; use device='auto' (it skips such a GPU) "
                          "or install a torch build for this GPU (pytorch.org/get-started).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device={name!r} but MPS is not available here; use device='auto' or 'cpu'."
        )
    return device


def _cuda_unsupported(index: int) -> str | None:
    """Why this torch build cannot run kernels on CUDA device ``index``, or None when it can.

    ``torch.cuda.is_available()`` is also True for a GPU older than every architecture the build
    was compiled for (e.g. a P100, capability 6.0, under a build for 7.5 and newer); its first
    kernel then fails with "no kernel image is available". A binary for ``sm_XY`` runs on the same
    major version from minor Y on; PTX (``compute_XY``) on any capability from X.Y on.
    """
    arches = [a for a in torch.cuda.get_arch_list() if a.startswith(("sm_", "compute_"))]
    if torch.version.hip or not arches:  # ROCm (gfx... arches) or unknown: let torch decide
        return None
    try:  # a broken driver, a GPU in use by a forked parent, ... fail here, not in is_available
        major, minor = torch.cuda.get_device_capability(index)
    except RuntimeError as err:  # including torch.AcceleratorError
        return f"CUDA reports a GPU but cannot use it ({err})"
    for arch in arches:
        kind, _, code = arch.partition("_")
        digits = "".join(ch for ch in code if ch.isdigit())
        if len(digits) < 2:
            continue
        built = (int(digits[:-1]), int(digits[-1]))
        if (kind == "sm" and built[0] == major and built[1] <= minor) or (
            kind == "compute" and built <= (major, minor)
        ):
            return None
    return (f"its GPU has CUDA capability {major}.{minor}, but this torch build only supports "
            f"{' '.join(arches)}")


def _bf16_native(device: torch.device) -> bool:
    """Whether the GPU computes bfloat16 in hardware (compute capability 8.0+, Ampere on).

    Not ``torch.cuda.is_bf16_supported()``: it also says yes on a T4 or V100, which only emulate
    bfloat16 (slowly, and cuDNN has no bfloat16 convolutions there); those get float16 with a
    gradient scaler instead.
    """
    return torch.cuda.get_device_capability(device)[0] >= 8


AMP_CHOICES = ("auto", "off", "fp16", "bf16")


def resolve_amp(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for ``amp`` on ``device``."""
    if amp not in AMP_CHOICES:  # a typo must not silently train in bfloat16
        raise ConfigError(f"amp={amp!r} is not one of {', '.join(map(repr, AMP_CHOICES))}.")
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
