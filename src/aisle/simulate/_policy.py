"""Policy simulation: show a policy's ranked lists to simulated visitors and record the outcome.

A policy is any callable ``(user_ids, k, context) -> ranked item ids per user`` or an object
with ``recommend(user_ids, k)``. The run draws visits (the same visits for every policy with
the same seed, start and users: common random numbers for A/B studies), asks the policy for a
list once per time step for the users visiting in that step, and lets each user examine the
list with position bias and move down the funnel given the true relevance and the stock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import chain
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from aisle.errors import ConfigError, UnknownIdError

from ._funnel import (
    CART,
    CLICK,
    PURCHASE,
    RETURN,
    VIEW,
    EventArrays,
    events_frame,
    run_funnel,
    sequential_ids,
    string_column,
)
from ._shop import _restock, draw_devices, draw_visit_times, finish_events
from ._world import DAY, PAGES, RelevanceEvent, ShopState, ShopTruth, World, utc_times

__all__ = [
    "OraclePolicy",
    "Policy",
    "PolicyRun",
    "PolicySummary",
    "PopularityPolicy",
    "RandomPolicy",
    "RankedLists",
    "SupportsRecommend",
]

_REC_PAGE = PAGES.index("recommendations")


@dataclass(frozen=True)
class RankedLists:
    """A policy's answer with the probability of each shown slot (for stochastic policies).

    Attributes:
        items: ranked item ids, one list per user.
        propensities: for each shown item, the probability that the policy puts that item in
            that slot; ``None`` means 1.0 everywhere (a deterministic policy).
    """

    items: Sequence[Sequence[str]]
    propensities: Sequence[Sequence[float]] | None = None


PolicyOutput: TypeAlias = Sequence[Sequence[str]] | RankedLists | NDArray[Any]


class RecommendCallable(Protocol):
    """A policy as a function: ``(user_ids, k, context) -> ranked ids per user``.

    ``context`` holds ``timestamp`` (the start of the time step), ``step``,
    ``available_items`` (listed and in stock), ``item_ids`` and ``stock`` (aligned with
    ``item_ids``).
    """

    def __call__(
        self, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]
    ) -> PolicyOutput: ...


@runtime_checkable
class SupportsRecommend(Protocol):
    """A policy as an object with ``recommend(user_ids, k)``.

    ``recommend`` may return ranked ids per user, a :class:`RankedLists`, or a tuple of two
    2-d arrays ``(ids, scores)`` (the shape ``implicit`` uses).
    """

    def recommend(self, user_ids: NDArray[np.str_], k: int) -> Any: ...


Policy: TypeAlias = RecommendCallable | SupportsRecommend


@dataclass(frozen=True)
class PolicySummary:
    """Summary figures of a policy run (over every visit, logged or not).

    Attributes:
        n_visits: visits in the run.
        n_impressions: items shown.
        n_clicks, n_add_to_carts, n_purchases, n_returns: events of each type.
        units: units bought.
        revenue: gross revenue of the purchases (price × quantity).
        margin: margin earned on the purchases (price × margin × quantity).
        returned_revenue: revenue of the returns that happened within the run.
        ctr: clicks per impression.
        conversion_rate: share of visits with at least one purchase.
        revenue_per_visit: revenue / visits.
    """

    n_visits: int
    n_impressions: int
    n_clicks: int
    n_add_to_carts: int
    n_purchases: int
    n_returns: int
    units: float
    revenue: float
    margin: float
    returned_revenue: float
    ctr: float
    conversion_rate: float
    revenue_per_visit: float

    def as_dict(self) -> dict[str, float]:
        """The figures as a plain dict."""
        return {key: float(value) for key, value in asdict(self).items()}


@dataclass(frozen=True, eq=False)
class PolicyRun:
    """What :meth:`ShopSimulator.simulate_policy` returns.

    Attributes:
        events: the logged events, canonical schema, ``page="recommendations"`` (returns:
            ``"orders"``), ``position`` = the rank the item was shown at.
        impressions: one row per shown item: ``user_id``, ``item_id``, ``session_id``,
            ``position`` (1-based), ``timestamp``, ``propensity``, and the outcome
            ``clicked`` / ``purchased``.
        summary: CTR, conversion rate, revenue, margin ...
        state: the shop at the end of the run (pass it on to continue).
        start: when the run started.
        n_days: how long it ran.
    """

    events: pd.DataFrame
    impressions: pd.DataFrame
    summary: PolicySummary
    state: ShopState
    start: pd.Timestamp
    n_days: int


# -- simple policies --------------------------------------------------------------------------
def _available(
    context: Mapping[str, Any] | None, fallback: NDArray[np.str_] | None
) -> NDArray[np.str_]:
    if context is not None and context.get("available_items") is not None:
        return np.asarray(context["available_items"])
    if fallback is not None:
        return fallback
    raise ConfigError(
        "the policy needs candidate items: call it with a context holding 'available_items' "
        "or give item_ids when creating it"
    )


class PopularityPolicy:
    """Shows everybody the same most popular available items.

    Args:
        ranked_items: item ids, most popular first.
    """

    def __init__(self, ranked_items: Sequence[str] | NDArray[np.str_]) -> None:
        self.ranked_items = np.asarray(ranked_items)

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, *, event_types: Iterable[str] = ("click", "purchase")
    ) -> PopularityPolicy:
        """Rank items by how many events of ``event_types`` they have (ties: by item id).

        Args:
            events: an event table in the canonical schema.
            event_types: the event types that count.
        """
        mask = events["event_type"].isin(list(event_types))
        counts = events.loc[mask, "item_id"].astype(str).value_counts()
        table = pd.DataFrame({"item": counts.index.to_numpy(dtype=str), "n": counts.to_numpy()})
        table = table.sort_values(["n", "item"], ascending=[False, True], kind="stable")
        return cls(table["item"].to_numpy(dtype=str))

    def __call__(
        self, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]
    ) -> list[list[str]]:
        """The top ``k`` available items for each user."""
        ranked = self.ranked_items
        if context.get("available_items") is not None:
            ranked = ranked[np.isin(ranked, np.asarray(context["available_items"]))]
        top = [str(x) for x in ranked[:k]]
        return [top for _ in range(len(user_ids))]

    def recommend(self, user_ids: ArrayLike, k: int) -> list[list[str]]:
        """The top ``k`` items for each user (no stock filter)."""
        return self(np.asarray(user_ids), k, {})


class RandomPolicy:
    """Shows each user ``k`` items drawn uniformly at random (propensity ``1/n_candidates``).

    Args:
        seed: seed of the draws; a call is deterministic given the seed and the context's
            ``timestamp``.
        item_ids: candidates when no context gives ``available_items``.
    """

    def __init__(self, seed: int = 0, item_ids: Sequence[str] | None = None) -> None:
        self.seed = seed
        self.item_ids = None if item_ids is None else np.asarray(item_ids)

    def __call__(
        self, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]
    ) -> RankedLists:
        """``k`` random available items per user, with their propensities."""
        candidates = _available(context, self.item_ids)
        n_users, n_c = len(user_ids), len(candidates)
        kk = min(k, n_c)
        stamp = context.get("timestamp")
        tick = abs(int(pd.Timestamp(stamp).value)) if stamp is not None else 0
        rng = np.random.default_rng([self.seed, tick])
        if kk == 0:
            return RankedLists([[] for _ in range(n_users)], [[] for _ in range(n_users)])
        rows = max(1, (1 << 21) // n_c)
        picks = []
        for lo in range(0, n_users, rows):
            keys = rng.random((min(rows, n_users - lo), n_c))
            part = np.argpartition(keys, kk - 1, axis=1)[:, :kk]
            order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1)
            picks.append(np.take_along_axis(part, order, axis=1))
        chosen = candidates[np.concatenate(picks)] if picks else np.empty((0, kk), dtype=str)
        items = [[str(x) for x in row] for row in chosen]
        props = [[1.0 / n_c] * kk for _ in range(n_users)]
        return RankedLists(items, props)

    def recommend(self, user_ids: ArrayLike, k: int) -> RankedLists:
        """``k`` random items per user from ``item_ids``."""
        return self(np.asarray(user_ids), k, {})


class OraclePolicy:
    """Ranks available items by their true relevance to each user (an upper bound).

    Args:
        truth: the shop's ground truth.
        event: the probability to rank by: ``"click"`` or ``"purchase"`` (see
            :meth:`ShopTruth.true_relevance`).
    """

    def __init__(self, truth: ShopTruth, event: RelevanceEvent = "click") -> None:
        self.truth = truth
        self.event = event

    def __call__(
        self, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]
    ) -> list[list[str]]:
        """The ``k`` available items with the highest true relevance for each user."""
        candidates = _available(context, self.truth.item_ids)
        kk = min(k, len(candidates))
        if kk == 0:
            return [[] for _ in range(len(user_ids))]
        rel = self.truth.true_relevance(
            user_ids,
            candidates,
            event=self.event,
            at=context.get("timestamp"),  # type: ignore[arg-type]
        )
        part = np.argpartition(-rel, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(rel, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        return [[str(x) for x in row] for row in candidates[top]]

    def recommend(self, user_ids: ArrayLike, k: int) -> list[list[str]]:
        """The ``k`` items with the highest true relevance (season left out, no stock filter)."""
        return self(np.asarray(user_ids), k, {})


# -- the run ----------------------------------------------------------------------------------
def _ask(policy: Policy, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]) -> Any:
    if callable(policy):
        return policy(user_ids, k, context)
    if isinstance(policy, SupportsRecommend):
        return policy.recommend(user_ids, k)
    raise ConfigError(
        f"policy must be a callable (user_ids, k, context) or have recommend(user_ids, k); "
        f"got {type(policy).__name__}"
    )


def _parse(
    out: Any, n_users: int, k: int, truth: ShopTruth
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Flatten a policy's answer: item indices, propensities and list lengths (deduplicated)."""
    props: Any = None
    if isinstance(out, RankedLists):
        items, props = out.items, out.propensities
    elif (
        isinstance(out, tuple)
        and len(out) == 2
        and all(isinstance(x, np.ndarray) and x.ndim == 2 for x in out)
        and out[1].dtype.kind in "fiu"
    ):
        items = out[0]
    else:
        items = out
    if len(items) != n_users:
        raise ConfigError(f"the policy returned {len(items)} lists for {n_users} users")
    lists = [list(row)[:k] for row in items]
    lens = np.array([len(row) for row in lists], dtype=np.int64)
    flat = np.asarray(list(chain.from_iterable(lists)), dtype=object)
    if len(flat):
        try:
            index = truth.item_index(flat)
        except UnknownIdError as exc:
            raise UnknownIdError(
                f"the policy recommended items the shop does not sell: {exc}"
            ) from exc
    else:
        index = np.empty(0, dtype=np.intp)
    if props is None:
        prop = np.ones(len(flat))
    else:
        if len(props) != n_users:
            raise ConfigError(
                f"the policy returned {len(props)} propensity lists for {n_users} users"
            )
        prop = np.asarray(
            list(chain.from_iterable(list(p)[: len(r)] for p, r in zip(props, lists, strict=True))),
            dtype=np.float64,
        )
        if len(prop) != len(flat) or not np.all((prop > 0) & (prop <= 1)):
            raise ConfigError("propensities must match the lists and lie in (0, 1]")
    # Drop repeated items within a list (keep the first).
    row = np.repeat(np.arange(n_users, dtype=np.int64), lens)
    key = row * len(truth.item_ids) + index
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    if not keep.all():
        lens = np.bincount(row[keep], minlength=n_users).astype(np.int64)
    return index[keep].astype(np.int64), prop[keep], lens


def _validate_run(n_days: Any, k: Any) -> None:
    if not isinstance(n_days, int) or isinstance(n_days, bool) or n_days < 1:
        raise ConfigError(f"n_days must be a positive integer, got {n_days!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def _seed_for(seed: int, stream: int, t_start: float) -> list[int]:
    ms = round(t_start * 1_000.0)
    return [seed, 0x5EED, stream, int(ms < 0), abs(ms)]


def run_policy(
    world: World,
    policy: Policy,
    *,
    n_days: int = 7,
    users: Any = None,
    k: int = 10,
    start: datetime | pd.Timestamp | None = None,
    state: ShopState | None = None,
) -> PolicyRun:
    """Run ``policy`` in ``world``; see :meth:`ShopSimulator.simulate_policy`."""
    _validate_run(n_days, k)
    cfg = world.config
    truth = world.truth
    origin = pd.Timestamp(cfg.start)
    if state is not None:
        if len(state.stock) != len(truth.item_ids) or not np.array_equal(
            state.item_ids, truth.item_ids
        ):
            raise ConfigError(
                "state belongs to another shop: its items differ from this simulator's"
            )
        stock = np.asarray(state.stock, dtype=np.float64).copy()
    else:
        stock = world.stock0.copy()
    if start is None:
        begin = state.time if state is not None else origin + pd.Timedelta(days=cfg.n_days)
    else:
        begin = pd.Timestamp(start)
        begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    t_start = float((begin - origin).total_seconds())
    t_end = t_start + n_days * DAY

    vrng = np.random.default_rng(_seed_for(cfg.seed, 4, t_start))
    v_user, v_t = draw_visit_times(world, vrng, t_start, n_days)
    v_dev = draw_devices(world, vrng, v_user)
    if users is not None:
        allowed = truth.user_index(np.atleast_1d(np.asarray(users, dtype=object)))
        keep = np.isin(v_user, allowed)
        v_user, v_t, v_dev = v_user[keep], v_t[keep], v_dev[keep]
    n_visits = len(v_user)
    rng = np.random.default_rng(_seed_for(cfg.seed, 5, t_start))
    step = world.step_seconds
    n_steps = n_days * cfg.steps_per_day
    bounds = np.searchsorted(v_t, t_start + step * np.arange(n_steps + 1))
    bounds[-1] = n_visits
    parts: list[EventArrays] = []
    imp: dict[str, list[NDArray[Any]]] = {
        key: [] for key in ("user", "item", "session", "pos", "t", "prop", "clicked", "purchased")
    }
    for s in range(n_steps):
        t = t_start + s * step
        _restock(world, stock, t - step, t, None)
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        if lo == hi:
            continue
        avail = (world.item_avail_s <= t) & (stock > 0)
        vu = v_user[lo:hi]
        uniq, first, inverse = np.unique(vu, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank_of = np.empty(len(uniq), dtype=np.int64)
        rank_of[order] = np.arange(len(uniq), dtype=np.int64)
        v_rank = rank_of[inverse]
        asked = uniq[order]
        context = {
            "timestamp": origin + pd.Timedelta(seconds=t),
            "step": s,
            "available_items": truth.item_ids[avail],
            "item_ids": truth.item_ids,
            "stock": stock.copy(),
        }
        out = _ask(policy, truth.user_ids[asked], k, context)
        flat_items, flat_prop, lens = _parse(out, len(asked), k, truth)
        offsets = np.concatenate([[0], np.cumsum(lens)])
        v_len = lens[v_rank]
        total = int(v_len.sum())
        if total == 0:
            continue
        pair_sess = np.repeat(np.arange(hi - lo, dtype=np.int64), v_len)
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(v_len) - v_len, v_len)
        src = offsets[v_rank][pair_sess] + within
        pair_item = flat_items[src]
        pair_pos = within + 1
        res = run_funnel(
            world,
            rng,
            sess_user=vu,
            sess_t0=v_t[lo:hi],
            sess_page=np.full(hi - lo, _REC_PAGE, dtype=np.int8),
            sess_device=v_dev[lo:hi],
            sess_id=np.arange(lo, hi, dtype=np.int64),
            pair_sess=pair_sess,
            pair_item=pair_item,
            pair_pos=pair_pos,
            stock=stock,
            purchasable=avail,
            t_end=t_end,
        )
        parts.append(res.events)
        shown = res.view_t < t_end
        imp["user"].append(vu[pair_sess][shown])
        imp["item"].append(pair_item[shown])
        imp["session"].append((lo + pair_sess)[shown])
        imp["pos"].append(pair_pos[shown])
        imp["t"].append(res.view_t[shown])
        imp["prop"].append(flat_prop[src][shown])
        imp["clicked"].append(res.clicked[shown])
        imp["purchased"].append(res.purchased[shown])

    all_events = EventArrays.concat(parts)
    summary = _summarize(world, all_events, n_visits)
    done = finish_events(world, all_events, session_base=n_visits, compact=False)
    tag = begin.strftime("%Y%m%d%H%M")
    width = max(6, len(str(max(n_visits + len(done.arrays), 1))))
    events = events_frame(
        world,
        done.arrays,
        session_numbers=done.sessions,
        session_width=width,
        event_prefix=f"e{tag}-",
        session_prefix=f"r{tag}-",
    )
    impressions = _impressions_frame(world, imp, tag, width)
    end = begin + pd.Timedelta(days=n_days)
    return PolicyRun(
        events=events,
        impressions=impressions,
        summary=summary,
        state=ShopState(time=end, item_ids=truth.item_ids, stock=stock.copy()),
        start=begin,
        n_days=n_days,
    )


def _summarize(world: World, ev: EventArrays, n_visits: int) -> PolicySummary:
    kinds = ev.etype
    buy = kinds == PURCHASE
    ret = kinds == RETURN
    price = world.item_price[ev.item]
    qty = np.nan_to_num(ev.qty)
    revenue = float(np.sum(price[buy] * qty[buy]))
    n_imp = int(np.sum(kinds == VIEW))
    n_clicks = int(np.sum(kinds == CLICK))
    converted = len(np.unique(ev.session[buy]))
    return PolicySummary(
        n_visits=n_visits,
        n_impressions=n_imp,
        n_clicks=n_clicks,
        n_add_to_carts=int(np.sum(kinds == CART)),
        n_purchases=int(buy.sum()),
        n_returns=int(ret.sum()),
        units=float(qty[buy].sum()),
        revenue=revenue,
        margin=float(np.sum(price[buy] * world.item_margin[ev.item[buy]] * qty[buy])),
        returned_revenue=float(np.sum(price[ret] * qty[ret])),
        ctr=n_clicks / n_imp if n_imp else 0.0,
        conversion_rate=converted / n_visits if n_visits else 0.0,
        revenue_per_visit=revenue / n_visits if n_visits else 0.0,
    )


def _impressions_frame(
    world: World, imp: dict[str, list[NDArray[Any]]], tag: str, width: int
) -> pd.DataFrame:
    def cat(key: str, dtype: Any) -> NDArray[Any]:
        return np.concatenate(imp[key]) if imp[key] else np.empty(0, dtype=dtype)

    user = cat("user", np.int64)
    keep = world.user_tracked[user]
    t = cat("t", np.float64)[keep]
    order = np.argsort(np.round(t * 1_000.0).astype(np.int64), kind="stable")
    pick = np.flatnonzero(keep)[order]
    start_ns = pd.Timestamp(world.config.start).value
    return pd.DataFrame(
        {
            "user_id": string_column(user[pick], world.truth.user_ids),
            "item_id": string_column(cat("item", np.int64)[pick], world.truth.item_ids),
            "session_id": sequential_ids(f"r{tag}-", cat("session", np.int64)[pick], width),
            "position": cat("pos", np.int64)[pick].astype(np.int64),
            "timestamp": utc_times(start_ns, t[order]),
            "propensity": cat("prop", np.float64)[pick].astype(np.float64),
            "clicked": cat("clicked", np.bool_)[pick].astype(np.bool_),
            "purchased": cat("purchased", np.bool_)[pick].astype(np.bool_),
        }
    )
