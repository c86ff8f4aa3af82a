"""One conversion of array-likes (numpy, torch on any device, lists) to numpy, shared by
``zskit.metrics`` and ``zskit.viz``."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(array: Any) -> np.ndarray:
    """``array`` as a numpy array; a torch tensor is detached and copied to the CPU first."""
    if hasattr(array, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        array = array.detach().cpu()
        if str(array.dtype) == "torch.bfloat16":  # numpy has none (scores under bf16 autocast)
            array = array.float()
        array = array.numpy()
    return np.asarray(array)
