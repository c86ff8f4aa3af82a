"""zskit.fileio: atomic writes that never leave half a file or a temporary file behind, JSON, and
streamed digests checked against hashlib."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import threading
import time

import pytest

from zskit.errors import ConfigError, DataError
from zskit.fileio import atomic_write, file_digests, file_sha256, process_lock, write_json


def test_atomic_write_replaces_the_file_only_on_success(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    with atomic_write(path) as fh:
        fh.write(b"first")
        assert not path.exists(), "the target must not appear before the write completes"
    assert path.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"first", "a failed write must keep the previous file"
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"], "temporary file left behind"
    with atomic_write(tmp_path / "t.txt", "w") as fh:
        fh.write("héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(ConfigError, match="mode"), atomic_write(tmp_path / "x", "ab"):
        pass


def test_write_json_round_trips_and_can_refuse_nan(tmp_path):
    path = write_json(tmp_path / "a.json", {"b": [1, 2.5, None], "a": "x"})
    assert json.loads(path.read_text()) == {"b": [1, 2.5, None], "a": "x"}
    assert path.read_text().endswith("}\n"), "one trailing newline"
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"x": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text())["a"] == "x", "the failed write kept the old file"


def test_digests_match_hashlib_on_a_multi_chunk_file(tmp_path):
    data = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    both = file_digests(path, ("sha256", "md5"))
    assert both == {"sha256": hashlib.sha256(data).hexdigest(),
                    "md5": hashlib.md5(data).hexdigest()}, both


def test_process_lock_lets_one_holder_in_at_a_time(tmp_path):
    """A second holder (here a thread; filelock locks per file object, so it stands for another
    process) waits until the first releases."""
    events = []

    def hold(name):
        with process_lock(tmp_path / "x.lock", "x"):
            events.append(f"{name} in")
            time.sleep(0.2)
            events.append(f"{name} out")

    first = threading.Thread(target=hold, args=("a",))
    first.start()
    time.sleep(0.05)
    hold("b")
    first.join()
    assert events == ["a in", "a out", "b in", "b out"], events


def test_process_lock_in_a_folder_that_cannot_be_made_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with (pytest.raises(DataError, match="Cannot write to .*make it writable"),
          process_lock(blocker / "sub" / "x.lock", "x")):
        pass


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_process_lock_on_a_file_system_without_locks_warns_and_goes_on(code, tmp_path,
                                                                      monkeypatch, caplog):
    """Some network and FUSE mounts (a Drive folder, say) refuse locks: the work goes on
    unlocked, with a warning, instead of failing."""
    def refuse(self, *args, **kwargs):
        raise OSError(code, "locking not supported")

    monkeypatch.setattr("filelock.FileLock.acquire", refuse)
    ran = []
    with (caplog.at_level(logging.WARNING, logger="zskit.fileio"),
          process_lock(tmp_path / "x.lock", "x")):
        ran.append(True)
    assert ran == [True]
    assert "without a lock" in caplog.text
