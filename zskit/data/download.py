"""The one place zskit fetches files: resumable, checksummed, atomic downloads and safe extraction.

Downloads land in :func:`cache_dir` unless told otherwise. A file is streamed into
``<dest>/<name>.part`` (an interrupted download resumes from there with an HTTP ``Range`` request),
verified against its SHA-256 or MD5 digest (and size), then renamed to ``<dest>/<name>``. A JSON
record ``<name>.part.json`` keeps the ETag, Last-Modified date and size of the response that began
the ``.part``; a resumed request sends them in ``If-Range``, so bytes of a remote file that changed
meanwhile are never spliced onto the new ones. After verification a small JSON sidecar
``<name>.verified`` records the digests, size and modification time, so a later call finds the
file already there and returns it without hashing it again; a file put in place by hand (no
sidecar, or a sidecar that no longer matches its size and time) is hashed once.

:func:`extract` unpacks zip and tar archives (plain, gzip, bzip2, xz) into a temporary sibling
folder, refusing members that would land outside it and archives whose data fail their CRCs, then
renames that folder to its final name; a marker file inside (naming the archive and its sha256)
makes a second call free.

Processes that fetch the same file or extract into the same folder at once (two ``torchrun`` ranks,
two notebooks) take turns through a lock file beside it (``<name>.lock``); the later one finds the
finished result and returns it.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import json
import logging
import lzma
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

from zskit import __version__
from zskit.errors import ConfigError, DataError
from zskit.fileio import file_digests, process_lock, write_json
from zskit.paths import data_root

__all__ = [
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "UnsafeArchiveError",
    "cache_dir",
    "discard",
    "download",
    "download_and_extract",
    "extract",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
_BACKOFF_S = 0.5
_USER_AGENT = f"zskit/{__version__} (+python-urllib)"
_MARKER = ".zskit-extracted"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
_HEX = re.compile(r"^[0-9a-f]+$")
_SCHEMES = ("https", "http", "ftp", "file")  # what urllib.request opens
# tarfile extraction filters: Python 3.12+, and 3.8.17+/3.9.17+/3.10.12+/3.11.4+ security releases
_HAS_TAR_FILTERS = hasattr(tarfile, "data_filter")


class DownloadError(DataError):
    """A file could not be fetched (offline, host unreachable, HTTP error)."""


class ChecksumError(DataError):
    """A downloaded or supplied file does not have the expected digest."""


class UnsafeArchiveError(DataError):
    """An archive member would be written outside the destination folder."""


def cache_dir() -> Path:
    """The download cache: ``$ZSKIT_CACHE`` if set, else ``data_root() / "downloads"``."""
    env = os.environ.get("ZSKIT_CACHE")
    return Path(env).expanduser().absolute() if env else data_root() / "downloads"


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web: where it is, what it must hash to, and under what licence.

    ``filename`` defaults to the last component of the URL path; ``mirrors`` are tried in order
    after ``url``. Give ``sha256`` (preferred) or ``md5``; without either only ``size`` (when
    given) is checked, and an empty file found in place is fetched again.
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    filename: str | None = None
    size: int | None = None
    licence: str | None = None
    mirrors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        for url in self.urls:  # else urllib fails deep inside download() with a bare ValueError
            if urllib.parse.urlsplit(url).scheme.lower() not in _SCHEMES:
                raise ConfigError(f"RemoteFile: {url!r} is not a URL zskit can fetch; give it "
                                  f"with its scheme ({', '.join(s + '://' for s in _SCHEMES)}).")
        for field, length in (("sha256", 64), ("md5", 32)):
            value = getattr(self, field)
            if value is None:
                continue
            value = value.strip().lower()
            if len(value) != length or not _HEX.match(value):
                raise ConfigError(
                    f"RemoteFile {self.url}: {field}={value!r} is not a {length}-character hex "
                    f"digest; copy the digest exactly as the data set publishes it."
                )
            object.__setattr__(self, field, value)
        if self.size is not None and self.size < 0:
            raise ConfigError(f"RemoteFile {self.url}: size={self.size} must be >= 0 (or None).")
        name = self.name
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ConfigError(
                f"RemoteFile {self.url}: cannot use {name!r} as a file name; pass filename='...'."
            )

    @property
    def name(self) -> str:
        """The local file name."""
        if self.filename is not None:
            return self.filename
        path = urllib.parse.urlsplit(self.url).path
        return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])

    @property
    def urls(self) -> tuple[str, ...]:
        """``url`` followed by the mirrors."""
        return (self.url, *self.mirrors)

    def checksum_note(self) -> str:
        """The expected digest as a human-readable phrase."""
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.md5:
            return f"md5 {self.md5}"
        return "no published checksum"


class _Retry(Exception):
    """A transient failure of one attempt; ``progressed`` tells whether bytes arrived."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class _GiveUp(Exception):
    """A failure that retrying the same URL will not fix (e.g. HTTP 404)."""


def _file_digests(path: Path) -> dict[str, str]:
    return file_digests(path, ("sha256", "md5"))  # one pass over the file for both


def _mismatch(remote: RemoteFile, digests: dict[str, str]) -> tuple[str, str, str] | None:
    """(algorithm, expected, actual) when ``digests`` contradict ``remote``, else None."""
    for algo in ("sha256", "md5"):
        expected = getattr(remote, algo)
        if expected:
            return None if digests[algo] == expected else (algo, expected, digests[algo])
    return None


def _sidecar(final: Path) -> Path:
    return final.with_name(final.name + ".verified")


def _write_sidecar(final: Path, digests: dict[str, str], url: str) -> None:
    """Record the digests beside ``final``; a folder that cannot be written (a read-only shared
    cache) only costs hashing the file again next time."""
    st = final.stat()
    record = {**digests, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": url}
    try:
        write_json(_sidecar(final), record, indent=1)
    except OSError as err:
        logger.debug("cannot record the digests of %s (%s); it will be hashed again", final, err)


def discard(path: str | os.PathLike) -> None:
    """Delete a downloaded file and its ``.verified`` record (after a check of its own failed)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)


def _recorded_digests(final: Path) -> dict[str, str] | None:
    """The digests in ``final``'s sidecar when that still describes it (no hashing), else None."""
    try:
        st = final.stat()
        record = json.loads(_sidecar(final).read_text())
        if record["size"] == st.st_size and record["mtime_ns"] == st.st_mtime_ns:
            return {"sha256": record["sha256"], "md5": record["md5"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _verified_digests(final: Path) -> dict[str, str]:
    """Digests of an existing file, from its sidecar when that still describes it, else hashed."""
    digests = _recorded_digests(final)
    if digests is not None:
        return digests
    digests = _file_digests(final)
    _write_sidecar(final, digests, url="(found on disk)")
    return digests


def _content_range_total(header: str | None) -> int | None:
    """The total size in a ``Content-Range`` header (``bytes a-b/N`` or ``bytes */N``)."""
    match = re.search(r"/(\d+)\s*$", header or "")
    return int(match.group(1)) if match else None


def _origin(part: Path) -> Path:
    """The JSON record beside ``part`` of which remote file version its bytes came from."""
    return part.with_name(part.name + ".json")


def _drop_part(part: Path) -> None:
    """Delete a partial download and its origin record."""
    part.unlink(missing_ok=True)
    _origin(part).unlink(missing_ok=True)


def _read_origin(part: Path) -> dict:
    try:
        record = json.loads(_origin(part).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _strong_etag(headers) -> str | None:
    """The response's ETag when it is a strong one (a weak ``W/`` tag must not be used to resume)."""
    etag = (headers.get("ETag") or "").strip()
    return etag if etag.startswith('"') else None


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, size_hint: int | None) -> bool:
    """One attempt to complete ``part`` from ``url``, resuming it when it already has bytes.

    A resumed request carries ``If-Range`` with the ETag (or Last-Modified date) of the response
    that started ``part``, so a server whose file changed since sends the new file whole; a
    server that ignores ``If-Range`` but reports another ETag or total size gets the same: the
    old bytes are dropped. Returns whether bytes that ``part`` held before this attempt were
    kept (it resumed them).
    """
    offset = part.stat().st_size if part.exists() else 0
    origin = _read_origin(part) if offset else {}
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = origin.get("etag") or origin.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            total = _content_range_total(err.headers.get("Content-Range"))
            began = origin.get("size")  # a part of a longer older version is not complete
            if (total is None or total == offset) and began in (None, offset):
                logger.info("%s: the partial file is already complete (%d bytes)", part, offset)
                return True
            _drop_part(part)
            raise _Retry(f"the partial file ({offset} bytes) does not fit the remote file "
                         f"({total} bytes now, {began} when the partial file began)")
        if err.code in (408, 429) or err.code >= 500:
            raise _Retry(f"HTTP {err.code} {err.reason}") from err
        raise _GiveUp(f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise _Retry(f"cannot reach the host ({reason})") from err

    with response:
        status = response.status
        etag = _strong_etag(response.headers)
        announced = _content_range_total(response.headers.get("Content-Range"))
        if offset and status == 206:
            start = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
            if start is None or int(start.group(1)) != offset:
                _drop_part(part)
                raise _Retry("server answered the Range request from the wrong offset", True)
            changed = [what for what, old, new in (("ETag", origin.get("etag"), etag),
                                                   ("size", origin.get("size"), announced))
                       if old is not None and new is not None and old != new]
            if changed:
                _drop_part(part)
                raise _Retry(f"the remote file changed since the partial download began (its "
                             f"{' and '.join(changed)} differ); starting again from zero", True)
            mode = "ab"
        elif status == 200:
            if offset:
                logger.info("%s sent the whole file (it ignored the Range request or the file "
                            "changed); restarting from zero", url)
            offset, mode = 0, "wb"
        else:
            raise _GiveUp(f"unexpected HTTP status {status}")
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        if announced is None and expected is not None:
            announced = offset + expected
        if mode == "wb":  # what a later call must match to resume these bytes
            write_json(_origin(part), {"url": url, "etag": etag, "size": announced,
                                       "last_modified": response.headers.get("Last-Modified")})
        received = 0
        with (
            open(part, mode) as f,
            tqdm(total=announced if announced is not None else size_hint, initial=offset,
                 unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[: -len(".part")],
                 disable=not progress, leave=False) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:  # reset, timeout, bad chunk
                raise _Retry(f"connection lost after {offset + received} bytes ({err})",
                             received > 0) from err
        if expected is not None and received < expected:
            raise _Retry(f"connection closed after {offset + received} of {offset + expected} "
                         f"bytes", received > 0)
    size = part.stat().st_size
    if announced is not None and offset + received == size < announced:  # no Content-Length
        raise _Retry(f"connection closed after {size} of {announced} bytes", received > 0)
    if announced is not None and size != announced:  # something else wrote to the .part too
        _drop_part(part)
        raise _Retry(f"the partial file has {size} bytes, not the {announced} the server sent; "
                     f"it was deleted", True)
    return mode == "ab"


def _complete_part(url: str, part: Path, *, retries: int, failures: list[str],
                   **fetch_kwargs) -> bool | None:
    """Up to ``retries`` attempts to complete ``part`` from ``url``, each resuming the one before.

    Returns whether the last attempt resumed bytes written before it (by an earlier attempt or
    an earlier call), or None when ``url`` failed (the reasons are added to ``failures``).
    """
    for attempt in range(retries):
        try:
            return _fetch(url, part, **fetch_kwargs)
        except _GiveUp as err:
            failures.append(f"{url}: {err}")
            return None
        except _Retry as err:
            failures.append(f"{url} (attempt {attempt + 1}/{retries}): {err}")
            logger.warning("download of %s failed: %s", url, err)
            if attempt + 1 < retries and not err.progressed:
                time.sleep(_BACKOFF_S * 2**attempt)
    return None


def _manual_hint(remote: RemoteFile, final: Path) -> str:
    return (f"If this machine is offline, fetch {remote.url} elsewhere and put it at {final} "
            f"({remote.checksum_note()}); zskit will verify and use it.")


def _usable(remote: RemoteFile, final: Path) -> tuple[bool, str]:
    """Whether ``final`` is there and verified; if it is there but wrong, a note saying so."""
    if not final.is_file():
        return False, ""
    size = final.stat().st_size
    if remote.size is not None and size != remote.size:
        return False, f" (the existing {final} has {size} bytes, not {remote.size})"
    if remote.sha256 is None and remote.md5 is None:
        if size == 0 and remote.size is None:  # e.g. left by a failed `wget -O` or `touch`
            return False, f" (the existing {final} is empty)"
        logger.info("%s exists and no checksum was given; using it as it is", final)
        return True, ""
    bad = _mismatch(remote, _verified_digests(final))
    if bad is None:
        logger.debug("%s is present and verified", final)
        return True, ""
    return False, f" (the existing {final} has {bad[0]} {bad[2]}, not {bad[1]})"


def download(
    remote_or_url: RemoteFile | str,
    dest_dir: str | os.PathLike | None = None,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    filename: str | None = None,
    progress: bool = True,
    timeout: float = 30,
    retries: int = 3,
) -> Path:
    """Fetch a file into ``dest_dir`` (default :func:`cache_dir`), verified; return its path.

    ``sha256``/``md5``/``filename`` override those of a :class:`RemoteFile`. ``retries`` is the
    number of attempts per URL (each resumes the ``.part`` left by the one before); a resumed
    file with the wrong digest is fetched once more from zero (its old bytes may be stale); the
    mirrors are tried after the main URL. Raises :class:`DownloadError` when no URL delivers the
    file and :class:`ChecksumError` when what arrived has the wrong digest (the bad copy is
    deleted). Concurrent calls for the same file take turns (see the module docstring).
    """
    if retries < 1:
        raise ConfigError(f"download: retries={retries} must be >= 1 (attempts per URL).")
    if isinstance(remote_or_url, RemoteFile):
        overrides = {"sha256": sha256, "md5": md5, "filename": filename}
        remote = dataclasses.replace(
            remote_or_url, **{k: v for k, v in overrides.items() if v is not None}
        )
    else:
        remote = RemoteFile(str(remote_or_url), sha256=sha256, md5=md5, filename=filename)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    final = dest / remote.name
    if _usable(remote, final)[0]:  # checked before locking too: the cache may be read-only
        return final
    with process_lock(str(final) + ".lock", final):  # one download of a file at a time
        usable, stale_note = _usable(remote, final)  # another process may have fetched it
        if usable:
            return final
        if stale_note:
            logger.warning("downloading %s again%s", final, stale_note)
        part = final.with_name(final.name + ".part")
        failures: list[str] = []
        checksum_error: ChecksumError | None = None
        for url in remote.urls:
            for from_zero in (False, True):
                resumed = _complete_part(url, part, retries=retries, failures=failures,
                                         timeout=timeout, progress=progress,
                                         size_hint=remote.size)
                if resumed is None:
                    break
                size = part.stat().st_size
                if remote.size is not None and size != remote.size:  # no need to hash it
                    digests, bad = {}, ("size", f"{remote.size} bytes", f"{size} bytes")
                else:
                    digests = _file_digests(part)
                    bad = _mismatch(remote, digests)
                if bad is None:
                    os.replace(part, final)
                    _origin(part).unlink(missing_ok=True)
                    _write_sidecar(final, digests, url)
                    if remote.sha256 is None and remote.md5 is None:
                        logger.warning("%s has no published checksum; its sha256 is %s",
                                       final, digests["sha256"])
                    return final
                _drop_part(part)
                algo, expected, actual = bad
                if resumed and not from_zero:  # the stale bytes may be an older file's
                    logger.warning("%s, resumed from a partial file, has the wrong %s; "
                                   "downloading it again from zero", final, algo)
                    continue
                checksum_error = ChecksumError(
                    f"{url} delivered a file with {algo} {actual}, but {expected} was expected; "
                    f"the download was deleted. If the file changed upstream, update the "
                    f"checksum; otherwise retry later (a proxy or mirror may have served a "
                    f"corrupt copy). {_manual_hint(remote, final)}"
                )
                failures.append(f"{url}: {algo} mismatch")
                break
    if checksum_error is not None:
        raise checksum_error
    kept = f" The partial file {part} is kept and the next call resumes it." if part.exists() else ""
    raise DownloadError(
        f"Could not download {remote.name} from {remote.url}{stale_note}: "
        + "; ".join(failures) + f".{kept} {_manual_hint(remote, final)}"
    )


def _archive_stem(name: str) -> str:
    lower = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name + ".d"


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check_name(archive: Path, name: str, root: str) -> None:
    """Reject absolute names, '..' components and targets that resolve outside ``root``."""
    parts = name.replace("\\", "/").split("/")
    if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
            or PureWindowsPath(name).drive or ".." in parts):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} has an absolute path or a '..' component; nothing was "
            f"extracted. Do not use this archive; fetch a trusted copy."
        )
    if not _within(os.path.realpath(os.path.join(root, name)), root):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside the destination (through a "
            f"link); nothing was kept. Do not use this archive; fetch a trusted copy."
        )


def _tar_filter(archive: Path):
    """A tar extraction filter: our checks, then the stdlib 'data' filter when it exists."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        root = os.path.realpath(dest)
        _check_name(archive, member.name, root)
        if member.issym() or member.islnk():
            base = os.path.dirname(member.name) if member.issym() else ""
            target = os.path.realpath(os.path.join(root, base, member.linkname))
            if os.path.isabs(member.linkname) or not _within(target, root):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} links to {member.linkname!r}, outside the "
                    f"destination; nothing was kept. Do not use this archive; fetch a trusted copy."
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is a device or pipe, which a data archive "
                f"should not hold; nothing was kept. Fetch a trusted copy."
            )
        if _HAS_TAR_FILTERS:
            try:
                return tarfile.data_filter(member, dest)
            except tarfile.FilterError as err:
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} rejected ({err}); nothing was kept. "
                    f"Fetch a trusted copy."
                ) from err
        return member

    return check


def _extract_tar(archive: Path, root: Path) -> None:
    check = _tar_filter(archive)
    with tarfile.open(archive, "r:*") as tf:
        if _HAS_TAR_FILTERS:
            tf.extractall(root, filter=check)
        else:  # Python without extraction filters: check each member just before writing it
            for member in tf:
                tf.extract(check(member, str(root)), root, set_attrs=not member.isdir())
        # tarfile stops at the end-of-archive block, before the gzip/bzip2/xz trailer: read on
        # to it, so that a corrupt stream fails its CRC check instead of passing as complete
        try:
            while tf.fileobj.read(_CHUNK):
                pass
        except gzip.BadGzipFile as err:
            if not str(err).startswith("Not a gzipped file"):
                raise
            # bytes after a complete (CRC-checked) gzip stream: `gzip -t` ignores them too
            logger.warning("%s: trailing data after the gzip stream ignored", archive)


def _extract_zip(archive: Path, root: Path) -> None:
    real_root = os.path.realpath(root)
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_name(archive, info.filename, real_root)
        zf.extractall(root, members)


def _extracted(archive_name: str, dest: Path, sha256: str | None = None) -> bool:
    """Whether ``dest`` holds the completed extraction of ``archive_name`` (by its marker).

    The marker names the archive and, when it was downloaded by zskit, its sha256: a folder
    unpacked from another version of the archive than ``sha256`` raises DataError.
    """
    marker = dest / _MARKER
    if not marker.is_file():
        return False
    name, *rest = marker.read_text().splitlines() or [""]
    if name.strip() != archive_name:
        raise DataError(
            f"{dest} already holds the extracted archive {name.strip()!r}, not {archive_name!r}; "
            f"choose another dest_dir or delete {dest}."
        )
    recorded = dict(line.split(" ", 1) for line in rest if " " in line).get("sha256")
    if sha256 is not None and recorded is not None and recorded != sha256:
        raise DataError(
            f"{dest} holds {archive_name} with sha256 {recorded}, an older (or other) version than "
            f"the expected {sha256}; delete {dest} (and keep what you added to it elsewhere) and "
            f"run again to download and extract the expected version."
        )
    logger.debug("%s already holds the extracted %s", dest, archive_name)
    return True


def _damaged(archive: Path, err: Exception) -> DataError:
    """The error for an archive whose data fail to decompress or to match their CRCs."""
    return DataError(f"{archive} is damaged ({type(err).__name__}: {err}); nothing was kept. "
                     f"Delete it and download it again.")


def _extract_into(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into a new sibling folder of ``dest``, then rename that to ``dest``."""
    if not archive.is_file():
        raise DataError(f"Archive {archive} does not exist; download it first (zskit.data.download).")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(
            f"{dest} exists but is not a completed extraction of {archive.name}; delete it (or "
            f"choose another dest_dir) and run again."
        )
    if zipfile.is_zipfile(archive):
        unpack = _extract_zip
    elif tarfile.is_tarfile(archive):
        unpack = _extract_tar
    else:
        raise DataError(
            f"{archive} is neither a zip nor a tar archive (or it is damaged); delete it and "
            f"download it again."
        )
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    tmp.mkdir()  # not tempfile.mkdtemp: its mode 0700 would ignore the umask
    try:
        try:
            unpack(archive, tmp)
        except OSError as err:
            if err.errno is not None:  # the disk (full, read-only), not the archive
                raise
            raise _damaged(archive, err) from err
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as err:
            raise _damaged(archive, err) from err
        digests = _recorded_digests(archive)  # known when zskit downloaded it; never hashed here
        version = f"sha256 {digests['sha256']}\n" if digests else ""
        (tmp / _MARKER).write_text(f"{archive.name}\n{version}")
        if dest.is_dir():
            dest.rmdir()  # empty, checked above
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir`` safely; return ``dest_dir``.

    Members with absolute paths, '..' components or links leading outside ``dest_dir`` raise
    :class:`UnsafeArchiveError` and nothing is kept. Extraction happens in a temporary sibling
    folder that is renamed to ``dest_dir`` when complete; a marker inside makes re-runs free
    (even after the archive was deleted). A ``dest_dir`` unpacked from another version of an
    archive that zskit downloaded (another sha256) raises DataError instead of passing as current.
    """
    archive, dest = Path(archive).expanduser(), Path(dest_dir).expanduser()
    sha256 = (_recorded_digests(archive) or {}).get("sha256")
    if _extracted(archive.name, dest, sha256):
        return dest
    with process_lock(str(dest) + ".lock", dest):  # one extraction into dest at a time
        if _extracted(archive.name, dest, sha256):  # another process finished it meanwhile
            return dest
        _extract_into(archive, dest)
    logger.info("extracted %s into %s", archive, dest)
    return dest


def download_and_extract(
    remote: RemoteFile | str,
    dest_dir: str | os.PathLike | None = None,
    *,
    archive_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Download an archive into ``archive_dir`` (default :func:`cache_dir`) and extract it.

    ``dest_dir`` defaults to a folder next to the archive named after it (``x.tar.gz`` -> ``x``).
    An already completed extraction returns at once, without touching the network (unless it was
    made from an archive with another sha256 than ``remote``'s: that raises DataError).
    """
    remote = remote if isinstance(remote, RemoteFile) else RemoteFile(str(remote))
    archives = Path(archive_dir).expanduser() if archive_dir is not None else cache_dir()
    dest = Path(dest_dir).expanduser() if dest_dir is not None else archives / _archive_stem(
        remote.name)
    if _extracted(remote.name, dest, remote.sha256):
        return dest
    return extract(download(remote, archives, progress=progress), dest)
