"""Run the numbered notebooks: check their contract, execute them with papermill, gather results.

Every notebook has one cell tagged ``parameters`` with typed, commented defaults, among them
``smoke: bool`` and ``out_dir: str``, and writes ``out_dir/metrics.json``
(:func:`zskit.report.write_metrics`). :func:`run_notebook` executes one notebook in a kernel of the
current interpreter; :func:`reproduce` runs them all and writes ``results.md`` and ``results.csv``
with every measured figure beside its published one.
"""

from __future__ import annotations

import ast
import csv
import functools
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from zskit.errors import ConfigError, NotebookError, ZskitError
from zskit.fileio import atomic_write
from zskit.paths import notebooks_dir, project_root
from zskit.report import METRICS_FILE, read_metrics

logger = logging.getLogger(__name__)

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"  # notebooks/NN_name.ipynb
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"  # the cell papermill inserts after the parameters cell
RESULT_COLUMNS = ("notebook", "name", "measured", "published", "source", "data", "weights", "unit")

PATH_VARIABLES = ("ZSKIT_DATA", "ZSKIT_CACHE", "ZSKIT_SOUNDFONT")  # read by the notebooks' kernels
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class NotebookFailure:
    """Why a notebook run failed."""

    cell_index: int | None  # 0-based index of the failing cell in the source notebook, if known
    ename: str  # exception type, e.g. "ValueError"
    evalue: str  # exception message
    traceback: str = ""  # plain-text traceback from the kernel

    def describe(self) -> str:
        """One line: ``cell 2: ValueError: boom``."""
        where = f"cell {self.cell_index}: " if self.cell_index is not None else ""
        return f"{where}{self.ename}: {self.evalue}"


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str  # notebook stem, e.g. "00_quickstart"
    notebook: Path | None  # the executed notebook (None when execution never started)
    out_dir: Path
    metrics: dict[str, Any] | None  # the metrics.json it wrote, or None
    seconds: float
    error: NotebookFailure | None = None

    @property
    def ok(self) -> bool:
        """True when the notebook ran through and wrote its metrics."""
        return self.error is None


@dataclass(frozen=True)
class Reproduction:
    """The outcome of :func:`reproduce`: one run per notebook and the results files."""

    run_dir: Path
    runs: tuple[NotebookRun, ...]
    results_md: Path
    results_csv: Path

    @property
    def ok(self) -> bool:
        """True when every notebook passed."""
        return all(run.ok for run in self.runs)

    @property
    def failed(self) -> list[NotebookRun]:
        """The runs that failed."""
        return [run for run in self.runs if not run.ok]

    @property
    def summary(self) -> str:
        """A few lines for the command line: counts, failures and where the results are."""
        n, bad = len(self.runs), len(self.failed)
        seconds = sum(run.seconds for run in self.runs)
        lines = [f"{n} notebook(s) in {seconds:.1f} s: {n - bad} passed, {bad} failed."]
        lines += [f"  FAILED {run.name}: {run.error.describe()}" for run in self.failed]
        lines.append(f"Results: {self.results_md}")
        return "\n".join(lines)


# ---------------------------------------------------------------- finding notebooks


def list_notebooks(directory: str | Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``directory`` (default: the checkout's), sorted."""
    folder = Path(directory) if directory is not None else notebooks_dir()
    if folder is None:
        raise NotebookError(
            "zskit is not imported from a checkout, so there is no notebooks/ folder. "
            "Clone the repository and install it with `pip install -e .`, or pass the notebooks."
        )
    return sorted(folder.glob(NOTEBOOK_GLOB))


def _matches(selector: str, path: Path) -> bool:
    key = selector.removesuffix(".ipynb")
    number, _, title = path.stem.partition("_")
    if key in (path.stem, title):
        return True
    return key.isdigit() and number.isdigit() and int(key) == int(number)


def _select(selector: str, candidates: Sequence[Path]) -> Path:
    hits = [p for p in candidates if _matches(selector, p)]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(p.stem for p in candidates) or "none"
    if hits:
        found = ", ".join(p.stem for p in hits)
        raise ConfigError(f"Notebook {selector!r} is ambiguous ({found}); give the full name.")
    raise ConfigError(f"Unknown notebook {selector!r}. Available notebooks: {names}.")


def resolve_notebook(notebook: str | Path, directory: str | Path | None = None) -> Path:
    """A notebook path, or a name or number (``"00"``, ``"quickstart"``) found in ``directory``."""
    path = Path(notebook).expanduser()
    if path.suffix == ".ipynb" and path.is_file():
        return path
    return _select(str(notebook), list_notebooks(directory))


# ---------------------------------------------------------------- parameters and the contract


def _read_notebook(path: str | Path) -> Any:
    import nbformat

    p = Path(path)
    if not p.is_file():
        raise NotebookError(
            f"Notebook {p} does not exist; check the path (notebooks live in notebooks/)."
        )
    try:
        return nbformat.read(p, as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for a broken file
        raise NotebookError(f"Notebook {p} cannot be read ({err}); restore it from git.") from err


def notebook_parameters(path: str | Path) -> dict[str, dict[str, str]]:
    """The parameters cell of a notebook, read by ``papermill.inspect_notebook``.

    Maps each name to ``{"name", "inferred_type_name", "default", "help"}`` (all strings); an
    untyped parameter has ``inferred_type_name == "None"``.
    """
    import papermill

    _read_notebook(path)  # a clear error for a missing or broken file
    try:
        return papermill.inspect_notebook(str(path))
    except ValueError as err:  # e.g. no kernelspec in the notebook's metadata
        raise NotebookError(f"papermill cannot read the parameters of {path}: {err}") from err


def _parameters_cells(nb: Any) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if PARAMETERS_TAG in cell.metadata.get("tags", [])]


def _assigned_names(source: str) -> list[tuple[str, int]]:
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return names


def check_notebook(path: str | Path) -> dict[str, dict[str, str]]:
    """Check the notebook contract and return the parameters; raise NotebookError listing breaches.

    The contract: exactly one cell tagged ``parameters``; ``smoke: bool`` and ``out_dir: str``
    among its parameters; every parameter typed and commented; no committed outputs.
    """
    nb = _read_notebook(path)
    problems: list[str] = []
    tagged = _parameters_cells(nb)
    spec: dict[str, dict[str, str]] = {}
    if len(tagged) != 1:
        problems.append(
            f"{len(tagged)} cells are tagged '{PARAMETERS_TAG}' (cells {tagged}); "
            "tag exactly one code cell with the typed, commented defaults"
        )
    if tagged:
        spec = notebook_parameters(path)
        source = nb.cells[tagged[0]].source
        try:
            unread = [(n, line) for n, line in _assigned_names(source) if n not in spec]
        except SyntaxError as err:
            problems.append(f"the parameters cell is not valid Python ({err})")
            unread = []
        problems += [
            f"papermill cannot read parameter {name!r} (line {line} of the parameters cell); "
            "write it as `name: type = value  # comment` with a simple annotation "
            "(Optional[str], not str | None)"
            for name, line in unread
        ]
    for name, expected in (("smoke", "bool"), ("out_dir", "str")):
        declared = spec.get(name, {}).get("inferred_type_name")
        if declared is None:
            problems.append(f"no `{name}: {expected} = ...  # comment` parameter")
        elif declared != expected:
            problems.append(
                f"parameter {name!r} is declared {declared!r}; declare it `{name}: {expected}`"
            )
    for name, param in spec.items():
        if param["inferred_type_name"] == "None":
            hint = f"`{name}: <type> = {param['default']}  # ...`"
            problems.append(f"parameter {name!r} has no type; write {hint}")
        if not param["help"]:
            problems.append(f"parameter {name!r} has no comment saying what it does")
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    if with_outputs:
        problems.append(
            f"cells {with_outputs} have committed outputs; clear them before committing "
            f"(jupyter nbconvert --clear-output --inplace {Path(path).name})"
        )
    if problems:
        raise NotebookError(f"{path} breaks the notebook contract:\n  - " + "\n  - ".join(problems))
    return spec


def _coerce_text(text: str, type_name: str) -> Any:
    """Parse command-line text as a value of an annotation such as ``int`` or ``list[str]``."""
    t = type_name.replace(" ", "")
    if t.startswith("Optional[") and t.endswith("]"):
        if text.strip().lower() == "none":
            return None
        return _coerce_text(text, t.removeprefix("Optional[").removesuffix("]"))
    base, _, inner = t.partition("[")
    base, inner = base.lower(), inner.removesuffix("]")
    if base == "bool":
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"{text!r} is not one of {sorted(_TRUE | _FALSE)}")
        return word in _TRUE
    if base == "int":
        return int(text)
    if base == "float":
        return float(text)
    if base == "str":
        return text
    if base in ("list", "tuple"):
        s = text.strip()
        if s.startswith(("[", "(")):
            items = ast.literal_eval(s)
            if not isinstance(items, (list, tuple)):
                raise ValueError(f"{text!r} is not a list")
        else:  # a,b,c
            items = [part.strip() for part in s.split(",") if part.strip()]
        if inner in ("bool", "int", "float", "str"):
            items = [_coerce_text(str(x), inner) for x in items]
        return list(items) if base == "list" else tuple(items)
    if base == "dict":
        value = ast.literal_eval(text)
        if not isinstance(value, dict):
            raise ValueError(f"{text!r} is not a dict")
        return value
    try:  # untyped or unusual annotation: a Python literal if it is one, else the text
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def coerce_parameters(
    values: Mapping[str, Any], spec: Mapping[str, Mapping[str, str]], notebook: str = "the notebook"
) -> dict[str, Any]:
    """Check names against the inspected ``spec`` and parse string values to the declared types.

    Strings (as from ``-p KEY VALUE``) are parsed as the parameter's ``inferred_type_name``
    (bool, int, float, str, list/tuple[...], dict, Optional[...]); other values pass unchanged.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in spec:
            valid = ", ".join(spec) or "none"
            raise ConfigError(f"{notebook} has no parameter {key!r}. Its parameters are: {valid}.")
        if not isinstance(value, str):
            out[key] = value
            continue
        type_name = spec[key]["inferred_type_name"]
        try:
            out[key] = _coerce_text(value, type_name)
        except (ValueError, SyntaxError, TypeError) as err:
            default = spec[key]["default"]
            raise ConfigError(
                f"Parameter {key!r} of {notebook} is declared {type_name}, but {value!r} does not "
                f"parse as one ({err}). Pass a value like its default: {default}."
            ) from err
    return out


# ---------------------------------------------------------------- running


@functools.cache
def _current_python_kernel_manager() -> type:
    """A kernel manager that starts ipykernel with this interpreter, whatever kernelspecs say."""
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec

    class CurrentPythonKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(resource_dir="", **get_kernel_dict())
            return self._kernel_spec

    return CurrentPythonKernelManager


def _source_cell_index(nb: Any, executed_index: int) -> int:
    """Map a cell index of the executed notebook (with papermill's injected cell) to the source."""
    if any(INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells):
        return executed_index  # papermill replaced the old injected cell in place
    tagged = _parameters_cells(nb)
    if not tagged or executed_index <= tagged[0]:
        return executed_index
    return executed_index - 1 if executed_index > tagged[0] + 1 else tagged[0]


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _pin_path_variables() -> None:
    """Make relative ``ZSKIT_DATA`` / ``ZSKIT_CACHE`` / ``ZSKIT_SOUNDFONT`` absolute in os.environ.

    The kernel inherits this environment but starts in the notebook's folder, so a relative path
    would name another folder there than here (where ``reproduce`` renders the corpus).
    """
    for name in PATH_VARIABLES:
        value = os.environ.get(name)
        if value and not Path(value).expanduser().is_absolute():
            os.environ[name] = str(Path(value).expanduser().resolve())


def run_notebook(
    path: str | Path,
    out_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    smoke: bool | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
    raise_on_error: bool = False,
    timeout: float | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill into ``out_dir`` and read the metrics it wrote.

    ``parameters`` override the notebook's defaults (strings are parsed to the declared types);
    ``out_dir`` (default: ``parameters["out_dir"]`` when given, else a new
    ``runs/<timestamp>/<stem>``) and ``smoke`` (unless None) are passed as parameters too.
    Without ``kernel_name``
    the kernel is ipykernel on the current interpreter. A failing cell gives ``ok=False`` with the
    cell and error, or raises NotebookError when ``raise_on_error``. ``timeout``: seconds per cell.
    """
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    path = Path(path)
    nb = _read_notebook(path)
    spec = notebook_parameters(path)
    values = coerce_parameters(dict(parameters or {}), spec, notebook=path.name)
    required = ["out_dir"] + (["smoke"] if smoke is not None else [])
    missing = [name for name in required if name not in spec]
    if missing:
        raise NotebookError(
            f"{path} declares no {' or '.join(missing)} parameter, so it cannot be run by zskit. "
            "Add them to its cell tagged 'parameters' (zskit.runner.check_notebook lists all "
            "problems)."
        )
    asked = values.pop("out_dir", None)
    if out_dir is None:
        out_dir = asked if asked is not None else new_run_dir() / path.stem
    out = Path(out_dir).expanduser().resolve()
    if asked is not None and Path(asked).expanduser().resolve() != out:
        raise ConfigError(
            f"out_dir is given twice, as {str(out_dir)!r} and as the parameter out_dir={asked!r}; "
            "give it once (`zskit run --out DIR` or `-p out_dir DIR`)."
        )
    executed = out / path.name
    if executed == path.resolve():
        raise NotebookError(
            f"out_dir {out} holds the source notebook {path.name}; choose another out_dir."
        )
    out.mkdir(parents=True, exist_ok=True)
    values["out_dir"] = str(out)
    if smoke is not None:
        values["smoke"] = bool(smoke)
    metrics_path = out / METRICS_FILE
    before = _file_stamp(metrics_path)
    _pin_path_variables()

    engine_kwargs: dict[str, Any] = {}
    if kernel_name is None:
        engine_kwargs["kernel_manager_class"] = _current_python_kernel_manager()
    logger.info("running %s into %s with %s", path.name, out, values)
    failure: NotebookFailure | None = None
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters=values,
            kernel_name=kernel_name or "python3",
            language="python",
            progress_bar=progress,
            cwd=str(path.parent.resolve()),
            execution_timeout=timeout,
            **engine_kwargs,
        )
    except PapermillExecutionError as err:
        trace = _ANSI.sub("", "\n".join(err.traceback or []))
        failure = NotebookFailure(
            _source_cell_index(nb, err.cell_index), err.ename, err.evalue, trace
        )
    except (CellTimeoutError, RuntimeError) as err:  # a timeout; the kernel died or never started
        failure = NotebookFailure(None, type(err).__name__, str(err))
    except NoSuchKernel as err:
        raise NotebookError(
            f"There is no Jupyter kernel named {kernel_name!r} to run {path.name}. "
            "List them with `jupyter kernelspec list`, or pass kernel_name=None to use the kernel "
            "of this interpreter."
        ) from err
    seconds = time.perf_counter() - start

    metrics = None
    if _file_stamp(metrics_path) not in (None, before):
        try:
            metrics = read_metrics(metrics_path)
        except (NotebookError, ValueError) as err:
            failure = failure or NotebookFailure(None, type(err).__name__, f"{metrics_path}: {err}")
    elif failure is None:
        failure = NotebookFailure(
            None,
            "NotebookError",
            f"{path.name} ran but wrote no {metrics_path}; end it with "
            "zskit.report.write_metrics(out_dir, figures).",
        )

    run = NotebookRun(
        path.stem, executed if executed.is_file() else None, out, metrics, seconds, failure
    )
    if failure is None:
        logger.info("%s passed in %.1f s", path.name, seconds)
        return run
    logger.warning("%s failed: %s", path.name, failure.describe())
    if raise_on_error:
        raise NotebookError(
            f"{path.name} failed: {failure.describe()}. Open {executed} to see the traceback."
        )
    return run


# ---------------------------------------------------------------- reproducing everything


def default_runs_dir() -> Path:
    """``runs/`` of the checkout, or ``./runs`` when zskit is installed without one."""
    root = project_root()
    return root / "runs" if root is not None else Path.cwd() / "runs"


def new_run_dir(runs_dir: str | Path | None = None) -> Path:
    """Create and return a fresh ``runs_dir/<YYYYmmdd-HHMMSS>`` folder."""
    base = Path(runs_dir).expanduser() if runs_dir is not None else default_runs_dir()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        candidate = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise NotebookError(f"Could not create a new run folder under {base}; remove old runs there.")


def _ensure_default_corpus(smoke: bool) -> Path:
    from zskit.data.synth import ensure_corpus

    return ensure_corpus(smoke=smoke)


def results_rows(runs: Iterable[NotebookRun]) -> list[dict[str, Any]]:
    """One row per figure of every run: measured beside published (see RESULT_COLUMNS).

    A notebook that wrote its figures and then failed in a later cell keeps them, under
    ``"<name> (FAILED)"``, so that nobody mistakes them for the figures of a whole run.
    """
    rows = []
    for run in runs:
        name = run.name if run.ok else f"{run.name} (FAILED)"
        for fig in (run.metrics or {}).get("figures", []):
            row = {**fig, "notebook": name, "measured": fig.get("value")}
            rows.append({key: row.get(key) for key in RESULT_COLUMNS})
    return rows


def _number(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_results(
    run_dir: str | Path, runs: Sequence[NotebookRun], smoke: bool = False
) -> tuple[Path, Path]:
    """Write ``results.md`` and ``results.csv`` into ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    rows = results_rows(runs)
    csv_path = run_dir / "results.csv"
    with atomic_write(csv_path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)

    failed = [run for run in runs if not run.ok]
    lines = [
        f"# zskit results ({'smoke' if smoke else 'full'} run, {datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"{len(runs)} notebook(s): {len(runs) - len(failed)} passed, {len(failed)} failed.",
        "",
        "## Figures: measured beside published",
        "",
        "| notebook | figure | measured | published | source | data | weights | unit |",
        "|---|---|---:|---:|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["notebook"], row["name"], _number(row["measured"]), _number(row["published"])]
        cells += [row[k] or "" for k in ("source", "data", "weights", "unit")]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Notebooks",
        "",
        "| notebook | status | seconds | executed notebook |",
        "|---|---|---:|---|",
    ]
    here = run_dir.resolve()  # run.notebook is absolute, run_dir may be relative (--runs-dir)
    for run in runs:
        link = "-"
        if run.notebook is not None:
            executed = run.notebook.resolve()
            link = (executed.relative_to(here) if executed.is_relative_to(here) else executed)
            link = link.as_posix()  # forward slashes on Windows too, as Markdown readers expect
        status = "passed" if run.ok else "FAILED"
        lines.append(f"| {run.name} | {status} | {run.seconds:.1f} | {_cell(link)} |")
    if failed:
        lines += ["", "## Failed notebooks"]
        for run in failed:
            lines += ["", f"### {run.name}", "", f"Failed: {run.error.describe()}"]
            if run.error.traceback:
                lines += ["", "```", run.error.traceback.strip(), "```"]
    md_path = run_dir / "results.md"
    with atomic_write(md_path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return md_path, csv_path


def reproduce(
    notebooks: Sequence[str | Path] | None = None,
    smoke: bool = False,
    runs_dir: str | Path | None = None,
    only: Sequence[str] | None = None,
    progress: bool = True,
) -> Reproduction:
    """Run every numbered notebook in order into ``runs/<timestamp>/<stem>/`` and tabulate results.

    The default corpus is made first (``zskit.data.synth.ensure_corpus``). A failing notebook is
    recorded and the others still run. ``only`` selects notebooks by number or name (``"00"``);
    a notebook named twice runs once.
    """
    paths = [Path(p) for p in notebooks] if notebooks is not None else list_notebooks()
    if only:
        paths = list(dict.fromkeys(_select(str(s), paths) for s in only))
    if not paths:
        raise NotebookError("No notebooks to run: notebooks/ holds no NN_*.ipynb files.")
    _pin_path_variables()  # before the corpus is made, so it lands where the kernels look
    _ensure_default_corpus(smoke)
    run_dir = new_run_dir(runs_dir)
    logger.info("reproducing %d notebook(s) into %s", len(paths), run_dir)
    runs: list[NotebookRun] = []
    bar = tqdm(paths, desc="notebooks", unit="nb", disable=not progress)
    for path in bar:
        bar.set_postfix_str(path.stem)
        out = run_dir / path.stem
        try:
            run = run_notebook(path, out, smoke=smoke, progress=False)
        except ZskitError as err:  # the notebook could not even start: record it, go on
            logger.warning("%s could not run: %s", path.name, err)
            run = NotebookRun(
                path.stem, None, out, None, 0.0, NotebookFailure(None, type(err).__name__, str(err))
            )
        runs.append(run)
    md, csv_path = write_results(run_dir, runs, smoke=smoke)
    return Reproduction(run_dir, tuple(runs), md, csv_path)
