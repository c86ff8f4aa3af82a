"""Helpers for real-browser notebook tests: a private JupyterLab server on 127.0.0.1 and Debian's
headless Chromium driven by Playwright.

CI needs Chromium installed (`apt-get install -y chromium`); Playwright's own browser download is
never used (`executable_path` points at the system browser).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Headless Chromium on a closed network: no sandbox (root in CI), no GPU, and no background
# connections (they are refused here, many at a time, and slow the start).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a test: render every cell (no windowing, so outputs far down the page
# exist), start the notebook's kernel without asking, and no news or update checks (no network).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def chromium_path() -> str | None:
    """The system Chromium, or None when it is not installed."""
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab: its base URL and the token to append to page URLs."""

    url: str
    token: str
    log: Path

    def page(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"


@contextmanager
def jupyterlab(root: Path, home: Path, timeout: float = 90.0,
               env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """Start JupyterLab serving ``root`` on 127.0.0.1 with its config, runtime and settings under
    ``home`` (nothing of the user's is read or written); stop it on exit."""
    settings = home / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    port, token = _free_port(), "zskit-browser-test"
    log = home / "jupyterlab.log"
    environment = {**os.environ, **(env or {}), "JUPYTER_CONFIG_DIR": str(home / "config"),
                   "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                   "JUPYTER_DATA_DIR": str(home / "data"),
                   "JUPYTERLAB_SETTINGS_DIR": str(settings),
                   "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
               "--ServerApp.terminals_enabled=False",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = LabServer(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(server.page("api/status"), timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start (exit code {proc.poll()}); its log:"
                                   f"\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium_page(profile: Path, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in the system Chromium with a fresh user-data-dir ``profile``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
