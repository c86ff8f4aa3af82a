"""Embedding cache: the second call against the first, and resident memory while embedding many clips.

- speed: ``embed_manifest`` with YAMNet (real weights, offline) over the first ``--clips`` clips of
  the default corpus (rendered if missing), then the same call again: the second call only
  fingerprints the files and the weights and opens the memory map.
- memory (in a child process, so its peak is its own): ``--many`` synthetic clips of 0.1 s written
  to a temporary folder and embedded by a tiny encoder; the resident set size (RSS) is sampled
  while the rows go by and printed at 10 %, 25 %, 50 %, 75 % and 100 % of them, with the peak.
  Flat means the RSS does not grow with the number of rows embedded.

    .venv/bin/python benchmarks/bench_cache.py [--clips 200] [--many 100000] [--part both]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

import zskit
from zskit.cache import embed_manifest
from zskit.data import load_corpus
from zskit.data.synth.corpus import ensure_corpus


def status_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MiB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit PCM WAV file (44-byte header): writing raw bytes is far quicker than sf.write."""
    data = (samples * 32767).astype("<i2").tobytes()
    header = b"".join([
        b"RIFF", (36 + len(data)).to_bytes(4, "little"), b"WAVEfmt ",
        (16).to_bytes(4, "little"), (1).to_bytes(2, "little"), (1).to_bytes(2, "little"),
        sample_rate.to_bytes(4, "little"), (2 * sample_rate).to_bytes(4, "little"),
        (2).to_bytes(2, "little"), (16).to_bytes(2, "little"), b"data",
        len(data).to_bytes(4, "little")])
    return header + data


def speed(n_clips: int) -> None:
    corpus = load_corpus(ensure_corpus())
    paths = corpus.paths[:n_clips]
    encoder = zskit.create_audio_encoder("yamnet", pretrained="audioset")
    with tempfile.TemporaryDirectory() as cache_dir:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            emb = embed_manifest(encoder, paths, cache_dir=cache_dir, progress=False)
            times.append(time.perf_counter() - t0)
        fresh = zskit.create_audio_encoder("yamnet", pretrained="audioset")
        third = time.perf_counter()
        again = embed_manifest(fresh, paths, cache_dir=cache_dir, progress=False)
        third = time.perf_counter() - third
        assert np.array_equal(emb, again), "the cached rows changed"
    print(f"speed: {len(paths)} clips of 10 s, YAMNet {tuple(emb.shape)}: first call "
          f"{times[0]:.2f} s, second call {times[1] * 1e3:.1f} ms (ratio {times[0] / times[1]:.0f}x); "
          f"with a freshly loaded encoder (its weights hashed again) {third * 1e3:.1f} ms "
          f"(ratio {times[0] / third:.0f}x); load {os.getloadavg()[0]:.1f}", flush=True)


@dataclass(frozen=True)
class TinyConfig:
    sample_rate: int = 16000
    embed_dim: int = 128


class TinyEncoder(nn.Module):
    """A strided convolution and a masked mean: cheap, so the cache's own costs show."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = TinyConfig()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, self.cfg.embed_dim, kernel_size=400, stride=160)
        self.rows = 0

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        frames = self.conv(x[:, None]).relu()
        n = ((lengths - 400) // 160 + 1).clamp(min=1)
        mask = torch.arange(frames.shape[-1]) < n[:, None]
        return (frames * mask[:, None]).sum(-1) / n[:, None]


def memory(n_clips: int) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audio"
        folder.mkdir()
        t0 = time.perf_counter()
        paths = []
        for i in range(n_clips):
            path = folder / f"{i:06d}.wav"
            path.write_bytes(wav_bytes(rng.uniform(-0.5, 0.5, 1600), 16000))
            paths.append(path)
        assert sf.info(paths[0]).frames == 1600
        print(f"memory: wrote {n_clips} clips of 0.1 s in {time.perf_counter() - t0:.0f} s")
        encoder = TinyEncoder()
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                samples.append((encoder.rows, status_mib("VmRSS")))

        sampler = threading.Thread(target=sample, daemon=True)
        start_rss = status_mib("VmRSS")
        sampler.start()
        t0 = time.perf_counter()
        emb = embed_manifest(encoder, paths, cache_dir=Path(tmp) / "cache", batch_size=256,
                             progress=False, device="cpu")
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        assert emb.shape == (n_clips, 128)
        rows, rss = np.array([r for r, _ in samples]), np.array([m for _, m in samples])
        marks = []
        for share in (0.1, 0.25, 0.5, 0.75, 1.0):
            at = np.flatnonzero(rows >= share * n_clips)
            marks.append(f"{share:.0%} {rss[at[0]]:.0f}" if at.size else f"{share:.0%} -")
        peak = status_mib("VmHWM")
        print(f"memory: embedded {n_clips} clips in {seconds:.0f} s ({n_clips / seconds:.0f} "
              f"clips/s); RSS MiB before {start_rss:.0f}, at rows " + ", ".join(marks) +
              f"; peak {peak:.0f}; the (N, 128) result is {emb.nbytes / 2**20:.0f} MiB; "
              f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100, help="corpus clips for the speed part")
    ap.add_argument("--many", type=int, default=100_000, help="short clips for the memory part")
    ap.add_argument("--part", choices=["both", "speed", "memory"], default="both")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("both", "speed"):
        speed(args.clips)
    if args.part == "both":  # a fresh process: its peak RSS is the memory part's alone
        subprocess.run([sys.executable, __file__, "--part", "memory", "--many", str(args.many),
                        "--threads", str(args.threads)], check=True)
    elif args.part == "memory":
        memory(args.many)


if __name__ == "__main__":
    main()
