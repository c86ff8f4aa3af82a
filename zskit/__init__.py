"""zskit: zero-shot audio tagging, audio spectrogram transformers, hierarchical instrument tagging
and language-based audio retrieval, as a thin library under numbered notebooks.

Importing zskit has no side effects and loads no heavy module: the names below are imported from
their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from zskit.errors import ZskitError

__version__ = "0.1.0"

_LAZY = {
    "create_audio_encoder": "zskit.encoders.registry",
    "create_text_encoder": "zskit.encoders.registry",
    "list_audio_encoders": "zskit.encoders.registry",
    "list_text_encoders": "zskit.encoders.registry",
    "load_audio": "zskit.audio.io",
    "ensure_corpus": "zskit.data.synth",
    "generate_corpus": "zskit.data.synth",
    "load_corpus": "zskit.data.manifest",
    "mean_average_precision": "zskit.metrics",
    "macro_roc_auc": "zskit.metrics",
    "retrieval_metrics": "zskit.metrics",
    "embed_manifest": "zskit.cache",
    "EmbeddingCache": "zskit.cache",
    "ZeroShotTagger": "zskit.models.zeroshot",
    "ZeroShotConfig": "zskit.models.zeroshot",
    "Hierarchy": "zskit.hierarchy",
    "load_hierarchy": "zskit.hierarchy",
    "create_hierarchical_head": "zskit.heads.hierarchy",
    "list_hierarchical_heads": "zskit.heads.hierarchy",
    "fit": "zskit.train",
    "TrainConfig": "zskit.train",
    "run_notebook": "zskit.runner",
    "reproduce": "zskit.runner",
}

__all__ = ["ZskitError", "__version__", *_LAZY]  # noqa: PLE0604 (the lazy names)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zskit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
