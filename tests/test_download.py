"""zskit.data.download against a local HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import stat
import tarfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zskit.data import download as dl
from zskit.data.download import (
    ChecksumError,
    DownloadError,
    RemoteFile,
    UnsafeArchiveError,
    cache_dir,
    download,
    download_and_extract,
    extract,
)
from zskit.errors import ConfigError, DataError

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes: several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Behaviour:
    """What the test server does; tests change it between calls."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after this many body bytes (once)
    ignore_range: bool = False
    corrupt: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    on_get: Callable[[], None] | None = None  # run (once) before answering the next request
    etag: str | None = None  # sent with every answer when set
    send_length: bool = True  # False: no Content-Length, the body ends when the connection does
    honour_if_range: bool = True  # False: answer a Range request even if If-Range names old data
    if_ranges: list[str | None] = field(default_factory=list)  # the If-Range header of each GET


class Server:
    def __init__(self) -> None:
        self.behaviour = Behaviour(files={"/data.bin": PAYLOAD})
        behaviour = self.behaviour

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                behaviour.requests.append((self.path, rng))
                behaviour.if_ranges.append(self.headers.get("If-Range"))
                if behaviour.on_get is not None:
                    hook, behaviour.on_get = behaviour.on_get, None
                    hook()
                body = behaviour.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if behaviour.corrupt:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                start = 0
                if_range = behaviour.if_ranges[-1]
                stale = (behaviour.honour_if_range and if_range is not None
                         and if_range != behaviour.etag)
                if rng and not behaviour.ignore_range and not stale:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                if behaviour.etag:
                    self.send_header("ETag", behaviour.etag)
                chunk = body[start:]
                if behaviour.send_length:
                    self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if behaviour.cut_after is not None:
                    chunk, behaviour.cut_after = chunk[: behaviour.cut_after], None
                    self.close_connection = True
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/data.bin") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def _get(url: str, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("sha256", SHA)
    return download(url, dest, progress=False, timeout=5, **kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- cache dir and RemoteFile


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSKIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c", "ZSKIT_CACHE must win"
    monkeypatch.delenv("ZSKIT_CACHE")
    monkeypatch.setenv("ZSKIT_DATA", str(tmp_path / "d"))
    assert cache_dir() == tmp_path / "d" / "downloads", "default is data_root()/downloads"


def test_remote_file_name_and_validation():
    rf = RemoteFile("https://host/a/b%20c.zip?download=1", sha256=SHA.upper(), mirrors=["http://m/x"])
    assert rf.name == "b c.zip", f"name from URL path, unquoted, without query: {rf.name!r}"
    assert rf.sha256 == SHA, "digest should be normalised to lower case"
    assert rf.urls == ("https://host/a/b%20c.zip?download=1", "http://m/x")
    with pytest.raises(ConfigError, match="sha256"):
        RemoteFile("https://host/x", sha256="abc")
    with pytest.raises(ConfigError, match="filename"):
        RemoteFile("https://host/")
    with pytest.raises(ConfigError, match="retries"):
        download("https://host/x", "/nonexistent", retries=0)


# ---------------------------------------------------------------- downloads


def test_normal_download(server, tmp_path):
    out = _get(server.url(), tmp_path)
    assert out == tmp_path / "data.bin"
    assert out.read_bytes() == PAYLOAD, "downloaded bytes differ from the served ones"
    assert not (tmp_path / "data.bin.part").exists(), ".part must be renamed away"
    assert server.behaviour.requests == [("/data.bin", None)], server.behaviour.requests


def test_md5_and_remote_file(server, tmp_path):
    rf = RemoteFile(server.url(), md5=hashlib.md5(PAYLOAD).hexdigest(), filename="renamed.bin")
    out = download(rf, tmp_path, progress=False)
    assert out.name == "renamed.bin" and out.read_bytes() == PAYLOAD


def test_interrupted_download_resumes(server, tmp_path):
    server.behaviour.cut_after = 50_000
    with pytest.raises(DownloadError) as info:
        _get(server.url(), tmp_path, retries=1)
    part = tmp_path / "data.bin.part"
    assert part.is_file(), "the partial file must be kept for resuming"
    n = part.stat().st_size
    assert 0 < n < len(PAYLOAD), f"part has {n} bytes"
    assert str(part) in str(info.value), "message should say the partial file is kept"
    assert not (tmp_path / "data.bin").exists()

    out = _get(server.url(), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert server.behaviour.requests[-1] == ("/data.bin", f"bytes={n}-"), server.behaviour.requests
    assert not part.exists()


def test_retry_within_one_call_resumes(server, tmp_path):
    server.behaviour.cut_after = 70_000
    out = _get(server.url(), tmp_path, retries=2)
    assert out.read_bytes() == PAYLOAD
    ranges = [r for _, r in server.behaviour.requests]
    assert ranges == [None, "bytes=70000-"], ranges


def test_server_ignoring_range_restarts(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"garbage that is not the file's start")
    server.behaviour.ignore_range = True
    out = _get(server.url(), tmp_path)
    assert out.read_bytes() == PAYLOAD, "a 200 answer to a Range request must restart from zero"
    assert server.behaviour.requests[0][1] is not None, "a Range request should have been sent"


def test_complete_part_gets_416_and_is_used(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    out = _get(server.url(), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert server.behaviour.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]


def test_corrupted_download_rejected(server, tmp_path):
    server.behaviour.corrupt = True
    with pytest.raises(ChecksumError) as info:
        _get(server.url(), tmp_path)
    msg = str(info.value)
    actual = hashlib.sha256(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]).hexdigest()
    for needle in (server.url(), SHA, actual):
        assert needle in msg, f"{needle!r} missing from: {msg}"
    assert isinstance(info.value, DataError)
    kept = [p.name for p in tmp_path.iterdir()]
    assert kept == ["data.bin.lock"], f"nothing but the (empty) lock file may be kept: {kept}"


def test_part_that_another_writer_extended_is_not_kept(server, tmp_path):
    """A .part that grew beyond what the server sent (another process appending to it) is deleted
    and fetched again, even for a file without a checksum that would have caught it."""
    part = tmp_path / "data.bin.part"
    part.write_bytes(PAYLOAD[:1000])  # left by an interrupted download

    def other_writer() -> None:
        with open(part, "ab") as f:
            f.write(PAYLOAD[1000:5000])

    server.behaviour.on_get = other_writer
    out = download(server.url(), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == PAYLOAD, f"cached file has {out.stat().st_size} bytes"
    assert [r for _, r in server.behaviour.requests] == ["bytes=1000-", None]


def test_stale_part_that_fails_the_checksum_is_fetched_again_from_zero(server, tmp_path):
    """A .part of an older upstream version (or a bad chunk) is resumed; when the result fails the
    checksum, the same URL is tried once more from zero before giving up."""
    (tmp_path / "data.bin.part").write_bytes(bytes(reversed(PAYLOAD[:50_000])))
    assert _get(server.url(), tmp_path, retries=1).read_bytes() == PAYLOAD
    assert [r for _, r in server.behaviour.requests] == ["bytes=50000-", None]

    server.behaviour.requests.clear()
    server.behaviour.corrupt = True  # a truly bad server still fails, after one fresh try
    (tmp_path / "data.bin").unlink()
    (tmp_path / "data.bin.part").write_bytes(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:50_000])
    with pytest.raises(ChecksumError, match="deleted"):
        _get(server.url(), tmp_path, retries=1)
    assert [r for _, r in server.behaviour.requests] == ["bytes=50000-", None]
    assert not (tmp_path / "data.bin.part").exists()


def test_verified_file_in_a_read_only_cache_is_used(server, tmp_path, monkeypatch):
    (tmp_path / "data.bin").write_bytes(PAYLOAD)  # put there by an admin, without a sidecar

    def read_only(path, *args, **kwargs):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(dl, "write_json", read_only)
    monkeypatch.setattr(dl, "FileLock", None, raising=False)  # a lock there would fail too
    assert _get(server.url(), tmp_path) == tmp_path / "data.bin"
    assert server.behaviour.requests == [], "a present, valid file must not be fetched"


def test_present_file_not_downloaded_again(server, tmp_path, monkeypatch):
    _get(server.url(), tmp_path)
    n = len(server.behaviour.requests)
    hashed = []
    real = dl._file_digests
    monkeypatch.setattr(dl, "_file_digests", lambda p: hashed.append(p) or real(p))
    assert _get(server.url(), tmp_path).read_bytes() == PAYLOAD
    assert len(server.behaviour.requests) == n, "a verified file must not be fetched again"
    assert hashed == [], "the sidecar should spare re-hashing an unchanged file"

    by_hand = tmp_path / "hand"
    by_hand.mkdir()
    (by_hand / "data.bin").write_bytes(PAYLOAD)
    assert _get(server.url(), by_hand).read_bytes() == PAYLOAD
    assert len(server.behaviour.requests) == n, "a file put in place by hand must be used"
    assert len(hashed) == 1, "a file without sidecar is hashed once"


def test_stale_file_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"old version")
    out = _get(server.url(), tmp_path)
    assert out.read_bytes() == PAYLOAD, "a present file with the wrong checksum must be replaced"
    assert len(server.behaviour.requests) == 1


def test_unreachable_url(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/x.zip"
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path, sha256=SHA, progress=False, timeout=2, retries=1)
    msg = str(info.value)
    for needle in (url, str(tmp_path / "x.zip"), SHA):
        assert needle in msg, f"{needle!r} missing from: {msg}"


def test_http_404_then_mirror(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        _get(server.url("/missing.bin"), tmp_path)
    assert len(server.behaviour.requests) == 1, "a 404 must not be retried"
    rf = RemoteFile(server.url("/missing.bin"), sha256=SHA, filename="data.bin",
                    mirrors=(server.url(),))
    assert download(rf, tmp_path, progress=False).read_bytes() == PAYLOAD


# ---------------------------------------------------------------- extraction

GOOD = {"a.txt": b"alpha", "sub/b.txt": b"beta" * 100}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _tar(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """(name, data, symlink target): data for files, target for symlinks."""
    comp = {".gz": "gz", ".xz": "xz", ".bz2": "bz2"}.get(path.suffix, "")
    with tarfile.open(path, f"w:{comp}") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".zskit-extracted"
    }


# 3.12/3.13 warn about tar extraction without a filter, which the forced fallback path does
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.xz", "tar", "tar.bz2-no-filter"])
def test_good_archives_extract_once(tmp_path, monkeypatch, kind):
    if kind.endswith("-no-filter"):
        kind = kind.removesuffix("-no-filter")
        monkeypatch.setattr(dl, "_HAS_TAR_FILTERS", False)
    if kind == "zip":
        archive = _zip(tmp_path / "good.zip", GOOD)
    else:
        archive = _tar(tmp_path / f"good.{kind}", [(n, d, None) for n, d in GOOD.items()])
    dest = extract(archive, tmp_path / "out")
    assert dest == tmp_path / "out"
    assert _tree(dest) == GOOD, "extracted files differ from the archive's"
    (dest / "a.txt").write_bytes(b"edited")
    archive.unlink()
    assert extract(archive, dest) == dest, "second call must return at once"
    assert (dest / "a.txt").read_bytes() == b"edited", "second call must not re-extract"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert leftovers == [], leftovers


def test_extracted_folder_follows_the_umask(tmp_path):
    archive = _zip(tmp_path / "d.zip", GOOD)
    old = os.umask(0o022)
    try:
        dest = extract(archive, tmp_path / "d")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(dest.stat().st_mode)
    assert mode == 0o755, f"extracted folder has mode {oct(mode)}; others could not read it"


def _leftovers(folder: Path) -> list[str]:
    """What a failed extraction left in ``folder``, but for the (empty) lock file beside dest."""
    return sorted(name for name in os.listdir(folder) if not name.endswith(".lock"))


def _unsafe_zip(tmp_path: Path, name: str) -> Path:
    return _zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/evil.txt"])
def test_malicious_zip(tmp_path, name):
    archive = _unsafe_zip(tmp_path, name)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, work / "out")
    assert name in str(info.value), f"message should name the member: {info.value}"
    assert _leftovers(work) == [], f"nothing may remain: {os.listdir(work)}"
    assert not (tmp_path / "evil.txt").exists()


def test_malicious_tar_absolute(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "abs.txt"
    archive = _tar(tmp_path / "bad.tar.gz", [("ok.txt", b"x", None), (str(target), b"evil", None)])
    with pytest.raises(UnsafeArchiveError, match="abs.txt"):
        extract(archive, tmp_path / "work" / "out")
    assert not target.exists()
    assert _leftovers(tmp_path / "work") == []


@pytest.mark.parametrize(
    "members",
    [
        [("link", None, "../../outside"), ("link/evil.txt", b"evil", None)],
        [("link", None, "ABSOLUTE"), ("link/evil.txt", b"evil", None)],
        # each link looks harmless textually; through the first one the second escapes
        [("p/q/r", None, "../.."), ("p/q/r/s", None, "../../../outside"),
         ("s/evil.txt", b"evil", None)],
    ],
    ids=["relative", "absolute", "chain"],
)
@pytest.mark.parametrize("stdlib_filter", [True, False], ids=["data_filter", "own_checks"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_malicious_tar_symlink(tmp_path, monkeypatch, members, stdlib_filter):
    if not stdlib_filter:  # the path taken on a Python without tarfile extraction filters
        monkeypatch.setattr(dl, "_HAS_TAR_FILTERS", False)
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [(n, d, str(outside) if t == "ABSOLUTE" else t) for n, d, t in members]
    archive = _tar(tmp_path / "bad.tar", members)
    work = tmp_path / "work"
    with pytest.raises(UnsafeArchiveError, match="links to"):
        extract(archive, work / "out")
    assert os.listdir(outside) == [], f"written outside dest: {os.listdir(outside)}"
    assert _leftovers(work) == [], f"temporary folder left behind: {os.listdir(work)}"


def test_extract_refuses_foreign_or_damaged(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(DataError, match="junk.zip"):
        extract(junk, tmp_path / "j")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="busy"):
        extract(_zip(tmp_path / "g.zip", GOOD), busy)
    assert (busy / "mine.txt").read_text() == "user data", "existing data must be left alone"


def test_download_and_extract(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in GOOD.items():
            zf.writestr(name, data)
    server.behaviour.files["/pack.zip"] = buf.getvalue()
    rf = RemoteFile(server.url("/pack.zip"), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    dest = download_and_extract(rf, archive_dir=tmp_path, progress=False)
    assert dest == tmp_path / "pack"
    assert _tree(dest) == GOOD
    (tmp_path / "pack.zip").unlink()
    n = len(server.behaviour.requests)
    assert download_and_extract(rf, archive_dir=tmp_path, progress=False) == dest
    assert len(server.behaviour.requests) == n, "a finished extraction needs no network"


# ---------------------------------------------------------------- a remote file that changes

NEW = bytes(reversed(PAYLOAD))  # the same size: only a validator (ETag, date) tells them apart


def _interrupted(server: Server, dest: Path) -> None:
    """A download of /data.bin (ETag "v1", no checksum) cut off after 30,000 bytes."""
    server.behaviour.etag, server.behaviour.cut_after = '"v1"', 30_000
    with pytest.raises(DownloadError):
        download(server.url(), dest, progress=False, timeout=5, retries=1)
    assert (dest / "data.bin.part").stat().st_size == 30_000


def _changes_to(server: Server, body: bytes, etag: str | None = '"v2"') -> None:
    server.behaviour.files["/data.bin"], server.behaviour.etag = body, etag


def test_resume_after_the_remote_file_changed_restarts_from_zero(server, tmp_path):
    """Without a checksum, resuming a changed file would splice two versions together."""
    _interrupted(server, tmp_path)
    _changes_to(server, NEW)
    out = download(server.url(), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == NEW, "old and new bytes were spliced into one file"
    assert (server.behaviour.requests[-1][1], server.behaviour.if_ranges[-1]) == (
        "bytes=30000-", '"v1"'), "the resumed request must name the version it continues"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data.bin", "data.bin.lock", "data.bin.verified"], "the .part record must go too"


def test_resume_from_a_server_that_ignores_if_range_checks_the_etag(server, tmp_path):
    _interrupted(server, tmp_path)
    _changes_to(server, NEW)
    server.behaviour.honour_if_range = False
    out = download(server.url(), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == NEW, "a 206 with another ETag must not extend the old bytes"
    assert [r for _, r in server.behaviour.requests[-2:]] == ["bytes=30000-", None]


def test_resume_without_etag_checks_the_total_size(server, tmp_path):
    _interrupted(server, tmp_path)
    _changes_to(server, NEW + b"longer", etag=None)
    out = download(server.url(), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == NEW + b"longer", "a file of another size was resumed"


def test_a_part_as_long_as_a_shrunken_remote_is_not_taken_as_complete(server, tmp_path):
    """A server that ignores If-Range answers 416 when the new file is as long as the old part."""
    server.behaviour.honour_if_range = False
    _interrupted(server, tmp_path)
    _changes_to(server, NEW[:30_000])
    out = download(server.url(), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == NEW[:30_000], "the old partial bytes were taken as the new file"


def test_unchanged_remote_with_an_etag_still_resumes(server, tmp_path):
    _interrupted(server, tmp_path)
    assert _get(server.url(), tmp_path).read_bytes() == PAYLOAD
    assert [r for _, r in server.behaviour.requests] == [None, "bytes=30000-"]


def test_an_empty_file_in_place_without_checksum_is_fetched_again(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"")  # what a failed `wget -O data.bin URL` leaves
    assert download(server.url(), tmp_path, progress=False, timeout=5).read_bytes() == PAYLOAD


def test_the_published_size_is_checked_without_a_checksum(server, tmp_path):
    n = len(PAYLOAD)
    with pytest.raises(ChecksumError, match=f"size {n} bytes, but {n + 1} bytes"):
        download(RemoteFile(server.url(), size=n + 1), tmp_path, progress=False, timeout=5)
    assert not (tmp_path / "data.bin").exists()
    (tmp_path / "data.bin").write_bytes(PAYLOAD[:-1])  # a short copy put in place by hand
    out = download(RemoteFile(server.url(), size=n), tmp_path, progress=False, timeout=5)
    assert out.read_bytes() == PAYLOAD


def test_a_resumed_answer_without_length_cut_short_keeps_its_bytes(server, tmp_path):
    """A 206 without Content-Length that ends early is resumable, not a reason to start over."""
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:50_000])
    server.behaviour.send_length, server.behaviour.cut_after = False, 50_000
    with pytest.raises(DownloadError, match="connection closed after 100000 of 204800 bytes"):
        _get(server.url(), tmp_path, retries=1)
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[:100_000], "bytes were lost"
    assert _get(server.url(), tmp_path).read_bytes() == PAYLOAD
    assert [r for _, r in server.behaviour.requests] == ["bytes=50000-", "bytes=100000-"]


def test_an_extraction_of_another_archive_version_is_not_passed_off_as_current(server, tmp_path):
    """The marker records the archive's sha256: a data set whose pinned checksum changed (or an
    archive downloaded again in a new version) must not return the old folder silently."""
    versions = []
    for text in (b"version 1", b"version 2"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("data.txt", text)
        versions.append((buf.getvalue(), hashlib.sha256(buf.getvalue()).hexdigest()))
    server.behaviour.files["/pack.zip"] = versions[0][0]
    old = RemoteFile(server.url("/pack.zip"), sha256=versions[0][1])
    dest = download_and_extract(old, archive_dir=tmp_path, progress=False)
    assert download_and_extract(old, archive_dir=tmp_path, progress=False) == dest

    server.behaviour.files["/pack.zip"] = versions[1][0]
    new = RemoteFile(server.url("/pack.zip"), sha256=versions[1][1])
    with pytest.raises(DataError, match=f"sha256 {versions[0][1]}.*delete {dest}"):
        download_and_extract(new, archive_dir=tmp_path, progress=False)
    archive = download(new, tmp_path, progress=False)  # also when asked in two steps
    with pytest.raises(DataError, match="older"):
        extract(archive, dest)
    assert (dest / "data.txt").read_bytes() == b"version 1", "the old folder must be left alone"
    shutil.rmtree(dest)
    dest = download_and_extract(new, archive_dir=tmp_path, progress=False)
    assert (dest / "data.txt").read_bytes() == b"version 2"


@pytest.mark.parametrize("url", ["example.com/data.zip", "C:/data.zip", "s3://bucket/data.zip"])
def test_a_url_without_a_scheme_urllib_opens_is_a_config_error(url, tmp_path):
    with pytest.raises(ConfigError, match="scheme"):
        download(url, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="scheme"):
        RemoteFile("https://host/data.zip", mirrors=[url])
