"""Nearest-neighbour search over normalised embeddings: text -> audio retrieval at any scale.

>>> index = EmbeddingIndex(audio_embeddings, ids=clip_ids)        # exact, batched, torch
>>> hits = index.search(query_embeddings, k=10)                    # SearchResult
>>> engine = AudioSearch(model.embed_text, index)                  # queries as text
>>> engine.search("a dog barks while a car passes", k=5)           # DataFrame: rank, id, score

Scores are cosine similarities (rows are L2-normalised). The exact back end computes the
similarity matrix one block of queries at a time and keeps the top k (``torch.topk``), so memory
stays at ``batch_size x n_items``. ``backend="faiss"`` uses FAISS's exact inner-product index
(``IndexFlatIP``, the same results, faster on very large collections) or any index built by
``faiss.index_factory`` when ``faiss_factory`` is given (approximate, e.g. ``"IVF1024,Flat"``);
FAISS is optional (``pip install faiss-cpu``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from zskit.errors import ConfigError, missing_dependency

__all__ = ["BACKENDS", "AudioSearch", "EmbeddingIndex", "SearchResult", "topk_cosine"]

BACKENDS = ("exact", "faiss")
SCORE_BUDGET = 2**26  # floats of one block of query x item scores (256 MiB) in the exact path
_FAISS_MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per IVF centroid


def auto_batch_size(n_items: int) -> int:
    """Queries per block so that a block's score matrix stays within ``SCORE_BUDGET``."""
    return max(1, SCORE_BUDGET // max(1, n_items))


def _as_matrix(name: str, x: Any) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2 or t.shape[1] == 0:
        raise ConfigError(f"{name} must be a (n, dim) matrix of embeddings, got shape "
                          f"{tuple(t.shape)}.")
    return t.float().cpu()


def _check_k(k: int, n_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r} must be a positive int (how many results per query).")
    return min(int(k), n_items)


def topk_cosine(queries: Any, items: Any, k: int, batch_size: int | None = None,
                normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top ``k`` items per query by cosine similarity: ``(scores, indices)``, each ``(Q, k)``.

    Rows are L2-normalised first (``normalize=False`` ranks by plain dot product). Queries are
    processed ``batch_size`` at a time (default: as many as keep one block's scores within 256 MiB,
    e.g. 67 queries against 10^6 items); results are sorted best first, and of equal scores the
    lowest rows come first (as with FAISS), whatever the batch size.
    """
    q, x = _as_matrix("queries", queries), _as_matrix("items", items)
    if q.shape[1] != x.shape[1]:
        raise ConfigError(f"queries are {q.shape[1]}-d but items {x.shape[1]}-d; embed both "
                          "into the same space (the dual encoder's encode_text / encode_audio).")
    if batch_size is None:
        batch_size = auto_batch_size(len(x))
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1.")
    k = _check_k(k, len(x))
    if normalize:
        q, x = F.normalize(q, dim=1), F.normalize(x, dim=1)
    scores, indices = [], []
    for start in range(0, len(q), batch_size):
        s, i = _topk_lowest_rows(q[start:start + batch_size] @ x.T, k)
        scores.append(s)
        indices.append(i)
    if not scores:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(scores), torch.cat(indices)


def _topk_lowest_rows(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` of each row of ``block``, with equal scores going to the lowest column.

    Which of several equal scores ``torch.topk`` keeps is unspecified (it differs with the block
    and the device), so duplicate clips or captions would make the results, and metrics computed
    from them, depend on the batch size; this keeps the lowest rows, and so does
    :meth:`EmbeddingIndex.search` with FAISS (ties at the k-th place are redone with torch).
    """
    s, i = torch.topk(block, min(k + 1, block.shape[1]), dim=1)  # one more: is the k-th shared?
    cut = s[:, k] == s[:, k - 1] if s.shape[1] > k else torch.zeros(len(s), dtype=torch.bool)
    s, i = s[:, :k], i[:, :k]
    kth = s[:, -1:]
    for r in cut.nonzero().flatten().tolist():  # the k-th score ties with a column left out
        above = (block[r] > kth[r]).nonzero().flatten()
        tied = (block[r] == kth[r]).nonzero().flatten()[: k - len(above)]
        i[r] = torch.cat([above, tied])
        s[r] = block[r, i[r]]
    return _best_first(s, i)


def _best_first(scores: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row sorted by score, best first, and equal scores by row of the collection."""
    order = indices.argsort(dim=1)
    scores, indices = scores.gather(1, order), indices.gather(1, order)
    order = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, order), indices.gather(1, order)


@dataclass(frozen=True)
class SearchResult:
    """Top-k results of a batch of queries, best first."""

    scores: np.ndarray  # (n_queries, k) cosine similarities (NaN where not found)
    indices: np.ndarray  # (n_queries, k) rows of the collection; -1: not found (approximate FAISS)
    ids: np.ndarray  # (n_queries, k) ids of those rows (None where not found)

    def frame(self, query: int = 0) -> pd.DataFrame:
        """One query's results as a table: rank, id, score, row (only rows that were found: an
        approximate FAISS index may find fewer than k)."""
        found = self.indices[query] >= 0
        return pd.DataFrame({
            "rank": np.arange(1, int(found.sum()) + 1),
            "id": self.ids[query][found],
            "score": self.scores[query][found],
            "row": self.indices[query][found],
        })


class EmbeddingIndex:
    """A collection of embeddings (e.g. audio clips) to search by cosine similarity.

    ``ids`` name the rows (default 0..n-1). ``backend``: ``"exact"`` (torch, batched; see
    :func:`topk_cosine` for ``batch_size``) or ``"faiss"`` (optional package; exact ``IndexFlatIP``
    unless ``faiss_factory`` names another index, which is then trained on the collection;
    ``faiss_nprobe`` sets how many inverted lists an IVF index visits per query: more is slower
    and closer to exact). Measured here, FAISS's exact index answers 1.7-2.5x more queries per
    second than the torch path from 10^4 to 10^6 items (benchmarks/RESULTS.md).
    """

    def __init__(self, embeddings: Any, ids: Sequence[Any] | None = None, *,
                 backend: str = "exact", batch_size: int | None = None,
                 faiss_factory: str | None = None, faiss_nprobe: int | None = None) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend={backend!r} is unknown; choose one of {BACKENDS}.")
        if (faiss_factory is not None or faiss_nprobe is not None) and backend != "faiss":
            raise ConfigError("faiss_factory and faiss_nprobe need backend='faiss'.")
        x = F.normalize(_as_matrix("embeddings", embeddings), dim=1)
        if len(x) == 0:
            raise ConfigError("the collection is empty; pass at least one embedding.")
        self.embeddings = x
        self.ids = np.arange(len(x)) if ids is None else np.asarray(list(ids), dtype=object)
        if len(self.ids) != len(x):
            raise ConfigError(f"{len(self.ids)} ids for {len(x)} embeddings; pass one id per row.")
        self.backend, self.batch_size = backend, batch_size
        self._faiss_exact = faiss_factory is None  # IndexFlatIP: the exact path's results
        self._faiss = self._build_faiss(faiss_factory, faiss_nprobe) if backend == "faiss" else None

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        """Embedding size."""
        return int(self.embeddings.shape[1])

    def _build_faiss(self, factory: str | None, nprobe: int | None) -> Any:
        try:
            import faiss
        except ImportError as err:
            raise missing_dependency("faiss-cpu", "the FAISS search back end",
                                     'pip install faiss-cpu (or use backend="exact")') from err
        data = np.ascontiguousarray(self.embeddings.numpy(), dtype=np.float32)
        if factory is None:
            index = faiss.IndexFlatIP(self.dim)
        else:
            try:
                index = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
                if not index.is_trained:
                    index.train(data)
            except RuntimeError as err:  # FAISS reports bad strings and sizes from C++
                lists = max(1, len(data) // _FAISS_MIN_POINTS_PER_LIST)
                reason = re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "",
                                str(err).strip().splitlines()[-1])
                raise ConfigError(
                    f"faiss_factory={factory!r} failed on {len(data)} items: {reason}. Use a valid index string with at "
                    f"most about {lists} inverted lists for this many items (e.g. "
                    f"'IVF{lists},Flat'), or backend='exact'.") from err
        if nprobe is not None:
            try:
                faiss.ParameterSpace().set_index_parameter(index, "nprobe", int(nprobe))
            except RuntimeError as err:
                raise ConfigError(f"faiss_nprobe applies to IVF indexes; {factory or 'Flat'} "
                                  "has no inverted lists.") from err
        index.add(data)
        return index

    def search(self, queries: Any, k: int = 10) -> SearchResult:
        """The ``k`` most similar rows for each query embedding (``(dim,)`` or ``(Q, dim)``)."""
        q = F.normalize(_as_matrix("queries", queries), dim=1)
        if q.shape[1] != self.dim:
            raise ConfigError(f"queries are {q.shape[1]}-d but the collection is {self.dim}-d; "
                              "embed them with the same model.")
        k = _check_k(k, len(self))
        if self._faiss is None:
            scores, indices = topk_cosine(q, self.embeddings, k, self.batch_size, normalize=False)
            scores, indices = scores.numpy(), indices.numpy()
        else:
            extra = int(self._faiss_exact and k < len(self))  # one more: is the k-th shared?
            scores, indices = self._faiss.search(np.ascontiguousarray(q.numpy()), k + extra)
            tied = np.flatnonzero(scores[:, k - 1] == scores[:, -1]) if extra else []
            scores, indices = (t.numpy() for t in _best_first(torch.from_numpy(scores[:, :k]),
                                                               torch.from_numpy(indices[:, :k])))
            if len(tied):  # FAISS keeps any of the rows that tie for the k-th place: ask torch
                s, i = topk_cosine(q[tied], self.embeddings, k, self.batch_size, normalize=False)
                scores[tied], indices[tied] = s.numpy(), i.numpy()
            found = indices >= 0  # an IVF index fills slots it could not reach with -1
            if not found.all():
                ids = np.where(found, self.ids[np.where(found, indices, 0)], None)
                return SearchResult(scores=np.where(found, scores, np.nan), indices=indices,
                                    ids=ids)
        return SearchResult(scores=scores, indices=indices, ids=self.ids[indices])


class AudioSearch:
    """Text queries against an embedded audio collection: ``search(query_text, k)``.

    ``encode_text(texts) -> (n, dim)`` embeds queries into the collection's space (e.g. a
    :class:`~zskit.models.dual_encoder.DualEncoder`'s ``embed_text``); ``index`` holds the audio
    embeddings and clip ids. When ``encode_text`` is a method of a torch module (``encode_text``
    of a model still in training mode, say), the module runs in eval mode for the search, so that
    dropout does not make the ranking random.
    """

    def __init__(self, encode_text: Callable[[list[str]], Any], index: EmbeddingIndex) -> None:
        self.encode_text, self.index = encode_text, index

    @torch.no_grad()
    def search(self, query_text: str | Sequence[str], k: int = 10
               ) -> pd.DataFrame | list[pd.DataFrame]:
        """The ``k`` best clips (rank, id, score, row) for one query, or a list for several."""
        single = isinstance(query_text, str)
        texts = [query_text] if single else list(query_text)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError(f"query_text {query_text!r} must be a non-empty string or a list "
                              "of them.")
        owner = getattr(self.encode_text, "__self__", None)
        was_training = isinstance(owner, torch.nn.Module) and owner.training
        if was_training:
            owner.eval()
        try:
            queries = self.encode_text(texts)
        finally:
            if was_training:
                owner.train()
        result = self.index.search(queries, k)
        frames = [result.frame(i) for i in range(len(texts))]
        return frames[0] if single else frames
