"""Plotly figures for the notebooks: waveforms, spectrograms, label matrices, per-class AP, the
joint audio-label space (UMAP), label similarity, semantic distance, confusion matrices, PR curves,
attention maps and retrieval results.

Every function returns a ``plotly.graph_objects.Figure`` and shows nothing; the notebook decides.
None needs a display. Arrays may be numpy or torch. :func:`save_figure` writes HTML and PNG (PNG
needs kaleido and a Chrome/Chromium).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from zskit._arrays import to_numpy
from zskit.errors import ConfigError, DependencyError, missing_dependency
from zskit.fileio import atomic_write

__all__ = [
    "FIGURE_FORMATS",
    "attention_map_figure",
    "confusion_matrix_figure",
    "joint_space_figure",
    "label_matrix_figure",
    "per_class_ap_figure",
    "pr_curves_figure",
    "retrieval_table_figure",
    "save_figure",
    "semantic_distance_figure",
    "similarity_heatmap_figure",
    "spectrogram_figure",
    "umap_embedding",
    "waveform_figure",
]


def waveform_figure(
    wav: Any, sample_rate: int, title: str = "waveform", max_points: int = 4000
) -> go.Figure:
    """Amplitude over time of a mono waveform ``(T,)``.

    Longer signals are drawn as their min/max envelope over ``max_points // 2`` bins, so peaks
    stay visible.
    """
    if max_points < 2:
        raise ConfigError(f"max_points={max_points} must be at least 2 (one low and one high "
                          "point per bin).")
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


def _axis_names(what: str, names: Sequence[Any], n: int) -> list[str]:
    """``names`` as the ``n`` distinct strings of a category axis.

    Plotly draws repeated categories on one row or bar, and reads names that look like numbers
    (clip ids such as "102863") as positions on a numeric axis; figures here therefore pass
    distinct names and set their axes to ``category``.
    """
    out = [str(x) for x in names]
    if len(out) != n:
        raise ConfigError(f"{what} has {len(out)} entries for {n} rows or columns; pass one each.")
    repeated = sorted({x for x in out if out.count(x) > 1}) if len(set(out)) < n else []
    if repeated:
        raise ConfigError(f"{what} repeats {repeated[:5]}; plotly would draw them as one, so make "
                          "them distinct (e.g. add a suffix).")
    return out


def _every_label(n_columns: int, rows: bool = True) -> dict[str, Any]:
    """Layout that labels every category of x (and of y with ``rows``): plotly otherwise drops
    every other label once they crowd (49 classes at the default width), so the figure widens by
    16 px a column instead (callers give rows their height)."""
    width = 16 * n_columns + 300
    return {"xaxis_dtick": 1, "width": width if width > 700 else None,
            **({"yaxis_dtick": 1} if rows else {})}


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
    columns = _axis_names("class_names", class_names, y.shape[1])
    rows = _axis_names("clip_names", clip_names if clip_names is not None else range(len(y)),
                       len(y))
    colorscale = [
        [0.0, "#f0f0f0"], [1 / 3, "#f0f0f0"],
        [1 / 3, "#b0b0b0"], [2 / 3, "#b0b0b0"],
        [2 / 3, "#1f5fbf"], [1.0, "#1f5fbf"],
    ]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=columns,
            y=rows,
            zmin=-0.5,
            zmax=2.5,
            colorscale=colorscale,
            colorbar={"tickvals": [0, 1, 2], "ticktext": list(LABEL_STATES)},
            text=np.asarray(LABEL_STATES)[z],
            hovertemplate="clip %{y}<br>class %{x}<br>%{text}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="class",
        yaxis_title="clip",
        xaxis_type="category",
        yaxis_type="category",
        yaxis_autorange="reversed",
        height=max(250, 18 * len(rows) + 150),
        **_every_label(len(columns)),
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
        raise ConfigError(f"ap has shape {a.shape} but there are {len(class_names)} class names; "
                          "pass one AP per class name, in the same order.")
    class_names = _axis_names("class_names", class_names, len(a))
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
        xaxis_type="category",
        yaxis_range=[0, 1],
        barmode="group",
        height=380,
        **_every_label(len(names), rows=False),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Semantic spaces: the joint audio-label map, label similarity, semantic distance

PALETTE = plotly.colors.qualitative.Dark24  # one colour per group (class or family)


def _group_colors(groups: Sequence[str]) -> dict[str, str]:
    """A distinct colour per group: the palette, or evenly spaced hues of a continuous scale when
    there are more groups than palette colours (cycling would give two groups one colour)."""
    distinct = list(dict.fromkeys(groups))
    colors = (PALETTE if len(distinct) <= len(PALETTE) else
              plotly.colors.sample_colorscale("Turbo", np.linspace(0, 1, len(distinct))))
    return dict(zip(distinct, colors))


def _matrix(name: str, x: Any) -> np.ndarray:
    m = to_numpy(x).astype(np.float64)
    if m.ndim != 2 or 0 in m.shape:
        raise ConfigError(f"{name} must be a non-empty (n, dim) matrix, got shape {m.shape}.")
    return m


def _check_length(name: str, items: Sequence[Any] | None, n: int, what: str) -> None:
    if items is not None and len(items) != n:
        raise ConfigError(f"{name} has {len(items)} entries for {n} {what}; pass one per row.")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero, so their cosines are 0)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def umap_embedding(x: Any, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
                   seed: int = 0) -> np.ndarray:
    """2-D UMAP coordinates ``(n, 2)`` of the rows of ``x`` (umap-learn), seeded and repeatable.

    ``n_neighbors`` is capped at ``n - 1`` so that small sets still get a map. The first call in a
    process compiles umap-learn's numba code (about 10 s on a CPU); later calls are fast.
    """
    data = _matrix("x", x)
    if len(data) < 3:
        raise ConfigError(f"a UMAP map needs at least 3 points, got {len(data)}.")
    try:
        import umap
    except ImportError as err:
        raise missing_dependency("umap-learn", "the joint-space map (UMAP)") from err

    # umap's spectral start needs more than 3 points (scipy's eigsh asks for 3 eigenvectors)
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, len(data) - 1)), min_dist=min_dist,
                        metric=metric, random_state=seed, n_jobs=1,
                        init="spectral" if len(data) > 3 else "random")
    with warnings.catch_warnings():  # "n_jobs overridden by random_state", tiny-graph notices
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def joint_space_figure(
    audio: Any,
    labels: Any,
    label_names: Sequence[str],
    *,
    audio_groups: Sequence[str] | None = None,
    label_groups: Sequence[str] | None = None,
    audio_names: Sequence[str] | None = None,
    audio_hover: Sequence[str] | None = None,
    grey_groups: Sequence[str] = (),
    center: bool = True,
    coords: Any | None = None,
    n_neighbors: int = 15,
    seed: int = 0,
    title: str = "audio and labels in the joint space (UMAP)",
) -> go.Figure:
    """Clips and class labels on one 2-D UMAP map of the joint space.

    ``audio`` ``(N, E)`` are clip embeddings already mapped into the label space (a zero-shot
    tagger's projection of the audio embeddings), ``labels`` ``(C, E)`` the label embeddings of
    ``label_names``; both are mapped together with the cosine metric, so a clip lands near the
    labels it scores high. Clips are dots coloured by ``audio_groups`` (e.g. their first class or
    family), labels are stars coloured by ``label_groups`` (e.g. family); hovering shows each
    clip's name and ``audio_hover`` (e.g. a caption). Clips of ``grey_groups`` (e.g. "mixed")
    are drawn small and grey. ``coords`` ``(N + C, 2)`` skips the UMAP.

    ``center``: both sets are unit-normalised and each is centred on its own mean before the map.
    Projected audio and label embeddings usually sit in two separate cones (the "modality gap"),
    which UMAP would draw as two far-apart islands; centring keeps the directions that relate a
    clip to its labels and drops the offset between the sets.
    """
    a, lab = _matrix("audio", audio), _matrix("labels", labels)
    if a.shape[1] != lab.shape[1]:
        raise ConfigError(f"audio is {a.shape[1]}-d but labels {lab.shape[1]}-d; map the audio "
                          "into the label space first (e.g. tagger.head_ on the embeddings).")
    n, c = len(a), len(lab)
    _check_length("label_names", label_names, c, "labels")
    _check_length("label_groups", label_groups, c, "labels")
    for name, items in (("audio_groups", audio_groups), ("audio_names", audio_names),
                        ("audio_hover", audio_hover)):
        _check_length(name, items, n, "clips")
    if coords is None:
        parts = [_unit_rows(a), _unit_rows(lab)]
        if center:
            parts = [p - p.mean(axis=0) for p in parts]
        xy = umap_embedding(np.vstack(parts), n_neighbors=n_neighbors, seed=seed)
    else:
        xy = to_numpy(coords).astype(np.float64)
    if xy.shape != (n + c, 2):
        raise ConfigError(f"coords must be ({n + c}, 2): clips then labels, got {xy.shape}.")
    groups = [str(g) for g in audio_groups] if audio_groups is not None else ["clips"] * n
    star_groups = [str(g) for g in label_groups] if label_groups is not None else []
    colors = _group_colors([*groups, *star_groups])
    names = list(audio_names) if audio_names is not None else [f"clip {i}" for i in range(n)]
    hover = [f"<b>{m}</b>" + (f"<br>{h}" if audio_hover is not None else "")
             for m, h in zip(names, audio_hover if audio_hover is not None else names)]
    fig = go.Figure()
    for g in dict.fromkeys(groups):
        rows = [i for i, gi in enumerate(groups) if gi == g]
        fig.add_trace(go.Scatter(
            x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=g, legendgroup=g,
            marker={"color": "#c8c8c8", "size": 4, "opacity": 0.5} if g in grey_groups
            else {"color": colors[g], "size": 6, "opacity": 0.7},
            text=[hover[i] for i in rows], hovertemplate="%{text}<extra></extra>"))
    star_colors = [colors[g] for g in star_groups] if star_groups else ["black"] * c
    fig.add_trace(go.Scatter(
        x=xy[n:, 0], y=xy[n:, 1], mode="markers+text", name="labels",
        marker={"symbol": "star", "size": 14, "color": star_colors,
                "line": {"color": "black", "width": 1}},
        text=list(label_names), textposition="top center",
        hovertemplate="label: %{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="UMAP 1", yaxis_title="UMAP 2",
                      template="plotly_white", height=650)
    return fig


def _heatmap(z: np.ndarray, x: Sequence[str], y: Sequence[str], *, title: str, x_title: str,
             y_title: str, colorbar_title: str, colorscale: str, zmin: float, zmax: float,
             text: np.ndarray | None = None) -> go.Figure:
    """The one matrix heatmap behind similarity, confusion and attention figures (rows top down)."""
    fig = go.Figure(go.Heatmap(
        z=z, x=_axis_names(x_title, x, z.shape[1]), y=_axis_names(y_title, y, z.shape[0]),
        zmin=zmin, zmax=zmax, colorscale=colorscale, colorbar={"title": colorbar_title},
        text=text, texttemplate=None if text is None else "%{text}"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title,
                      xaxis_type="category", yaxis_type="category",
                      yaxis_autorange="reversed", height=max(350, 16 * len(y) + 180),
                      **_every_label(len(x)))
    return fig


def similarity_heatmap_figure(vectors: Any, names: Sequence[str],
                              groups: Sequence[str] | None = None,
                              title: str = "label similarity (cosine)") -> go.Figure:
    """Cosine similarity of every pair of label embeddings ``(C, E)``.

    With ``groups`` (e.g. families), labels are ordered group by group (groups in order of first
    appearance, labels in given order within one), so related classes form blocks.
    """
    v = _matrix("vectors", vectors)
    _check_length("names", names, len(v), "vectors")
    _check_length("groups", groups, len(v), "vectors")
    order = np.arange(len(v))
    if groups is not None:
        rank = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        order = np.argsort([rank[g] for g in groups], kind="stable")
    u = _unit_rows(v[order])
    ordered = [names[i] for i in order]
    return _heatmap(u @ u.T, ordered, ordered, title=title, x_title="label", y_title="label",
                    colorbar_title="cosine", colorscale="RdBu_r", zmin=-1.0, zmax=1.0)


def semantic_distance_figure(
    proximity: Any,
    quality: Any,
    names: Sequence[str],
    groups: Sequence[str] | None = None,
    *,
    hover: Sequence[str] | None = None,
    x_title: str = "cosine to the nearest training class (label space)",
    y_title: str = "AP − random AP",
    title: str = "zero-shot quality vs semantic proximity",
) -> go.Figure:
    """Scatter of each test class's ``quality`` (e.g. AP gain over random) against its
    ``proximity`` (e.g. label-space cosine to the nearest training class), one trace per group,
    with the least-squares line; the title ends with Pearson's r and n (finite pairs only)."""
    x, y = to_numpy(proximity).astype(np.float64), to_numpy(quality).astype(np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"proximity {x.shape} and quality {y.shape} must be 1-D of one length.")
    _check_length("names", names, len(x), "points")
    _check_length("groups", groups, len(x), "points")
    _check_length("hover", hover, len(x), "points")
    ok = np.isfinite(x) & np.isfinite(y)
    labels = [str(g) for g in groups] if groups is not None else ["classes"] * len(x)
    text = [f"<b>{n}</b>" + (f"<br>{h}" if hover is not None else "")
            for n, h in zip(names, hover if hover is not None else names)]
    fig = go.Figure()
    colors = _group_colors(labels)
    for g in colors:
        rows = [i for i, gi in enumerate(labels) if gi == g and ok[i]]
        fig.add_trace(go.Scatter(
            x=x[rows], y=y[rows], mode="markers", name=g, marker={"color": colors[g]},
            text=[text[i] for i in rows],
            hovertemplate="%{text}<br>x %{x:.3f}<br>y %{y:.3f}<extra></extra>"))
    r = np.nan
    if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        xs = np.array([x[ok].min(), x[ok].max()])
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines",
                                 name="least squares", line={"dash": "dash", "color": "gray"}))
        if np.ptp(y[ok]) > 0:
            r = float(np.corrcoef(x[ok], y[ok])[0, 1])
    r_text = "r undefined" if np.isnan(r) else f"r = {r:.2f}"
    fig.update_layout(title=f"{title} ({r_text}, n = {int(ok.sum())})", xaxis_title=x_title,
                      yaxis_title=y_title, template="plotly_white", meta={"r": r})
    return fig


# ---------------------------------------------------------------------------------------------
# Classification and tagging results


def confusion_matrix_figure(y_true: Any, y_pred: Any, class_names: Sequence[str],
                            normalize: bool = True, title: str = "confusion matrix") -> go.Figure:
    """True class (rows) against predicted class (columns) for class indices or names.

    ``normalize``: colour by the share of each true class (rows sum to 1); the cells always show
    the counts.
    """
    names = list(class_names)
    index = {n: i for i, n in enumerate(names)}

    def codes(what: str, values: Any) -> np.ndarray:
        v = to_numpy(values)
        if v.dtype.kind in "OUS":
            unknown = sorted({str(x) for x in v.tolist() if x not in index})
            if unknown:
                raise ConfigError(f"{what} holds names {unknown[:5]} not among class_names.")
            return np.array([index[x] for x in v.tolist()], dtype=np.int64)
        if v.dtype.kind == "f" and not np.array_equal(v, np.round(v)):
            raise ConfigError(f"{what} holds non-integer values; pass class indices or names "
                              "(e.g. scores.argmax(axis=1)), not scores.")
        v = v.astype(np.int64)
        if v.size and (v.min() < 0 or v.max() >= len(names)):
            raise ConfigError(f"{what} holds class indices outside 0..{len(names) - 1}.")
        return v

    t, p = codes("y_true", y_true).ravel(), codes("y_pred", y_pred).ravel()
    if t.shape != p.shape:
        raise ConfigError(f"y_true has {t.size} entries but y_pred {p.size}; pass one of each "
                          "per clip.")
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(counts, (t, p), 1)
    z = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    return _heatmap(z, names, names, title=title, x_title="predicted", y_title="true",
                    colorbar_title="share of true class" if normalize else "clips",
                    colorscale="Blues", zmin=0.0, zmax=1.0 if normalize else float(counts.max()),
                    text=counts)


def pr_curves_figure(y_true: Any, y_score: Any, class_names: Sequence[str], mask: Any = None,
                     classes: Sequence[str] | None = None,
                     title: str = "precision-recall curves") -> go.Figure:
    """One precision-recall curve per class (only the known entries where ``mask`` is given),
    named with its AP; ``classes`` picks which (default: every class with a known positive)."""
    from sklearn.metrics import precision_recall_curve

    from zskit.metrics import average_precision_per_class

    y, s = to_numpy(y_true) > 0, to_numpy(y_score).astype(np.float64)
    if y.shape != s.shape or y.ndim != 2 or y.shape[1] != len(class_names):
        raise ConfigError(f"y_true {y.shape} and y_score {s.shape} must both be (n_clips, "
                          f"{len(class_names)}), one column per class name.")
    known = np.ones(y.shape, bool) if mask is None else to_numpy(mask).astype(bool)
    if known.shape != y.shape:
        raise ConfigError(f"mask has shape {known.shape}, labels {y.shape}; they must match.")
    names = list(class_names)
    chosen = names if classes is None else list(classes)
    missing = [c for c in chosen if c not in names]
    if missing:
        raise ConfigError(f"classes {missing[:5]} are not among class_names.")
    ap = average_precision_per_class(y, s, known)
    fig = go.Figure()
    for name in chosen:
        j = names.index(name)
        if not (y[:, j] & known[:, j]).any():
            continue  # no positive: no curve (AP undefined)
        precision, recall, _ = precision_recall_curve(y[known[:, j], j], s[known[:, j], j])
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", line_shape="hv",
                                 name=f"{name} (AP {ap[j]:.2f})"))
    fig.update_layout(title=title, xaxis_title="recall", yaxis_title="precision",
                      xaxis_range=[0, 1], yaxis_range=[0, 1.02], template="plotly_white")
    return fig


def attention_map_figure(attention: Any, fine_names: Sequence[str], coarse_names: Sequence[str],
                         *, parents: Sequence[int] | None = None, fine_probs: Any = None,
                         coarse_probs: Any = None,
                         title: str = "hierarchical attention") -> go.Figure:
    """One clip's attention map ``(F, C)`` from fine tags to coarse tags, in %.

    ``parents`` (the coarse index of each fine tag) groups the fine rows by parent;
    ``fine_probs`` / ``coarse_probs`` add each tag's predicted probability to its axis label.
    """
    w = _matrix("attention", attention) * 100
    if w.shape != (len(fine_names), len(coarse_names)):
        raise ConfigError(f"attention has shape {w.shape} but {len(fine_names)} fine and "
                          f"{len(coarse_names)} coarse names were given; pass one clip's map.")
    order = np.arange(len(fine_names))
    if parents is not None:
        _check_length("parents", parents, len(fine_names), "fine tags")
        order = np.argsort(np.asarray(parents), kind="stable")

    def labelled(names: Sequence[str], probs: Any) -> list[str]:
        if probs is None:
            return list(names)
        p = to_numpy(probs).astype(np.float64).ravel() * 100
        _check_length("probabilities", p, len(names), "tags")
        return [f"{n} ({v:.0f}%)" for n, v in zip(names, p)]

    rows = labelled(fine_names, fine_probs)
    return _heatmap(w[order], labelled(coarse_names, coarse_probs), [rows[i] for i in order],
                    title=title, x_title="coarse tag", y_title="fine tag",
                    colorbar_title="attention (%)", colorscale="Blues", zmin=0.0, zmax=100.0,
                    text=np.array([["" if np.isnan(v) else f"{v:.0f}" for v in row]
                                   for row in w[order]]))


def retrieval_table_figure(results: pd.DataFrame, query: str | None = None,
                           columns: Sequence[str] | None = None,
                           title: str | None = None) -> go.Figure:
    """Ranked search results as a table (e.g. ``AudioSearch.search`` joined with captions);
    float columns such as ``score`` are shown with 3 decimals."""
    if not isinstance(results, pd.DataFrame):
        raise ConfigError(f"results must be a pandas DataFrame, got {type(results).__name__}.")
    cols = list(results.columns) if columns is None else list(columns)
    missing = [c for c in cols if c not in results.columns]
    if missing:
        raise ConfigError(f"columns {missing} are not in the results ({list(results.columns)}).")
    cells = [[f"{v:.3f}" for v in results[c]] if results[c].dtype.kind == "f"
             else [str(v) for v in results[c]] for c in cols]
    fig = go.Figure(go.Table(header={"values": cols, "align": "left"},
                             cells={"values": cells, "align": "left"}))
    heading = title or (f"top {len(results)} results for {query!r}" if query else "results")
    fig.update_layout(title=heading, height=max(250, 30 * len(results) + 150))
    return fig


# ---------------------------------------------------------------------------------------------
# Saving

FIGURE_FORMATS = ("html", "png")


def save_figure(fig: go.Figure, path: str | os.PathLike, formats: Sequence[str] = ("html",),
                *, width: int | None = None, height: int | None = None,
                include_plotlyjs: str | bool = "cdn") -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (``html``, ``png``), atomically;
    returns the written paths.

    HTML loads plotly.js from its CDN by default (``include_plotlyjs=True`` embeds it, ~4 MB).
    PNG needs the package kaleido (>= 1) and a Chrome or Chromium browser; without either, a
    :class:`~zskit.errors.DependencyError` says what to install.
    """
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"formats {list(formats)} must be a non-empty list of {FIGURE_FORMATS}.")
    base = Path(path)
    if base.suffix.lstrip(".") in FIGURE_FORMATS:
        base = base.with_suffix("")
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        if fmt == "html":
            data = fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True).encode()
        else:
            data = _png_bytes(fig, width, height)
        with atomic_write(target) as fh:
            fh.write(data)
        written.append(target)
    return written


def _png_bytes(fig: go.Figure, width: int | None, height: int | None) -> bytes:
    install = ('pip install "kaleido>=1", and a Chrome or Chromium browser (Debian: apt-get '
               'install chromium; elsewhere: plotly_get_chrome)')
    try:
        import kaleido  # noqa: F401  (plotly renders PNG through it)
    except ImportError as err:
        raise missing_dependency("kaleido", "PNG export of plotly figures", install) from err
    try:
        return fig.to_image(format="png", width=width, height=height)
    except RuntimeError as err:  # plotly's wording when kaleido finds no browser
        raise DependencyError(f"PNG export could not start a browser through kaleido ({err}). "
                              f"Install: {install}") from err
