"""Rendering the default corpus: wall time, clips/s, and the speed-up of the worker pool, in one run.

    .venv/bin/python benchmarks/bench_synth.py [--clips 2000] [--soundfont PATH]

Renders into a temporary folder twice (1 worker, then all CPUs), then times a re-run of the complete
corpus (which must do nothing). The issue's target: the default 2,000 clips in under 2 minutes on
2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from zskit.data.synth import find_soundfont, generate_corpus

TARGET_SECONDS = 120.0


def timed(**kwargs) -> float:
    t0 = time.perf_counter()
    generate_corpus(progress=False, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--soundfont", default=None)
    args = ap.parse_args()
    sf = find_soundfont(args.soundfont)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        one = timed(out_dir=Path(tmp) / "w1", n_clips=args.clips, soundfont=sf, workers=1)
        many = timed(out_dir=Path(tmp) / "wn", n_clips=args.clips, soundfont=sf, workers=cpus)
        again = timed(out_dir=Path(tmp) / "wn", n_clips=args.clips, soundfont=sf, workers=cpus)
        size = sum(f.stat().st_size for f in (Path(tmp) / "wn").rglob("*") if f.is_file())
    print(f"{args.clips} clips of 10 s at 32 kHz, SoundFont {sf.name}, {cpus} CPUs")
    print(f"1 worker : {one:7.1f} s  ({args.clips / one:6.1f} clips/s)")
    print(f"{cpus} workers: {many:7.1f} s  ({args.clips / many:6.1f} clips/s)  speed-up {one / many:4.2f}x")
    print(f"re-run of the complete corpus: {again:.3f} s  ({many / again:,.0f}x faster than rendering)")
    print(f"corpus size on disk: {size / 1e6:.0f} MB")
    if args.clips == 2000:
        print(f"target {TARGET_SECONDS:.0f} s for the default corpus: measured/target = {many / TARGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()
