"""The one contract every aisle model follows.

A model is a class with a frozen pydantic config (every hyperparameter with a default) and a
constructor that only stores it. ``fit(interactions)`` learns and returns ``self``. The scoring
surface is shared:

* ``recommend(users, k, *, exclude_seen=True, candidates=None, history=None)`` ranked item ids
  and scores per user. Users unseen in training are folded in from ``history`` (their raw
  events, or a row in the item vocabulary) without retraining; a user with neither gets the
  policy of ``unknown_users`` (training popularity by default, labelled in ``sources``).
* ``score(users, items)`` a dense matrix of scores.
* ``similar_items(items, k)``.
* ``save(path)`` / ``load(path)`` in safe formats: ``config.json`` + ``state.npz`` (arrays,
  ``allow_pickle=False``) + the vocabularies as JSON. No pickles.

Subclasses implement ``_fit(matrix)``, ``_user_scores(rows)`` (scores for a batch of user rows
given as a CSR history, so fold-in is the same code path as known users), and optionally
``_item_vectors()`` for ``similar_items`` and ``_state()`` / ``_set_state()`` for saving.

Order-aware models (sequential and session models, see :mod:`aisle.models._sequential`) set
``uses_sequences = True`` and override ``_history_sequences`` and ``_sequence_scores``: every
scoring path (``recommend``, ``score``, the evaluation's sampled protocol) passes them each
user's items in time order, aligned with the CSR rows. Pass such models ``history`` as an event
frame, not a matrix: a matrix has no order.
"""

from __future__ import annotations

import itertools
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError

from aisle.data._feedback import FeedbackConfig, Interactions, fold_in
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, NotFittedError, UnknownIdError
from aisle.models._topk import top_k_excluding

__all__ = [
    "PARALLEL_ROWS",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "ModelConfig",
    "Recommendations",
    "Recommender",
    "SearchSpace",
    "SideData",
    "factor_scores",
    "top_k",
]

UnknownUsers = Literal["popular", "empty", "raise"]


@dataclass(frozen=True)
class FloatParam:
    """A float hyperparameter range for tuning (``log`` samples on a log scale)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntParam:
    """An integer hyperparameter range for tuning."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class CategoricalParam:
    """A hyperparameter with a few choices."""

    choices: tuple[Any, ...]


#: A model's search space: config field -> range. Declared beside each model's config.
SearchSpace = dict[str, FloatParam | IntParam | CategoricalParam]


@dataclass(frozen=True)
class SideData:
    """Side data passed to ``fit`` (see :meth:`Recommender.fit`); empty when not given."""

    catalog: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    events: pd.DataFrame | None = None


class ModelConfig(BaseModel):
    """Base of model configs: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Recommendations:
    """Ranked lists for a batch of users.

    Attributes:
        users: the user ids, in request order.
        items: ``(n_users, k)`` item ids; ``None`` where fewer than k items could be ranked.
        scores: ``(n_users, k)`` scores, ``-inf`` in the padding.
        sources: per user, what produced the list: ``"model"``, ``"fold-in"`` or the fallback name.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per (user, rank), padding dropped."""
        n, k = self.items.shape
        frame = pd.DataFrame({
            "user_id": np.repeat(self.users, k),
            "rank": np.tile(np.arange(1, k + 1), n),
            "item_id": self.items.ravel(),
            "score": self.scores.ravel(),
            "source": np.repeat(self.sources, k),
        })
        return frame[frame["item_id"].notna()].reset_index(drop=True)

    def for_user(self, user_id: str) -> list[tuple[str, float]]:
        pos = np.flatnonzero(self.users == user_id)
        if pos.size == 0:
            raise UnknownIdError(f"user {user_id!r} is not in these recommendations")
        i = int(pos[0])
        return [(str(it), float(s)) for it, s in zip(self.items[i], self.scores[i], strict=True) if it is not None]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(starts[i], starts[i] + lengths[i])`` for every i."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out: np.ndarray = np.arange(total, dtype=np.int64) + np.repeat(starts.astype(np.int64) - before, lengths)
    return out


def _gather_rows(mats: Sequence[sp.csr_matrix], which: np.ndarray, row_of: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """A CSR matrix whose row i is row ``row_of[i]`` of ``mats[which[i]]`` (empty where which is -1)."""
    n = which.size
    lengths = np.zeros(n, dtype=np.int64)
    for m_id, m in enumerate(mats):
        sel = which == m_id
        lengths[sel] = np.diff(m.indptr)[row_of[sel]]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    for m_id, m in enumerate(mats):
        sel = np.flatnonzero(which == m_id)
        if sel.size == 0:
            continue
        out_pos = _ranges(indptr[sel], lengths[sel])
        src_pos = _ranges(m.indptr[row_of[sel]], lengths[sel])
        indices[out_pos] = m.indices[src_pos]
        data[out_pos] = m.data[src_pos]
    return sp.csr_matrix((data, indices, indptr), shape=(n, n_cols))


_MATMUL_POOL: ThreadPoolExecutor | None = None
#: Batches at least this large score with single-threaded BLAS in parallel row blocks (see
#: :func:`factor_scores`); smaller ones (a request's few users) use BLAS as configured.
PARALLEL_ROWS = 256


def factor_scores(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``users @ items.T`` for factor models, in row blocks on a small thread pool for big batches.

    Measured on 2 cores (bench_models.py): OpenBLAS's own threads keep spinning after a product
    and starve the numba top-k that follows; single-threaded BLAS in two row blocks (numpy
    releases the GIL) is as fast for the product and leaves the cores free afterwards.
    """
    global _MATMUL_POOL
    n = users.shape[0]
    workers = os.cpu_count() or 1
    if n < PARALLEL_ROWS or workers < 2:
        out: np.ndarray = users @ items.T
        return out
    if _MATMUL_POOL is None:
        _MATMUL_POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aisle-matmul")
    result = np.empty((n, items.shape[0]), dtype=np.result_type(users, items))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    jobs = [_MATMUL_POOL.submit(np.matmul, users[a:b], items.T, out=result[a:b])
            for a, b in itertools.pairwise(bounds) if b > a]
    for job in jobs:
        job.result()
    return result


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest scores per row, sorted descending (argpartition).

    ``-inf`` marks excluded entries; they sort last and keep their ``-inf`` value.
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items), (scores.shape[0], 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


class Recommender(ABC):
    """Base class of every model. See the module docstring for the contract."""

    #: Short name used by the registry and the CLI (``pop``, ``ease``, ...).
    name: ClassVar[str]
    #: The config class of this model.
    Config: ClassVar[type[ModelConfig]]
    #: What ``aisle tune`` searches over (config field -> range); empty: nothing to tune.
    search_space: ClassVar[SearchSpace] = {}
    #: True for models that read each user's items in time order (see the module docstring).
    uses_sequences: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        if config is None:
            try:
                config = self.Config(**overrides)
            except ValidationError as exc:
                raise ConfigError(f"invalid config for model '{self.name}': {exc}") from exc
        elif overrides:
            config = config.model_copy(update=overrides)
        if not isinstance(config, self.Config):
            raise ConfigError(f"model '{self.name}' needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config
        self._fitted = False
        self.side_ = SideData()

    # ------------------------------------------------------------------ learning
    def fit(
        self,
        interactions: Interactions,
        *,
        catalog: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> Self:
        """Learn from an interaction matrix; returns ``self``.

        Args:
            interactions: the training matrix with its vocabularies.
            catalog: item side data (category, brand, price ...) for models that use it.
            users: user side data (segment ...) for models that use it.
            events: the raw training events, for models that need more than the matrix
                (timestamps for recency, say). Models that do not use side data ignore it.
        """
        self.side_ = SideData(catalog=catalog, users=users, events=events)
        if interactions.nnz == 0:
            raise DataError(f"cannot fit '{self.name}' on an empty interaction matrix")
        self.users_: Vocabulary = interactions.users
        self.items_: Vocabulary = interactions.items
        self.feedback_: FeedbackConfig = interactions.config
        ref = interactions.reference_time
        self.reference_time_: pd.Timestamp = pd.Timestamp(ref) if ref is not None else pd.Timestamp.now(tz="UTC")
        self.train_matrix_: sp.csr_matrix = sp.csr_matrix(interactions.matrix, dtype=np.float32)
        counts = np.asarray((self.train_matrix_ > 0).sum(axis=0)).ravel()
        self.item_popularity_: np.ndarray = counts.astype(np.float64)
        try:
            self._fit(self.train_matrix_)
        finally:
            self.side_ = SideData()  # side data is for fitting only; it is not kept or saved
        self._fitted = True
        return self

    @abstractmethod
    def _fit(self, matrix: sp.csr_matrix) -> None: ...

    @abstractmethod
    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        """Dense ``(len(rows), n_items)`` scores, a fresh array the caller may modify;
        ``user_index`` is -1 for folded-in users."""

    def _history_sequences(
        self, users: Sequence[str], user_index: np.ndarray, history: pd.DataFrame | sp.spmatrix | None
    ) -> list[np.ndarray] | None:
        """Per user, item indices oldest first (order-aware models only; ``None`` otherwise)."""
        return None

    def _sequence_scores(
        self, rows: sp.csr_matrix, user_index: np.ndarray, sequences: list[np.ndarray] | None
    ) -> np.ndarray:
        """Scores given rows and, for order-aware models, the aligned sequences."""
        return self._user_scores(rows, user_index)

    def _batch_scores(
        self, users: Sequence[str], rows: sp.csr_matrix, user_index: np.ndarray,
        history: pd.DataFrame | sp.spmatrix | None, subset: np.ndarray | None = None,
    ) -> np.ndarray:
        """Dense scores for ``users`` (or the positions ``subset`` of them): the one scoring call."""
        seqs = self._history_sequences(users, user_index, history) if self.uses_sequences else None
        if subset is None:
            return np.asarray(self._sequence_scores(rows, user_index, seqs))
        sub_seqs = None if seqs is None else [seqs[int(i)] for i in subset]
        return np.asarray(self._sequence_scores(rows[subset], user_index[subset], sub_seqs))

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; call fit(interactions) first")

    def _history_rows(
        self, users: Sequence[str], history: pd.DataFrame | sp.spmatrix | None, unknown_users: UnknownUsers
    ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """CSR history rows for the users, their training index (-1 if new) and the source label."""
        idx = self.users_.index(np.asarray(users, dtype=object), unknown="ignore")
        # each output row comes from the training matrix (known users), a folded-in history, or nothing
        which = np.where(idx >= 0, 0, -1)
        row_of = np.maximum(idx, 0)
        source = np.where(idx >= 0, "model", "").astype(object)
        new = np.flatnonzero(idx < 0)
        extra = sp.csr_matrix((0, len(self.items_)), dtype=np.float32)
        if new.size and history is not None:
            if isinstance(history, pd.DataFrame):
                wanted = [users[int(i)] for i in new]
                sub = history[history["user_id"].isin(wanted)]
                extra = sp.csr_matrix(
                    fold_in(sub, self.items_, self.feedback_, users=Vocabulary(wanted),
                            reference_time=self._fold_in_reference(sub)),
                    dtype=np.float32,
                )
                have = np.diff(extra.indptr) > 0
                sel, extra_rows = new[have], np.flatnonzero(have)
            else:
                h = sp.csr_matrix(history, dtype=np.float32)
                if h.shape != (len(users), len(self.items_)):
                    raise ConfigError(
                        f"history matrix must be (n_users={len(users)}, n_items={len(self.items_)}), got {h.shape}"
                    )
                nonempty = np.diff(h.indptr) > 0
                sel = new[nonempty[new]]
                extra, extra_rows = h, sel
            which[sel] = 1
            row_of[sel] = extra_rows
            source[sel] = "fold-in"
        rows = _gather_rows((self.train_matrix_, extra), which, row_of, len(self.items_))
        missing = np.flatnonzero(source == "")
        if missing.size and unknown_users == "raise":
            raise UnknownIdError(
                f"{missing.size} users are unknown to model '{self.name}' and have no history "
                f"(e.g. {[users[int(i)] for i in missing[:5]]}); pass history= or unknown_users='popular'"
            )
        return rows, idx, source

    def _fold_in_reference(self, events: pd.DataFrame) -> pd.Timestamp:
        """Decay reference for folded-in events: training's, or later if these events are later."""
        if len(events) == 0:
            return self.reference_time_
        return max(self.reference_time_, pd.Timestamp(events["timestamp"].max()))

    def recommend(
        self,
        users: Sequence[str] | str,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        history: pd.DataFrame | sp.spmatrix | None = None,
        unknown_users: UnknownUsers = "popular",
        batch_size: int = 2048,
    ) -> Recommendations:
        """Top-k items for each user.

        Args:
            users: user ids (a single id is accepted).
            k: list length.
            exclude_seen: drop items the user interacted with (in training or ``history``).
            candidates: rank only these item ids (unknown ones are ignored).
            exclude: never return these item ids.
            history: events (canonical frame) or a CSR row per user, used to fold in users that
                were not in training, without retraining.
            unknown_users: for users with neither training data nor history: ``"popular"``
                (training popularity, labelled ``"popular"``), ``"empty"`` or ``"raise"``.
            batch_size: users scored per batch (memory: batch_size × n_items floats).
        """
        self._check_fitted()
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        user_list = [users] if isinstance(users, str) else [str(u) for u in users]
        n_items = len(self.items_)
        allowed = np.ones(n_items, dtype=bool)
        if candidates is not None:
            allowed[:] = False
            cidx = self.items_.index(np.asarray(list(candidates), dtype=object), unknown="ignore")
            allowed[cidx[cidx >= 0]] = True
        if exclude is not None:
            eidx = self.items_.index(np.asarray(list(exclude), dtype=object), unknown="ignore")
            allowed[eidx[eidx >= 0]] = False
        kk = min(k, n_items)
        out_items = np.full((len(user_list), k), None, dtype=object)
        out_scores = np.full((len(user_list), k), -np.inf)
        out_sources = np.empty(len(user_list), dtype=object)
        # Big batches: one BLAS thread (products run in parallel row blocks instead, see
        # factor_scores), so idle BLAS threads do not compete with the parallel top-k kernel.
        limit: Any = nullcontext()
        if len(user_list) >= PARALLEL_ROWS:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(1, user_api="blas")
        with limit:
            return self._recommend_batches(user_list, k, kk, allowed, exclude_seen, history, unknown_users,
                                           batch_size, out_items, out_scores, out_sources)

    def _recommend_batches(
        self, user_list: list[str], k: int, kk: int, allowed: np.ndarray, exclude_seen: bool,
        history: pd.DataFrame | sp.spmatrix | None, unknown_users: UnknownUsers, batch_size: int,
        out_items: np.ndarray, out_scores: np.ndarray, out_sources: np.ndarray,
    ) -> Recommendations:
        item_ids = self.items_.ids
        n_items = len(self.items_)
        for start in range(0, len(user_list), batch_size):
            batch = user_list[start:start + batch_size]
            # a history matrix has one row per requested user: give each batch its rows
            hist = sp.csr_matrix(history)[start:start + len(batch)] if sp.issparse(history) else history
            rows, idx, source = self._history_rows(batch, hist, unknown_users)
            known = source != ""
            if known.all():
                scores = self._batch_scores(batch, rows, idx, hist)
            else:
                scores = np.full((len(batch), n_items), -np.inf)
                if known.any():
                    scores[known] = self._batch_scores(batch, rows, idx, hist, np.flatnonzero(known))
            if (~known).any() and unknown_users == "popular":
                scores[~known] = self.item_popularity_
                source[~known] = "popular"
            elif (~known).any():
                source[~known] = "empty"
            if not allowed.all():
                scores[:, ~allowed] = -np.inf
            if exclude_seen:
                top, vals = top_k_excluding(scores, kk, rows.indptr, rows.indices)
            else:
                top, vals = top_k_excluding(scores, kk, np.zeros(len(batch) + 1, np.int64), np.zeros(0, np.int64))
            valid = np.isfinite(vals)
            block = np.where(valid, item_ids[top], None)
            out_items[start:start + len(batch), :kk] = block
            out_scores[start:start + len(batch), :kk] = np.where(valid, vals, -np.inf)
            out_sources[start:start + len(batch)] = source
        return Recommendations(np.asarray(user_list, dtype=object), out_items, out_scores, out_sources)

    def score(self, users: Sequence[str], items: Sequence[str], *, history: pd.DataFrame | None = None) -> np.ndarray:
        """Scores of ``items`` for ``users`` as a ``(len(users), len(items))`` array.

        Unknown items score ``nan``; unknown users without history raise :class:`UnknownIdError`.
        """
        self._check_fitted()
        user_list = [str(u) for u in users]
        rows, idx, _ = self._history_rows(user_list, history, "raise")
        full = self._batch_scores(user_list, rows, idx, history)
        iidx = self.items_.index(np.asarray(list(items), dtype=object), unknown="ignore")
        out = np.full((len(users), len(iidx)), np.nan)
        ok = iidx >= 0
        out[:, ok] = full[:, iidx[ok]]
        return out

    def _item_vectors(self) -> np.ndarray | sp.csr_matrix:
        """Item representations for cosine similarity (rows = items). Default: item columns."""
        return sp.csr_matrix(self.train_matrix_.T)

    def similar_items(self, items: Sequence[str], k: int = 10) -> Recommendations:
        """The k most similar items to each item (cosine over the model's item representation)."""
        self._check_fitted()
        item_list = [str(i) for i in items]
        idx = self.items_.index(np.asarray(item_list, dtype=object), unknown="raise")
        vecs = self._item_vectors()
        if sp.issparse(vecs):
            v = sp.csr_matrix(vecs, dtype=np.float64)
            norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
            sims = np.asarray((v[idx] @ v.T).todense())
        else:
            v = np.asarray(vecs, dtype=np.float64)
            norms = np.linalg.norm(v, axis=1)
            sims = v[idx] @ v.T
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = sims / np.maximum(norms[idx][:, None] * norms[None, :], 1e-12)
        sims[np.arange(len(idx)), idx] = -np.inf
        top, vals = top_k(sims, min(k, len(self.items_) - 1))
        pad_items = np.full((len(idx), k), None, dtype=object)
        pad_scores = np.full((len(idx), k), -np.inf)
        pad_items[:, : top.shape[1]] = self.items_.ids[top]
        pad_scores[:, : top.shape[1]] = vals
        return Recommendations(np.asarray(item_list, dtype=object), pad_items, pad_scores,
                               np.full(len(idx), "model", dtype=object))

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        return None

    def save(self, path: str | Path) -> Path:
        """Write the model to a folder: config.json, vocab.json, state.npz (no pickle)."""
        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({
            "model": self.name,
            "config": self.config.model_dump(mode="json"),
            "feedback": self.feedback_.model_dump(mode="json"),
            "reference_time": self.reference_time_.isoformat(),
        }, indent=2))
        (out / "vocab.json").write_text(json.dumps({"users": self.users_.to_list(), "items": self.items_.to_list()}))
        m = self.train_matrix_
        arrays: dict[str, np.ndarray] = {
            "_train_data": m.data, "_train_indices": m.indices, "_train_indptr": m.indptr,
            "_train_shape": np.asarray(m.shape), "_popularity": self.item_popularity_, **self._state(),
        }
        np.savez(out / "state.npz", allow_pickle=False, **arrays)  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by :meth:`save` (any registered model when called on the base)."""
        from aisle.models._registry import get_model_class

        src = Path(path)
        try:
            info = json.loads((src / "config.json").read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{src} holds no saved model (config.json missing)") from exc
        klass = get_model_class(info["model"]) if cls is Recommender else cls
        if klass.name != info["model"]:
            raise ConfigError(f"{src} holds a '{info['model']}' model, not '{klass.name}'")
        model = klass(klass.Config(**info["config"]))
        vocab = json.loads((src / "vocab.json").read_text())
        model.users_ = Vocabulary.from_list(vocab["users"])
        model.items_ = Vocabulary.from_list(vocab["items"])
        model.feedback_ = FeedbackConfig(**info["feedback"])
        model.reference_time_ = pd.Timestamp(info["reference_time"])
        with np.load(src / "state.npz", allow_pickle=False) as npz:
            state = {k: npz[k] for k in npz.files}
        shape = tuple(int(x) for x in state.pop("_train_shape"))
        model.train_matrix_ = sp.csr_matrix(
            (state.pop("_train_data"), state.pop("_train_indices"), state.pop("_train_indptr")), shape=shape
        )
        model.item_popularity_ = state.pop("_popularity")
        model._set_state(state)
        model._fitted = True
        return model

    def __repr__(self) -> str:
        fitted = f", n_users={len(self.users_)}, n_items={len(self.items_)}" if self._fitted else ""
        return f"{type(self).__name__}({self.config!r}{fitted})"
