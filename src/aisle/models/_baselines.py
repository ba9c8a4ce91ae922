"""Baselines beside global popularity: random, recent popularity and segment popularity.

* :class:`RandomRecommender` (``random``) – the floor of every metric. Scores are seeded
  pseudo-random numbers, so candidates, exclusions and ``exclude_seen`` work as for any model.
* :class:`RecentPopularity` (``recent-pop``) – popularity over time-decayed weights: what sells
  now rather than what sold over the whole log.
* :class:`SegmentPopularity` (``segment-pop``) – popularity within a group: either the item
  categories a user's history leans to (``by="category"``, from a catalog) or the user's
  segment (``by="segment"``, from a users table).

Every baseline scores a new user from their history row alone (or needs no history at all).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.data._time import TimeLike
from aisle.errors import ConfigError, DataWarning, SchemaError
from aisle.models._base import FloatParam, ModelConfig, Recommender, SearchSpace

__all__ = [
    "RandomConfig",
    "RandomRecommender",
    "RecentPopularity",
    "RecentPopularityConfig",
    "SegmentPopularity",
    "SegmentPopularityConfig",
]

U64 = npt.NDArray[np.uint64]


# --------------------------------------------------------------------------------------------
# random
# --------------------------------------------------------------------------------------------


def _splitmix(x: U64) -> U64:
    """The splitmix64 finaliser, elementwise on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: U64 = z ^ (z >> np.uint64(31))
    return out


class RandomConfig(ModelConfig):
    """Config of :class:`RandomRecommender`.

    Attributes:
        seed: the seed of every user's random scores.
    """

    seed: int = Field(default=0, ge=0, lt=2**64)


class RandomRecommender(Recommender):
    """Random scores in [0, 1), deterministic given ``seed`` and the user's history.

    A user's scores are a hash of (seed, the set of items in their history, item index), so the
    same user gets the same list on every call, a folded-in user with a known user's history
    gets that user's list, and no state beyond the seed is kept. Users with the same history
    share a list; a user whose history changes gets a new one.
    """

    name: ClassVar[str] = "random"
    Config: ClassVar[type[ModelConfig]] = RandomConfig
    config: RandomConfig

    def _fit(self, matrix: sp.csr_matrix) -> None:
        return None

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        rows = sp.csr_matrix(rows)
        rows.eliminate_zeros()
        n_rows, n_items = rows.shape
        keys = np.zeros(n_rows, dtype=np.uint64)
        owner = np.repeat(np.arange(n_rows), np.diff(rows.indptr))
        np.add.at(keys, owner, _splitmix(rows.indices.astype(np.uint64) + np.uint64(1)))
        seed = _splitmix(np.asarray([self.config.seed], dtype=np.uint64))
        keys = _splitmix(keys ^ seed)
        item_keys = _splitmix(np.arange(n_items, dtype=np.uint64) ^ _splitmix(seed))
        bits = _splitmix(keys[:, None] ^ item_keys[None, :]) >> np.uint64(11)
        scores: np.ndarray = bits.astype(np.float64) * (1.0 / 2.0**53)
        return scores


# --------------------------------------------------------------------------------------------
# recent popularity
# --------------------------------------------------------------------------------------------


class RecentPopularityConfig(ModelConfig):
    """Config of :class:`RecentPopularity`.

    Attributes:
        half_life_days: the decay :meth:`RecentPopularity.fit_events` builds the matrix with:
            an event ``age`` days old weighs ``0.5 ** (age / half_life_days)``.
    """

    half_life_days: float = Field(default=14.0, gt=0)


class RecentPopularity(Recommender):
    """Time-decayed popularity: items ranked by the sum of their decayed interaction weights.

    The decay lives in the interaction matrix (``FeedbackConfig.half_life_days``), since the
    model contract hands models a matrix, not timestamps. Two ways in:

    * :meth:`fit_events` builds the matrix from events with this model's ``half_life_days``
      (the rest of the feedback rules as given) and fits on it: the usual way.
    * :meth:`fit` takes a matrix already built with a ``half_life_days``. Given one built
      without decay it still fits (ranking by all-time weight) and warns.

    Exponential decay scales every weight by the same factor when the reference time moves, so
    the ranking does not depend on the reference time, only on the half-life. Unknown users get
    the base policy (training popularity by distinct users, labelled ``"popular"``).
    """

    name: ClassVar[str] = "recent-pop"
    Config: ClassVar[type[ModelConfig]] = RecentPopularityConfig
    config: RecentPopularityConfig
    search_space: ClassVar[SearchSpace] = {"half_life_days": FloatParam(1.0, 365.0, log=True)}

    def fit(
        self,
        interactions: Interactions,
        *,
        catalog: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> Self:
        """Fit on a matrix whose weights are already time-decayed, or on ``events``.

        Args:
            interactions: the training matrix (built with ``half_life_days`` set).
            catalog: not used.
            users: not used.
            events: the training events; when given, the decay of this model's config is
                applied to them (see :meth:`fit_events`) with the matrix's other rules.

        Returns:
            ``self``.
        """
        if events is not None:
            return self.fit_events(events, interactions.config, reference_time=interactions.reference_time)
        have = interactions.config.half_life_days
        if have is None:
            warnings.warn(
                "recent-pop was given a matrix built without time decay "
                "(FeedbackConfig.half_life_days is None), so it ranks by all-time weight; use "
                "RecentPopularity.fit_events(events) or build the matrix with half_life_days",
                DataWarning,
                stacklevel=2,
            )
        elif have != self.config.half_life_days:
            warnings.warn(
                f"recent-pop uses the matrix's half-life ({have} days), not its config's "
                f"({self.config.half_life_days} days); use fit_events(events) to apply the config",
                DataWarning,
                stacklevel=2,
            )
        if have is not None and interactions.config.dedup == "binary":
            warnings.warn(
                "dedup='binary' turns every decayed weight back into 1, so recent-pop ranks by "
                "distinct users, not recency; use dedup='sum' or 'max'",
                DataWarning,
                stacklevel=2,
            )
        return super().fit(interactions)

    def fit_events(
        self,
        events: pd.DataFrame,
        feedback: FeedbackConfig | None = None,
        *,
        reference_time: TimeLike | None = None,
    ) -> Self:
        """Build the decayed matrix from events and fit on it.

        Args:
            events: canonical events (``user_id``, ``item_id``, ``event_type``, ``timestamp``).
            feedback: the other feedback rules (event weights, returns, ...); its
                ``half_life_days`` is replaced by this model's, and ``dedup="binary"`` (which
                would erase the decay) by ``"max"``.
            reference_time: the time the decay is measured from (the latest event by default;
                it does not change the ranking).

        Returns:
            ``self``.
        """
        base = feedback if feedback is not None else FeedbackConfig()
        update: dict[str, Any] = {"half_life_days": self.config.half_life_days}
        if base.dedup == "binary":
            update["dedup"] = "max"
        cfg = FeedbackConfig(**{**base.model_dump(), **update})
        return self.fit(build_interactions(events, cfg, reference_time=reference_time))

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.scores_ = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.tile(self.scores_, (rows.shape[0], 1))

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scores_ = state["scores"]


# --------------------------------------------------------------------------------------------
# segment popularity
# --------------------------------------------------------------------------------------------

Segments = Mapping[str, str] | pd.Series | pd.DataFrame

_NO_GROUP = ""


class SegmentPopularityConfig(ModelConfig):
    """Config of :class:`SegmentPopularity`.

    Attributes:
        by: ``"category"`` – a user's scores are ``P(c_j | user) * P(j | c_j)``: the share of
            their history in item ``j``'s category (smoothed towards the catalog-wide share)
            times ``j``'s popularity within its category; needs ``catalog=`` at fit time.
            ``"segment"`` – popularity among the users of the user's segment (smoothed towards
            global popularity); needs ``segments=`` at fit time.
        category_level: keep this many levels of category paths (``"Women/Shoes/Sneakers"``
            at level 1 is ``"Women"``); ``None`` keeps the whole path.
        smoothing: pseudo-interactions drawn from the global distribution, added to each user's
            category counts (``by="category"``) or to each segment's item counts
            (``by="segment"``).
        count: popularity counts distinct users (``"users"``) or sums positive weights
            (``"weight"``); user histories are read the same way.
    """

    by: Literal["category", "segment"] = "category"
    category_level: int | None = Field(default=None, ge=1)
    smoothing: float = Field(default=1.0, ge=0)
    count: Literal["users", "weight"] = "users"


def _segment_labels(segments: Segments) -> pd.Series:
    """Segments given as a users table, a Series or a mapping, as a Series user_id -> label."""
    if isinstance(segments, pd.DataFrame):
        missing = [c for c in ("user_id", "segment") if c not in segments.columns]
        if missing:
            raise SchemaError(
                f"segments table lacks the column(s) {', '.join(missing)}; pass the canonical "
                "users table (user_id, segment), a Series or a dict user_id -> segment"
            )
        series = pd.Series(segments["segment"].to_numpy(), index=segments["user_id"].astype(str))
    elif isinstance(segments, pd.Series):
        series = pd.Series(segments.to_numpy(), index=segments.index.astype(str))
    elif isinstance(segments, Mapping):
        series = pd.Series(list(segments.values()), index=[str(k) for k in segments])
    else:
        raise ConfigError(
            f"segments must be a users table, a Series or a dict, got {type(segments).__name__}"
        )
    series = series[series.notna()].astype(str)
    return series[~series.index.duplicated(keep="last")]


def _category_labels(catalog: pd.DataFrame, level: int | None) -> pd.Series:
    """item_id -> category (cut to ``level`` path levels) from a catalog table."""
    if not isinstance(catalog, pd.DataFrame):
        raise ConfigError(f"catalog must be a DataFrame, got {type(catalog).__name__}")
    missing = [c for c in ("item_id", "category") if c not in catalog.columns]
    if missing:
        raise SchemaError(
            f"catalog lacks the column(s) {', '.join(missing)}; segment-pop by='category' needs "
            "item_id and category (see aisle.data.conform_catalog)"
        )
    cats = pd.Series(catalog["category"].to_numpy(), index=catalog["item_id"].astype(str))
    cats = cats[cats.notna()].astype(str)
    if level is not None:
        cats = cats.map(lambda c: "/".join(c.split("/")[:level]))
    return cats[~cats.index.duplicated(keep="last")]


def _codes(labels: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Dense codes of labels (``None`` -> -1) and the sorted distinct labels."""
    present = sorted({str(x) for x in labels if x is not None})
    lookup = {lab: k for k, lab in enumerate(present)}
    codes = np.asarray([lookup[str(x)] if x is not None else -1 for x in labels], dtype=np.int64)
    return codes, present


class SegmentPopularity(Recommender):
    """Popularity within an item category or a user segment (see :class:`SegmentPopularityConfig`).

    ``fit(interactions, catalog=..., users=...)`` takes the side data as keywords (the base
    ``fit`` signature plus optional keywords, so generic callers still work).

    * ``by="category"``: items whose category the catalog lacks share an unnamed category; with
      no catalog at all every item does, and the model is global popularity (with a warning).
      A user's scores depend on their history only, so fold-in equals a known user.
    * ``by="segment"``: a training user with a segment gets their segment's popularity. A user
      without one (a new user, or one missing from ``segments``) gets the mixture of segments
      weighted by how well each explains their history (naive Bayes posterior
      ``P(s) Π P(i | s)`` over the history items), falling back to the segment prior. With no
      ``segments`` at all every user is in one segment: global popularity (with a warning).
    """

    name: ClassVar[str] = "segment-pop"
    Config: ClassVar[type[ModelConfig]] = SegmentPopularityConfig
    config: SegmentPopularityConfig
    search_space: ClassVar[SearchSpace] = {"smoothing": FloatParam(0.01, 100.0, log=True)}

    def fit(
        self,
        interactions: Interactions,
        *,
        catalog: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        segments: Segments | None = None,
    ) -> Self:
        """Fit on the interaction matrix and the side data the config's ``by`` needs.

        Args:
            interactions: the training matrix.
            catalog: ``by="category"``: a catalog table with ``item_id`` and ``category``.
            users: ``by="segment"``: the users table (``user_id``, ``segment``).
            events: not used.
            segments: ``by="segment"``: instead of ``users``, a Series indexed by user id or a
                dict user id -> segment. Null segments are unknown.

        Returns:
            ``self``.
        """
        by = self.config.by
        if by == "category" and segments is not None:
            raise ConfigError("segments= is for by='segment'; this model has by='category'")
        if segments is None and users is not None and by == "segment":
            segments = users
        needed = catalog if by == "category" else segments
        if needed is None:
            what = "catalog=" if by == "category" else "users= (with a segment column)"
            warnings.warn(
                f"segment-pop by='{by}' was fitted without {what}, so every "
                f"{'item' if by == 'category' else 'user'} is in one group and it ranks by "
                "global popularity",
                DataWarning,
                stacklevel=2,
            )
        self._side: Any = needed
        try:
            return super().fit(interactions)
        finally:
            del self._side

    def _counts(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(matrix, dtype=np.float64)
        x.data = (
            (x.data > 0).astype(np.float64)
            if self.config.count == "users"
            else np.maximum(x.data, 0.0)
        )
        x.eliminate_zeros()
        return x

    def _fit(self, matrix: sp.csr_matrix) -> None:
        x = self._counts(matrix)
        pop = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        total = max(pop.sum(), 1e-300)
        side = getattr(self, "_side", None)
        empty = np.zeros(0, dtype=np.int64)
        if self.config.by == "category":
            labels = np.full(len(self.items_), _NO_GROUP, dtype=object)
            if side is not None:
                cats = _category_labels(side, self.config.category_level)
                found = cats.reindex(pd.Index(self.items_.ids.astype(str)))
                labels = found.fillna(_NO_GROUP).to_numpy(dtype=object)
            codes, names = _codes(labels)
            group_pop = np.bincount(codes, weights=pop, minlength=len(names))
            share = np.divide(
                pop, group_pop[codes], out=np.zeros_like(pop), where=group_pop[codes] > 0
            )
            self.item_group_ = codes
            self.user_group_ = empty
            self.item_share_ = share
            self.segment_probs_ = np.zeros((0, len(self.items_)))
            self.prior_ = group_pop / total
        else:
            n_users = len(self.users_)
            labels = np.full(n_users, _NO_GROUP, dtype=object)
            if side is not None:
                segs = _segment_labels(side)
                found = segs.reindex(pd.Index(self.users_.ids.astype(str)))
                labels = np.asarray(found.to_numpy(dtype=object), dtype=object)
                labels[pd.isna(found).to_numpy()] = None
                if (pd.isna(found)).all():
                    warnings.warn(
                        f"none of the {n_users} training users has a segment in segments=; "
                        "every user's segment will be inferred from their history",
                        DataWarning,
                        stacklevel=4,
                    )
            codes, names = _codes(labels)
            if not names:  # nobody has a segment: one unnamed segment, never stated
                names = [_NO_GROUP]
            n_seg = len(names)
            member = sp.csr_matrix(
                (np.ones(int((codes >= 0).sum())), (codes[codes >= 0], np.flatnonzero(codes >= 0))),
                shape=(n_seg, n_users),
            )
            seg_counts = np.asarray((member @ x).toarray(), dtype=np.float64)
            glob = pop / total
            s = self.config.smoothing
            denom = seg_counts.sum(axis=1, keepdims=True) + s
            probs = np.divide(
                seg_counts + s * glob[None, :],
                denom,
                out=np.tile(glob, (n_seg, 1)),
                where=denom > 0,
            )
            users_per = np.bincount(codes[codes >= 0], minlength=n_seg).astype(np.float64)
            self.item_group_ = empty
            self.user_group_ = codes
            self.item_share_ = np.zeros(0)
            self.segment_probs_ = probs
            self.prior_ = users_per / max(users_per.sum(), 1.0)
        self.groups_ = np.asarray(names, dtype=str)

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        x = self._counts(rows)
        s = self.config.smoothing
        if self.config.by == "category":
            n_groups = len(self.groups_)
            onehot = sp.csr_matrix(
                (
                    np.ones(len(self.item_group_)),
                    (np.arange(len(self.item_group_)), self.item_group_),
                ),
                shape=(len(self.item_group_), n_groups),
            )
            mass = np.asarray((x @ onehot).toarray(), dtype=np.float64)
            tot = mass.sum(axis=1, keepdims=True) + s
            affinity = np.divide(
                mass + s * self.prior_[None, :],
                tot,
                out=np.tile(self.prior_, (x.shape[0], 1)),
                where=tot > 0,
            )
            scores: np.ndarray = affinity[:, self.item_group_] * self.item_share_[None, :]
            return scores
        seg = np.full(x.shape[0], -1, dtype=np.int64)
        known = user_index >= 0
        seg[known] = self.user_group_[user_index[known]]
        out = np.empty((x.shape[0], self.segment_probs_.shape[1]), dtype=np.float64)
        stated = seg >= 0
        out[stated] = self.segment_probs_[seg[stated]]
        todo = np.flatnonzero(~stated)
        if todo.size:
            out[todo] = self._segment_mixture(x[todo]) @ self.segment_probs_
        return out

    def _segment_mixture(self, x: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """Posterior P(segment | history) ∝ P(s) Π_i P(i | s)^x_i, per row."""
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.prior_)
        loglik = np.asarray(x @ np.log(self.segment_probs_.T + 1e-300), dtype=np.float64)
        logpost = loglik + log_prior[None, :]
        logpost -= logpost.max(axis=1, keepdims=True)
        post = np.exp(logpost)
        out: npt.NDArray[np.float64] = post / post.sum(axis=1, keepdims=True)
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "groups": self.groups_,
            "prior": self.prior_,
            "item_group": self.item_group_,
            "user_group": self.user_group_,
            "item_share": self.item_share_,
            "segment_probs": self.segment_probs_,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.groups_ = state["groups"]
        self.prior_ = state["prior"]
        self.item_group_ = state["item_group"]
        self.user_group_ = state["user_group"]
        self.item_share_ = state["item_share"]
        self.segment_probs_ = state["segment_probs"]
