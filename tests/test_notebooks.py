"""Every notebook in notebooks/: its parameters contract, one smoke execution, and its metrics.

Each notebook is executed once (in-process papermill, ``smoke=True``) and the execution is shared
by the tests below. ZSKIT_DATA points at one temporary folder for the whole module, so the smoke
corpus the notebooks ask for is generated once.

``ZSKIT_NOTEBOOKS=default python -m pytest tests/test_notebooks.py --timeout 0`` runs each notebook
at its default size instead (minutes to an hour, with the user's own ZSKIT_DATA so corpora and
embedding caches are reused): the checks in tests/checks_NN.py then assert the claims the issues make on the
default corpus, which smoke runs are too small to carry.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbclient.exceptions import CellTimeoutError
from papermill.exceptions import PapermillExecutionError

from zskit.report import read_metrics

SMOKE = os.environ.get("ZSKIT_NOTEBOOKS", "smoke") != "default"
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
by_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


QUICKSTART_PROTOCOLS = ("full truth", "masked")  # how 00_quickstart's figures end their `data`


def check_quickstart(metrics: dict[str, Any]) -> None:
    """Each zero-shot mAP beats the random baseline measured on the same data and protocol.

    A figure's ``data`` names its protocol. The masked (OpenMIC-style) random baseline is far above
    the full-truth one, so comparing across protocols would be vacuous (masked figures against the
    full-truth baseline) or wrong (full-truth figures against the masked baseline).
    """
    figures = metrics["figures"]
    names = [f["name"] for f in figures]
    random = {f["data"]: f for f in figures if "random" in f["name"].lower()}
    scored = [f for f in figures if "random" not in f["name"].lower()
              and "map" in f"{f['name']} {f['unit']}".lower()]
    assert random, f"00_quickstart reports no random-baseline figure: {names}"
    assert scored, f"00_quickstart reports no zero-shot mAP figure: {names}"
    for protocol in QUICKSTART_PROTOCOLS:
        assert any(f["data"].endswith(protocol) for f in scored), (
            f"00_quickstart reports no zero-shot mAP under protocol {protocol!r}; data fields: "
            f"{sorted({f['data'] for f in scored})}"
        )
    for fig in scored:
        base = random.get(fig["data"])
        assert base is not None, (
            f"{fig['name']} has no random baseline on the same data {fig['data']!r}; "
            f"baselines exist for {sorted(random)}"
        )
        assert fig["value"] > base["value"], (
            f"{fig['name']} = {fig['value']:.4f} does not beat random {base['value']:.4f} "
            f"on the same data {fig['data']!r}"
        )


def _load_check(notebook: Path) -> Callable[[dict[str, Any]], None] | None:
    """``check`` from tests/checks_NN.py for notebook NN_*, if that file exists."""
    module_path = Path(__file__).with_name(f"checks_{notebook.stem[:2]}.py")
    if not module_path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check


NOTEBOOK_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    path.stem: check for path in NOTEBOOKS if (check := _load_check(path)) is not None
}
NOTEBOOK_CHECKS["00_quickstart"] = check_quickstart


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Iterator[Callable[[Path], tuple[Path, BaseException | None]]]:
    """Execute a notebook in smoke mode the first time it is asked for; return (out_dir, error)."""
    data_root = tmp_path_factory.mktemp("zskit_data")
    cache: dict[str, tuple[Path, BaseException | None]] = {}

    def run(path: Path) -> tuple[Path, BaseException | None]:
        if path.stem not in cache:
            out = tmp_path_factory.mktemp(path.stem)
            error = None
            try:
                papermill.execute_notebook(
                    str(path),
                    str(out / path.name),
                    parameters={"smoke": SMOKE, "out_dir": str(out)},
                    kernel_name="python3",
                    progress_bar=False,
                    cwd=str(path.parent),
                )
            except (
                PapermillExecutionError,
                CellTimeoutError,
                RuntimeError,
            ) as err:  # kernel errors
                error = err
            cache[path.stem] = (out, error)
        return cache[path.stem]

    with pytest.MonkeyPatch.context() as mp:
        if SMOKE:
            mp.setenv("ZSKIT_DATA", str(data_root))  # the kernels inherit it
        yield run


@by_notebook
def test_parameter_schema(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, (
        f"{path.name}: exactly one cell must be tagged 'parameters', found {tagged}"
    )
    params = papermill.inspect_notebook(str(path))
    assert params.get("smoke", {}).get("inferred_type_name") == "bool", (
        f"{path.name}: needs `smoke: bool`"
    )
    assert params.get("out_dir", {}).get("inferred_type_name") == "str", (
        f"{path.name}: needs `out_dir: str`"
    )
    for name, p in params.items():
        assert p["inferred_type_name"] != "None", (
            f"{path.name}: parameter {name!r} has no type annotation"
        )
        assert p["help"], f"{path.name}: parameter {name!r} has no comment"


def test_every_notebook_starts_with_the_same_colab_cell():
    """The first cell installs zskit on Colab and calls zskit.colab.setup() everywhere; one text for
    all notebooks, so a fix reaches every one of them."""
    firsts = {}
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "code" and "colab-setup" in first.metadata.get("tags", []), (
            f"{path.name}: the first cell must be the code cell tagged 'colab-setup'"
        )
        assert '"google.colab" in sys.modules' in first.source, f"{path.name}: no Colab check"
        assert "from zskit.colab import setup" in first.source, f"{path.name}: no setup() call"
        firsts[path.name] = first.source
    assert len(set(firsts.values())) == 1, (
        f"the Colab cells differ between notebooks: {sorted(firsts)}; copy one to all"
    )


@by_notebook
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    assert not dirty, f"{path.name}: cells {dirty} have committed outputs; clear them"


@by_notebook
def test_runs_in_smoke_mode(path, smoke_run):
    out, error = smoke_run(path)
    assert error is None, (
        f"{path.name} failed in smoke mode (executed copy: {out / path.name}):\n{error}"
    )
    assert (out / "metrics.json").is_file(), f"{path.name} ran but wrote no {out / 'metrics.json'}"


@by_notebook
def test_metrics(path, smoke_run):
    out, error = smoke_run(path)
    if error is not None or not (out / "metrics.json").is_file():
        pytest.fail(
            f"{path.name} did not produce metrics; see test_runs_in_smoke_mode[{path.stem}]"
        )
    metrics = read_metrics(out)
    figures = metrics["figures"]
    assert figures, f"{path.name}: metrics.json has an empty figures list"
    for fig in figures:
        label = f"{path.name}: figure {fig['name']!r}"
        assert fig["value"] is not None and math.isfinite(fig["value"]), (
            f"{label} value {fig['value']} is not finite"
        )
        assert fig["published"] is None or math.isfinite(fig["published"]), (
            f"{label} published is not finite"
        )
        assert fig["data"], f"{label} does not name its data"
        assert fig["weights"], f"{label} does not name its weights"
    check = NOTEBOOK_CHECKS.get(path.stem)
    if check is not None:
        check(metrics)


def test_check_quickstart_can_fail():
    full, masked = "synth (100 clips), full truth", "synth (100 clips), masked"

    def fig(name: str, value: float, data: str) -> dict[str, Any]:
        return {"name": name, "value": value, "unit": "mAP", "data": data}

    baselines = [fig("random-baseline mAP", 0.09, full), fig("random-baseline mAP", 0.55, masked)]
    # full truth 0.25 is below the *masked* baseline: fine, it only has to beat its own protocol's
    check_quickstart({"figures": [fig("zero-shot mAP, GloVe", 0.25, full),
                                  fig("zero-shot mAP, GloVe", 0.70, masked), *baselines]})
    # masked 0.50 beats the full-truth baseline but not the masked one
    with pytest.raises(AssertionError, match="does not beat random 0.5500"):
        check_quickstart({"figures": [fig("zero-shot mAP, GloVe", 0.25, full),
                                      fig("zero-shot mAP, GloVe", 0.50, masked), *baselines]})
    with pytest.raises(AssertionError, match="no random baseline on the same data"):
        check_quickstart({"figures": [fig("zero-shot mAP, GloVe", 0.25, full),
                                      fig("zero-shot mAP, GloVe", 0.70, masked), baselines[0]]})
    with pytest.raises(AssertionError, match="no zero-shot mAP under protocol 'masked'"):
        check_quickstart({"figures": [fig("zero-shot mAP, GloVe", 0.25, full), *baselines]})
    with pytest.raises(AssertionError, match="no random-baseline"):
        check_quickstart({"figures": [fig("zero-shot mAP, GloVe", 0.25, full)]})
    with pytest.raises(AssertionError, match="reports no zero-shot mAP figure"):
        check_quickstart({"figures": baselines})
