"""zskit.report: metrics.json holds plain JSON whatever numbers a notebook hands it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from zskit.errors import NotebookError
from zskit.report import Figure, _jsonable, read_metrics, write_metrics


def test_jsonable_turns_arrays_and_scalars_into_plain_values():
    obj = {
        "np_vec": np.array([1.5, 2.5]), "np_mat": np.arange(4).reshape(2, 2),
        "torch_vec": torch.tensor([0.25, float("nan")]), "np_scalar": np.float32(0.5),
        "torch_scalar": torch.tensor(3), "np_bool": np.bool_(True),
        "grad": torch.ones(2, requires_grad=True),
        "nested": [np.int64(7), (np.array([math.inf]),)], 1: "key",
    }
    out = _jsonable(obj)
    assert out == {
        "np_vec": [1.5, 2.5], "np_mat": [[0, 1], [2, 3]], "torch_vec": [0.25, None],
        "np_scalar": 0.5, "torch_scalar": 3, "np_bool": True, "grad": [1.0, 1.0],
        "nested": [7, [[None]]], "1": "key",
    }, out
    json.dumps(out, allow_nan=False)  # raises if anything non-JSON is left


def test_write_metrics_accepts_arrays_and_leaves_no_temp_file(tmp_path):
    per_class = np.array([0.1, 0.9, np.nan])
    path = write_metrics(tmp_path / "run", [Figure("mAP", np.float64(0.42), published=0.5)],
                         per_class_ap=per_class, curve=torch.linspace(0, 1, 3))
    data = read_metrics(tmp_path / "run")
    assert data["per_class_ap"] == [0.1, 0.9, None] and data["curve"] == [0.0, 0.5, 1.0], data
    assert data["figures"][0]["value"] == 0.42 and isinstance(data["figures"][0]["value"], float)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"], "temporary files left"
    with pytest.raises(TypeError):
        write_metrics(tmp_path / "run", [Figure("bad", 1.0)], weird=object())
    assert read_metrics(path) == data, "a failed write must leave the previous metrics.json"
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"], "temporary files left"
    with pytest.raises(NotebookError, match="does not exist"):
        read_metrics(tmp_path / "nowhere")


def test_a_non_finite_figure_reads_back_as_itself_not_as_missing(tmp_path):
    figures = [Figure("mAP", np.float64("nan"), published=0.3), Figure("loss", math.inf),
               Figure("gain", 0.5, published=-math.inf)]
    path = write_metrics(tmp_path, figures, extra=[math.nan])
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    values = [(f["value"], f["published"]) for f in read_metrics(path)["figures"]]
    assert math.isnan(values[0][0]) and values[0][1] == 0.3, values
    assert values[1] == (math.inf, None) and values[2] == (0.5, -math.inf), values


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "has no 'figures' list"),
    ('{"figures": [0.5]}', "figure 0 is 0.5"),
    ('{"figures": [{"name": "mAP"}]}', "not a figure with a name and a value"),
])
def test_a_misshapen_metrics_file_is_a_notebook_error(tmp_path, text, fragment):
    """The runner records a NotebookError as the notebook's failure; anything else crashes it."""
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(NotebookError, match=fragment):
        read_metrics(tmp_path)


def test_a_figure_may_hold_a_scalar_of_an_autograd_graph(tmp_path):
    """A loss straight from training is a non-leaf tensor, which cannot be deep-copied."""
    weights = torch.ones(3, requires_grad=True)
    loss = (weights * 2).mean()
    write_metrics(tmp_path, [Figure("loss", loss, published=torch.tensor(1.5))])
    figure = read_metrics(tmp_path)["figures"][0]
    assert figure["value"] == 2.0 and figure["published"] == 1.5, figure


def test_something_else_than_a_figure_is_a_notebook_error(tmp_path):
    with pytest.raises(NotebookError, match=r"figure 1 is dict .*not a Figure"):
        write_metrics(tmp_path, [Figure("mAP", 0.5), {"name": "mAP", "value": 0.5}])
    assert not (tmp_path / "metrics.json").exists()
