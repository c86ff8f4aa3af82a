"""zskit.viz builds the right figure data (shapes, axes), not pixels."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from zskit import viz
from zskit.errors import ConfigError, DependencyError
from zskit.viz import (
    attention_map_figure,
    confusion_matrix_figure,
    joint_space_figure,
    label_matrix_figure,
    per_class_ap_figure,
    pr_curves_figure,
    retrieval_table_figure,
    save_figure,
    semantic_distance_figure,
    similarity_heatmap_figure,
    spectrogram_figure,
    umap_embedding,
    waveform_figure,
)


def test_waveform_short_signal_is_drawn_exactly():
    sr = 1000
    wav = torch.sin(torch.arange(500) / 10.0)
    fig = waveform_figure(wav, sr, title="sine")
    trace = fig.data[0]
    assert len(trace.x) == 500, "a short waveform must keep every sample"
    np.testing.assert_allclose(trace.y, wav.numpy(), rtol=1e-6)
    assert trace.x[-1] == pytest.approx(499 / sr), "x must be time in seconds"
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.title.text == "sine"


def test_waveform_long_signal_keeps_its_envelope():
    wav = np.zeros(100_000, dtype=np.float32)
    wav[54_321] = 0.9  # a single click must survive the reduction
    wav[12_345] = -0.7
    fig = waveform_figure(wav, 16_000, max_points=1000)
    y = np.asarray(fig.data[0].y)
    assert len(y) <= 1000, f"{len(y)} points drawn, max_points=1000"
    assert y.max() == pytest.approx(0.9) and y.min() == pytest.approx(-0.7), "peaks were lost"
    with pytest.raises(ConfigError, match="mono"):
        waveform_figure(np.zeros((2, 100)), 16_000)
    with pytest.raises(ConfigError, match="max_points=1"):
        waveform_figure(wav, 16_000, max_points=1)  # would draw nothing at all


def test_spectrogram_axes_and_shape():
    spec = np.random.default_rng(0).random((64, 101)).astype(np.float32)
    fig = spectrogram_figure(spec, sample_rate=16_000, hop_length=160, title="mel")
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (64, 101), "z must be (n_mels, n_frames)"
    assert heat.x[-1] == pytest.approx(1.0), "100 hops of 10 ms must end at 1.0 s"
    assert len(heat.y) == 64
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.yaxis.title.text == "mel band"


def test_label_matrix_codes_positive_negative_unknown():
    labels = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.int8)
    mask = np.array([[True, True, False], [True, False, True]])
    fig = label_matrix_figure(labels, mask, ["a", "b", "c"], clip_names=["x", "y"])
    z = np.asarray(fig.data[0].z)
    np.testing.assert_array_equal(z, [[2, 0, 1], [0, 1, 0]], err_msg="0 neg, 1 unknown, 2 pos")
    assert list(fig.data[0].x) == ["a", "b", "c"] and list(fig.data[0].y) == ["x", "y"]
    assert list(fig.data[0].colorbar.ticktext) == ["negative", "unknown", "positive"]
    with pytest.raises(ConfigError, match="class names"):
        label_matrix_figure(labels, mask, ["a", "b"])
    assert list(fig.data[0].text[0]) == ["positive", "negative", "unknown"], "hover names states"


def test_category_axes_keep_numeric_names_in_place_and_refuse_repeats():
    """Plotly places number-like names ("102863") on a numeric axis and merges repeated ones."""
    labels = np.eye(3, dtype=np.int8)
    fig = label_matrix_figure(labels, None, ["1", "2", "3"], clip_names=["102863", "5", "77"])
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert list(fig.data[0].y) == ["102863", "5", "77"]
    with pytest.raises(ConfigError, match="clip_names has 1 entries for 3"):
        label_matrix_figure(labels, None, ["a", "b", "c"], clip_names=["x"])
    with pytest.raises(ConfigError, match=r"repeats \['x'\]"):
        label_matrix_figure(labels, None, ["a", "b", "c"], clip_names=["x", "y", "x"])
    bars = per_class_ap_figure(np.array([0.5, 0.2]), ["10", "2"])
    assert bars.layout.xaxis.type == "category" and list(bars.data[0].x) == ["10", "2"]
    with pytest.raises(ConfigError, match="repeats"):
        per_class_ap_figure(np.array([0.5, 0.2]), ["cello", "cello"])
    confusion = confusion_matrix_figure([0, 1], [1, 1], ["1", "2"])
    assert confusion.layout.xaxis.type == "category" and confusion.layout.yaxis.type == "category"
    with pytest.raises(ConfigError, match="repeats"):
        similarity_heatmap_figure(np.eye(2), ["tuba", "tuba"])


def test_long_label_lists_keep_every_label():
    """Plotly drops every other category label once they crowd; 49 classes must all be named."""
    names = [f"instrument {i}" for i in range(49)]
    rng = np.random.default_rng(0)
    figures = [similarity_heatmap_figure(rng.normal(size=(49, 4)), names),
               per_class_ap_figure(rng.random(49), names),
               label_matrix_figure(np.eye(3, 49), None, names)]
    for fig in figures:
        assert fig.layout.xaxis.dtick == 1, fig.layout.title.text
        assert fig.layout.width >= 16 * 49, "each column gets room for its label"
    for fig in (figures[0], figures[2]):  # heatmaps: every row labelled too
        assert fig.layout.yaxis.dtick == 1, fig.layout.title.text
    assert figures[1].layout.yaxis.dtick is None, "AP axis keeps its own ticks (0.2, 0.4, ...)"
    assert confusion_matrix_figure([0], [1], ["a", "b"]).layout.width is None, "few: default"


def test_per_class_ap_bars_sorted_with_random_baseline():
    ap = np.array([0.2, np.nan, 0.9, 0.5])
    rnd = np.array([0.1, np.nan, 0.05, 0.2])
    fig = per_class_ap_figure(ap, ["a", "b", "c", "d"], random_ap=rnd)
    assert len(fig.data) == 2, "AP bars and random bars"
    assert list(fig.data[0].x) == ["c", "d", "a"], "NaN dropped, sorted best first"
    np.testing.assert_allclose(fig.data[0].y, [0.9, 0.5, 0.2])
    np.testing.assert_allclose(fig.data[1].y, [0.05, 0.2, 0.1])
    assert fig.layout.yaxis.title.text == "average precision"


# -- semantic spaces ---------------------------------------------------------------------------


def _two_clusters(n_per: int = 12, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips around two label directions, and the two labels themselves."""
    rng = np.random.default_rng(seed)
    labels = np.eye(dim)[:2] * 3.0
    clips = np.vstack([labels[i] + 0.3 * rng.normal(size=(n_per, dim)) for i in range(2)])
    return clips, labels


@pytest.mark.slow  # umap-learn compiles its numba code on first use: about 10 s
def test_umap_embedding_is_seeded_and_separates_clusters():
    clips, labels = _two_clusters()
    xy = umap_embedding(np.vstack([clips, labels]), n_neighbors=5, seed=1)
    assert xy.shape == (26, 2)
    np.testing.assert_allclose(xy, umap_embedding(np.vstack([clips, labels]), n_neighbors=5,
                                                  seed=1), err_msg="same seed, same map")
    a, b = xy[:12].mean(axis=0), xy[12:24].mean(axis=0)
    spread = max(xy[:12].std(axis=0).max(), xy[12:24].std(axis=0).max())
    assert np.linalg.norm(a - b) > 2 * spread, "two well-separated clusters must stay apart"
    # each label lands closer to its own cluster than to the other
    assert np.linalg.norm(xy[24] - a) < np.linalg.norm(xy[24] - b)
    assert np.linalg.norm(xy[25] - b) < np.linalg.norm(xy[25] - a)
    with pytest.raises(ConfigError, match="at least 3"):
        umap_embedding(np.zeros((2, 4)))
    assert umap_embedding(clips[:3]).shape == (3, 2), "the smallest set still gets a map"


def test_joint_space_centres_each_modality_before_the_map(monkeypatch):
    clips, labels = _two_clusters(n_per=3)
    gap = clips + 4.0 * np.eye(8)[7]  # the projected audio sits in its own cone
    seen = {}

    def fake_umap(x, **kwargs):
        seen["x"] = x
        return np.zeros((len(x), 2))

    monkeypatch.setattr(viz, "umap_embedding", fake_umap)
    joint_space_figure(gap, labels, ["a", "b"])
    x = seen["x"]
    np.testing.assert_allclose(x[:6].mean(axis=0), 0, atol=1e-12, err_msg="clips not centred")
    np.testing.assert_allclose(x[6:].mean(axis=0), 0, atol=1e-12, err_msg="labels not centred")
    unit = gap / np.linalg.norm(gap, axis=1, keepdims=True)
    np.testing.assert_allclose(x[:6], unit - unit.mean(axis=0), err_msg="unit rows, then centred")
    joint_space_figure(gap, labels, ["a", "b"], center=False)
    np.testing.assert_allclose(seen["x"][:6], unit, err_msg="center=False keeps unit rows")


def test_joint_space_traces_groups_hover_and_labels():
    clips, labels = _two_clusters(n_per=3)
    coords = np.arange(16, dtype=float).reshape(8, 2)
    fig = joint_space_figure(
        clips, labels, ["cello", "tuba"], audio_groups=["strings"] * 3 + ["brass"] * 3,
        label_groups=["strings", "brass"], audio_names=[f"c{i}" for i in range(6)],
        audio_hover=[f"caption {i}" for i in range(6)], coords=coords)
    names = [t.name for t in fig.data]
    assert names == ["strings", "brass", "labels"], names
    np.testing.assert_array_equal(fig.data[1].x, coords[3:6, 0])
    assert "caption 4" in fig.data[1].text[1] and "c4" in fig.data[1].text[1]
    stars = fig.data[2]
    assert list(stars.text) == ["cello", "tuba"] and stars.marker.symbol == "star"
    assert stars.marker.color[0] == fig.data[0].marker.color, "a label takes its family's colour"
    with pytest.raises(ConfigError, match="label space"):
        joint_space_figure(clips[:, :4], labels, ["cello", "tuba"], coords=coords)
    with pytest.raises(ConfigError, match="audio_groups"):
        joint_space_figure(clips, labels, ["cello", "tuba"], audio_groups=["x"], coords=coords)
    as_arrays = joint_space_figure(  # groups straight from a DataFrame or a numpy array
        clips, labels, ["cello", "tuba"], audio_groups=np.array(["strings"] * 3 + ["brass"] * 3),
        label_groups=np.array(["strings", "brass"]), coords=coords)
    assert list(as_arrays.data[2].marker.color) == [fig.data[0].marker.color,
                                                    fig.data[1].marker.color]


def test_joint_space_gives_each_of_many_groups_its_own_colour():
    clips, labels = _two_clusters(n_per=15)  # 30 clips, each its own group: more than Dark24
    fig = joint_space_figure(clips, labels, ["cello", "tuba"], coords=np.zeros((32, 2)),
                             audio_groups=[f"class {i}" for i in range(30)])
    colors = [t.marker.color for t in fig.data[:-1]]
    assert len(colors) == 30 and len(set(colors)) == 30, "two groups share a colour"


def test_similarity_heatmap_orders_by_group_and_is_cosine():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    fig = similarity_heatmap_figure(v, ["a", "b", "c", "silent"], groups=["x", "y", "x", "y"])
    z = np.asarray(fig.data[0].z)
    assert list(fig.data[0].x) == ["a", "c", "b", "silent"], "grouped by first appearance"
    np.testing.assert_allclose(z, z.T)
    np.testing.assert_allclose(z[0, 1], 1.0, err_msg="a and c point the same way")
    np.testing.assert_allclose(z[0, 2], 0.0)
    assert z[3, 3] == 0.0, "a zero vector has cosine 0, not NaN"
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1


def test_semantic_distance_line_and_r():
    x = np.array([0.1, 0.3, 0.5, 0.7, np.nan])
    y = np.array([0.0, 0.1, 0.1, 0.3, 0.5])
    fig = semantic_distance_figure(x, y, list("abcde"), groups=["g", "g", "h", "h", "h"])
    ok = np.isfinite(x)
    r = np.corrcoef(x[ok], y[ok])[0, 1]
    assert f"r = {r:.2f}" in fig.layout.title.text and "n = 4" in fig.layout.title.text
    assert fig.layout.meta["r"] == pytest.approx(r)
    line = fig.data[-1]
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    np.testing.assert_allclose(line.y, slope * np.array([0.1, 0.7]) + intercept)
    assert sum(len(t.x) for t in fig.data[:-1]) == 4, "the NaN point is left out"
    many = semantic_distance_figure(np.arange(30.0), np.arange(30.0), [str(i) for i in range(30)],
                                    groups=[f"family {i}" for i in range(30)])
    assert len({t.marker.color for t in many.data[:-1]}) == 30, "groups share colours"
    flat = semantic_distance_figure([0.2, 0.2], [0.1, 0.3], ["a", "b"])
    assert "r undefined" in flat.layout.title.text and len(flat.data) == 1


# -- classification and tagging results ----------------------------------------------------------


def test_confusion_matrix_counts_and_row_shares():
    fig = confusion_matrix_figure(["a", "a", "b", "c", "c", "c"], ["a", "b", "b", "c", "a", "c"],
                                  ["a", "b", "c"])
    counts = np.asarray(fig.data[0].text)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_allclose(np.asarray(fig.data[0].z).sum(axis=1), 1.0)
    raw = confusion_matrix_figure([0, 1], [1, 1], ["a", "b"], normalize=False)
    np.testing.assert_array_equal(raw.data[0].z, [[0, 1], [0, 1]])
    with pytest.raises(ConfigError, match="not among"):
        confusion_matrix_figure(["zebra"], ["a"], ["a", "b"])
    with pytest.raises(ConfigError, match="outside"):
        confusion_matrix_figure([5], [0], ["a", "b"])
    floats = confusion_matrix_figure(np.array([0.0, 1.0]), np.array([1.0, 1.0]), ["a", "b"])
    np.testing.assert_array_equal(floats.data[0].text, [[0, 1], [0, 1]])
    with pytest.raises(ConfigError, match="not scores"):  # probabilities would all become class 0
        confusion_matrix_figure([0, 1], np.array([0.2, 0.9]), ["a", "b"])


def test_pr_curves_match_sklearn_and_skip_classes_without_positives():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = rng.random((40, 3)) < 0.3
    y[:, 2] = False
    s = y + rng.normal(scale=0.8, size=y.shape)
    fig = pr_curves_figure(y, s, ["a", "b", "none"])
    assert len(fig.data) == 2, "a class with no positive has no curve"
    ap = average_precision_score(y[:, 0], s[:, 0])
    assert fig.data[0].name == f"a (AP {ap:.2f})"
    assert fig.data[0].x[-1] == 0 and fig.data[0].y[-1] == 1, "curves end at recall 0"
    only = pr_curves_figure(y, s, ["a", "b", "none"], classes=["b"])
    assert [t.name.split()[0] for t in only.data] == ["b"]
    with pytest.raises(ConfigError, match="not among"):
        pr_curves_figure(y, s, ["a", "b", "none"], classes=["zebra"])


def test_attention_map_groups_rows_by_parent_in_percent():
    w = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    fig = attention_map_figure(w, ["violin", "tuba", "cello"], ["strings", "brass"],
                               parents=[0, 1, 0], fine_probs=[0.5, 0.25, 1.0])
    heat = fig.data[0]
    assert list(heat.y) == ["violin (50%)", "cello (100%)", "tuba (25%)"]
    np.testing.assert_allclose(heat.z, [[90, 10], [50, 50], [20, 80]])
    assert heat.text[0].tolist() == ["90", "10"], "cells show whole percent"
    with pytest.raises(ConfigError, match="one clip's map"):
        attention_map_figure(np.zeros((2, 2)), ["a", "b"], ["x", "y", "z"])
    diverged = attention_map_figure(np.array([[np.nan, 1.0]]), ["violin"], ["strings", "brass"])
    assert diverged.data[0].text.tolist() == [["", "100"]], "a NaN cell is blank, not -2**63"


def test_retrieval_table_shows_ranked_rows():
    frame = pd.DataFrame({"rank": [1, 2], "id": ["c7", "c2"], "score": [0.91234, 0.5],
                          "caption": ["a cello", "a tuba"]})
    fig = retrieval_table_figure(frame, query="low strings")
    cells = fig.data[0].cells.values
    assert list(fig.data[0].header.values) == ["rank", "id", "score", "caption"]
    assert list(cells[2]) == ["0.912", "0.500"] and list(cells[1]) == ["c7", "c2"]
    assert "low strings" in fig.layout.title.text
    with pytest.raises(ConfigError, match="not in the results"):
        retrieval_table_figure(frame, columns=["rank", "missing"])


# -- saving --------------------------------------------------------------------------------------


def test_save_figure_writes_html_and_reports_missing_png_dependencies(tmp_path, monkeypatch):
    fig = per_class_ap_figure(np.array([0.5, 0.2]), ["a", "b"])
    (html,) = save_figure(fig, tmp_path / "ap.html")
    assert html == tmp_path / "ap.html" and "plotly" in html.read_text()
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if kaleido were not installed
    with pytest.raises(DependencyError, match="kaleido"):
        save_figure(fig, tmp_path / "ap", formats=("png",))
    monkeypatch.undo()

    def no_browser(*_args, **_kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")

    monkeypatch.setattr(go.Figure, "to_image", no_browser)
    if importlib.util.find_spec("kaleido") is not None:
        with pytest.raises(DependencyError, match="chromium"):
            save_figure(fig, tmp_path / "ap", formats=("png",))
    with pytest.raises(ConfigError, match="formats"):
        save_figure(fig, tmp_path / "ap", formats=("gif",))
    assert not list(tmp_path.glob("ap.png")) and not list(tmp_path.glob(".*tmp"))


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is None or shutil.which("chromium") is None,
                    reason="PNG export needs kaleido and Chromium (apt-get install chromium)")
def test_save_figure_png_is_a_png(tmp_path):
    fig = per_class_ap_figure(np.array([0.5, 0.2]), ["a", "b"])
    html, png = save_figure(fig, tmp_path / "ap", formats=("html", "png"), width=300, height=200)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and html.suffix == ".html"
