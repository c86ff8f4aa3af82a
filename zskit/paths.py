"""Where zskit keeps generated and downloaded data.

``data_root()`` is, in order: the ``ZSKIT_DATA`` environment variable; the ``data/`` folder of the
project checkout when zskit is imported from one (an editable install); otherwise
``$XDG_CACHE_HOME/zskit`` (``~/.cache/zskit``).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The checkout zskit was imported from, or None for an installed wheel."""
    root = _PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def data_root() -> Path:
    """The folder under which corpora, downloads and caches are written."""
    env = os.environ.get("ZSKIT_DATA")
    if env:  # absolute now: paths built on it must not change meaning after os.chdir
        return Path(env).expanduser().absolute()
    root = project_root()
    if root is not None:
        return root / "data"
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):  # the XDG spec: a relative value is invalid and ignored
        cache = Path.home() / ".cache"
    return Path(cache) / "zskit"


def notebooks_dir() -> Path | None:
    """The numbered notebooks of the checkout, or None when zskit is installed without them."""
    root = project_root()
    return root / "notebooks" if root is not None else None
