"""Text -> audio search at scale: exact batched top-k (torch) against FAISS, queries/s by collection size.

Synthetic embeddings with cluster structure (like real clip embeddings: groups of about 100 clips
of one kind of sound around a centre; queries near a centre), searched through
``zskit.search.EmbeddingIndex``:

- ``exact``: the default back end: a block of queries times all items, then ``torch.topk``;
- ``faiss Flat``: FAISS's exact inner-product index (``IndexFlatIP``): the same results;
- ``faiss IVF``: an approximate inverted-file index (``faiss_factory="IVF<k>,Flat"``, k about
  sqrt(n)), searched with 1 probe (the default) and 16 probes; its recall@10 is measured
  against the exact top 10. Building it (k-means) is timed separately; it takes minutes at 10^6
  items on one core, so by default it is built up to ``--ivf-up-to`` items only.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--dim 256]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from zskit.search import EmbeddingIndex


def clustered(n: int, dim: int, centers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors scattered around random ``centers``, built in chunks to bound memory."""
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(a + 100_000, n)
        pick = rng.integers(0, len(centers), b - a)
        noise = rng.standard_normal((b - a, dim), dtype=np.float32)
        out[a:b] = centers[pick] + noise * np.float32(0.6 / np.sqrt(dim))  # |noise| about 0.6
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def timed_search(index: EmbeddingIndex, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    result = index.search(queries, k)
    return time.perf_counter() - t0, result.indices


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch and FAISS (OpenMP) threads")
    ap.add_argument("--ivf-up-to", type=int, default=100_000, help="largest size given an IVF")
    args = ap.parse_args()
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"faiss-cpu {faiss.__version__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.dim}-d, {args.queries} queries, k={args.k}; queries/s")
    print("items     | exact | faiss Flat | IVF build s | IVF nprobe=1 (recall) | "
          "IVF nprobe=16 (recall) | load")
    for n in args.sizes:
        centers = rng.standard_normal((max(1, n // 100), args.dim), dtype=np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        items = clustered(n, args.dim, centers, rng)
        queries = clustered(args.queries, args.dim, centers, rng)
        # Blocks of queries x all items of about 256 MiB: batched, within memory at any size.
        block = max(1, (1 << 26) // n)
        exact = EmbeddingIndex(items, batch_size=block)
        t_exact, truth = timed_search(exact, queries, args.k)
        del exact
        flat = EmbeddingIndex(items, backend="faiss")
        t_flat, found = timed_search(flat, queries, args.k)
        assert recall(found, truth) > 0.999, "FAISS Flat must return the exact top k"
        del flat
        if n > args.ivf_up_to:
            print(f"{n:>9} | {args.queries / t_exact:5.0f} | {args.queries / t_flat:10.0f} | "
                  f"{'-':>11} | {'-':>21} | {'-':>22} | {os.getloadavg()[0]:.1f}")
            continue
        lists = int(np.sqrt(n))
        t0 = time.perf_counter()
        ivf = EmbeddingIndex(items, backend="faiss", faiss_factory=f"IVF{lists},Flat")
        t_build = time.perf_counter() - t0
        ivf_cols = []
        for nprobe in (1, 16):
            # one build, two settings (EmbeddingIndex(faiss_nprobe=...) fixes it at build time)
            faiss.ParameterSpace().set_index_parameter(ivf._faiss, "nprobe", nprobe)
            t_ivf, found = timed_search(ivf, queries, args.k)
            ivf_cols.append(f"{args.queries / t_ivf:9.0f} ({recall(found, truth):.3f})")
        del ivf
        print(f"{n:>9} | {args.queries / t_exact:5.0f} | {args.queries / t_flat:10.0f} | "
              f"{t_build:11.1f} | {ivf_cols[0]:>21} | {ivf_cols[1]:>22} | "
              f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
