"""Small file helpers every writer in zskit shares: atomic writes, JSON, streamed digests.

``atomic_write(path)`` writes to a temporary file beside ``path`` (same file system, so the
rename is atomic; created with the umask's mode, unlike a 0600 ``mkstemp`` file), fsyncs it, moves
it into place with ``os.replace`` and fsyncs the folder: a reader sees the old file or the complete
new one, never half of one, and a failure deletes the temporary file and leaves ``path`` as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from filelock import FileLock

from zskit.errors import ConfigError, DataError

__all__ = ["atomic_write", "file_digests", "file_sha256", "load_cache_file", "process_lock",
           "write_json"]

logger = logging.getLogger(__name__)

# errno values of a file system that has no locks (some network and FUSE mounts)
_NO_LOCKING = {errno.ENOSYS, errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP}

_CHUNK = 1 << 20  # bytes read at a time when hashing


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"wb"`` (default), ``"w"`` (text, UTF-8) or ``"w+b"`` (for writers that read
    back, e.g. soundfile). Parent folders are created. On an exception the temporary file is
    deleted and the exception propagates.
    """
    if not mode.startswith("w") or "a" in mode:
        raise ConfigError(f"atomic_write mode={mode!r} must start with 'w' (e.g. 'wb' or 'w').")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, "x" + mode[1:], encoding=encoding) as fh:  # "x": never reuse a file
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries, so that a rename into it survives a power cut (POSIX); where
    folders cannot be opened or synced (Windows, some network file systems) this is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2,
               allow_nan: bool = True) -> Path:
    """Write ``obj`` as indented JSON (one trailing newline), atomically; returns ``path``."""
    text = json.dumps(obj, indent=indent, allow_nan=allow_nan) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def load_cache_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` of a cache file zskit wrote; a damaged or foreign
    file (a copy cut short, another program's file under that name) raises :class:`DataError`
    telling the user to delete it, so that the next run computes it again."""
    import torch  # fileio itself stays importable without torch

    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        # only the type: torch's text for a failed weights-only load suggests weights_only=False
        raise DataError(f"cache file {path} could not be read ({type(err).__name__}; the cause "
                        "is chained below); delete it and run again to recompute it.") from err


def file_digests(path: str | os.PathLike,
                 algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file by ``hashlib`` algorithm name, reading it once in 1 MiB chunks."""
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, streamed (large files are never read whole)."""
    return file_digests(path, ("sha256",))["sha256"]


@contextmanager
def process_lock(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the inter-process lock file ``lock_path`` (``filelock``), so that one process at a
    time writes ``what`` (two torchrun ranks, two notebooks).

    A folder that cannot be written is a :class:`~zskit.errors.DataError`. A file system without
    locks (some network and FUSE mounts) gets a warning and no lock: concurrent writers there
    are the user's to avoid, as before zskit locked.
    """
    lock_path = Path(lock_path)
    lock = FileLock(str(lock_path))
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as err:
        if err.errno in _NO_LOCKING:
            logger.warning("%s cannot be locked (%s); writing %s without a lock: run one process "
                           "at a time on this folder", lock_path, err, what)
            yield
            return
        raise DataError(
            f"Cannot write to {lock_path.parent} ({err}); make it writable, or choose another "
            "folder (dest_dir or cache_dir, or the ZSKIT_DATA / ZSKIT_CACHE environment variables)."
        ) from err
    try:
        yield
    finally:
        lock.release()
