"""Two processes fetching the same file, extracting the same archive or merging the same embedding
cache take turns through a lock file: the later one waits, then finds and returns the finished
result instead of corrupting or deleting it.

The race is made deterministic by taking the lock here, as the other process would, and starting
the second caller in a thread; once that caller waits for the lock, the test puts the finished
result in place (what the other process would have done) and releases the lock.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from zskit.cache import MERGE_LOCK, EmbeddingCache
from zskit.data import download as dl
from zskit.data.download import download, extract
from zskit.encoders.base import EncoderOutput
from zskit.train import DistInfo

PAYLOAD = b"weights " * 4000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@contextmanager
def _held_elsewhere(lock_path: Path, monkeypatch) -> Iterator[threading.Event]:
    """Hold ``lock_path`` (as another process would); the event tells that a caller waits for it."""
    waiting = threading.Event()
    acquire = filelock.FileLock.acquire

    def noting_acquire(self, *args, **kwargs):
        if Path(self.lock_file) == lock_path:
            waiting.set()
        return acquire(self, *args, **kwargs)

    holder = filelock.FileLock(str(lock_path))
    holder.acquire()
    monkeypatch.setattr(filelock.FileLock, "acquire", noting_acquire)
    try:
        yield waiting
    finally:
        holder.release()


def _wait_until_blocked(caller: Future, waiting: threading.Event) -> None:
    while not caller.done() and not waiting.wait(0.02):
        pass
    if not waiting.is_set():
        error = caller.exception()
        pytest.fail("the second caller did not wait for the lock; it "
                    + (f"raised {error!r}" if error else f"returned {caller.result()!r}"))


def test_second_download_waits_and_returns_the_file_the_first_fetched(http_dir, monkeypatch):
    _, base = http_dir  # serves nothing: the waiting call must not download again
    dest = dl.cache_dir()
    dest.mkdir(parents=True)
    final = dest / "w.pt"
    with ThreadPoolExecutor(max_workers=1) as second:
        with _held_elsewhere(Path(f"{final}.lock"), monkeypatch) as waiting:
            caller = second.submit(download, f"{base}/w.pt", dest, sha256=SHA, progress=False,
                                   retries=1)
            _wait_until_blocked(caller, waiting)
            final.write_bytes(PAYLOAD)  # the first process finished its download
        assert caller.result(timeout=20) == final
    assert final.read_bytes() == PAYLOAD and not Path(f"{final}.part").exists()


def test_second_extraction_waits_and_returns_the_finished_folder(tmp_path, monkeypatch):
    archive = tmp_path / "vectors.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("vectors/a.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"alpha"))
    dest = tmp_path / "out"
    with ThreadPoolExecutor(max_workers=1) as second:
        with _held_elsewhere(Path(f"{dest}.lock"), monkeypatch) as waiting:
            caller = second.submit(extract, archive, dest)
            _wait_until_blocked(caller, waiting)
            dl._extract_into(archive, dest)  # the first process finished its extraction
            (dest / "vectors" / "a.txt").write_bytes(b"kept")  # to see that nobody re-extracts
        assert caller.result(timeout=20) == dest
    assert (dest / "vectors" / "a.txt").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.lock", "vectors.tar.gz"]


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


@dataclass(frozen=True)
class _Cfg:
    sample_rate: int = 8000


class _FirstSamples(nn.Module):
    """The first 3 samples of each clip as its embedding (enough to check the rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = _Cfg()

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(embedding=x[:, :3])


def test_second_merge_waits_and_keeps_the_cache_the_first_merged(tmp_path, monkeypatch):
    clips = []
    for i in range(5):
        clips.append(tmp_path / f"c{i}.wav")
        sf.write(clips[-1], np.full(800, 0.01 * (i + 1), np.float32), 8000, subtype="FLOAT")
    kw = {"cache_dir": tmp_path / "cache", "shard_size": 2, "progress": False, "device": "cpu"}
    mine, theirs = EmbeddingCache(_FirstSamples(), clips, **kw), EmbeddingCache(
        _FirstSamples(), clips, **kw)
    shards = [(0, 2), (2, 4), (4, 5)]
    mine.directory.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=1) as second:
        with _held_elsewhere(mine.directory / MERGE_LOCK, monkeypatch) as waiting:
            caller = second.submit(mine.compute)
            _wait_until_blocked(caller, waiting)
            theirs._merge_shards(shards, DistInfo())  # the other process merged, took the shards
            merged = _stamp(theirs.directory / "embeddings.npy")
        assert caller.result(timeout=20) is mine
    assert _stamp(mine.directory / "embeddings.npy") == merged, "the cache was merged twice"
    expected = np.repeat(0.01 * np.arange(1, 6, dtype=np.float32)[:, None], 3, axis=1)
    np.testing.assert_allclose(mine.embeddings, expected, rtol=1e-6)
