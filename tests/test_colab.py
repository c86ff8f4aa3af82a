"""zskit.colab: installs only on Colab, reports the device everywhere."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from zskit import colab
from zskit.devices import resolve_device
from zskit.errors import DependencyError


class Recorder:
    """Stands in for subprocess.run: records commands, returns a chosen exit code."""

    def __init__(self, returncode: int = 0) -> None:
        self.commands: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, command, check=False):
        self.commands.append(list(command))
        return SimpleNamespace(returncode=self.returncode)


@pytest.fixture
def fake_colab(monkeypatch):
    """A runtime that looks like Colab and lacks the renderer."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real_find_spec = colab.importlib.util.find_spec
    monkeypatch.setattr(colab.importlib.util, "find_spec",
                        lambda name: None if name == "tinysoundfont" else real_find_spec(name))


def test_outside_colab_nothing_is_installed(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    run = Recorder()
    info = colab.setup(run=run)
    assert not colab.in_colab() and run.commands == []
    assert info["colab"] is False and info["installed"] == []
    device = resolve_device("auto")
    assert info["device"] == str(device)
    assert (info["amp"] == "off") == (device.type != "cuda"), "mixed precision only on a GPU"


def test_on_colab_the_renderer_is_installed_without_its_dependencies(fake_colab):
    run = Recorder()
    info = colab.setup(run=run)
    assert colab.in_colab() and info["colab"] is True
    assert run.commands == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                             colab.RENDERER_REQUIREMENT]]
    assert info["installed"] == [colab.RENDERER_REQUIREMENT]


def test_a_failed_install_says_what_to_run(fake_colab):
    with pytest.raises(DependencyError, match="--no-deps tinysoundfont"):
        colab.setup(run=Recorder(returncode=1))
