"""Session-based nearest neighbours: S-KNN and V-SKNN (Jannach & Ludewig 2017; Ludewig & Jannach 2018).

Every training "user" is a session: an ordered list of clicked items (from
:class:`~aisle.models._sequential.SequentialRecommender`). A session ``s`` is the binary item
set ``X[s]``; a query session (a held-out session's clicks so far, or a known session) is its set
of distinct items ``q``, each item weighted ``w(i)``. Scoring a query:

1. **Candidates**: the training sessions that share at least one item with ``q``.
2. **Sample**: the ``sample_size`` most recent candidates (by the session's last event time
   when the training events carry timestamps, else by their order), as in the papers; a big
   popular item would otherwise drag in thousands of old sessions.
3. **Similarity** to each sampled session, with ``dot = Σ_{i ∈ q ∩ s} w(i)``:

   * ``cosine``: ``dot / (‖w‖ √|s|)``, for binary weights ``|q ∩ s| / √(|q| |s|)``;
   * ``jaccard``: ``dot / |q ∪ s|``, for binary weights ``|q ∩ s| / |q ∪ s|``;
   * ``dot``: ``dot / |q|``, V-SKNN's vector product (session-rec's ``vec``): no
     normalisation by the neighbour's length.

4. **Neighbours**: the ``k`` most similar sampled sessions (similarities compared at 12
   decimals; ties: the more recent first).
5. **Scores**: ``score(i) = Σ_{n ∋ i} sim(q, n)``, the summed similarity of the neighbours that
   contain ``i``.

:class:`SessionKNN` (``sknn``) uses binary weights. :class:`VSKNN` (``vsknn``) adds:

* ``position_weighting``: ``w(i)`` from the position ``p`` (1-based, of the item's last click)
  in a query of ``L`` clicks, the most recent item weighing 1: ``linear`` ``p / L`` (the paper's
  linear decay; session-rec's ``div``), ``log`` ``log10(1.7) / log10(L - p + 1.7)``,
  ``quadratic`` ``(p / L)²``, ``same`` 1.
* ``match_weighting``: each neighbour's vote is multiplied by a decay of ``d``, how many clicks
  back in the query the most recent item it shares lies (``d = 1``: the last click):
  ``div`` ``1 / d``, ``log`` ``log10(2.7) / log10(d + 1.7)``, ``quadratic`` ``1 / d²``,
  ``same`` 1 (session-rec's ``weighting_score``).
* ``neighbor_weighting``: an item's vote from a neighbour is weighted by its recency inside
  that neighbour session, with the same decays as ``position_weighting`` (``same``: off).
* ``idf_weight`` ``λ``: scores are multiplied by ``1 + λ · idf(i)``, with
  ``idf(i) = log(n_sessions / sessions containing i)``, which favours specific items over
  items that are in every session (session-rec's ``idf_weighting``).

Differences from session-rec's reference code (deliberate): cosine is the textbook cosine
(session-rec's reads ``li / sqrt(la) * sqrt(lb)``), its ``linear`` decays were replaced by the
smooth ones above, idf counts sessions rather than clicks, and there is no ``remind`` boost
(aisle filters items already in the session unless asked not to).

Vectorised with scipy.sparse over a batch of queries: one sparse product ``Q Xᵀ`` finds every
candidate and its overlap (training sessions are stored most recent last, so "the most recent
candidates" are the last entries of each row), one sort of a packed integer key picks the
neighbours, and a second product ``W X`` sums their votes into float32 scores. Batches are split
so that a block holds at most ``max_pairs`` (query, candidate) pairs.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from aisle.models._base import CategoricalParam, IntParam, ModelConfig, SearchSpace
from aisle.models._sequential import Sequences, SequentialRecommender

__all__ = ["VSKNN", "SessionKNN", "SessionKNNConfig", "VSKNNConfig"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Similarity = Literal["cosine", "jaccard", "dot"]
PositionDecay = Literal["same", "linear", "log", "quadratic"]
MatchDecay = Literal["same", "div", "log", "quadratic"]


class SessionKNNConfig(ModelConfig):
    """Config of :class:`SessionKNN`.

    Attributes:
        k: neighbour sessions whose items are scored.
        sample_size: the most recent sessions sharing an item with the query that are compared
            with it (0: every such session).
        similarity: ``cosine``, ``jaccard`` or ``dot`` (see the module docstring).
        popular_backfill: rank the items no neighbour contains by training popularity, after
            every item a neighbour contains, so a query with few neighbours still gets a full
            list (the popularity term is far below the knn scores; scores are float32).
        max_pairs: (query, candidate session) pairs held at once; bounds memory when a query
            has very popular items.
    """

    k: int = Field(default=100, gt=0)
    sample_size: int = Field(default=500, ge=0)
    similarity: Similarity = "cosine"
    popular_backfill: bool = True
    max_pairs: int = Field(default=4_000_000, gt=0)


class VSKNNConfig(SessionKNNConfig):
    """Config of :class:`VSKNN`: :class:`SessionKNNConfig` plus the weightings.

    Attributes:
        position_weighting: weight of a query item by its position in the query (most recent
            weighs 1).
        match_weighting: decay of a neighbour's vote by how far back in the query its most
            recent shared item lies.
        neighbor_weighting: weight of an item's vote by its position in the neighbour session.
        idf_weight: ``λ`` in the score factor ``1 + λ · idf(item)`` (0: off).
    """

    similarity: Similarity = "dot"
    position_weighting: PositionDecay = "linear"
    match_weighting: MatchDecay = "div"
    neighbor_weighting: PositionDecay = "same"
    idf_weight: float = Field(default=1.0, ge=0)


def position_decay(kind: str, pos: F64, length: F64) -> F64:
    """Weight of a click at 1-based ``pos`` in a session of ``length`` clicks (the last weighs 1)."""
    if kind == "linear":
        out: F64 = pos / length
    elif kind == "quadratic":
        out = (pos / length) ** 2
    elif kind == "log":
        out = np.log10(1.7) / np.log10(length - pos + 1.7)
    else:
        out = np.ones_like(pos, dtype=np.float64)
    return out


def match_decay(kind: str, steps: F64) -> F64:
    """Decay of a neighbour's vote when its most recent shared item is ``steps`` clicks back (1 = last)."""
    if kind == "div":
        out: F64 = 1.0 / steps
    elif kind == "quadratic":
        out = 1.0 / steps**2
    elif kind == "log":
        out = np.log10(2.7) / np.log10(steps + 1.7)
    else:
        out = np.ones_like(steps, dtype=np.float64)
    return out


def _last_positions(indptr: I64, items: I64, n_items: int) -> tuple[I64, I64, F64, F64]:
    """Distinct items per ragged row with the 1-based position of their last occurrence.

    Returns ``(rows, cols, pos, length)``: sorted by row then item; ``length`` is the row's
    number of clicks, per entry.
    """
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    pos = np.arange(items.size, dtype=np.int64) - np.repeat(indptr[:-1], lengths) + 1
    key = rows * max(n_items, 1) + items
    # np.unique keeps the first occurrence: run it backwards to keep the last click of each item
    _, first = np.unique(key[::-1], return_index=True)
    last = items.size - 1 - first
    r = rows[last]
    return r, items[last], pos[last].astype(np.float64), lengths[r].astype(np.float64)


def _row_positions(indptr: npt.NDArray[np.integer]) -> I64:
    """Each stored entry's position inside its CSR row."""
    lengths = np.diff(indptr).astype(np.int64)
    out: I64 = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1].astype(np.int64), lengths)
    return out


def _row_then_descending(rows: I64, values: F64) -> I64:
    """Stable order by row, then by ``values`` (in [0, 1]) descending at 12 decimals.

    One int64 key, ``row << 40 | (2**40 - 1 - round(value * 1e12))``, sorted once: five times
    faster than ``np.lexsort`` on the two keys. Rows beyond 2**23 fall back to the lexsort.
    """
    if rows.size and int(rows.max()) >= 1 << 23:
        out: I64 = np.lexsort((-np.round(values, 12), rows))
        return out
    quantised = np.rint(np.clip(values, 0.0, 1.0) * 1e12).astype(np.int64)
    key = (rows.astype(np.int64) << 40) + ((1 << 40) - 1 - quantised)
    out = np.argsort(key, kind="stable")
    return out


class _SessionKNNBase(SequentialRecommender):
    """The shared algorithm; subclasses pick the weightings."""

    config: SessionKNNConfig

    # ------------------------------------------------------------------ weightings
    def _position_weighting(self) -> str:
        return "same"

    def _match_weighting(self) -> str:
        return "same"

    def _neighbor_weighting(self) -> str:
        return "same"

    def _idf_weight(self) -> float:
        return 0.0

    # ------------------------------------------------------------------ fitting
    def _fit_sequences(self, sequences: Sequences, matrix: sp.csr_matrix) -> None:
        self.session_recency_: I64 = self._session_recency(len(sequences))
        self._build()

    def _session_recency(self, n_sessions: int) -> I64:
        """Each training session's recency rank (0 = oldest): by its last event's timestamp, ties
        (and events without timestamps) by that event's position in the log. Sessions without
        events rank oldest; without any events, the users' order decides."""
        events = self.side_.events
        if events is None or len(events) == 0:
            return np.arange(n_sessions, dtype=np.int64)
        frame = events
        types = self._sequence_event_types()
        if types is not None and "event_type" in frame.columns:
            frame = frame[np.isin(frame["event_type"].to_numpy(dtype=object), np.asarray(types, dtype=object))]
        users = self.users_.index(frame["user_id"].to_numpy(dtype=object), unknown="ignore")
        row = np.arange(len(frame), dtype=np.int64)
        if "timestamp" in frame.columns:
            utc = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None)
            stamp = utc.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        else:
            stamp = np.zeros(len(frame), dtype=np.int64)
        ok = users >= 0
        users, stamp, row = users[ok], stamp[ok], row[ok]
        # each session's last event: sort by (user, time, row) and keep the last of each user
        order = np.lexsort((row, stamp, users))
        last = order[np.r_[users[order][1:] != users[order][:-1], True]] if order.size else order
        low = np.iinfo(np.int64).min
        end = np.full(n_sessions, low, dtype=np.int64)
        end_row = np.full(n_sessions, -1, dtype=np.int64)
        end[users[last]] = stamp[last]
        end_row[users[last]] = row[last]
        by_age = np.lexsort((np.arange(n_sessions), end_row, end))
        rank = np.empty(n_sessions, dtype=np.int64)
        rank[by_age] = np.arange(n_sessions, dtype=np.int64)
        return rank

    def _build(self) -> None:
        """Derived structures (rebuilt on load): sessions in recency order as sparse matrices."""
        seqs = self.sequences_
        n_sessions, n_items = len(seqs), len(self.items_)
        rank = self.session_recency_
        rows, cols, pos, length = _last_positions(seqs.indptr.astype(np.int64), seqs.items.astype(np.int64), n_items)
        shape = (n_sessions, n_items)
        binary = sp.csr_matrix((np.ones(rows.size), (rank[rows], cols)), shape=shape)
        binary.sort_indices()
        self._x: sp.csr_matrix = binary
        self._xt: sp.csr_matrix = sp.csr_matrix(binary.T)
        kind = self._neighbor_weighting()
        if kind == "same":
            self._x_votes: sp.csr_matrix = binary
        else:
            self._x_votes = sp.csr_matrix((position_decay(kind, pos, length), (rank[rows], cols)), shape=shape)
            self._x_votes.sort_indices()
        self._session_size: F64 = np.diff(binary.indptr).astype(np.float64)
        df = np.diff(self._xt.indptr).astype(np.float64)
        self._df: F64 = df
        n_nonempty = max(int((self._session_size > 0).sum()), 1)
        self._idf: F64 = np.where(df > 0, np.log(n_nonempty / np.maximum(df, 1.0)), 0.0)
        pop = self.item_popularity_
        self._pop_tiebreak: F64 = pop / pop.max() if pop.size and pop.max() > 0 else np.zeros(n_items)

    # ------------------------------------------------------------------ scoring
    def _score_sequences(self, sequences: list[np.ndarray]) -> np.ndarray:
        n_items = len(self.items_)
        n = len(sequences)
        seqs = Sequences.from_list(sequences)
        rows, cols, pos, length = _last_positions(seqs.indptr, seqs.items, n_items)
        weights = position_decay(self._position_weighting(), pos, length)
        q_bin = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n_items))
        q_w = sp.csr_matrix((weights, (rows, cols)), shape=(n, n_items))
        q_pos = sp.csr_matrix((pos, (rows, cols)), shape=(n, n_items))
        q_len = np.zeros(n)
        q_len[rows] = length
        # float32: half the memory to write (a fresh (n, n_items) array is what the contract returns)
        out = np.empty((n, n_items), dtype=np.float32)
        for start, stop in self._blocks(np.asarray(q_bin @ self._df).ravel()):
            scores = self._score_block(q_bin[start:stop], q_w[start:stop], q_pos[start:stop], q_len[start:stop])
            self._densify(scores, out[start:stop])
        return out

    def _blocks(self, cost: F64) -> list[tuple[int, int]]:
        """Consecutive query blocks holding at most ``max_pairs`` candidate pairs (at least one query).

        ``cost`` bounds each query's candidates: the summed session counts of its items.
        """
        total = np.cumsum(cost)
        bounds = [(0, 0)]
        while bounds[-1][1] < cost.size:
            start = bounds[-1][1]
            before = float(total[start - 1]) if start else 0.0
            stop = int(np.searchsorted(total, before + self.config.max_pairs, side="right"))
            bounds.append((start, min(max(stop, start + 1), cost.size)))
        return bounds[1:]

    def _densify(self, scores: sp.csr_matrix, out: npt.NDArray[np.float32]) -> None:
        """Write sparse knn scores into the dense ``out`` (idf factor and popularity tie-break added)."""
        rows = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
        data = scores.data
        if self._idf_weight() > 0:
            data = data * (1.0 + self._idf_weight() * self._idf[scores.indices])
        if self.config.popular_backfill:
            # a popularity term far below the lowest knn score of the row: it orders the items no
        # neighbour contains (and vanishes in float32 next to the others)
            lowest = np.full(scores.shape[0], np.inf)
            np.minimum.at(lowest, rows, np.where(data > 0, data, np.inf))
            scale = np.where(np.isfinite(lowest), lowest * 1e-9, 1.0)
            np.multiply(scale[:, None], self._pop_tiebreak[None, :], out=out, casting="same_kind")
        else:
            out.fill(0.0)
        out[rows, scores.indices] += data

    def _neighbours(self, q_bin: sp.csr_matrix, q_w: sp.csr_matrix) -> tuple[I64, I64, F64]:
        """The k nearest sampled sessions per query: ``(query row, session rank, similarity)``."""
        cfg = self.config
        weighted = self._position_weighting() != "same"
        dots = sp.csr_matrix(q_w @ self._xt)
        dots.sort_indices()
        overlap = dots
        if weighted and cfg.similarity == "jaccard":
            overlap = sp.csr_matrix(q_bin @ self._xt)
            overlap.sort_indices()
            if not np.array_equal(overlap.indices, dots.indices):  # pragma: no cover - weights are > 0
                raise AssertionError("weighted and binary candidate patterns differ")
        lengths = np.diff(dots.indptr)
        within = _row_positions(dots.indptr)
        keep = np.ones(dots.nnz, dtype=bool)
        if cfg.sample_size > 0:  # sessions are stored oldest first: keep each row's last entries
            keep = within >= np.repeat(lengths - cfg.sample_size, lengths)
        rows = np.repeat(np.arange(dots.shape[0], dtype=np.int64), lengths)[keep]
        sess = dots.indices[keep].astype(np.int64)
        dot = dots.data[keep]
        q_size = np.diff(q_bin.indptr).astype(np.float64)
        if cfg.similarity == "cosine":
            norm = np.sqrt(np.asarray(q_w.multiply(q_w).sum(axis=1)).ravel())
            sim = dot / (norm[rows] * np.sqrt(self._session_size[sess]))
        elif cfg.similarity == "jaccard":
            inter = overlap.data[keep]
            sim = dot / (q_size[rows] + self._session_size[sess] - inter)
        else:
            sim = dot / q_size[rows]
        # per query: most similar first, ties to the more recent session (a stable sort of the
        # entries reversed, so that within a row the most recent come first). Similarities are
        # compared at 12 decimals: sums of the same weights in another order differ in the last
        # bits, and must not decide which of two equally similar sessions is a neighbour.
        rev = np.arange(rows.size - 1, -1, -1)
        order = rev[_row_then_descending(rows[rev], sim[rev])]
        rows, sess, sim = rows[order], sess[order], sim[order]
        counts = np.bincount(rows, minlength=dots.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        top = (np.arange(rows.size) - starts[rows]) < cfg.k
        return rows[top], sess[top], sim[top]

    def _score_block(
        self, q_bin: sp.csr_matrix, q_w: sp.csr_matrix, q_pos: sp.csr_matrix, q_len: F64
    ) -> sp.csr_matrix:
        """Sparse knn scores of a block of queries."""
        rows, sess, sim = self._neighbours(q_bin, q_w)
        kind = self._match_weighting()
        if kind != "same" and rows.size:
            # the last position of the most recent query item each neighbour shares
            shared = sp.csr_matrix(q_pos[rows]).multiply(self._x[sess])
            latest = np.asarray(sp.csr_matrix(shared).max(axis=1).todense()).ravel()
            sim = sim * match_decay(kind, q_len[rows] - latest + 1.0)
        votes = sp.csr_matrix((sim, (rows, sess)), shape=(q_bin.shape[0], self._x.shape[0]))
        return sp.csr_matrix(votes @ self._x_votes)

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        return {"session_recency": self.session_recency_}

    def _set_model_state(self, state: dict[str, np.ndarray]) -> None:
        self.session_recency_ = np.asarray(state["session_recency"], dtype=np.int64)
        self._build()


class SessionKNN(_SessionKNNBase):
    """S-KNN: sessions as binary item sets, ``score(i) = Σ sim(q, n)`` over the neighbours ``n ∋ i``."""

    name: ClassVar[str] = "sknn"
    Config: ClassVar[type[ModelConfig]] = SessionKNNConfig
    search_space: ClassVar[SearchSpace] = {
        "k": IntParam(20, 1000, log=True),
        "sample_size": IntParam(100, 10000, log=True),
        "similarity": CategoricalParam(("cosine", "jaccard")),
    }


class VSKNN(_SessionKNNBase):
    """V-SKNN: S-KNN with recent query items weighing more (see the module docstring)."""

    name: ClassVar[str] = "vsknn"
    Config: ClassVar[type[ModelConfig]] = VSKNNConfig
    config: VSKNNConfig
    search_space: ClassVar[SearchSpace] = {
        "k": IntParam(20, 1000, log=True),
        "sample_size": IntParam(100, 10000, log=True),
        "similarity": CategoricalParam(("dot", "cosine", "jaccard")),
        "position_weighting": CategoricalParam(("linear", "log", "quadratic", "same")),
        "match_weighting": CategoricalParam(("div", "log", "quadratic", "same")),
        "neighbor_weighting": CategoricalParam(("same", "linear", "log", "quadratic")),
        "idf_weight": CategoricalParam((0.0, 1.0, 2.0, 5.0, 10.0)),
    }

    def _position_weighting(self) -> str:
        return self.config.position_weighting

    def _match_weighting(self) -> str:
        return self.config.match_weighting

    def _neighbor_weighting(self) -> str:
        return self.config.neighbor_weighting

    def _idf_weight(self) -> float:
        return self.config.idf_weight

