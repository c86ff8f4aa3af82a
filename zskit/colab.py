"""Google Colab set-up, called by the first cell of every notebook (nothing happens elsewhere).

The first cell installs zskit itself when it runs on Colab (zskit cannot install itself before it
is importable): it clones ``ZSKIT_REPOSITORY`` to ``/content/zskit``, installs that checkout with
``%pip install -e "/content/zskit[offline,lab]"`` (so corpora and caches land in
``/content/zskit/data``, and the notebooks run from ``/content/zskit/notebooks``), then calls
:func:`setup`::

    from zskit.colab import setup
    setup()  # Colab: the corpus renderer; everywhere: the device and precision the notebook uses

:func:`setup` adds what pip cannot resolve from zskit's requirements: the SoundFont renderer
``tinysoundfont`` without its ``pyaudio`` requirement (which zskit never uses and which does not
build without PortAudio headers). Colab keeps its own torch (zskit asks for ranges, not pins).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from zskit.errors import DependencyError

__all__ = ["RENDERER_REQUIREMENT", "in_colab", "setup"]

RENDERER_REQUIREMENT = "tinysoundfont>=0.3.7"  # installed with --no-deps (see module docstring)


def in_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is loaded there)."""
    return "google.colab" in sys.modules


def setup(run: Callable[..., Any] = subprocess.run) -> dict[str, Any]:
    """On Colab, install what zskit's requirements cannot express; everywhere, report the device.

    Returns ``{"colab": bool, "installed": [requirements], "device": str, "amp": str}``, where
    ``device`` and ``amp`` are what ``device="auto"`` and ``amp="auto"`` pick (a GPU and mixed
    precision when the runtime has one). ``run`` executes commands (``subprocess.run``); a failed
    install raises :class:`~zskit.errors.DependencyError` with the command to retry by hand.
    """
    from zskit.devices import resolve_amp, resolve_device

    installed = []
    colab = in_colab()
    if colab and importlib.util.find_spec("tinysoundfont") is None:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                   RENDERER_REQUIREMENT]
        result = run(command, check=False)
        if getattr(result, "returncode", 0) != 0:
            raise DependencyError(f"installing {RENDERER_REQUIREMENT} failed; run "
                                  f"`{' '.join(command[2:])}` in a cell and read pip's message.")
        installed.append(RENDERER_REQUIREMENT)
    device = resolve_device("auto")
    dtype, _ = resolve_amp("auto", device)
    return {"colab": colab, "installed": installed, "device": str(device),
            "amp": "off" if dtype is None else str(dtype).removeprefix("torch.")}
