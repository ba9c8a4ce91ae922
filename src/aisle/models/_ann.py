"""Approximate nearest-neighbour (ANN) search over item embeddings, for retrieval models.

:class:`ANNIndex` answers "the k items with the largest inner product (or cosine) with each
query vector" in one of three ways:

* ``kind="exact"``: brute force, ``queries @ items.T`` in query blocks and the numba top-k kernel
  of :mod:`aisle.models._topk` (numpy only; no faiss needed). The reference the others are
  measured against.
* ``kind="hnsw"``: faiss ``IndexHNSWFlat`` (Malkov & Yashunin 2018), a layered proximity graph.
  ``hnsw_m`` links per node and ``ef_construction`` set the build cost and graph quality;
  ``ef_search`` (the candidate list kept while searching, at least ``k``) trades speed for recall
  at query time. No training step; memory is the vectors plus about ``2 · M`` int32 links per item.
* ``kind="ivf"``: faiss ``IndexIVFFlat``, an inverted file: k-means (seeded) splits the items into
  ``nlist`` cells, a query scans the items of its ``nprobe`` closest cells. Fast to build, small
  (the vectors plus one id per item), recall set by ``nprobe / nlist``.

``metric="cosine"`` L2-normalises the items and every query (a zero vector stays zero);
``"ip"`` searches raw inner products. HNSW graphs navigate poorly under a raw inner product
(it is not a metric: a long vector is "close" to everything), so ``kind="hnsw"`` with ``"ip"``
uses the exact reduction of maximum inner product search to L2 search (Bachrach et al., RecSys
2014): each item gets one extra coordinate ``sqrt(R² - |x|²)`` (``R`` the largest item norm) and
queries a zero there, so ``|q - x|² = |q|² + R² - 2 q·x`` ranks items by ``q·x``; scores are
converted back. On clustered test data at ``M=16, ef_search=64`` this took recall@10 from 0.82
(faiss's inner-product HNSW) to 0.90. HNSW and IVF come with the ``ann`` extra
(``pip install 'aisle[ann]'``, faiss-cpu); a missing faiss raises
:class:`~aisle.errors.MissingDependencyError` naming it.

:meth:`ANNIndex.recall_at_k` measures an index against exact search on given queries.
:meth:`ANNIndex.to_arrays` / :meth:`ANNIndex.from_arrays` (and :meth:`save` / :meth:`load`, an
``.npz`` file) keep an index without pickle: faiss's own ``serialize_index`` bytes as a uint8
array, the settings as JSON text. Search results of a loaded index are identical.

Example:
    >>> import numpy as np
    >>> vecs = np.random.default_rng(0).normal(size=(1000, 16)).astype("float32")
    >>> index = ANNIndex("exact", metric="cosine").build(vecs)
    >>> ids, scores = index.search(vecs[:2], k=3)
    >>> ids[:, 0].tolist()
    [0, 1]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from aisle.errors import ConfigError, NotFittedError, require
from aisle.models._topk import top_k_excluding

__all__ = ["ANN_KINDS", "ANNIndex", "AnnKind", "AnnMetric"]

AnnKind = Literal["exact", "hnsw", "ivf"]
AnnMetric = Literal["ip", "cosine"]
ANN_KINDS: tuple[str, ...] = ("exact", "hnsw", "ivf")

#: Exact search scores at most this many query × item cells per block (256 MiB of float32).
_BLOCK_CELLS = 64 * 2**20


def _faiss() -> Any:
    return require("faiss", "ann")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out


class ANNIndex:
    """Top-k inner-product (or cosine) search over a fixed set of vectors.

    Args:
        kind: ``"exact"``, ``"hnsw"`` or ``"ivf"`` (see the module docstring).
        metric: ``"ip"`` (inner product) or ``"cosine"``.
        hnsw_m: HNSW links per node (faiss ``M``; 16-64 typical).
        ef_construction: HNSW candidate list while building.
        ef_search: HNSW candidate list while searching (raised to ``k`` when smaller).
        nlist: IVF cells; ``None`` picks ``4 · sqrt(n)`` (at least 1, at most ``n / 39`` so every
            cell gets the 39 training points faiss asks for).
        nprobe: IVF cells scanned per query.
        seed: seed of the IVF k-means and of its training sample.
        threads: faiss OpenMP threads while building and searching; ``None`` leaves faiss's setting.

    Raises:
        ConfigError: an unknown kind or metric, or a parameter out of range.
    """

    def __init__(
        self,
        kind: str = "hnsw",
        *,
        metric: str = "cosine",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 32,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        if kind not in ANN_KINDS:
            raise ConfigError(f"unknown ANN kind {kind!r}; valid: {', '.join(ANN_KINDS)}")
        if metric not in ("ip", "cosine"):
            raise ConfigError(f"unknown ANN metric {metric!r}; valid: ip, cosine")
        for name, value in (("hnsw_m", hnsw_m), ("ef_construction", ef_construction),
                            ("ef_search", ef_search), ("nprobe", nprobe)):
            if int(value) < 1:
                raise ConfigError(f"ANN {name} must be >= 1, got {value}")
        if nlist is not None and nlist < 1:
            raise ConfigError(f"ANN nlist must be >= 1, got {nlist}")
        if threads is not None and threads < 1:
            raise ConfigError(f"ANN threads must be >= 1, got {threads}")
        self.kind: AnnKind = kind  # type: ignore[assignment]
        self.metric: AnnMetric = metric  # type: ignore[assignment]
        self.hnsw_m = int(hnsw_m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.nlist = None if nlist is None else int(nlist)
        self.nprobe = int(nprobe)
        self.seed = int(seed)
        self.threads = threads
        self._vectors: np.ndarray | None = None  # exact kind: the (normalised) vectors
        self._index: Any = None  # faiss kinds
        self._dim = 0
        self._n = 0
        self._max_norm = 0.0  # R of the MIPS-to-L2 reduction (hnsw + ip only)

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """The constructor arguments, as JSON-able values."""
        return {"kind": self.kind, "metric": self.metric, "hnsw_m": self.hnsw_m,
                "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "nlist": self.nlist, "nprobe": self.nprobe, "seed": self.seed, "threads": self.threads}

    def __repr__(self) -> str:
        size = f", n={self._n}, dim={self._dim}" if self.built else ""
        return f"ANNIndex(kind={self.kind!r}, metric={self.metric!r}{size})"

    @property
    def built(self) -> bool:
        return self._vectors is not None or self._index is not None

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return self._n

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def _l2_reduction(self) -> bool:
        return self.kind == "hnsw" and self.metric == "ip"

    def _check_built(self) -> None:
        if not self.built:
            raise NotFittedError("the ANN index is empty; call build(vectors) first")

    def _set_threads(self) -> None:
        if self.threads is not None and self.kind != "exact":
            _faiss().omp_set_num_threads(int(self.threads))

    def _apply_search_params(self) -> None:
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.ef_search
        elif self.kind == "ivf":
            self._index.nprobe = min(self.nprobe, self._index.nlist)

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the query-time knobs of a built index (HNSW ``ef_search``, IVF ``nprobe``)."""
        if ef_search is not None:
            if ef_search < 1:
                raise ConfigError(f"ANN ef_search must be >= 1, got {ef_search}")
            self.ef_search = int(ef_search)
        if nprobe is not None:
            if nprobe < 1:
                raise ConfigError(f"ANN nprobe must be >= 1, got {nprobe}")
            self.nprobe = int(nprobe)
        if self._index is not None:
            self._apply_search_params()

    # ------------------------------------------------------------------ building
    def _prepare(self, x: np.ndarray, what: str) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ConfigError(f"ANN {what} must be a 2-d array (rows = vectors), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ConfigError(f"ANN {what} contain NaN or infinite values")
        if self.metric == "cosine":
            arr = _normalise(arr)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def build(self, vectors: np.ndarray) -> Self:
        """Index ``vectors`` (rows); returns ``self``. Row ``i`` is answered as id ``i``."""
        x = self._prepare(vectors, "vectors")
        n, d = x.shape
        if n == 0 or d == 0:
            raise ConfigError(f"cannot build an ANN index over an empty {x.shape} array")
        self._n, self._dim = n, d
        self._vectors, self._index = None, None
        if self.kind == "exact":
            self._vectors = x
            return self
        faiss = _faiss()
        self._set_threads()
        if self.kind == "hnsw" and self._l2_reduction:
            norms = np.linalg.norm(x.astype(np.float64), axis=1)
            self._max_norm = float(norms.max())
            extra = np.sqrt(np.maximum(self._max_norm**2 - norms**2, 0.0))[:, None]
            index = faiss.IndexHNSWFlat(d + 1, self.hnsw_m, faiss.METRIC_L2)
            index.hnsw.efConstruction = self.ef_construction
            index.add(np.ascontiguousarray(np.hstack([x, extra]), dtype=np.float32))
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.add(x)
        else:
            nlist = self.nlist if self.nlist is not None else round(4 * np.sqrt(n))
            nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            rng = np.random.default_rng(self.seed)
            sample = x if n <= 256 * nlist else x[np.sort(rng.choice(n, size=256 * nlist, replace=False))]
            index.train(sample)
            index.add(x)
            self._quantizer = quantizer  # faiss's wrapper keeps it too; belt and braces
        self._index = index
        self._apply_search_params()
        return self

    # ------------------------------------------------------------------ searching
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best indexed vectors per query row.

        Returns:
            ``(ids, scores)``, each ``(n_queries, min(k, ntotal))``, best first; ids are row
            numbers of the built vectors, ``-1`` (score ``-inf``) where an approximate index found
            fewer than ``k``.
        """
        self._check_built()
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        q = self._prepare(queries, "queries")
        if q.shape[1] != self._dim:
            raise ConfigError(f"queries have dimension {q.shape[1]}, the index {self._dim}")
        kk = min(int(k), self._n)
        if self.kind == "exact":
            return self._exact(q, kk)
        self._set_threads()
        if self.kind == "hnsw" and self._index.hnsw.efSearch < kk:
            self._index.hnsw.efSearch = kk
        try:
            if self._l2_reduction:
                dist, ids = self._index.search(np.hstack([q, np.zeros((q.shape[0], 1), np.float32)]), kk)
                qn = np.einsum("ij,ij->i", q.astype(np.float64), q.astype(np.float64))
                scores = (qn[:, None] + self._max_norm**2 - dist.astype(np.float64)) / 2
            else:
                scores, ids = self._index.search(q, kk)
        finally:
            self._apply_search_params()
        ids = ids.astype(np.int64)
        scores = np.where(ids >= 0, scores.astype(np.float64), -np.inf)
        return ids, scores

    def _exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from aisle.models._base import factor_scores

        assert self._vectors is not None
        n_q = q.shape[0]
        ids = np.empty((n_q, k), dtype=np.int64)
        scores = np.empty((n_q, k), dtype=np.float64)
        step = max(1, _BLOCK_CELLS // max(self._n, 1))
        empty = np.zeros(0, dtype=np.int64)
        for a in range(0, n_q, step):
            b = min(a + step, n_q)
            block = factor_scores(q[a:b], self._vectors)
            i, v = top_k_excluding(block, k, np.zeros(b - a + 1, dtype=np.int64), empty)
            ids[a:b], scores[a:b] = i, v
        return ids, scores

    def recall_at_k(self, queries: np.ndarray, k: int = 10, *, exact_ids: np.ndarray | None = None) -> float:
        """Mean share of the exact top-k that this index returns (1.0 for ``kind="exact"``).

        Args:
            queries: query rows.
            k: the cut-off.
            exact_ids: the exact top-k ids of the queries, when already computed.
        """
        self._check_built()
        ids, _ = self.search(queries, k)
        if exact_ids is None:
            if self.kind == "exact":
                return 1.0
            assert self._index is not None
            exact = ANNIndex("exact", metric="ip")
            exact._vectors = self._stored_vectors()
            exact._n, exact._dim = self._n, self._dim
            exact_ids, _ = exact.search(self._prepare(queries, "queries"), k)
        return recall_against(ids, np.asarray(exact_ids))

    def _stored_vectors(self) -> np.ndarray:
        """The indexed (prepared) vectors, read back from the faiss index."""
        if self._vectors is not None:
            return self._vectors
        if self.kind == "hnsw":
            out: np.ndarray = self._index.reconstruct_n(0, self._n)[:, : self._dim]
            return np.ascontiguousarray(out)
        inv = self._index.invlists
        vecs = np.empty((self._n, self._dim), dtype=np.float32)
        faiss = _faiss()
        for lst in range(self._index.nlist):
            size = inv.list_size(lst)
            if size == 0:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(lst), size).copy()
            codes = faiss.rev_swig_ptr(inv.get_codes(lst), size * self._dim * 4).copy()
            vecs[ids] = codes.view(np.float32).reshape(size, self._dim)
        return vecs

    def memory_bytes(self) -> int:
        """Size of the index's data: the vectors (exact), or faiss's serialized index."""
        self._check_built()
        if self._vectors is not None:
            return int(self._vectors.nbytes)
        return int(_faiss().serialize_index(self._index).size)

    # ------------------------------------------------------------------ persistence
    def to_arrays(self, prefix: str = "ann.") -> dict[str, np.ndarray]:
        """The index as arrays (for an ``.npz``): settings as JSON text, data as float32/uint8."""
        self._check_built()
        meta = {**self.settings(), "n": self._n, "dim": self._dim, "max_norm": self._max_norm}
        out = {f"{prefix}meta": np.asarray(json.dumps(meta))}
        if self._vectors is not None:
            out[f"{prefix}vectors"] = self._vectors
        else:
            out[f"{prefix}faiss"] = np.asarray(_faiss().serialize_index(self._index), dtype=np.uint8)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "ann.") -> ANNIndex:
        """The index written by :meth:`to_arrays`."""
        try:
            meta = json.loads(str(arrays[f"{prefix}meta"]))
        except KeyError as exc:
            raise ConfigError(f"no ANN index under the prefix {prefix!r}") from exc
        n, dim, max_norm = int(meta.pop("n")), int(meta.pop("dim")), float(meta.pop("max_norm"))
        index = cls(**meta)
        index._n, index._dim, index._max_norm = n, dim, max_norm
        if f"{prefix}vectors" in arrays:
            index._vectors = np.ascontiguousarray(arrays[f"{prefix}vectors"], dtype=np.float32)
        else:
            index._index = _faiss().deserialize_index(np.ascontiguousarray(arrays[f"{prefix}faiss"], dtype=np.uint8))
            index._apply_search_params()
        return index

    def save(self, path: str | Path) -> Path:
        """Write the index to an ``.npz`` file (no pickle); returns the path."""
        out = Path(path)
        with out.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **self.to_arrays())  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | Path) -> ANNIndex:
        """Read an index written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as npz:
            return cls.from_arrays({k: npz[k] for k in npz.files})


def recall_against(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over rows of ``|ids ∩ exact_ids| / |exact_ids|`` (``-1`` padding ignored)."""
    ids, exact_ids = np.asarray(ids), np.asarray(exact_ids)
    if ids.shape[0] != exact_ids.shape[0]:
        raise ConfigError(f"recall needs as many rows of ids ({ids.shape[0]}) as of exact ids ({exact_ids.shape[0]})")
    hits = []
    for got, want in zip(ids, exact_ids, strict=True):
        want = want[want >= 0]
        if want.size:
            hits.append(np.isin(want, got[got >= 0]).mean())
    return float(np.mean(hits)) if hits else 1.0
