"""The arrays the request path works on, built once per model version (off the request path).

Every item any stage can return (the model's items, the catalog's, the popularity, trending,
new-arrival and curated lists, co-view neighbours) gets one integer position in an *item space*;
the model's items come first, so a model column index is its position. Business rules become
boolean masks over that space, fusion and rules become a handful of numpy calls over a few dozen
positions, and only the final k items become Python objects.

Factor models whose scores are a plain product of their stored factor matrices (iALS, BPR ...)
are recognised at load time by comparing the product with the model's own scoring on a sample
of users; their known users are then scored here with one matrix-vector product. Other models
are scored through their own code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from aisle.serving._assets import ServingModel

__all__ = ["SOURCE_WEIGHTS", "FastIndex", "build_fast_index", "rrf_weights", "source_code", "source_name"]

#: Weight of each candidate source in the fusion.
SOURCE_WEIGHTS: dict[str, float] = {
    "model": 1.0, "fold-in": 1.0, "batch": 1.0, "cached": 1.0, "segment-popular": 0.8, "popular": 0.7,
    "co-view": 0.6, "trending": 0.3, "new-arrivals": 0.2, "curated": 0.1,
}
RRF_K = 20.0
_UNKNOWN_SOURCE_WEIGHT = 0.1

_SOURCE_NAMES: list[str] = list(SOURCE_WEIGHTS)
_SOURCE_CODES: dict[str, int] = {n: i for i, n in enumerate(_SOURCE_NAMES)}
_SOURCE_W: list[float] = [SOURCE_WEIGHTS[n] for n in _SOURCE_NAMES]


def source_code(name: str) -> int:
    """The integer code of a source name (new names get weight 0.1)."""
    code = _SOURCE_CODES.get(name)
    if code is None:
        code = _SOURCE_CODES[name] = len(_SOURCE_NAMES)
        _SOURCE_NAMES.append(name)
        _SOURCE_W.append(SOURCE_WEIGHTS.get(name, _UNKNOWN_SOURCE_WEIGHT))
    return code


def source_name(code: int) -> str:
    """The source name of a code."""
    return _SOURCE_NAMES[code]


def source_weight(code: int) -> float:
    """The fusion weight of a source code."""
    return _SOURCE_W[code]


_RANK_DENOM = RRF_K + 1.0 + np.arange(4096, dtype=np.float64)
_RRF_CACHE: dict[int, np.ndarray] = {}


def rrf_weights(code: int, n: int) -> np.ndarray:
    """``weight(source) / (RRF_K + rank + 1)`` for ranks 0..n-1 (the same float operations as a
    per-item loop, so fused scores and their ties are bit-for-bit those of the reference)."""
    if n > _RANK_DENOM.size:
        return _SOURCE_W[code] / (RRF_K + 1.0 + np.arange(n, dtype=np.float64))
    w = _RRF_CACHE.get(code)
    if w is None:
        w = _RRF_CACHE[code] = _SOURCE_W[code] / _RANK_DENOM
    out: np.ndarray = w[:n]
    return out


def ordered_max(idx: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Distinct items by their largest value, descending, ties by first appearance."""
    n = idx.size
    if n == 0:
        return idx
    o = np.lexsort((np.arange(n), -value, idx))
    s_idx = idx[o]
    flag = np.empty(n, dtype=bool)
    flag[0] = True
    np.not_equal(s_idx[1:], s_idx[:-1], out=flag[1:])
    start = np.flatnonzero(flag)
    best = value[o[start]]
    first = np.minimum.reduceat(o, start)
    order = np.lexsort((first, -best))
    out: np.ndarray = s_idx[start][order]
    return out


@dataclass
class FastIndex:
    """One model version's item space, rule columns, lists and scoring shortcuts.

    Attributes:
        ids: item id per position.
        pos: item id -> position.
        n_model: the model's items hold positions ``0 .. n_model - 1`` (its column order).
        in_catalog: the catalog knows the item.
        eligible: passes the static rules (not known to be out of stock).
        price: price (``nan``: unknown).
        brand: brand code per position (``-1``: not in the catalog).
        brand_code: brand -> code.
        category: category code per position (``-1``: not in the catalog).
        categories: category path per code.
        popular, curated, trending, new_arrivals: the lists as positions.
        segment_popular: per segment, positions by popularity.
        coview_nb: per position, co-view neighbour positions (``-1`` padding), best first.
        coview_sim: their similarities.
        static_idx, static_w, static_src: the fusion entries of the trending and new-arrival
            lists (the same for every request).
        ineligible_model: model columns that fail the static rules.
        user_row: known user id -> the model's user index.
        seen_indptr, seen_indices: the training matrix's rows (items each user interacted with).
        kernel: ``kernel(user_index) -> scores`` for factor models (``None``: use the model).
    """

    ids: np.ndarray
    pos: dict[str, int]
    n_model: int
    in_catalog: np.ndarray
    eligible: np.ndarray
    price: np.ndarray
    brand: np.ndarray
    brand_code: dict[str, int]
    category: np.ndarray
    categories: list[str]
    popular: np.ndarray
    curated: np.ndarray
    trending: np.ndarray
    new_arrivals: np.ndarray
    segment_popular: dict[str, np.ndarray]
    coview_nb: np.ndarray
    coview_sim: np.ndarray
    static_idx: np.ndarray
    static_w: np.ndarray
    static_src: np.ndarray
    ineligible_model: np.ndarray
    user_row: dict[str, int]
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    kernel: Callable[[int], np.ndarray] | None = None
    _prefix: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _matrix: Any = field(default=None, repr=False)  # the training matrix (CSR), for model scoring rows

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ids, in order; ids outside the item space are left out."""
        pos = self.pos
        return np.fromiter((p for p in (pos.get(i) for i in ids) if p is not None), dtype=np.int64)

    def category_lut(self, prefix: str) -> np.ndarray:
        """Per category code (plus a last ``False`` slot for ``-1``): the path is ``prefix`` or under it."""
        lut = self._prefix.get(prefix)
        if lut is None:
            under = prefix + "/"
            lut = np.zeros(len(self.categories) + 1, dtype=bool)
            for code, path in enumerate(self.categories):
                if path == prefix or path.startswith(under):
                    lut[code] = True
            if len(self._prefix) >= 4096:
                self._prefix.clear()
            self._prefix[prefix] = lut
        return lut

    def brand_lut(self, brands: set[str]) -> np.ndarray | None:
        """Per brand code (plus a last ``False`` slot for ``-1``): the brand is in ``brands``."""
        codes = [self.brand_code[b] for b in brands if b in self.brand_code]
        if not codes:
            return None
        lut = np.zeros(len(self.brand_code) + 1, dtype=bool)
        lut[codes] = True
        return lut

    def seen(self, row: int) -> np.ndarray:
        """The model columns a known user interacted with in training."""
        out: np.ndarray = self.seen_indices[self.seen_indptr[row]:self.seen_indptr[row + 1]]
        return out

    def user_rows(self, row: int) -> sp.csr_matrix:
        """A known user's training row as a one-row CSR matrix (the model's scoring input)."""
        a, b = int(self.seen_indptr[row]), int(self.seen_indptr[row + 1])
        return self._csr_row(a, b)

    def _csr_row(self, a: int, b: int) -> sp.csr_matrix:
        m = self._matrix
        return sp.csr_matrix((m.data[a:b], m.indices[a:b], np.array([0, b - a], dtype=m.indptr.dtype)),
                             shape=(1, m.shape[1]))


def _factor_kernel(model: Any, n_items: int, fx: FastIndex) -> Callable[[int], np.ndarray] | None:
    """``kernel(u) = item_factors @ user_factors[u] (+ item_bias)`` when that reproduces the model's
    own scores on sample users; ``None`` otherwise."""
    uf = getattr(model, "user_factors_", None)
    itf = getattr(model, "item_factors_", None)
    scorer = getattr(model, "_batch_scores", None)
    if not (isinstance(uf, np.ndarray) and isinstance(itf, np.ndarray) and scorer is not None):
        return None
    if uf.ndim != 2 or itf.ndim != 2 or uf.shape[1] != itf.shape[1] or itf.shape[0] != n_items or uf.shape[0] == 0:
        return None
    if getattr(model, "uses_sequences", False):
        return None
    bias = getattr(model, "item_bias_", None)
    if not (isinstance(bias, np.ndarray) and bias.shape == (n_items,)):
        bias = None
    itf_c = np.ascontiguousarray(itf)
    uf_c = np.ascontiguousarray(uf)
    users = getattr(model, "users_", None)
    if users is None:
        return None
    sample = np.unique(np.linspace(0, uf.shape[0] - 1, num=min(8, uf.shape[0])).astype(np.int64))
    try:
        ids = [str(users.ids[int(i)]) for i in sample]
        ref = np.asarray(scorer(ids, _rows(fx, sample), sample, None), dtype=np.float64)
    except Exception:
        return None
    if ref.shape != (sample.size, n_items) or not np.isfinite(ref).all():
        return None
    prod = (uf_c[sample] @ itf_c.T).astype(np.float64)
    scale = float(np.abs(ref).max()) or 1.0
    candidates: list[tuple[np.ndarray | None, np.ndarray]] = [(None, prod)]
    if bias is not None:
        candidates.insert(0, (bias, prod + bias[None, :]))
    for b, guess in candidates:
        if np.allclose(guess, ref, rtol=1e-4, atol=1e-5 * scale):
            if b is None:
                return lambda u: itf_c @ uf_c[u]
            bias_c = np.ascontiguousarray(b, dtype=itf_c.dtype)
            return lambda u: itf_c @ uf_c[u] + bias_c
    return None


def _rows(fx: FastIndex, users: np.ndarray) -> sp.csr_matrix:
    return sp.vstack([fx.user_rows(int(u)) for u in users], format="csr")


def build_fast_index(sm: ServingModel) -> FastIndex:
    """The item space, masks and lists of one served model version."""
    model = sm.model
    model_ids = [str(i) for i in model.items_.ids]
    ids: list[str] = list(model_ids)
    pos: dict[str, int] = {i: p for p, i in enumerate(ids)}
    n_model = len(ids)

    def add(items: Sequence[str]) -> None:
        for i in items:
            if i not in pos:
                pos[i] = len(ids)
                ids.append(i)

    cat = sm.catalog
    add(list(cat.index))
    for lst in (sm.popular, sm.curated, sm.trending, sm.new_arrivals, *sm.segment_popular.values()):
        add(lst)
    for nbs in sm.coview.values():
        add([i for i, _ in nbs])
    n = len(ids)
    in_catalog = np.zeros(n, dtype=bool)
    eligible = np.ones(n, dtype=bool)
    price = np.full(n, np.nan)
    brand = np.full(n, -1, dtype=np.int64)
    category = np.full(n, -1, dtype=np.int64)
    brand_code: dict[str, int] = {}
    cat_code: dict[str, int] = {}
    if cat.index:
        rows = np.fromiter(cat.index.values(), dtype=np.int64, count=len(cat.index))
        where = np.fromiter((pos[i] for i in cat.index), dtype=np.int64, count=len(cat.index))
        in_catalog[where] = True
        stock = np.asarray(cat.stock, dtype=np.float64)[rows]
        eligible[where] = ~(stock <= 0)
        price[where] = np.asarray(cat.price, dtype=np.float64)[rows]
        brand[where] = [brand_code.setdefault(cat.brand[r], len(brand_code)) for r in rows]
        category[where] = [cat_code.setdefault(cat.category[r], len(cat_code)) for r in rows]

    def arr(lst: Sequence[str]) -> np.ndarray:
        return np.fromiter((pos[i] for i in lst), dtype=np.int64, count=len(lst))

    width = max((len(v) for v in sm.coview.values()), default=0)
    coview_nb = np.full((n, max(width, 1)), -1, dtype=np.int64)
    coview_sim = np.zeros((n, max(width, 1)), dtype=np.float64)
    for item, nbs in sm.coview.items():
        p = pos.get(item)
        if p is not None and nbs:
            coview_nb[p, :len(nbs)] = [pos[i] for i, _ in nbs]
            coview_sim[p, :len(nbs)] = [s for _, s in nbs]
    trending = arr(sm.trending)
    new_arrivals = arr(sm.new_arrivals)
    t, a = trending[:50], new_arrivals[:20]
    static_idx = np.concatenate([t, a])
    static_w = np.concatenate([rrf_weights(source_code("trending"), t.size), rrf_weights(source_code("new-arrivals"), a.size)])
    static_src = np.concatenate([np.full(t.size, source_code("trending")), np.full(a.size, source_code("new-arrivals"))])
    matrix = sp.csr_matrix(model.train_matrix_)
    fx = FastIndex(
        ids=np.asarray(ids, dtype=object), pos=pos, n_model=n_model, in_catalog=in_catalog, eligible=eligible,
        price=price, brand=brand, brand_code=brand_code, category=category, categories=list(cat_code),
        popular=arr(sm.popular), curated=arr(sm.curated), trending=trending, new_arrivals=new_arrivals,
        segment_popular={s: arr(v) for s, v in sm.segment_popular.items()}, coview_nb=coview_nb,
        coview_sim=coview_sim, static_idx=static_idx, static_w=static_w, static_src=static_src.astype(np.int64),
        ineligible_model=np.flatnonzero(~eligible[:n_model]),
        user_row={str(u): r for r, u in enumerate(model.users_.ids)},
        seen_indptr=matrix.indptr.astype(np.int64), seen_indices=matrix.indices.astype(np.int64),
    )
    fx._matrix = matrix
    fx.kernel = _factor_kernel(model, n_model, fx)
    return fx
