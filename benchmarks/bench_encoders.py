"""Every registered audio encoder on the CPU: clips/s at its default input, and achieved GFLOP/s
against this machine's measured matmul peak (how close each gets to the physical limit).

Each encoder is built at its full default size with random weights (speed does not depend on the
weight values) and embeds a batch of 10 s clips at its own sample rate in eval mode under
``torch.inference_mode``. Its floating-point operations are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention; element-wise
work is not counted, so GFLOP/s is a lower bound of the work done). The peak is the best of a few
2048 x 2048 float32 matmuls with the same number of threads. PaSST's patchout and AST's overlap
ablations are in bench_ast.py.

    .venv/bin/python benchmarks/bench_encoders.py [--only yamnet cnn14] [--batch 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import zskit


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a float32 ``size x size`` matmul."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None, help="encoder names (default: all)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2, help="timed batches (best is kept)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {args.threads} thread(s); matmul peak {peak:.1f} GFLOP/s "
          f"(load {os.getloadavg()[0]:.1f}); batch of {args.batch} clips of {args.seconds:g} s")
    print("encoder            | dim  |  Hz   | GFLOP/clip | clips/s | GFLOP/s | of peak | load")
    for name in args.only or zskit.list_audio_encoders():
        torch.manual_seed(0)
        encoder = zskit.create_audio_encoder(name).eval()
        rate = encoder.cfg.sample_rate
        x = 0.1 * torch.randn(args.batch, int(args.seconds * rate))
        with torch.inference_mode():
            counter = FlopCounterMode(display=False)
            with counter:  # also the warm-up
                emb = encoder(x)
            flops = counter.get_total_flops() / args.batch
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                encoder(x)
                best = min(best, time.perf_counter() - t0)
        gflops = flops * args.batch / best / 1e9
        print(f"{name:<18} | {emb.shape[1]:4d} | {rate:5d} | {flops / 1e9:10.2f} | "
              f"{args.batch / best:7.2f} | {gflops:7.1f} | {gflops / peak:6.0%} | "
              f"{os.getloadavg()[0]:.1f}")
        del encoder
    print(f"matmul peak again: {matmul_peak():.1f} GFLOP/s (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
