"""ANNIndex: exact search equals numpy top-k, HNSW/IVF recall, persistence without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aisle.errors import ConfigError, NotFittedError
from aisle.models._ann import ANNIndex, recall_against

pytest.importorskip("faiss")


def clustered(n: int, dim: int, n_clusters: int, seed: int) -> np.ndarray:
    """Gaussian blobs around random unit centres: the shape item embeddings usually have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, n_clusters, n)] + 0.35 * rng.normal(size=(n, dim)) / np.sqrt(dim)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(5000, 32, 50, 0)
    q = clustered(200, 32, 50, 1)
    return x, q


def numpy_top_k(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = q.astype(np.float64) @ x.T.astype(np.float64)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_exact_equals_numpy_top_k(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    ids, scores = ANNIndex("exact", metric="ip").build(x).search(q, 10)
    want = numpy_top_k(x, q, 10)
    # float32 products may swap near-ties: compare sets and the score order
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want, strict=True)]) > 0.999
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(scores[:, 0], (q @ x.T).max(axis=1), rtol=1e-5)


def test_cosine_normalises(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    scaled = x * np.random.default_rng(2).uniform(0.1, 10, size=(len(x), 1)).astype(np.float32)
    a, _ = ANNIndex("exact", metric="cosine").build(scaled).search(q, 5)
    b, _ = ANNIndex("exact", metric="cosine").build(x).search(q, 5)
    assert np.mean(a == b) > 0.99


@pytest.mark.parametrize(("kind", "params"), [("hnsw", {"hnsw_m": 16, "ef_search": 128}),
                                              ("ivf", {"nlist": 64, "nprobe": 16})])
def test_ann_recall_vs_exact(data: tuple[np.ndarray, np.ndarray], kind: str, params: dict[str, int]) -> None:
    x, q = data
    exact_ids, _ = ANNIndex("exact", metric="ip").build(x).search(q, 10)
    index = ANNIndex(kind, metric="ip", ef_construction=100, **params).build(x)
    assert index.recall_at_k(q, 10) >= 0.9
    assert index.recall_at_k(q, 10, exact_ids=exact_ids) == index.recall_at_k(q, 10)
    ids, scores = index.search(q, 10)
    assert ids.shape == (len(q), 10) and (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_save_load_identical(tmp_path: Path, data: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    x, q = data
    index = ANNIndex(kind, hnsw_m=8, ef_construction=40, nlist=32, nprobe=4).build(x)
    path = index.save(tmp_path / "index.npz")
    with np.load(path, allow_pickle=False) as npz:  # no object arrays inside
        assert all(npz[k].dtype != object for k in npz.files)
    back = ANNIndex.load(path)
    assert back.settings() == index.settings() and back.ntotal == len(x) and back.dim == x.shape[1]
    a_ids, a_scores = index.search(q, 10)
    b_ids, b_scores = back.search(q, 10)
    assert (a_ids == b_ids).all()
    np.testing.assert_array_equal(a_scores, b_scores)


def test_search_params_and_large_k(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = ANNIndex("hnsw", hnsw_m=8, ef_construction=40, ef_search=8).build(x)
    low = index.recall_at_k(q, 10)
    index.set_search_params(ef_search=128)
    assert index.recall_at_k(q, 10) >= low
    ids, _ = index.search(q[:3], 500)  # k above ef_search: raised for the call, then restored
    assert ids.shape == (3, 500) and (ids >= 0).mean() > 0.95 and index.ef_search == 128
    assert ANNIndex("exact").build(x[:4]).search(q[:2], 10)[0].shape == (2, 4)


def test_errors(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    with pytest.raises(ConfigError, match="valid: exact, hnsw, ivf"):
        ANNIndex("annoy")
    with pytest.raises(ConfigError, match="metric"):
        ANNIndex("exact", metric="l2")
    with pytest.raises(NotFittedError):
        ANNIndex("hnsw").search(q, 3)
    index = ANNIndex("exact").build(x)
    with pytest.raises(ConfigError, match="dimension"):
        index.search(q[:, :8], 3)
    with pytest.raises(ConfigError, match="NaN"):
        ANNIndex("exact").build(np.full((3, 2), np.nan))


def test_missing_faiss_names_the_extra(monkeypatch: pytest.MonkeyPatch, data: tuple[np.ndarray, np.ndarray]) -> None:
    import sys

    from aisle.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(MissingDependencyError, match=r"aisle\[ann\]"):
        ANNIndex("hnsw").build(data[0])
    ANNIndex("exact").build(data[0])  # exact search needs no faiss


def test_recall_against() -> None:
    assert recall_against(np.array([[1, 2, 3]]), np.array([[3, 4, 1]])) == pytest.approx(2 / 3)
    assert recall_against(np.array([[1, -1]]), np.array([[1, -1]])) == 1.0
