"""ItemKNN: similarity values checked by hand, BM25/TF-IDF weights, top-k, blocks, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.models._itemknn import ItemKNN, bm25_weight, cosine_topk, tfidf_weight

# users x items (a, b, c); columns a=(2,1,0), b=(1,0,1), c=(0,1,1)
# |a|=√5, |b|=|c|=√2; a·b=2, a·c=1, b·c=1
X3 = np.array([[2.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


def _interactions(x: np.ndarray) -> Interactions:
    n_users, n_items = x.shape
    return Interactions(
        sp.csr_array(x.astype(np.float32)),
        Vocabulary([f"u{u}" for u in range(n_users)]),
        Vocabulary([chr(ord("a") + i) for i in range(n_items)]),
    )


def _random_matrix(seed: int, n_users: int = 40, n_items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.2
    values = rng.integers(1, 6, size=(n_users, n_items)) * dense
    return sp.csr_matrix(values.astype(np.float64))


def test_cosine_by_hand_without_shrinkage() -> None:
    m = ItemKNN(weighting="none", shrink=0.0).fit(_interactions(X3))
    s = m.similarity_.toarray()
    expected = np.array(
        [
            [0.0, 2 / np.sqrt(10), 1 / np.sqrt(10)],
            [2 / np.sqrt(10), 0.0, 0.5],
            [1 / np.sqrt(10), 0.5, 0.0],
        ]
    )
    np.testing.assert_allclose(s, expected, rtol=1e-6)


def test_cosine_by_hand_with_shrinkage() -> None:
    m = ItemKNN(weighting="none", shrink=1.0).fit(_interactions(X3))
    s = m.similarity_.toarray()
    ab, ac, bc = 2 / (np.sqrt(10) + 1), 1 / (np.sqrt(10) + 1), 1 / (2 + 1)
    np.testing.assert_allclose(s, [[0, ab, ac], [ab, 0, bc], [ac, bc, 0]], rtol=1e-6)


def test_top_one_neighbour_and_scores_are_history_times_similarity() -> None:
    m = ItemKNN(weighting="none", shrink=0.0, neighbors=1).fit(_interactions(X3))
    s = m.similarity_.toarray()
    # a -> b (0.632 > 0.316), b -> a (0.632 > 0.5), c -> b (0.5 > 0.316)
    assert (s > 0).tolist() == [[False, True, False], [True, False, False], [False, True, False]]
    got = m.score(["u2"], ["a", "b", "c"])[0]  # history (0, 1, 1)
    np.testing.assert_allclose(got, np.array([0.0, 1.0, 1.0]) @ s, rtol=1e-6)
    np.testing.assert_allclose(got, [2 / np.sqrt(10), 0.5, 0.0], rtol=1e-6)


def test_bm25_matches_the_direct_formula() -> None:
    x = _random_matrix(1)
    k1, b = 1.5, 0.6
    w = bm25_weight(x, k1, b).toarray()
    dense = x.toarray()
    n_users, n_items = dense.shape
    length = dense.sum(axis=0)
    avg = length[length > 0].mean()
    expected = np.zeros_like(dense)
    for u in range(n_users):
        idf = np.log(n_items / (1 + np.count_nonzero(dense[u])))
        for i in range(n_items):
            r = dense[u, i]
            if r:
                expected[u, i] = r * (k1 + 1) / (k1 * (1 - b + b * length[i] / avg) + r) * idf
    np.testing.assert_allclose(w, expected, rtol=1e-10)


def test_tfidf_matches_the_direct_formula() -> None:
    x = _random_matrix(2)
    dense = x.toarray()
    n_items = dense.shape[1]
    idf = np.log(n_items / (1 + np.count_nonzero(dense, axis=1)))
    np.testing.assert_allclose(tfidf_weight(x).toarray(), np.sqrt(dense) * idf[:, None], rtol=1e-10)


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_weighting_feeds_the_similarity(weighting: str) -> None:
    x = _random_matrix(3)
    m = ItemKNN(weighting=weighting, shrink=2.0, neighbors=5).fit(_interactions(x.toarray()))
    w = tfidf_weight(x) if weighting == "tfidf" else bm25_weight(x, 1.2, 0.75)
    np.testing.assert_allclose(m.similarity_.toarray(), cosine_topk(w, 5, 2.0).toarray(), rtol=1e-6)


def test_blocks_do_not_change_the_result_and_k_is_respected() -> None:
    x = _random_matrix(4, n_users=60, n_items=50)
    whole = cosine_topk(x, 7, 3.0, block_memory_mb=64)
    tiny = cosine_topk(x, 7, 3.0, block_memory_mb=1e-4)  # one item per block
    np.testing.assert_allclose(whole.toarray(), tiny.toarray())
    assert np.diff(whole.indptr).max() <= 7
    assert np.all(whole.diagonal() == 0)
    # the kept neighbours are the largest ones of each row
    full = cosine_topk(x, 49, 3.0).toarray()
    for row in range(50):
        kept = whole[row].toarray().ravel()
        if kept.any():
            assert kept[kept > 0].min() >= np.sort(full[row])[-7] - 1e-7


def test_normalize_makes_each_items_votes_sum_to_one() -> None:
    m = ItemKNN(normalize=True, neighbors=5).fit(_interactions(_random_matrix(5).toarray()))
    sums = np.asarray(m.similarity_.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-5)


def test_similar_items_reads_the_similarity_matrix_and_pads() -> None:
    m = ItemKNN(weighting="none", shrink=0.0, neighbors=1).fit(_interactions(X3))
    sims = m.similar_items(["a", "c"], k=2)
    assert sims.items.tolist() == [["b", None], ["b", None]]
    np.testing.assert_allclose(sims.scores[:, 0], [2 / np.sqrt(10), 0.5], rtol=1e-6)
    assert np.isneginf(sims.scores[:, 1]).all()


def test_fold_in_and_save_load(tmp_path: Path) -> None:
    x = _random_matrix(6)
    m = ItemKNN(neighbors=4).fit(_interactions(x.toarray()))
    history = sp.csr_matrix(x[[3]])
    folded = m.recommend(["newcomer"], k=5, history=history)
    known = m.recommend(["u3"], k=5)
    assert folded.sources.tolist() == ["fold-in"]
    assert folded.items.tolist() == known.items.tolist()
    m.save(tmp_path / "knn")
    back = ItemKNN.load(tmp_path / "knn")
    assert isinstance(back, ItemKNN) and back.config == m.config
    assert (back.similarity_ != m.similarity_).nnz == 0
    users = [f"u{u}" for u in range(10)]
    np.testing.assert_allclose(back.recommend(users, k=5).scores, m.recommend(users, k=5).scores)
