"""Item-item nearest neighbours: cosine similarity with shrinkage, top-k neighbours per item.

The similarity of items ``a`` and ``b`` (columns of the, optionally re-weighted, user × item
matrix) is

    sim(a, b) = a · b / (‖a‖ ‖b‖ + shrink)

``shrink`` pulls similarities built on few co-occurrences towards zero (Koren's shrinkage): two
items seen together by one user get a cosine of 1 without it. Only the ``neighbors`` largest
similarities of each item are kept, in a sparse ``n_items × n_items`` matrix ``S`` (row ``a``
holds the neighbours of ``a``). A user's scores are ``history @ S``: every item of the history
votes for its neighbours with its interaction weight times the similarity, so a new user is
scored from their history row alone.

Re-weighting before the similarity follows implicit's ``tfidf_weight``/``bm25_weight`` applied to
the item × user matrix (items are the documents, users the terms): a user who interacted with
many items says less about any pair of them (the idf), and BM25 also saturates large weights
(``bm25_k1``) and normalises by item popularity (``bm25_b``).

The similarity is computed in blocks of items (a sparse product, densified one block at a time
for the top-k selection), so memory stays near ``block_memory_mb`` whatever the catalog size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field

from aisle.models._base import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ModelConfig,
    Recommendations,
    Recommender,
    SearchSpace,
)

__all__ = ["ItemKNN", "ItemKNNConfig", "bm25_weight", "cosine_topk", "tfidf_weight"]


class ItemKNNConfig(ModelConfig):
    """Config of :class:`ItemKNN`.

    Attributes:
        neighbors: similarities kept per item (the k of k-nearest neighbours).
        shrink: the shrinkage term added to the cosine denominator (0 = plain cosine).
        weighting: re-weighting of the interaction matrix before the similarity: ``"none"``,
            ``"tfidf"`` (``sqrt(r) * idf``) or ``"bm25"``.
        bm25_k1: BM25 term-frequency saturation (larger = closer to the raw weights).
        bm25_b: BM25 length normalisation (0 = none, 1 = full), over item popularity.
        normalize: scale each item's kept similarities to sum to 1 (Deshpande & Karypis, 2004),
            so every item of a history casts the same total vote however many close
            neighbours it has. Scores then are weighted averages of similarities.
        block_memory_mb: rough memory bound of one block of the similarity computation.
    """

    neighbors: int = Field(default=100, gt=0)
    shrink: float = Field(default=10.0, ge=0)
    weighting: Literal["none", "tfidf", "bm25"] = "bm25"
    bm25_k1: float = Field(default=1.2, ge=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    normalize: bool = False
    block_memory_mb: float = Field(default=256.0, gt=0)


def _user_idf(x: sp.csr_matrix) -> npt.NDArray[np.float64]:
    """``log(n_items / (1 + items of the user))`` per row of a user × item matrix."""
    n_items = x.shape[1]
    per_user = np.diff(x.indptr).astype(np.float64)
    idf: npt.NDArray[np.float64] = np.log(n_items) - np.log1p(per_user)
    return idf


def _rows_of(x: sp.csr_matrix) -> npt.NDArray[np.int64]:
    return np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))


def tfidf_weight(x: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """TF-IDF re-weighting of a user × item matrix (items are the documents, users the terms).

    ``w[u, i] = sqrt(x[u, i]) * log(n_items / (1 + n_u))`` where ``n_u`` is the number of items
    of user ``u`` (``sqrt`` is applied to ``|x|`` with the sign kept).

    Args:
        x: user × item matrix.

    Returns:
        A new float64 CSR matrix with the same sparsity.
    """
    m = sp.csr_matrix(x, dtype=np.float64)
    m.sum_duplicates()
    idf = _user_idf(m)
    m.data = np.sign(m.data) * np.sqrt(np.abs(m.data)) * idf[_rows_of(m)]
    return m


def bm25_weight(x: sp.spmatrix | sp.sparray, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Okapi BM25 re-weighting of a user × item matrix (items are the documents, users the terms).

    With ``L_i`` the total weight of item ``i`` (its document length) and ``avgL`` the mean over
    items that have any::

        w[u, i] = x[u, i] * (k1 + 1) / (k1 * (1 - b + b * L_i / avgL) + x[u, i]) * idf[u]
        idf[u]  = log(n_items / (1 + n_u))

    This is implicit's ``bm25_weight`` applied to the item × user matrix, written anew. Negative
    entries (returns counted as negative feedback) are weighted by their magnitude, sign kept,
    and lengths sum magnitudes.

    Args:
        x: user × item matrix.
        k1: term-frequency saturation.
        b: length normalisation.

    Returns:
        A new float64 CSR matrix with the same sparsity.
    """
    m = sp.csr_matrix(x, dtype=np.float64)
    m.sum_duplicates()
    idf = _user_idf(m)
    mag = np.abs(m.data)
    length = np.bincount(m.indices, weights=mag, minlength=m.shape[1])
    used = np.bincount(m.indices, minlength=m.shape[1]) > 0
    avg = float(length[used].mean()) if used.any() else 1.0
    norm = (1.0 - b) + b * length / (avg if avg > 0 else 1.0)
    denom = k1 * norm[m.indices] + mag
    tf = np.divide(mag * (k1 + 1.0), denom, out=np.zeros_like(mag), where=denom > 0)
    m.data = np.sign(m.data) * tf * idf[_rows_of(m)]
    return m


def cosine_topk(
    x: sp.csr_matrix, neighbors: int, shrink: float, *, block_memory_mb: float = 256.0
) -> sp.csr_matrix:
    """Top-k shrunk cosine similarity between the columns of ``x``, self-similarity excluded.

    Args:
        x: user × item matrix (already weighted).
        neighbors: similarities kept per item.
        shrink: added to the product of the norms in the denominator.
        block_memory_mb: rough memory bound of one block.

    Returns:
        ``n_items × n_items`` float32 CSR: row ``a`` holds the (at most) ``neighbors`` largest
        non-zero similarities of item ``a``.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    n_items = x.shape[1]
    xt = sp.csr_matrix(x.T)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    # a dense float64 block plus the argpartition workspace: ~24 bytes per cell
    block = max(1, min(n_items, int(block_memory_mb * 2**20 / (24 * max(n_items, 1)))))
    k = min(neighbors, max(n_items - 1, 0))
    rows_out: list[npt.NDArray[np.int64]] = []
    cols_out: list[npt.NDArray[np.int64]] = []
    vals_out: list[npt.NDArray[np.float64]] = []
    if k == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        dots = np.asarray((xt[start:stop] @ x).toarray(), dtype=np.float64)
        denom = norms[start:stop, None] * norms[None, :] + shrink
        sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        local = np.arange(stop - start)
        sims[local, start + local] = 0.0
        if k < n_items:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:  # pragma: no cover - k is at most n_items - 1
            part = np.tile(np.arange(n_items), (stop - start, 1))
        vals = np.take_along_axis(sims, part, axis=1)
        keep = vals != 0.0
        rows_out.append(np.repeat(start + local, keep.sum(axis=1)))
        cols_out.append(part[keep].astype(np.int64))
        vals_out.append(vals[keep])
    sim = sp.csr_matrix(
        (
            np.concatenate(vals_out).astype(np.float32),
            (np.concatenate(rows_out), np.concatenate(cols_out)),
        ),
        shape=(n_items, n_items),
    )
    sim.sort_indices()
    return sim


class ItemKNN(Recommender):
    """Item-item k-nearest-neighbours: ``scores = history @ S`` (see the module docstring)."""

    name: ClassVar[str] = "itemknn"
    Config: ClassVar[type[ModelConfig]] = ItemKNNConfig
    config: ItemKNNConfig
    search_space: ClassVar[SearchSpace] = {
        "neighbors": IntParam(10, 1000, log=True),
        "shrink": FloatParam(0.0, 200.0),
        "weighting": CategoricalParam(("none", "tfidf", "bm25")),
        "normalize": CategoricalParam((False, True)),
    }

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        cfg = self.config
        if cfg.weighting == "tfidf":
            return tfidf_weight(matrix)
        if cfg.weighting == "bm25":
            return bm25_weight(matrix, cfg.bm25_k1, cfg.bm25_b)
        return sp.csr_matrix(matrix, dtype=np.float64)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        cfg = self.config
        sim = cosine_topk(
            self._weighted(matrix), cfg.neighbors, cfg.shrink, block_memory_mb=cfg.block_memory_mb
        )
        if cfg.normalize:
            total = np.asarray(abs(sim).sum(axis=1), dtype=np.float64).ravel()
            scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
            sim = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ sim)
        self.similarity_: sp.csr_matrix = sim

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray((sp.csr_matrix(rows, dtype=np.float32) @ self.similarity_).toarray())

    def _item_vectors(self) -> sp.csr_matrix:
        return self.similarity_

    def similar_items(self, items: Sequence[str], k: int = 10) -> Recommendations:
        """The k nearest neighbours of each item, read from the similarity matrix.

        Only stored (non-zero) neighbours are returned; shorter lists are padded with ``None``
        and ``-inf``.
        """
        self._check_fitted()
        item_list = [str(i) for i in items]
        idx = self.items_.index(np.asarray(item_list, dtype=object), unknown="raise")
        out_items = np.full((len(idx), k), None, dtype=object)
        out_scores = np.full((len(idx), k), -np.inf)
        sim = self.similarity_
        for row, item in enumerate(idx):
            lo, hi = sim.indptr[item], sim.indptr[item + 1]
            cols, vals = sim.indices[lo:hi], sim.data[lo:hi].astype(np.float64)
            order = np.lexsort((cols, -vals))[:k]
            out_items[row, : order.size] = self.items_.ids[cols[order]]
            out_scores[row, : order.size] = vals[order]
        return Recommendations(
            np.asarray(item_list, dtype=object),
            out_items,
            out_scores,
            np.full(len(idx), "model", dtype=object),
        )

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        n = len(self.items_)
        self.similarity_ = sp.csr_matrix(
            (state["sim_data"], state["sim_indices"], state["sim_indptr"]), shape=(n, n)
        )
