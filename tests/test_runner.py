"""zskit.runner: parameter coercion, the notebook contract, execution, and reproduce()."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nbformat
import pytest

from zskit import runner
from zskit.errors import ConfigError, NotebookError
from zskit.report import read_metrics

# ---------------------------------------------------------------- coercion (no kernel)

SPEC = {
    name: {"name": name, "inferred_type_name": type_name, "default": "", "help": "a parameter"}
    for name, type_name in {
        "smoke": "bool",
        "n": "int",
        "lr": "float",
        "tag": "str",
        "names": "list[str]",
        "ks": "list[int]",
        "pair": "tuple",
        "maybe": "Optional[int]",
        "opts": "dict",
        "loose": "None",  # untyped
    }.items()
}


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("smoke", "true", True),
        ("smoke", "False", False),
        ("smoke", "1", True),
        ("smoke", "no", False),
        ("n", "42", 42),
        ("n", "-3", -3),
        ("lr", "1e-3", 0.001),
        ("lr", "2", 2.0),
        ("tag", "00", "00"),  # a str parameter keeps its text, even when it looks like a number
        ("tag", "a b", "a b"),
        ("names", "cat, dog", ["cat", "dog"]),
        ("names", '["cat", "dog"]', ["cat", "dog"]),
        ("ks", "1,5,10", [1, 5, 10]),
        ("ks", "[1, 5]", [1, 5]),
        ("pair", "(1, 'a')", (1, "a")),
        ("maybe", "None", None),
        ("maybe", "7", 7),
        ("opts", "{'a': 1}", {"a": 1}),
        ("loose", "5", 5),
        ("loose", "not a literal", "not a literal"),
    ],
)
def test_coerce_parameters_parses_text_to_declared_type(key, text, expected):
    got = runner.coerce_parameters({key: text}, SPEC)[key]
    assert got == expected and type(got) is type(expected), (
        f"{key}={text!r} gave {got!r}, expected {expected!r}"
    )


def test_coerce_parameters_passes_typed_values_unchanged():
    values = {"n": 3, "names": ["x"], "smoke": True}
    assert runner.coerce_parameters(values, SPEC) == values, "non-string values must not be altered"


@pytest.mark.parametrize(
    ("key", "text"),
    [("smoke", "maybe"), ("n", "3.5"), ("lr", "fast"), ("ks", "1,x"), ("opts", "[1]")],
)
def test_coerce_parameters_rejects_unparsable_value(key, text):
    with pytest.raises(ConfigError) as info:
        runner.coerce_parameters({key: text}, SPEC, notebook="nb.ipynb")
    msg = str(info.value)
    assert key in msg and repr(text) in msg and "nb.ipynb" in msg, (
        f"message must name key, value, notebook: {msg}"
    )


def test_coerce_parameters_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        runner.coerce_parameters({"nope": "1"}, SPEC, notebook="nb.ipynb")
    msg = str(info.value)
    assert "'nope'" in msg and all(name in msg for name in SPEC), (
        f"message must list valid names: {msg}"
    )


# ---------------------------------------------------------------- the notebook contract (no kernel)

GOOD_PARAMS = (
    'smoke: bool = False  # tiny run\nout_dir: str = "runs/x"  # output folder\nn: int = 3  # count'
)


def _write_notebook(folder: Path, params: str, n_tagged: int = 1, outputs: bool = False) -> Path:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    cells = []
    for i in range(max(n_tagged, 1)):
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"] if i < n_tagged else []
        cells.append(cell)
    body = nbformat.v4.new_code_cell("print(n)")
    if outputs:
        body.outputs = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]
        body.execution_count = 1
    cells.append(body)
    path = folder / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=meta), path)
    return path


def test_check_notebook_accepts_fixture_and_returns_parameters(fixtures_dir):
    spec = runner.check_notebook(fixtures_dir / "01_ok.ipynb")
    assert list(spec) == ["smoke", "out_dir", "scale", "repeats", "labels", "note"], (
        f"got {list(spec)}"
    )
    assert spec["labels"]["inferred_type_name"] == "list[str]", spec["labels"]


def test_check_notebook_accepts_good_generated_notebook(tmp_path):
    assert set(runner.check_notebook(_write_notebook(tmp_path, GOOD_PARAMS))) == {
        "smoke",
        "out_dir",
        "n",
    }


@pytest.mark.parametrize(
    ("params", "n_tagged", "outputs", "fragment"),
    [
        (GOOD_PARAMS, 0, False, "0 cells are tagged 'parameters'"),
        (GOOD_PARAMS, 2, False, "2 cells are tagged 'parameters'"),
        (GOOD_PARAMS.replace("smoke: bool", "quick: bool"), 1, False, "no `smoke: bool"),
        (GOOD_PARAMS.replace("out_dir: str", "out: str"), 1, False, "no `out_dir: str"),
        (
            GOOD_PARAMS.replace("smoke: bool = False", "smoke: int = 0"),
            1,
            False,
            "'smoke' is declared 'int'",
        ),
        (GOOD_PARAMS.replace("n: int = 3", "n = 3"), 1, False, "'n' has no type"),
        (GOOD_PARAMS.replace("  # count", ""), 1, False, "'n' has no comment"),
        (
            GOOD_PARAMS + "\nlabel: str | None = None  # optional",
            1,
            False,
            "cannot read parameter 'label'",
        ),
        (GOOD_PARAMS, 1, True, "committed outputs"),
    ],
    ids=[
        "untagged",
        "two-tagged",
        "no-smoke",
        "no-out_dir",
        "smoke-int",
        "untyped",
        "uncommented",
        "union",
        "outputs",
    ],
)
def test_check_notebook_catches_contract_breach(tmp_path, params, n_tagged, outputs, fragment):
    path = _write_notebook(tmp_path, params, n_tagged=n_tagged, outputs=outputs)
    with pytest.raises(NotebookError) as info:
        runner.check_notebook(path)
    msg = str(info.value)
    assert fragment in msg, f"expected {fragment!r} in: {msg}"
    assert str(path) in msg, f"the message must name the notebook: {msg}"


def test_check_notebook_on_malformed_fixture(fixtures_dir):
    with pytest.raises(NotebookError, match="0 cells are tagged"):
        runner.check_notebook(fixtures_dir / "03_malformed.ipynb")


def test_missing_notebook_is_a_notebook_error(tmp_path):
    with pytest.raises(NotebookError, match="does not exist"):
        runner.notebook_parameters(tmp_path / "absent.ipynb")


# ---------------------------------------------------------------- finding notebooks


@pytest.mark.parametrize("selector", ["01", "1", "ok", "01_ok", "01_ok.ipynb"])
def test_resolve_notebook_by_number_or_name(fixtures_dir, selector):
    assert runner.resolve_notebook(selector, fixtures_dir) == fixtures_dir / "01_ok.ipynb"


def test_resolve_notebook_accepts_a_path(fixtures_dir):
    path = fixtures_dir / "02_failing.ipynb"
    assert runner.resolve_notebook(str(path)) == path


def test_resolve_unknown_notebook_lists_available(fixtures_dir):
    with pytest.raises(ConfigError) as info:
        runner.resolve_notebook("99", fixtures_dir)
    msg = str(info.value)
    assert "'99'" in msg and "01_ok, 02_failing, 03_malformed" in msg, msg


def test_new_run_dir_is_fresh_each_time(tmp_path):
    first, second = runner.new_run_dir(tmp_path), runner.new_run_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir(), (first, second)
    assert first.parent == tmp_path, first


# ---------------------------------------------------------------- execution (starts kernels)


@pytest.fixture(scope="module")
def ok_run(fixtures_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ok")
    params = {"scale": "2", "repeats": "5", "labels": "a,b", "note": "hi there"}
    return runner.run_notebook(
        fixtures_dir / "01_ok.ipynb", out, parameters=params, smoke=True, progress=False
    )


def _kernel_record(run: runner.NotebookRun) -> dict:
    return json.loads((run.out_dir / "kernel.json").read_text())


def test_run_notebook_ok(ok_run):
    assert ok_run.ok, f"fixture notebook failed: {ok_run.error}"
    assert ok_run.name == "01_ok"
    assert ok_run.notebook == ok_run.out_dir / "01_ok.ipynb" and ok_run.notebook.is_file(), (
        ok_run.notebook
    )
    values = {f["name"]: f["value"] for f in ok_run.metrics["figures"]}
    assert values == {"accuracy, fixture": 1.0, "random baseline": 0.25}, (
        f"scale=2 must double 0.5: {values}"
    )
    assert ok_run.metrics == read_metrics(ok_run.out_dir), (
        "NotebookRun.metrics must be the metrics.json written"
    )
    assert ok_run.seconds > 0


def test_run_notebook_passes_coerced_parameters_to_kernel(ok_run):
    rec = _kernel_record(ok_run)
    expected = {"smoke": True, "scale": 2.0, "repeats": 5, "labels": ["a", "b"], "note": "hi there"}
    assert rec["received"] == expected, rec["received"]
    assert rec["types"] == {
        "smoke": "bool",
        "scale": "float",
        "repeats": "int",
        "labels": "list",
        "note": "str",
    }
    executed = nbformat.read(ok_run.notebook, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f'out_dir = "{ok_run.out_dir}"' in injected[0].source, injected


def test_kernel_is_current_interpreter(ok_run):
    rec = _kernel_record(ok_run)
    assert Path(rec["executable"]) == Path(sys.executable), (
        f"kernel ran {rec['executable']}, not {sys.executable}"
    )
    assert Path(rec["prefix"]) == Path(sys.prefix), (
        f"kernel environment {rec['prefix']} is not {sys.prefix}"
    )


def test_kernel_ignores_a_shadowing_kernelspec(fixtures_dir, tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    broken = {
        "argv": [sys.executable, "-c", "raise SystemExit(3)"],
        "display_name": "broken",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(broken))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = runner.run_notebook(
        fixtures_dir / "01_ok.ipynb", tmp_path / "out", progress=False, timeout=60
    )
    assert run.ok, f"a python3 kernelspec elsewhere on JUPYTER_PATH must not be used: {run.error}"
    assert Path(_kernel_record(run)["executable"]) == Path(sys.executable)


def test_run_notebook_unknown_parameter_fails_before_running(fixtures_dir, tmp_path):
    with pytest.raises(ConfigError) as info:
        runner.run_notebook(
            fixtures_dir / "01_ok.ipynb", tmp_path, parameters={"scal": "2"}, progress=False
        )
    assert "'scal'" in str(info.value) and "scale" in str(info.value), str(info.value)
    assert not (tmp_path / "01_ok.ipynb").exists(), "nothing may run when a parameter is unknown"


def test_out_dir_given_as_a_parameter_is_used(fixtures_dir, tmp_path, monkeypatch):
    import papermill

    executed = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, parameters, **kw: executed.append((dst, parameters)))
    monkeypatch.setattr(runner, "default_runs_dir", lambda: tmp_path / "runs")
    wanted = tmp_path / "wanted"
    nb = fixtures_dir / "01_ok.ipynb"
    run = runner.run_notebook(nb, parameters={"out_dir": str(wanted)}, progress=False)
    assert run.out_dir == wanted, f"-p out_dir {wanted} was replaced by {run.out_dir}"
    assert executed == [(str(wanted / "01_ok.ipynb"), {"out_dir": str(wanted)})], executed
    assert not (tmp_path / "runs").exists(), "no run folder may be made when out_dir is given"

    runner.run_notebook(nb, wanted, parameters={"out_dir": str(wanted)}, progress=False)
    with pytest.raises(ConfigError, match="given twice"):
        runner.run_notebook(nb, tmp_path / "other", parameters={"out_dir": str(wanted)})
    assert len(executed) == 2 and not (tmp_path / "other").exists()


def test_run_notebook_needs_out_dir_parameter(fixtures_dir, tmp_path):
    with pytest.raises(NotebookError, match="03_malformed.ipynb declares no out_dir"):
        runner.run_notebook(fixtures_dir / "03_malformed.ipynb", tmp_path, progress=False)


def test_failing_notebook_raises_when_asked(fixtures_dir, tmp_path):
    with pytest.raises(NotebookError) as info:
        runner.run_notebook(
            fixtures_dir / "02_failing.ipynb", tmp_path, progress=False, raise_on_error=True
        )
    msg = str(info.value)
    assert "02_failing" in msg and "cell 2" in msg and "ValueError" in msg, msg


# ---------------------------------------------------------------- reproduce


@pytest.fixture(scope="module")
def reproduction(fixtures_dir, tmp_path_factory):
    calls = []
    order = [
        fixtures_dir / name for name in ("02_failing.ipynb", "01_ok.ipynb", "03_malformed.ipynb")
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("zskit.data.synth.ensure_corpus", lambda smoke: calls.append(smoke))
        result = runner.reproduce(
            order, smoke=True, runs_dir=tmp_path_factory.mktemp("runs"), progress=False
        )
    return result, calls


def test_reproduce_makes_corpus_first(reproduction):
    _, calls = reproduction
    assert calls == [True], f"ensure_corpus must be called once with smoke=True, got {calls}"


def test_reproduce_records_failure_and_runs_the_others(reproduction):
    result, _ = reproduction
    by_name = {run.name: run for run in result.runs}
    assert list(by_name) == ["02_failing", "01_ok", "03_malformed"], list(by_name)
    assert by_name["01_ok"].ok, (
        f"the notebook after a failing one must still run: {by_name['01_ok'].error}"
    )
    failing = by_name["02_failing"].error
    assert failing is not None and failing.cell_index == 2, (
        f"the fixture raises in cell 2: {failing}"
    )
    assert failing.ename == "ValueError" and failing.evalue == "boom from the failing fixture", (
        failing
    )
    assert "boom from the failing fixture" in failing.traceback and "\x1b[" not in failing.traceback
    assert by_name["02_failing"].metrics is None
    assert by_name["03_malformed"].error.ename == "NotebookError", by_name["03_malformed"].error
    assert not result.ok and [r.name for r in result.failed] == ["02_failing", "03_malformed"]
    assert (result.run_dir / "01_ok" / "01_ok.ipynb").is_file() and (
        result.run_dir / "01_ok" / "metrics.json"
    ).is_file()
    assert "1 passed, 2 failed" in result.summary and str(result.results_md) in result.summary, (
        result.summary
    )


def test_reproduce_results_csv_has_measured_beside_published(reproduction):
    result, _ = reproduction
    with result.results_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(runner.RESULT_COLUMNS), list(rows[0])
    ok_metrics = read_metrics(result.run_dir / "01_ok")
    expected = [(f["name"], f["value"], f["published"]) for f in ok_metrics["figures"]]
    got = [
        (r["name"], float(r["measured"]), float(r["published"]) if r["published"] else None)
        for r in rows
    ]
    assert got == expected, f"results.csv {got} does not match metrics.json {expected}"
    assert all(r["notebook"] == "01_ok" for r in rows), "only the passing notebook has figures"


def test_reproduce_results_md_lists_figures_and_failures(reproduction):
    result, _ = reproduction
    md = result.results_md.read_text()
    assert "| 01_ok | accuracy, fixture | 0.5 | 0.75 | fixture paper, Table 1 |" in md, md
    failed = md.split("## Failed notebooks", 1)
    assert len(failed) == 2, f"results.md needs a failed-notebooks section:\n{md}"
    assert (
        "### 02_failing" in failed[1]
        and "cell 2: ValueError: boom from the failing fixture" in failed[1]
    )
    assert "### 03_malformed" in failed[1] and "01_ok" not in failed[1], failed[1]


def test_reproduce_only_selects_and_rejects_unknown(fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("zskit.data.synth.ensure_corpus", lambda smoke: pytest.fail("must not run"))
    notebooks = sorted(fixtures_dir.glob("*.ipynb"))
    with pytest.raises(ConfigError, match="Unknown notebook '42'.*01_ok, 02_failing, 03_malformed"):
        runner.reproduce(notebooks, only=["42"], runs_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == [], "no run folder may be made for an unknown selection"


def test_kernel_that_dies_at_start_is_a_recorded_failure(fixtures_dir, tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / "broken"
    spec_dir.mkdir(parents=True)
    broken = {
        "argv": [sys.executable, "-c", "raise SystemExit(3)"],
        "display_name": "broken",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(broken))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = runner.run_notebook(
        fixtures_dir / "01_ok.ipynb", tmp_path / "out", kernel_name="broken", progress=False
    )
    assert not run.ok and run.error.cell_index is None, (
        f"a dead kernel must give ok=False: {run.error}"
    )
    assert "died" in run.error.evalue.lower(), run.error


def test_unknown_kernel_name_is_a_notebook_error(fixtures_dir, tmp_path):
    with pytest.raises(NotebookError, match="no Jupyter kernel named 'no-such-kernel'"):
        runner.run_notebook(
            fixtures_dir / "01_ok.ipynb", tmp_path, kernel_name="no-such-kernel", progress=False
        )


def test_relative_data_variables_reach_the_kernel_as_absolute_paths(
    fixtures_dir, tmp_path, monkeypatch
):
    """The kernel starts in the notebook's folder: a relative ZSKIT_DATA would name another one."""
    import os

    import papermill

    seen = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda *a, **kw: seen.append({n: os.environ.get(n) for n in
                                                      ("ZSKIT_DATA", "ZSKIT_CACHE",
                                                       "ZSKIT_SOUNDFONT")}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZSKIT_DATA", "my data")
    monkeypatch.setenv("ZSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZSKIT_SOUNDFONT", raising=False)
    runner.run_notebook(fixtures_dir / "01_ok.ipynb", tmp_path / "out", progress=False)
    assert seen == [{"ZSKIT_DATA": str(tmp_path / "my data"),
                     "ZSKIT_CACHE": str(tmp_path / "cache"), "ZSKIT_SOUNDFONT": None}], seen


def test_reproduce_only_runs_a_notebook_named_twice_once(fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("zskit.data.synth.ensure_corpus", lambda smoke: None)
    ran = []
    monkeypatch.setattr(runner, "run_notebook", lambda path, out, **_: ran.append(path.name)
                        or runner.NotebookRun(path.stem, None, out, {"figures": []}, 0.0))
    notebooks = sorted(fixtures_dir.glob("*.ipynb"))
    runner.reproduce(notebooks, only=["01", "01_ok", "02", "01"], runs_dir=tmp_path,
                     progress=False)
    assert ran == ["01_ok.ipynb", "02_failing.ipynb"], ran


def test_figures_of_a_notebook_that_failed_after_writing_them_are_marked(tmp_path):
    figure = {"name": "mAP", "value": 0.5, "published": 0.6}
    failure = runner.NotebookFailure(7, "ValueError", "late")
    runs = [runner.NotebookRun("01_a", None, tmp_path, {"figures": [figure]}, 1.0),
            runner.NotebookRun("02_b", None, tmp_path, {"figures": [figure]}, 1.0, failure)]
    assert [row["notebook"] for row in runner.results_rows(runs)] == ["01_a", "02_b (FAILED)"]
    md, _ = runner.write_results(tmp_path, runs)
    assert "| 02_b (FAILED) | mAP | 0.5 | 0.6 |" in md.read_text(), md.read_text()


def test_results_md_links_executed_notebooks_inside_a_relative_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = runner.new_run_dir("my runs")  # relative, as from `zskit reproduce --runs-dir`
    out = (run_dir / "00_x").resolve()
    out.mkdir()
    (out / "00_x.ipynb").write_text("{}")
    run = runner.NotebookRun("00_x", out / "00_x.ipynb", out, {"figures": []}, 1.0)
    md, _ = runner.write_results(run_dir, [run])
    assert "| 00_x | passed | 1.0 | 00_x/00_x.ipynb |" in md.read_text(), md.read_text()
