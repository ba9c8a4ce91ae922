"""Top-k per row with seen-item filtering: a numba kernel, and the numpy path it replaces.

The kernel keeps a k-sized min-heap per row and skips the row's excluded columns (a CSR row of
seen items) without writing them into the score matrix, in parallel over rows. Ties go to the
lower column index, like the numpy path (``argpartition`` + stable sort), so both give the same
lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["top_k_excluding"]

_KERNEL: Any = None


def _kernel() -> Any:
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    try:
        import numba
    except ImportError:  # the numpy path below is used instead
        _KERNEL = False
        return _KERNEL

    @numba.njit(parallel=True, cache=True, nogil=True)
    def topk_rows(scores, indptr, indices, k, out_idx, out_val):  # type: ignore[no-untyped-def]
        n, m = scores.shape
        for r in numba.prange(n):
            heap_v = np.full(k, -np.inf)
            heap_i = np.full(k, -1, dtype=np.int64)
            seen = indices[indptr[r]:indptr[r + 1]]
            blocked = np.zeros(seen.size, dtype=np.int64)
            for j in range(seen.size):
                blocked[j] = seen[j]
            blocked.sort()
            b = 0
            for c in range(m):
                while b < blocked.size and blocked[b] < c:
                    b += 1
                if b < blocked.size and blocked[b] == c:
                    continue
                v = scores[r, c]
                if v > heap_v[0] and v != -np.inf:
                    # replace the root (the smallest kept) and sift down; ties keep the older entry
                    pos = 0
                    while True:
                        left = 2 * pos + 1
                        if left >= k:
                            break
                        right = left + 1
                        child = left
                        if right < k and (heap_v[right] < heap_v[left]
                                          or (heap_v[right] == heap_v[left] and heap_i[right] > heap_i[left])):
                            child = right
                        if heap_v[child] < v or (heap_v[child] == v and heap_i[child] > c):
                            heap_v[pos] = heap_v[child]
                            heap_i[pos] = heap_i[child]
                            pos = child
                        else:
                            break
                    heap_v[pos] = v
                    heap_i[pos] = c
            # sort descending by value, ascending by index for ties
            order = np.argsort(heap_i)
            vals = heap_v[order]
            idx = heap_i[order]
            order2 = np.argsort(-vals, kind="mergesort")
            for j in range(k):
                out_val[r, j] = vals[order2[j]]
                out_idx[r, j] = idx[order2[j]]

    _KERNEL = topk_rows
    return _KERNEL


def top_k_excluding(
    scores: np.ndarray, k: int, indptr: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns per row, leaving out each row's ``indices[indptr[r]:indptr[r+1]]``.

    Columns scoring ``-inf`` are never returned: their slots hold index ``-1`` and ``-inf``.
    ``scores`` may be modified (the numpy path writes ``-inf`` into excluded cells).

    Returns:
        ``(indices, values)``, each ``(n_rows, min(k, n_cols))``, best first.
    """
    n, m = scores.shape
    k = min(k, m)
    kernel = _kernel()
    if kernel is not False and k > 0 and n > 0:
        out_idx = np.empty((n, k), dtype=np.int64)
        out_val = np.empty((n, k), dtype=np.float64)
        kernel(scores, indptr.astype(np.int64), indices.astype(np.int64), k, out_idx, out_val)
        return out_idx, out_val
    from aisle.models._base import top_k

    scores[np.repeat(np.arange(n), np.diff(indptr)), indices] = -np.inf
    idx, vals = top_k(scores, k)
    return np.where(np.isfinite(vals), idx, -1), vals
