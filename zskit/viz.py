"""Plotly figures for the notebooks: waveforms, spectrograms, label matrices, per-class AP.

Every function returns a ``plotly.graph_objects.Figure`` and shows nothing; the notebook decides.
Arrays may be numpy or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from zskit._arrays import to_numpy
from zskit.errors import ConfigError

__all__ = [
    "label_matrix_figure",
    "per_class_ap_figure",
    "spectrogram_figure",
    "waveform_figure",
]


def waveform_figure(
    wav: Any, sample_rate: int, title: str = "waveform", max_points: int = 4000
) -> go.Figure:
    """Amplitude over time of a mono waveform ``(T,)``.

    Longer signals are drawn as their min/max envelope over ``max_points // 2`` bins, so peaks
    stay visible.
    """
    x = to_numpy(wav).astype(np.float32)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1 or x.size == 0:
        raise ConfigError(f"waveform must be mono (T,), got shape {x.shape}; mix down first.")
    t = np.arange(x.size) / sample_rate
    if x.size > max_points:
        n_bins = max_points // 2
        edges = np.linspace(0, x.size, n_bins + 1).astype(int)
        lo = np.minimum.reduceat(x, edges[:-1])
        hi = np.maximum.reduceat(x, edges[:-1])
        t = np.repeat(t[edges[:-1]], 2)
        x = np.stack([lo, hi], axis=1).reshape(-1)
    fig = go.Figure(go.Scatter(x=t, y=x, mode="lines", line={"width": 1}, name="waveform"))
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="amplitude", height=250)
    return fig


def spectrogram_figure(
    spec: Any,
    sample_rate: int,
    hop_length: int,
    title: str = "log-mel spectrogram",
    y_title: str = "mel band",
    colorbar_title: str = "log mel",
) -> go.Figure:
    """Heatmap of a (log-)mel spectrogram ``(n_mels, n_frames)``; time on x, bands on y."""
    s = to_numpy(spec).astype(np.float32)
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2:
        raise ConfigError(f"spectrogram must be (n_mels, n_frames), got shape {s.shape}.")
    times = np.arange(s.shape[1]) * hop_length / sample_rate
    fig = go.Figure(
        go.Heatmap(
            z=s,
            x=times,
            y=np.arange(s.shape[0]),
            colorscale="Magma",
            colorbar={"title": colorbar_title},
        )
    )
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title=y_title, height=300)
    return fig


LABEL_STATES = ("negative", "unknown", "positive")  # z values 0, 1, 2 of label_matrix_figure


def label_matrix_figure(
    labels: Any,
    mask: Any | None,
    class_names: Sequence[str],
    clip_names: Sequence[str] | None = None,
    title: str = "labels",
) -> go.Figure:
    """Clips x classes heatmap: 0 negative, 1 unknown (``mask`` False), 2 positive."""
    y = to_numpy(labels)
    if y.ndim != 2 or y.shape[1] != len(class_names):
        raise ConfigError(
            f"labels have shape {y.shape} but {len(class_names)} class names were given; pass "
            "(n_clips, n_classes) labels and one name per column."
        )
    known = np.ones(y.shape, bool) if mask is None else to_numpy(mask).astype(bool)
    if known.shape != y.shape:
        raise ConfigError(f"mask has shape {known.shape}, labels {y.shape}; they must match.")
    z = np.where(known, np.where(y > 0, 2, 0), 1)
    rows = list(clip_names) if clip_names is not None else [str(i) for i in range(y.shape[0])]
    colorscale = [
        [0.0, "#f0f0f0"], [1 / 3, "#f0f0f0"],
        [1 / 3, "#b0b0b0"], [2 / 3, "#b0b0b0"],
        [2 / 3, "#1f5fbf"], [1.0, "#1f5fbf"],
    ]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(class_names),
            y=rows,
            zmin=-0.5,
            zmax=2.5,
            colorscale=colorscale,
            colorbar={"tickvals": [0, 1, 2], "ticktext": list(LABEL_STATES)},
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="class",
        yaxis_title="clip",
        yaxis_autorange="reversed",
        height=max(250, 18 * len(rows) + 150),
    )
    return fig


def per_class_ap_figure(
    ap: Any,
    class_names: Sequence[str],
    random_ap: Any | None = None,
    title: str = "average precision per class",
    sort: bool = True,
) -> go.Figure:
    """Bars of per-class AP, with the random scorer's expected AP beside them when given.

    Classes with NaN AP (no positive) are left out; ``sort`` orders bars by AP, best first.
    """
    a = to_numpy(ap).astype(np.float64)
    if a.shape != (len(class_names),):
        raise ConfigError(f"ap has shape {a.shape} but there are {len(class_names)} class names.")
    r = None if random_ap is None else to_numpy(random_ap).astype(np.float64)
    if r is not None and r.shape != a.shape:
        raise ConfigError(f"random_ap has shape {r.shape}, ap {a.shape}; they must match.")
    keep = np.flatnonzero(~np.isnan(a))
    if sort:
        keep = keep[np.argsort(-a[keep], kind="stable")]
    names = [class_names[i] for i in keep]
    fig = go.Figure(go.Bar(x=names, y=a[keep], name="AP"))
    if r is not None:
        fig.add_trace(go.Bar(x=names, y=r[keep], name="random (expected AP)", opacity=0.6))
    fig.update_layout(
        title=title,
        xaxis_title="class",
        yaxis_title="average precision",
        yaxis_range=[0, 1],
        barmode="group",
        height=380,
    )
    return fig
