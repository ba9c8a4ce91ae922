"""The top-k kernel with seen-item filtering agrees with the plain numpy path, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.models import _topk
from aisle.models._base import top_k


def reference(scores: np.ndarray, k: int, seen: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: a full sort by (score descending, column ascending), exclusions removed."""
    s = scores.astype(np.float64).copy()
    r, c = seen.nonzero()
    s[r, c] = -np.inf
    idx = np.empty((s.shape[0], k), dtype=np.int64)
    vals = np.empty((s.shape[0], k))
    for row in range(s.shape[0]):
        order = np.lexsort((np.arange(s.shape[1]), -s[row]))[:k]
        vals[row] = s[row, order]
        idx[row] = np.where(np.isfinite(vals[row]), order, -1)
    return idx, vals


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_numpy_with_ties_exclusions_and_short_rows(dtype: type) -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(40, 30)).astype(dtype)  # many ties
    scores[3, :] = -np.inf  # nothing rankable
    scores[4, 5:] = -np.inf  # fewer than k rankable
    seen = sp.random(40, 30, density=0.3, format="csr", random_state=1)
    assert _topk._kernel() is not False  # numba is installed in the test environment
    idx, vals = _topk.top_k_excluding(scores.copy(), 8, seen.indptr, seen.indices)
    ref_idx, ref_vals = reference(scores, 8, seen)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(vals, ref_vals)
    assert (idx[3] == -1).all()
    assert set(idx[4][idx[4] >= 0]) <= set(range(5)) - set(seen[4].indices)


def test_numpy_fallback_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    scores = rng.random((10, 50))
    seen = sp.random(10, 50, density=0.2, format="csr", random_state=3)
    fast = _topk.top_k_excluding(scores.copy(), 5, seen.indptr, seen.indices)
    monkeypatch.setattr(_topk, "_KERNEL", False)
    slow = _topk.top_k_excluding(scores.copy(), 5, seen.indptr, seen.indices)
    np.testing.assert_array_equal(fast[0], slow[0])  # continuous scores: no ties
    np.testing.assert_allclose(fast[1], slow[1])
    np.testing.assert_array_equal(top_k(np.array([[1.0, 3.0, 2.0]]), 2)[0], [[1, 2]])
