"""Reading weight files and checking them against a model, the same way for every encoder.

- :func:`load_state_file` reads a ``.pt``/``.pth`` file with ``torch.load(weights_only=True)``
  (numpy arrays allowed, as 2019-2020 checkpoints pickle them) or a ``.safetensors`` file, on the
  CPU. Any failure (truncated download, foreign file) is a :class:`~zskit.errors.DataError` that
  names the file and says to delete it and download it again.
- :func:`check_state_dict` compares a state dict with the keys and shapes a model expects and
  raises one :class:`~zskit.errors.DataError` listing every missing, unexpected and mis-shaped key
  (and every key whose values are integers where the model holds floats, or the reverse).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zskit.errors import DataError, require

__all__ = ["check_loading_info", "check_state_dict", "load_state_file", "numpy_safe_globals"]

_LISTED = 12  # keys shown per kind in an error message


def numpy_safe_globals() -> list[Any]:
    """The numpy functions and types ``torch.load(weights_only=True)`` needs for pickled arrays,
    under both numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) names."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    rebuild, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    allowed: list[Any] = [np.ndarray, np.dtype, rebuild, scalar,
                          (rebuild, "numpy.core.multiarray._reconstruct"),
                          (scalar, "numpy.core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes by their class
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dtypes.__all__]
    return allowed


def load_state_file(path: str | os.PathLike) -> dict[str, Any]:
    """The dict stored in a weight file (``.safetensors``, or a torch file read weights-only).

    Nothing but tensors, numpy arrays and plain Python values is unpickled. A missing, damaged or
    foreign file, or one that does not hold a dict, raises :class:`DataError` naming it.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"the weight file {path} does not exist; check the path or download it "
                        "again.")
    safetensors = path.suffix.lower() == ".safetensors"
    st = require("safetensors.torch", "reading .safetensors weights") if safetensors else None
    try:
        if st is not None:
            obj = st.load_file(str(path), device="cpu")
        else:
            with torch.serialization.safe_globals(numpy_safe_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (corrupt zip), EOFError, ...
        first = next((line for line in str(exc).splitlines() if line.strip()), "")[:200]
        raise DataError(
            f"cannot read the weight file {path} ({type(exc).__name__}: {first}). It is "
            "truncated, damaged or not a weight file: delete it and download it again."
        ) from exc
    if not isinstance(obj, Mapping):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a state dict; pass a weight "
                        "file saved with torch.save(model.state_dict(), path).")
    return dict(obj)


def _listing(items: list[str]) -> str:
    shown = ", ".join(repr(k) for k in items[:_LISTED])
    more = f", ... ({len(items)} in all)" if len(items) > _LISTED else ""
    return f"[{shown}{more}]"


def _shape(value: Any) -> tuple[int, ...]:
    """The shape of a tensor or array, a shape given as such, or ``()`` for a Python number."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(shape)
    return tuple(value) if isinstance(value, (tuple, list)) else ()


def _kind(value: Any) -> str | None:
    """The value type of a tensor's or array's dtype: float, int or bool (``None`` for a shape)."""
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, torch.dtype):
        if dtype.is_floating_point or dtype.is_complex:
            return "float"
        return "bool" if dtype == torch.bool else "int"
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    return {"f": "float", "c": "float", "b": "bool", "i": "int", "u": "int"}.get(dtype.kind,
                                                                               dtype.name)


def check_state_dict(expected: Mapping[str, Any], state: Mapping[str, Any], where: str,
                     hint: str, ignore: Iterable[str] = ()) -> None:
    """Raise one :class:`DataError` unless ``state`` has exactly the keys and shapes of ``expected``
    (and, where both sides are tensors or arrays, float values where it has floats).

    ``expected`` maps each key to its shape (or to a tensor, e.g. ``model.state_dict()``);
    ``where`` names the source (a file, "the given state dict"); ``hint`` says what to do. Keys
    matching a pattern of ``ignore`` (``fnmatch``, e.g. ``"*.num_batches_tracked"``) may be
    missing or extra.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shared = [k for k in expected if k in state]
    wrong = [f"{k}: checkpoint {_shape(state[k])} vs model {_shape(expected[k])}"
             for k in shared if _shape(state[k]) != _shape(expected[k])]
    # Integers in a float parameter (an int8-quantised or foreign file) would load silently, cast
    # by load_state_dict; float16 or float64 into float32 is fine.
    kinds = {k: (_kind(state[k]), _kind(expected[k])) for k in shared}
    wrong_kind = [f"{k}: checkpoint {have} vs model {want}" for k, (have, want) in kinds.items()
                  if have is not None and want is not None and have != want]
    _raise_if_any(missing, unexpected, wrong, where, hint, ignore, wrong_kind)


def check_loading_info(info: Mapping[str, Any], where: str, hint: str,
                       ignore: Iterable[str] = ()) -> None:
    """:func:`check_state_dict` for transformers' ``from_pretrained(..., output_loading_info=True)``
    report: its ``missing_keys``, ``unexpected_keys`` and ``mismatched_keys``."""
    missing, unexpected = ([str(k) for k in info.get(name, ())] for name in (
        "missing_keys", "unexpected_keys"))
    wrong = [_mismatch(k) for k in info.get("mismatched_keys", ())]
    _raise_if_any(missing, unexpected, wrong, where, hint, ignore)


def _mismatch(entry: Any) -> str:
    """transformers' ``(key, checkpoint shape, model shape)`` as ``check_state_dict`` words it."""
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        key, have, want = entry
        return f"{key}: checkpoint {tuple(have)} vs model {tuple(want)}"
    return str(entry)


def _raise_if_any(missing: list[str], unexpected: list[str], wrong: list[str], where: str,
                  hint: str, ignore: Iterable[str], wrong_kind: Iterable[str] = ()) -> None:
    patterns = list(ignore)

    def kept(keys: list[str]) -> list[str]:
        return sorted(k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p in patterns))

    parts = [f"{name} {_listing(keys)}" for name, keys in (
        ("missing keys", kept(missing)), ("unexpected keys", kept(unexpected)),
        ("wrong shapes", sorted(wrong)), ("wrong value types", sorted(wrong_kind))) if keys]
    if parts:
        raise DataError(f"{where} does not fit the model: {'; '.join(parts)}. {hint}")
