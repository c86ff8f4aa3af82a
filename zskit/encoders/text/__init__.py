"""Text and label encoders: GloVe word vectors (gensim) and sentence transformers (transformers).

Each encoder class has ``.embed_dim`` and ``encode(texts) -> np.ndarray`` of shape
``(len(texts), embed_dim)``, L2-normalised rows by default. Heavy packages are imported only when
an encoder is built.
"""

from __future__ import annotations

from zskit.encoders.text.sentence import MiniLMEncoder, SentenceConfig, SentenceEncoder
from zskit.encoders.text.word_vectors import GloveEncoder, embed_labels, label_text, label_words

__all__ = [
    "GloveEncoder",
    "MiniLMEncoder",
    "SentenceConfig",
    "SentenceEncoder",
    "embed_labels",
    "label_text",
    "label_words",
]
