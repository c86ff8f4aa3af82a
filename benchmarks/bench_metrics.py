"""Metric speed and exactness against the references users would otherwise use, in one run.

- ``mean_average_precision`` on 20,000 clips x 527 classes (AudioSet's size) against
  scikit-learn's macro ``average_precision_score``; the masked variant against scikit-learn
  applied class by class to the known entries (OpenMIC's protocol). Scores are float32 (what a
  model returns) and float64.
  Scores are sigmoid probabilities (the integer-key route), and also the raw logits, which
  are signed (the search route; not masked).
  zskit is timed twice: with ``threads=1`` under ``threadpoolctl.threadpool_limits(1)`` (one
  thread for every native pool numpy or torch might use), and with the default threads (the
  CPUs this process may use); the ratio of process CPU time to wall time shows how many cores a
  call really kept busy. scikit-learn runs on one core either way.
- ``retrieval_metrics`` on 5,000 queries x 25,000 items (each query with 5 relevant items, as a
  clip has 5 captions), checked query by query against a brute-force full sort.

    .venv/bin/python benchmarks/bench_metrics.py [--clips 20000] [--classes 527]
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from functools import partial

import numpy as np
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from zskit.metrics import mean_average_precision, retrieval_metrics, retrieval_per_query


def best_of(fn, repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` timed calls (``timeit``), and the result of one more call."""
    return min(timeit.repeat(fn, number=1, repeat=repeats)), fn()


def cpu_per_wall(fn, repeats: int) -> float:
    """Process CPU time over wall time across ``repeats`` calls: about the cores kept busy."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def sklearn_masked_map(y: np.ndarray, s: np.ndarray, mask: np.ndarray) -> float:
    aps = [average_precision_score(y[mask[:, c], c], s[mask[:, c], c])
           for c in range(y.shape[1]) if y[mask[:, c], c].any()]
    return float(np.mean(aps))


def tagging(n: int, c: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.random((n, c)) < rng.uniform(0.001, 0.1, c)  # AudioSet-like class frequencies
    y[rng.integers(0, n, c), np.arange(c)] = True  # every class has a positive
    logits = 1.5 * y + rng.normal(size=(n, c))
    mask = rng.random((n, c)) < 0.5
    mask[y & (rng.random((n, c)) < 0.8)] = True
    cases = [(dtype, kind, masked) for dtype in (np.float32, np.float64)
             for kind, masked in (("prob", False), ("prob", True), ("logit", False))]
    for dtype, kind, masked in cases:
        s = (1 / (1 + np.exp(-logits)) if kind == "prob" else logits).astype(dtype)
        reference = (partial(sklearn_masked_map, y, s, mask) if masked
                     else partial(average_precision_score, y, s, average="macro"))
        t_ref, ref = best_of(reference, 1)
        ours_one = partial(mean_average_precision, y, s, mask if masked else None, threads=1)
        ours_all = partial(mean_average_precision, y, s, mask if masked else None)
        with threadpool_limits(1):
            t_one, ours = best_of(ours_one, repeats)
            busy_one = cpu_per_wall(ours_one, 2)
        t_all, ours_threaded = best_of(ours_all, repeats)
        assert ours_threaded == ours, "threads changed the mAP"
        busy_all = cpu_per_wall(ours_all, 2)
        name = f"mAP {np.dtype(dtype).name} {kind} {'masked' if masked else 'full'}"
        print(f"{name:<20} zskit {t_one * 1e3:6.1f} ms (1 thread, cpu/wall {busy_one:.2f}),"
              f" {t_all * 1e3:6.1f} ms (default threads, cpu/wall {busy_all:.2f})"
              f" | scikit-learn {t_ref * 1e3:7.1f} ms | ratio {t_ref / t_one:5.1f}x /"
              f" {t_ref / t_all:5.1f}x | |diff| {abs(ours - ref):.1e}"
              f" | load {os.getloadavg()[0]:.1f}")


def brute_force_query(s: np.ndarray, rel: np.ndarray, ks: tuple[int, ...], map_k: int
                      ) -> dict[str, float]:
    """One query by full sort; ties pessimistic (irrelevant before relevant)."""
    order = np.lexsort((rel, -s))
    hits = rel[order]
    first = int(np.argmax(hits)) + 1
    top = hits[:map_k]
    precision = np.cumsum(top) / np.arange(1, top.size + 1)
    out = {f"R@{k}": float(first <= k) for k in ks}
    out[f"mAP@{map_k}"] = float((precision * top).sum() / rel.sum())
    out["MRR"] = 1.0 / first
    return out


def retrieval(n_queries: int, n_items: int, repeats: int, checked: int) -> None:
    rng = np.random.default_rng(1)
    per_query = n_items // n_queries
    dim = 64
    audio = rng.normal(size=(n_queries, dim))
    captions = np.repeat(audio, per_query, axis=0) + 1.5 * rng.normal(size=(n_items, dim))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    scores = np.round(audio @ captions.T, 3).astype(np.float32)  # rounded: ties happen
    relevant = np.zeros((n_queries, n_items), dtype=bool)
    relevant[np.repeat(np.arange(n_queries), per_query), np.arange(n_queries * per_query)] = True
    t_ours, ours = best_of(lambda: retrieval_metrics(scores, relevant), repeats)
    per = retrieval_per_query(scores, relevant)
    rows = rng.choice(n_queries, size=checked, replace=False)
    t0 = time.perf_counter()
    worst = 0.0
    for q in rows:
        ref = brute_force_query(scores[q], relevant[q], (1, 5, 10), 10)
        worst = max(worst, *(abs(per[k][q] - v) for k, v in ref.items()))
    t_ref = (time.perf_counter() - t0) / checked * n_queries
    print(f"retrieval {n_queries} x {n_items}: zskit {t_ours * 1e3:.0f} ms | brute force "
          f"{t_ref:.1f} s (extrapolated from {checked} queries) | ratio {t_ref / t_ours:.0f}x | "
          f"largest per-query |diff| {worst:.1e} | load {os.getloadavg()[0]:.1f}")
    print("  ", {k: round(v, 4) for k, v in ours.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20000)
    ap.add_argument("--classes", type=int, default=527)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--items", type=int, default=25000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checked", type=int, default=200, help="queries checked by brute force")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    tagging(args.clips, args.classes, args.repeats)
    retrieval(args.queries, args.items, args.repeats, args.checked)


if __name__ == "__main__":
    main()
