"""Exact batched top-k search against brute force; the FAISS back end; text queries."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from zskit.errors import ConfigError, DependencyError
from zskit.search import AudioSearch, EmbeddingIndex, topk_cosine

HAS_FAISS = importlib.util.find_spec("faiss") is not None


def brute_force(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    x = items / np.linalg.norm(items, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ x.astype(np.float64).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(37, 16)).astype(np.float32), rng.normal(size=(503, 16)).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 5, 1024])
def test_topk_cosine_matches_brute_force(data, batch_size):
    queries, items = data
    scores, idx = topk_cosine(queries, items, k=7, batch_size=batch_size)
    ref_scores, ref_idx = brute_force(queries, items, 7)
    assert np.array_equal(idx.numpy(), ref_idx), "ranking differs from numpy's argsort"
    assert np.allclose(scores.numpy(), ref_scores, atol=1e-5), "scores differ from brute force"


def test_topk_cosine_scale_invariant_and_dot_product_option(data):
    queries, items = data
    _, idx = topk_cosine(queries, items * 7.0, k=5)
    _, ref = brute_force(queries, items, 5)
    assert np.array_equal(idx.numpy(), ref), "cosine ranking must ignore item norms"
    scaled = items.copy()
    scaled[3] *= 100.0
    _, dot_idx = topk_cosine(queries, scaled, k=4, normalize=False)
    dot_ref = np.argsort(-(queries.astype(np.float64) @ scaled.T), axis=1, kind="stable")[:, :4]
    assert np.array_equal(dot_idx.numpy(), dot_ref), "normalize=False ranks by dot product"
    assert not np.array_equal(dot_ref, brute_force(queries, scaled, 4)[1]), "test needs a difference"


def test_topk_k_larger_than_collection_and_errors(data):
    queries, items = data
    scores, idx = topk_cosine(queries[:2], items[:4], k=10)
    assert idx.shape == scores.shape == (2, 4), "k is capped at the collection size"
    with pytest.raises(ConfigError, match="16-d but items 8-d"):
        topk_cosine(queries, items[:, :8], k=3)
    with pytest.raises(ConfigError, match="positive int"):
        topk_cosine(queries, items, k=0)


def test_index_returns_ids_and_frames(data):
    queries, items = data
    ids = [f"clip{i:03d}" for i in range(len(items))]
    index = EmbeddingIndex(items, ids=ids, batch_size=8)
    result = index.search(queries, k=3)
    _, ref = brute_force(queries, items, 3)
    assert np.array_equal(result.indices, ref)
    assert result.ids[0, 0] == ids[ref[0, 0]], "ids follow the rows"
    frame = result.frame(2)
    assert list(frame.columns) == ["rank", "id", "score", "row"]
    assert frame["rank"].tolist() == [1, 2, 3] and frame["score"].is_monotonic_decreasing
    one = index.search(torch.as_tensor(queries[0]), k=2)
    assert one.indices.shape == (1, 2), "a single (dim,) query works"
    with pytest.raises(ConfigError, match="one id per row"):
        EmbeddingIndex(items, ids=ids[:3])
    with pytest.raises(ConfigError, match="unknown"):
        EmbeddingIndex(items, backend="annoy")


@pytest.mark.skipif(HAS_FAISS, reason="faiss is installed")
def test_faiss_backend_missing_says_how_to_install(data):
    with pytest.raises(DependencyError, match="pip install faiss-cpu"):
        EmbeddingIndex(data[1], backend="faiss")


@pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed")
def test_faiss_backend_matches_exact(data):
    queries, items = data
    exact = EmbeddingIndex(items).search(queries, k=5)
    faiss_result = EmbeddingIndex(items, backend="faiss").search(queries, k=5)
    assert np.array_equal(exact.indices, faiss_result.indices)
    assert np.allclose(exact.scores, faiss_result.scores, atol=1e-5)


def test_audio_search_with_text_queries():
    vocab = {"dog": [1.0, 0.0, 0.0], "car": [0.0, 1.0, 0.0], "rain": [0.0, 0.0, 1.0]}

    def encode(texts):
        return torch.tensor([vocab[t.split()[-1]] for t in texts])

    audio = torch.tensor([[0.1, 0.9, 0.0], [0.9, 0.1, 0.1], [0.0, 0.2, 1.0], [0.7, 0.0, 0.7]])
    engine = AudioSearch(encode, EmbeddingIndex(audio, ids=["car1", "dog1", "rain1", "mix"]))
    top = engine.search("a barking dog", k=2)
    assert top["id"].tolist() == ["dog1", "mix"], top
    several = engine.search(["heavy rain", "a fast car"], k=1)
    assert [f["id"].iloc[0] for f in several] == ["rain1", "car1"]
    with pytest.raises(ConfigError, match="non-empty string"):
        engine.search("  ")


def test_exact_blocks_fit_the_score_budget_and_give_the_same_results():
    from zskit.search import SCORE_BUDGET, auto_batch_size

    assert auto_batch_size(10**6) == SCORE_BUDGET // 10**6 and auto_batch_size(10**9) == 1
    g = torch.Generator().manual_seed(0)
    queries, items = torch.randn(50, 8, generator=g), torch.randn(300, 8, generator=g)
    one_block = topk_cosine(queries, items, 5)
    small_blocks = topk_cosine(queries, items, 5, batch_size=7)
    torch.testing.assert_close(one_block[0], small_blocks[0])
    assert torch.equal(one_block[1], small_blocks[1])


def test_faiss_nprobe_reaches_the_ivf_index_and_is_refused_elsewhere():
    faiss = pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(1)
    items = torch.randn(400, 16, generator=g)
    index = EmbeddingIndex(items, backend="faiss", faiss_factory="IVF4,Flat", faiss_nprobe=4)
    assert faiss.extract_index_ivf(index._faiss).nprobe == 4
    exact = EmbeddingIndex(items).search(items[:20], 3)
    assert (index.search(items[:20], 3).indices == exact.indices).all(), "nprobe = all lists is exact"
    with pytest.raises(ConfigError, match="IVF"):
        EmbeddingIndex(items, backend="faiss", faiss_nprobe=4)
    with pytest.raises(ConfigError, match="backend='faiss'"):
        EmbeddingIndex(items, faiss_nprobe=4)


@pytest.mark.skipif(not HAS_FAISS, reason="faiss-cpu is not installed")
def test_an_approximate_index_that_finds_fewer_than_k_shows_only_what_it_found():
    items = torch.randn(400, 16, generator=torch.Generator().manual_seed(3))
    index = EmbeddingIndex(items, ids=[f"clip{i}" for i in range(400)], backend="faiss",
                           faiss_factory="IVF16,Flat", faiss_nprobe=1)
    result = index.search(items[:5], 100)  # one list of 16 holds about 25 items, not 100
    missing = result.indices < 0
    assert missing.any(), "the test needs an index that leaves slots empty"
    assert all(i is None for i in result.ids[missing]) and np.isnan(result.scores[missing]).all()
    for q in range(5):
        frame = result.frame(q)
        assert len(frame) == int((~missing[q]).sum()) and (frame["row"] >= 0).all(), frame
        assert frame["rank"].tolist() == list(range(1, len(frame) + 1))
        assert frame["id"].tolist() == [f"clip{i}" for i in frame["row"]], "ids follow rows"


@pytest.mark.skipif(not HAS_FAISS, reason="faiss-cpu is not installed")
@pytest.mark.parametrize("factory", ["NotAnIndex", "IVF1024,Flat"])
def test_a_faiss_index_that_cannot_be_built_says_what_to_use(factory):
    items = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="IVF1,Flat|backend='exact'"):
        EmbeddingIndex(items, backend="faiss", faiss_factory=factory)


def test_audio_search_runs_a_model_method_in_eval_mode_and_restores_training():
    from zskit.models.dual_encoder import DualEncoder

    torch.manual_seed(0)
    words = {w: torch.randn(8) for w in "abc"}
    model = DualEncoder.from_embeddings(8, 8, dim=16, projection="mlp", dropout=0.5,
                                        encode_text=lambda ts: torch.stack([words[t] for t in ts]))
    index = EmbeddingIndex(model.embed_audio(torch.randn(50, 8)))
    expected = AudioSearch(model.embed_text, index).search("a", k=5)["row"].tolist()
    engine = AudioSearch(model.encode_text, index)  # a model in training mode: dropout on
    assert all(engine.search("a", k=5)["row"].tolist() == expected for _ in range(4))
    assert model.training and model.audio_projection[2].training


def test_equal_scores_go_to_the_lowest_rows_in_both_back_ends():
    """Duplicate clips (or captions) tie: the exact path keeps the lowest rows, as the stable
    brute force and FAISS do, for any batch size; torch.topk alone keeps arbitrary ones."""
    items = np.repeat(np.eye(3, dtype=np.float32)[:2], 50, axis=0)  # rows 0-49 and 50-99 equal
    items = np.concatenate([items, [[0.6, 0.8, 0.0]]]).astype(np.float32)  # row 100: no tie
    queries = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0.6, 0.8, 0.0]], dtype=np.float32)
    _, ref = brute_force(queries, items, 5)
    for batch_size in (1, 3, None):
        _, idx = topk_cosine(queries, items, k=5, batch_size=batch_size)
        assert np.array_equal(idx.numpy(), ref), f"batch_size={batch_size}: {idx.tolist()}"
    assert EmbeddingIndex(items).search(queries, k=5).indices.tolist() == ref.tolist()
    if HAS_FAISS:
        faiss_result = EmbeddingIndex(items, backend="faiss").search(queries, k=5)
        assert faiss_result.indices.tolist() == ref.tolist(), "FAISS differs from exact on ties"
