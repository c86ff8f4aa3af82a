"""Fixtures shared by several test modules (keep this small)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: notebooks 01_ok, 02_failing (raises in cell 2), 03_malformed (no tag)."""
    return FIXTURES


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """A local HTTP server over ``tmp_path / 'served'`` and a private download cache
    (``ZSKIT_CACHE=tmp_path / 'cache'``): yields ``(folder, base_url)``, the URL without a
    trailing slash."""
    folder = tmp_path / "served"
    folder.mkdir()
    monkeypatch.setenv("ZSKIT_CACHE", str(tmp_path / "cache"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()
