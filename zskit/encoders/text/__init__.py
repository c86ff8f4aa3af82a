"""Text and label encoders; importing this package registers every one of them.

Build them by name: ``zskit.create_text_encoder("minilm", pretrained=True)`` (sentence encoders
through transformers: minilm, bert-small/base/large, roberta-base/large) or
``create_text_encoder("glove", pretrained="6b-50d")`` (word vectors through gensim: glove,
word2vec). Every text encoder has ``.embed_dim``, ``encode(texts)`` and ``encode_labels(names)``
returning ``(n, embed_dim)`` float32 tensors; sentence encoders are trainable ``nn.Module``\\ s with
``tokenize(texts)`` and ``forward(**tokens)``. Heavy packages are imported only when an encoder is
built.
"""

from __future__ import annotations

from zskit.encoders.text.sentence import (
    SENTENCE_MODELS,
    SentenceConfig,
    SentenceEncoder,
    clean_text,
    load_sentence_model,
    minilm_path,
)
from zskit.encoders.text.word_vectors import (
    GLOVE_PRETRAINED,
    WORD2VEC_PRETRAINED,
    WordVectorConfig,
    WordVectorEncoder,
    label_text,
    label_words,
    load_glove,
    load_word_vectors,
)

__all__ = [
    "GLOVE_PRETRAINED",
    "SENTENCE_MODELS",
    "WORD2VEC_PRETRAINED",
    "SentenceConfig",
    "SentenceEncoder",
    "WordVectorConfig",
    "WordVectorEncoder",
    "clean_text",
    "label_text",
    "label_words",
    "load_glove",
    "load_sentence_model",
    "load_word_vectors",
    "minilm_path",
]
