"""The ``zskit`` command: make the synthetic corpus, run one notebook, reproduce them all, list encoders.

Parsing and printing only; the work is done by :mod:`zskit.runner` and :mod:`zskit.data.synth`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from zskit import __version__
from zskit.errors import ZskitError


def _cmd_synth(args: argparse.Namespace) -> int:
    from zskit.data.synth import generate_corpus

    kwargs = {"seed": args.seed, "smoke": args.smoke, "workers": args.workers}
    if args.n_clips is not None:
        kwargs["n_clips"] = args.n_clips
    path = generate_corpus(args.out, **kwargs)
    print(f"Corpus written to {path}")
    return 0


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _print_figures(metrics: dict) -> None:
    for fig in metrics.get("figures", []):
        line = f"  {fig['name']}: {_fmt(fig['value'])} {fig.get('unit') or ''}".rstrip()
        if fig.get("published") is not None:
            source = fig.get("source") or "no source given"
            line += f"  (published {_fmt(fig['published'])}, {source})"
        print(line)


def _cmd_run(args: argparse.Namespace) -> int:
    from zskit import runner

    path = runner.resolve_notebook(args.notebook)
    run = runner.run_notebook(path, args.out, parameters=dict(args.parameters), smoke=args.smoke)
    if run.ok:
        print(f"{run.name} passed in {run.seconds:.1f} s. Executed notebook: {run.notebook}")
        _print_figures(run.metrics or {})
        return 0
    print(f"{run.name} FAILED: {run.error.describe()}", file=sys.stderr)
    if run.error.traceback:
        print(run.error.traceback, file=sys.stderr)
    if run.notebook is not None:
        print(f"Executed notebook: {run.notebook}", file=sys.stderr)
    return 1


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from zskit import runner

    result = runner.reproduce(
        smoke=args.smoke, runs_dir=args.runs_dir, only=args.only, progress=True
    )
    print(result.summary)
    return 0 if result.ok else 1


def _cmd_encoders(args: argparse.Namespace) -> int:
    from zskit.encoders.registry import weights_markdown

    print(weights_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zskit`` command."""
    parser = argparse.ArgumentParser(
        prog="zskit", description="Zero-shot audio tagging kit: data, notebooks, reproduction."
    )
    parser.add_argument("--version", action="version", version=f"zskit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="make data sets")
    datasets = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    synth = datasets.add_parser("synth", help="render the synthetic default corpus")
    synth.add_argument("--out", type=Path, help="folder to write (default: under the data root)")
    synth.add_argument("--n-clips", type=int, help="number of clips (default: the corpus default)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--smoke", action="store_true", help="the tiny corpus used by smoke runs")
    synth.add_argument("--workers", type=int, help="rendering processes (default: automatic)")
    synth.set_defaults(func=_cmd_synth)

    run = commands.add_parser("run", help="run one notebook with papermill")
    run.add_argument(
        "notebook", help="a path, or a name or number in notebooks/ (e.g. 00, quickstart)"
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        dest="parameters",
        metavar=("KEY", "VALUE"),
        help="override a parameter of the notebook (repeatable); -p out_dir DIR is --out DIR",
    )
    run.add_argument(
        "--out",
        type=Path,
        help="output folder (default: the -p out_dir value, else runs/<timestamp>/<notebook>)",
    )
    run.add_argument("--smoke", action="store_true", default=None, help="tiny run (smoke=True)")
    run.set_defaults(func=_cmd_run)

    rep = commands.add_parser("reproduce", help="run every notebook and tabulate the results")
    rep.add_argument("--smoke", action="store_true", help="tiny runs of every notebook")
    rep.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these (e.g. 00 01)")
    rep.add_argument("--runs-dir", type=Path, help="where run folders go (default: runs/)")
    rep.set_defaults(func=_cmd_reproduce)

    enc = commands.add_parser("encoders", help="list every encoder's weights and how far they were checked")
    enc.set_defaults(func=_cmd_encoders)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zskit`` command; return its exit code (2 for a usage, zskit or file error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except ZskitError as err:
        print(f"zskit: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # mostly a path given on the command line: a file, missing, read-only
        print(f"zskit: error: {err}. Check the paths you gave (--out, --runs-dir): each must be "
              "a folder, or not exist yet, on a disk where you may write.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zskit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
