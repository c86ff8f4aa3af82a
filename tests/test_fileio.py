"""zskit.fileio: atomic writes that never leave half a file or a temporary file behind, JSON, and
streamed digests checked against hashlib."""

from __future__ import annotations

import hashlib
import json

import pytest

from zskit.errors import ConfigError
from zskit.fileio import atomic_write, file_digests, file_sha256, write_json


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
