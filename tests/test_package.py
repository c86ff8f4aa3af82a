"""The package imports cheaply, without side effects, and every public name resolves."""

from __future__ import annotations

import subprocess
import sys

import zskit


def test_import_loads_no_heavy_module_and_changes_no_global_state():
    code = (
        "import os, sys; env = dict(os.environ); path = list(sys.path); import zskit; "
        "heavy = [m for m in ('torch', 'transformers', 'gensim', 'papermill', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy; assert dict(os.environ) == env, 'environ changed'; "
        "assert sys.path == path, 'sys.path changed'"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, f"importing zskit has side effects: {done.stderr}"


def test_every_public_name_resolves():
    missing = [name for name in zskit.__all__ if getattr(zskit, name, None) is None]
    assert not missing, f"zskit.__all__ names that do not resolve: {missing}"


def test_unknown_attribute_is_an_attribute_error():
    try:
        zskit.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("zskit.no_such_thing should raise AttributeError")
