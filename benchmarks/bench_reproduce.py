"""Where the time of ``zskit reproduce --smoke`` goes: a wall-time profile of the whole job.

Runs what ``zskit reproduce [--smoke]`` runs, in a fresh data folder (``ZSKIT_DATA`` pointed at a
temporary directory, so the corpus is rendered and every embedding computed, as on a first run):
the corpus first (timed alone), then every notebook through ``zskit.runner.reproduce``. papermill
records each executed cell's duration; a notebook's wall time minus its cells' is kernel start-up
and shut-down. Cells are put in one bucket by what they call (first match wins):

- imports: a cell that starts with imports and is mostly imports;
- training: ``fit(``, ``fit_...(`` or the notebooks' experiment runners that train
  (``evaluate(``, ``run_methods(``, ``run_condition(``, ``run_retrieval(``,
  ``finetune_method(``, ``explorer.train()``);
- embedding: ``embed_manifest``, ``EmbeddingCache(``, ``.compute()``, ``embedded_corpus``,
  ``spectrogram_images``, ``encode_audio``, ``encode_text``, ``encode_labels``,
  ``embed_texts``, ``.encode(`` or ``.embed(``;
- everything else (metrics, plots, widgets, writing results) is "other".

    .venv/bin/python benchmarks/bench_reproduce.py [--full] [--only 00 01] [--keep DIR]
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat

BUCKETS = ("kernel start-up", "imports", "embedding", "training", "other")
TRAINING = re.compile(r"\bfit\(|\bfit_\w+\(|\bevaluate\(|run_methods\(|run_condition\(|"
                      r"run_retrieval\(|finetune_method\(|explorer\.train\(\)")
EMBEDDING = re.compile(r"embed_manifest|EmbeddingCache\(|\.compute\(\)|embedded_corpus|"
                       r"spectrogram_images|encode_audio|encode_text|encode_labels|embed_texts|"
                       r"\.encode\(|\.embed\(")


def bucket(source: str) -> str:
    """Which bucket a code cell's time goes to."""
    try:
        imports = [isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(source).body]
    except SyntaxError:  # IPython magics
        imports = []
    if imports and imports[0] and sum(imports) >= len(imports) / 2:
        return "imports"
    if TRAINING.search(source):
        return "training"
    if EMBEDDING.search(source):
        return "embedding"
    return "other"


def profile(executed: Path, wall: float) -> dict[str, float]:
    """Seconds per bucket of one executed notebook whose run took ``wall`` seconds."""
    nb = nbformat.read(executed, as_version=4)
    seconds: dict[str, float] = defaultdict(float)
    for cell in nb.cells:
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.cell_type == "code" and duration is not None:
            seconds[bucket(cell.source)] += float(duration)
    seconds["kernel start-up"] = max(0.0, wall - sum(seconds.values()))
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the default run instead of --smoke")
    ap.add_argument("--keep", default=None, help="data folder to use and keep (default: temporary)")
    ap.add_argument("--only", nargs="+", default=None, help="notebook numbers (default: all)")
    args = ap.parse_args()
    smoke = not args.full
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.keep or tmp)
        os.environ["ZSKIT_DATA"] = str(data)  # before zskit resolves its data folder
        from zskit.data.synth import ensure_corpus
        from zskit.runner import reproduce

        start = time.perf_counter()
        load_start = os.getloadavg()[0]
        ensure_corpus(smoke=smoke)
        corpus_seconds = time.perf_counter() - start
        result = reproduce(smoke=smoke, runs_dir=data / "runs", only=args.only, progress=False)
        total = time.perf_counter() - start
        report(result.runs, corpus_seconds, total, smoke, load_start)


def report(runs, corpus_seconds: float, total: float, smoke: bool, load_start: float) -> None:
    """Print the per-notebook table and the shares (while the executed notebooks still exist)."""
    totals: dict[str, float] = defaultdict(float)
    print(f"zskit reproduce{' --smoke' if smoke else ''}: {total:.0f} s wall (load average "
          f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end)")
    print("notebook                        |  wall s | " + " | ".join(f"{b:>15}" for b in BUCKETS)
          + " | ok")
    for run in runs:
        if run.notebook is None:
            print(f"{run.name:<31} | {run.seconds:7.1f} | (no executed notebook) | "
                  f"{run.error.describe() if run.error else ''}")
            totals["kernel start-up"] += run.seconds
            continue
        seconds = profile(run.notebook, run.seconds)
        for name, value in seconds.items():
            totals[name] += value
        print(f"{run.name:<31} | {run.seconds:7.1f} | "
              + " | ".join(f"{seconds.get(b, 0.0):15.1f}" for b in BUCKETS)
              + f" | {'yes' if run.ok else 'NO: ' + run.error.describe()[:60]}")
    totals["data generation"] = corpus_seconds
    other = total - sum(totals.values())  # reproduce's own work: results table, bookkeeping
    print("shares of the wall time: " + ", ".join(
        f"{name} {value / total:.0%} ({value:.0f} s)"
        for name, value in sorted({**totals, "runner": other}.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
