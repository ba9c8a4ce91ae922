"""Compiled kernels of the request path: the model's top-n and fusion + rules in one call each.

The request path would otherwise make some forty small numpy calls per cache miss (each a
microsecond or more, several when the process wakes up with cold caches between requests).
With numba installed (the ``fast`` extra) each step is one compiled call (``nogil``, cached on
disk, compiled by the service's warm-up); without it, the numpy implementations below do the
same work with the same results (the tests compare them).

Semantics, shared by both implementations:

* ``select_top(scores, seen, mask, n)``: the n best columns by score, ties to the lower column
  (as ``Recommender.recommend``), leaving out ``seen`` columns, columns where ``mask`` is False,
  and ``-inf``/``nan`` scores. ``scores`` is modified.
* ``fuse(...)``: weighted reciprocal-rank fusion of the primary list, the co-view list and the
  static (trending, new-arrival) entries: an item's score is the sum of
  ``weight(source) / (RRF_K + rank + 1)`` over its entries, added in list order (bit for bit the
  per-item loop's sums), its source that of its largest weight (the first on ties), the order by
  score then first appearance.
* ``apply_rules(...)``: the business rules' mask and the per-brand cap over the fused order,
  keeping the first ``limit`` items.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["apply_rules", "fuse", "have_numba", "select_top"]

RRF_BASE = 21.0  # RRF_K + 1


# ------------------------------------------------------------------------------------- plain Python
# (the bodies numba compiles; run uncompiled they would be slow: the numpy versions below are used)
def _select_top_kernel(s: Any, seen: Any, mask: Any, n: int, out: Any) -> int:
    for j in range(seen.size):
        s[seen[j]] = -np.inf
    m = s.size
    top_v = np.empty(n, dtype=np.float64)
    size = 0
    for c in range(m):
        v = s[c]
        if not mask[c] or not (v > -np.inf):  # excluded, -inf or nan
            continue
        if size == n and not (v > top_v[n - 1]):  # ties keep the lower column
            continue
        pos = size if size < n else n - 1
        while pos > 0 and top_v[pos - 1] < v:
            if pos < n:
                top_v[pos] = top_v[pos - 1]
                out[pos] = out[pos - 1]
            pos -= 1
        top_v[pos] = v
        out[pos] = c
        if size < n:
            size += 1
    return size


def _fuse_kernel(primary: Any, w_primary: float, code_primary: int, co: Any, w_co: float, code_co: int,
                 static_idx: Any, static_w: Any, static_src: Any, out_items: Any, out_scores: Any,
                 out_src: Any) -> int:
    na, nb, nc = primary.size, co.size, static_idx.size
    n = na + nb + nc
    idx = np.empty(n, dtype=np.int64)
    w = np.empty(n, dtype=np.float64)
    src = np.empty(n, dtype=np.int64)
    for r in range(na):
        idx[r] = primary[r]
        w[r] = w_primary / (RRF_BASE + r)
        src[r] = code_primary
    for r in range(nb):
        idx[na + r] = co[r]
        w[na + r] = w_co / (RRF_BASE + r)
        src[na + r] = code_co
    for r in range(nc):
        idx[na + nb + r] = static_idx[r]
        w[na + nb + r] = static_w[r]
        src[na + nb + r] = static_src[r]
    if n == 0:
        return 0
    o = np.argsort(idx, kind="mergesort")  # grouped by item, entries in list order
    items = np.empty(n, dtype=np.int64)
    total = np.empty(n, dtype=np.float64)
    first = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=np.int64)
    g = 0
    i = 0
    while i < n:
        j = o[i]
        it = idx[j]
        t = w[j]
        bw = w[j]
        bs = src[j]
        first[g] = j
        i += 1
        while i < n and idx[o[i]] == it:
            j = o[i]
            t = t + w[j]
            if w[j] > bw:
                bw = w[j]
                bs = src[j]
            i += 1
        items[g] = it
        total[g] = t
        best[g] = bs
        g += 1
    by_first = np.argsort(first[:g])
    neg = np.empty(g, dtype=np.float64)
    for k in range(g):
        neg[k] = -total[by_first[k]]
    order = by_first[np.argsort(neg, kind="mergesort")]
    for k in range(g):
        q = order[k]
        out_items[k] = items[q]
        out_scores[k] = total[q]
        out_src[k] = best[q]
    return g


def _rules_kernel(items: Any, mask: Any, brand: Any, in_catalog: Any, cap: int, brand_counts: Any,
                  limit: int, out: Any) -> int:
    kept = 0
    for k in range(items.size):
        p = items[k]
        if not mask[p]:
            continue
        if cap > 0 and in_catalog[p]:
            b = brand[p]
            if brand_counts[b] >= cap:
                continue
            brand_counts[b] += 1
        out[kept] = k
        kept += 1
        if kept >= limit:
            break
    return kept


_COMPILED: dict[str, Any] = {}


def have_numba() -> bool:
    """True when the compiled kernels are available."""
    if "ok" not in _COMPILED:
        try:
            import numba

            _COMPILED["select"] = numba.njit(cache=True, nogil=True)(_select_top_kernel)
            _COMPILED["fuse"] = numba.njit(cache=True, nogil=True)(_fuse_kernel)
            _COMPILED["rules"] = numba.njit(cache=True, nogil=True)(_rules_kernel)
            _COMPILED["ok"] = True
        except ImportError:
            _COMPILED["ok"] = False
    return bool(_COMPILED["ok"])


# ------------------------------------------------------------------------------------- numpy
def _select_top_numpy(s: np.ndarray, seen: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    m = s.shape[0]
    s[seen] = -np.inf
    s[~mask[:m]] = -np.inf
    nan = np.isnan(s)
    if nan.any():  # nan scores are never recommended
        s[nan] = -np.inf
    nn = min(n, m)
    thr = np.partition(s, m - nn)[m - nn] if nn < m else -np.inf  # the nn-th best score
    if thr == -np.inf:  # fewer than nn eligible items
        part = np.flatnonzero(s > -np.inf)
    else:
        part = np.flatnonzero(s > thr)
        if part.size < nn:  # ties at the cut: the lower columns
            part = np.concatenate((part, np.flatnonzero(s == thr)[: nn - part.size]))
    vals = s[part]
    order = np.lexsort((part, -vals))
    part, vals = part[order], vals[order]
    if not np.isfinite(vals[-1:]).all():
        part = part[np.isfinite(vals)]
    out: np.ndarray = part.astype(np.int64, copy=False)
    return out


def _fuse_numpy(idx: np.ndarray, w: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = idx.size
    if n == 0:
        return idx, w, src
    o = np.argsort(idx, kind="stable")
    s_idx = idx[o]
    flag = np.empty(n, dtype=bool)
    flag[0] = True
    np.not_equal(s_idx[1:], s_idx[:-1], out=flag[1:])
    start = np.flatnonzero(flag)
    items = s_idx[start]
    total = np.add.reduceat(w[o], start)
    first = o[start]
    best = src[first] if start.size == n else src[np.lexsort((np.arange(n), -w, idx))[start]]
    order = np.lexsort((first, -total))
    return items[order], total[order], best[order]


# ------------------------------------------------------------------------------------- entry points
def select_top(scores: np.ndarray, seen: np.ndarray, mask: np.ndarray, n: int, *,
               compiled: bool | None = None) -> np.ndarray:
    """The n best eligible columns, best first (see the module docstring); ``scores`` is modified."""
    m = scores.shape[0]
    if n <= 0 or m == 0:
        return np.zeros(0, dtype=np.int64)
    if compiled if compiled is not None else have_numba():
        out = np.empty(min(n, m), dtype=np.int64)
        size = _COMPILED["select"](scores, seen, mask, min(n, m), out)
        return out[:size]
    return _select_top_numpy(scores, seen, mask, n)


def fuse(primary: np.ndarray, code_primary: int, w_primary: float, co: np.ndarray, code_co: int, w_co: float,
         static_idx: np.ndarray, static_w: np.ndarray, static_src: np.ndarray, *,
         compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion: ``(positions, scores, source codes)``, best first (module docstring)."""
    if compiled if compiled is not None else have_numba():
        n = primary.size + co.size + static_idx.size
        out_items = np.empty(n, dtype=np.int64)
        out_scores = np.empty(n, dtype=np.float64)
        out_src = np.empty(n, dtype=np.int64)
        g = _COMPILED["fuse"](primary, w_primary, code_primary, co, w_co, code_co, static_idx, static_w, static_src,
                              out_items, out_scores, out_src)
        return out_items[:g], out_scores[:g], out_src[:g]
    idx = np.concatenate([primary, co, static_idx])
    w = np.concatenate([w_primary / (RRF_BASE + np.arange(primary.size, dtype=np.float64)),
                        w_co / (RRF_BASE + np.arange(co.size, dtype=np.float64)), static_w])
    src = np.concatenate([np.full(primary.size, code_primary), np.full(co.size, code_co), static_src])
    return _fuse_numpy(idx, w, src)


def apply_rules(items: np.ndarray, mask: np.ndarray, brand: np.ndarray, in_catalog: np.ndarray, n_brands: int,
                cap: int, limit: int, brand_counts: dict[int, int] | None = None, *,
                compiled: bool | None = None) -> np.ndarray:
    """Indices into ``items`` of the first ``limit`` that the mask allows, under the per-brand cap
    (``cap`` 0: none; only catalog items count). ``brand_counts``: the counts so far (updated;
    given, the numpy implementation runs)."""
    if brand_counts is None and (compiled if compiled is not None else have_numba()):
        counts = np.zeros(n_brands + 1 if cap > 0 else 1, dtype=np.int64)
        out = np.empty(items.size, dtype=np.int64)
        k = _COMPILED["rules"](items, mask, brand, in_catalog, cap, counts, limit, out)
        return out[:k]
    ok = np.flatnonzero(mask[items])
    if not cap:
        return ok[:limit]
    counts_d = brand_counts if brand_counts is not None else {}
    take: list[int] = []
    for j in ok.tolist():
        p = int(items[j])
        if in_catalog[p]:
            b = int(brand[p])
            if counts_d.get(b, 0) >= cap:
                continue
            counts_d[b] = counts_d.get(b, 0) + 1
        take.append(j)
        if len(take) >= limit:
            break
    return np.asarray(take, dtype=np.int64)
