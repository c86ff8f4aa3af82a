"""Data sets of zskit: the embedded synthetic corpus, manifests and the instrument hierarchy.

Names are imported lazily, so ``import zskit.data`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "generate_corpus": "synth",
    "ensure_corpus": "synth",
    "default_corpus_dir": "synth",
    "render_clip": "synth",
    "clip_spec": "synth",
    "find_soundfont": "synth",
    "ClipSpec": "synth",
    "Stem": "synth",
    "Note": "synth",
    "SynthConfig": "synth",
    "load_corpus": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
    "Corpus": "manifest",
    "CLASSES": "gm",
    "FAMILIES": "gm",
    "OPENMIC_CLASSES": "gm",
    "hierarchy": "gm",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"zskit.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'zskit.data' has no attribute {name!r}")
