"""Descriptive statistics of a dataset: every figure the strategy advisor reads.

:func:`compute_stats` turns a :class:`~aisle.data._dataset.Dataset` into a :class:`DataStats`,
one frozen pydantic section per question (activity, time span, long tail, cold start, sessions,
repeat consumption, feedback, metadata, popularity drift). Ids are factorized once into dense
integer codes and every figure is computed with vectorised numpy/pandas operations (loops only
run over the few time periods), so a million events profile in a few seconds.

Definitions worth knowing:

- quantiles use linear interpolation (``numpy.percentile``); ``p90`` is the 90th percentile;
- the Gini coefficient of item popularity is computed over the items that occur in the events
  (0 = every item equally popular, towards 1 = all events on one item);
- the "top 1 %" and "top 20 %" of items are the ``ceil(1 % / 20 % x n_items)`` most frequent ones;
- cold start and drift cut ``[first, last]`` timestamp into equal-width periods; a user (item)
  is *new* in a period when it has no event in any earlier period;
- derived sessions start at a user's first event and after every gap strictly longer than
  ``session_gap_minutes``;
- conversion ratios are ratios of event counts of funnel steps (``None`` when either step is
  absent from the log: an untracked step is not a zero rate);
- the feedback is *explicit* when ratings are at least half of the events, *mixed* when some
  events are ratings, *implicit* otherwise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from aisle.data._dataset import Dataset
from aisle.data._schema import CATALOG_COLUMNS, EVENT_TYPES
from aisle.errors import ConfigError, DataError, SchemaError

__all__ = [
    "Activity",
    "ColdStart",
    "ColdStartPeriod",
    "DataStats",
    "Distribution",
    "Drift",
    "Feedback",
    "LongTail",
    "Metadata",
    "PeriodOverlap",
    "ProfileParameters",
    "Repeats",
    "Sessions",
    "TimeSpan",
    "compute_stats",
    "gini",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_REQUIRED = ("user_id", "item_id", "event_type", "timestamp")
_FUNNEL = ("view", "click", "add_to_cart", "purchase", "return")
_NS_PER_MINUTE = 60 * 1_000_000_000
_NS_PER_DAY = 24 * 60 * _NS_PER_MINUTE
_MAX_RATING_LEVELS = 20


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distribution(_Section):
    """Summary of a distribution of counts (or durations)."""

    mean: float
    median: float
    p90: float
    min: float
    max: float


class ProfileParameters(_Section):
    """The parameters a profile was computed with."""

    cold_start_periods: int
    session_gap_minutes: float
    drift_top_k: int
    tail_threshold: int


class Activity(_Section):
    """Volume and spread of the events over users and items."""

    events_by_type: dict[str, int] = Field(description="event counts, funnel order first")
    n_user_item_pairs: int = Field(description="distinct (user, item) pairs")
    density: float = Field(description="n_user_item_pairs / (n_users * n_items)")
    events_per_user: Distribution
    events_per_item: Distribution


class TimeSpan(_Section):
    """First and last event; ``None`` when the timestamps only encode order."""

    has_timestamps: bool
    first: datetime | None = None
    last: datetime | None = None
    days: float | None = None
    events_per_day: float | None = None
    note: str | None = None


class LongTail(_Section):
    """How concentrated the events are on few items."""

    gini: float = Field(description="Gini coefficient of item popularity (event counts)")
    top_1pct_items: int
    top_1pct_event_share: float
    top_20pct_items: int
    top_20pct_event_share: float
    tail_threshold: int = Field(description="items with fewer events than this are the tail")
    tail_item_share: float = Field(description="share of items with < tail_threshold events")


class ColdStartPeriod(_Section):
    """Newcomers in one period after the first."""

    period: int
    start: datetime
    end: datetime
    n_events: int
    n_users: int
    n_items: int
    new_user_share: float | None = Field(
        description="share of the period's users never seen before it"
    )
    new_user_event_share: float | None = Field(
        description="share of the period's events by new users"
    )
    new_item_share: float | None = Field(
        description="share of the period's items never seen before it"
    )
    new_item_event_share: float | None = Field(
        description="share of the period's events on new items"
    )


class ColdStart(_Section):
    """How many users and items arrive new, period after period."""

    applicable: bool
    note: str | None = None
    n_periods: int
    periods: list[ColdStartPeriod] = Field(default_factory=list)
    mean_new_user_share: float | None = None
    mean_new_user_event_share: float | None = None
    mean_new_item_share: float | None = None
    mean_new_item_event_share: float | None = None


class Sessions(_Section):
    """Session structure: given, derived from an inactivity gap, or absent."""

    source: Literal["given", "anonymous_users", "derived", "unavailable"]
    gap_minutes: float | None = Field(
        default=None, description="inactivity gap used to derive sessions"
    )
    anonymous_sessions: bool = Field(
        description="each session stands for a user (user_id = session_id)"
    )
    n_sessions: int | None = None
    length: Distribution | None = Field(default=None, description="events per session")
    single_event_session_share: float | None = None
    sessions_per_user: Distribution | None = None
    single_session_user_share: float | None = None
    duration_minutes: Distribution | None = Field(
        default=None, description="last minus first event of a session"
    )
    median_gap_seconds: float | None = Field(
        default=None, description="median time between events of a session"
    )
    note: str | None = None


class Repeats(_Section):
    """Repeat consumption: the same user on the same item again."""

    repeat_pair_share: float = Field(description="share of (user, item, event type) with > 1 event")
    repeat_pair_share_by_type: dict[str, float]
    repeat_purchase_rate: float | None = Field(
        description="share of bought (user, item) pairs bought again"
    )
    repeat_purchase_user_share: float | None = Field(
        description="share of buyers who bought an item again"
    )
    cross_session_repeat_share: float | None = Field(
        description="share of (user, item) pairs seen in > 1 session"
    )


class Feedback(_Section):
    """Explicit ratings and the implicit funnel."""

    kind: Literal["explicit", "implicit", "mixed"]
    n_ratings: int
    rating_share: float
    rating_values: dict[str, int] | None = Field(
        default=None, description="count per rating value (<= 20 levels)"
    )
    rating_mean: float | None = None
    rating_min: float | None = None
    rating_max: float | None = None
    funnel: dict[str, int] = Field(description="view, click, add_to_cart, purchase, return counts")
    conversion: dict[str, float | None] = Field(description="ratios of consecutive funnel counts")
    return_rate: float | None = Field(default=None, description="returns / purchases")
    session_conversion_rate: float | None = Field(
        default=None, description="share of sessions with a purchase"
    )
    purchase_price_share: float | None = Field(
        default=None, description="share of purchases with a known price"
    )


class Metadata(_Section):
    """How much the catalog says about the items."""

    has_catalog: bool
    n_catalog_items: int
    catalog_coverage: float | None = Field(
        default=None, description="share of event items present in the catalog"
    )
    catalog_event_coverage: float | None = Field(
        default=None, description="share of events on catalog items"
    )
    catalog_items_without_events_share: float | None = None
    attribute_coverage: dict[str, float] = Field(
        default_factory=dict, description="share of non-null values per catalog column"
    )
    extra_attributes: list[str] = Field(default_factory=list)
    descriptive_attributes: list[str] = Field(
        default_factory=list,
        description="text-like columns a content model can use: category, brand, text and "
        "extras, less ids, links and duplicates of an earlier column",
    )


class PeriodOverlap(_Section):
    """Overlap of the top-k items of one period with the previous period's."""

    period: int
    jaccard: float | None
    spearman: float | None
    n_compared: int = Field(description="items in the union of both top-k lists")


class Drift(_Section):
    """How fast the most popular items change."""

    applicable: bool
    note: str | None = None
    top_k: int
    periods: list[PeriodOverlap] = Field(default_factory=list)
    mean_jaccard: float | None = None
    mean_spearman: float | None = None


class DataStats(_Section):
    """Every descriptive section of a profile (without the advice)."""

    dataset: str
    n_users: int
    n_items: int
    n_events: int
    parameters: ProfileParameters
    activity: Activity
    time_span: TimeSpan
    long_tail: LongTail
    cold_start: ColdStart
    sessions: Sessions
    repeats: Repeats
    feedback: Feedback
    metadata: Metadata
    drift: Drift


# --------------------------------------------------------------------------------------------
# helpers


def _num(x: float | np.floating | None) -> float | None:
    """A plain float, or ``None`` for missing/NaN/inf (keeps the JSON valid)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _distribution(values: npt.ArrayLike) -> Distribution | None:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return None
    return Distribution(
        mean=float(arr.mean()),
        median=float(np.median(arr)),
        p90=float(np.percentile(arr, 90)),
        min=float(arr.min()),
        max=float(arr.max()),
    )


def _required_distribution(values: npt.ArrayLike) -> Distribution:
    dist = _distribution(values)
    assert dist is not None  # callers pass non-empty arrays
    return dist


def gini(counts: npt.ArrayLike) -> float:
    """The Gini coefficient of non-negative counts.

    Args:
        counts: one count per item (or any unit).

    Returns:
        0.0 when every count is equal, ``(n - 1) / n`` when one unit holds everything.
        0.0 for an empty or all-zero input.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1.0) / n)


def _to_datetime(ns: int) -> datetime:
    return pd.Timestamp(ns, unit="ns", tz="UTC").floor("us").to_pydatetime()  # datetime has us


def _non_null_share(col: pd.Series) -> float:
    if len(col) == 0:
        return 0.0
    present = col.notna()
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        as_text = col.astype("string").str.strip()
        present &= as_text.ne("").fillna(False).astype(bool)
    return float(present.mean())


def _isin(values: pd.Index, pool: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Membership through one shared factorization (Arrow-string ``isin`` is slow)."""
    left = pd.Series(np.asarray(values, dtype=object))
    right = pd.Series(np.asarray(pool, dtype=object))
    codes, _ = pd.factorize(pd.concat([left, right], ignore_index=True))
    return np.isin(codes[: len(left)], codes[len(left) :])


@dataclass
class _Codes:
    """The event log as dense integer codes (built once, shared by every section)."""

    user: IntArray
    item: IntArray
    etype: IntArray
    type_names: list[str]
    item_ids: pd.Index
    n_users: int
    n_items: int
    ts: IntArray | None  # ns since epoch, None without real timestamps


def _timestamps_ns(col: pd.Series) -> IntArray:
    ts = pd.to_datetime(col, utc=True)
    return np.asarray(pd.DatetimeIndex(ts).as_unit("ns").asi8, dtype=np.int64)


def _encode(dataset: Dataset) -> _Codes:
    events = dataset.events
    missing = [c for c in _REQUIRED if c not in events.columns]
    if missing:
        raise SchemaError(
            f"dataset {dataset.name!r}: the event table lacks column(s) {', '.join(missing)}; "
            f"profile() needs {', '.join(_REQUIRED)} (load the data with an aisle loader)"
        )
    if len(events) == 0:
        raise DataError(f"dataset {dataset.name!r} has no events; there is nothing to profile")
    if events["user_id"].isna().any() or events["item_id"].isna().any():
        raise DataError(
            f"dataset {dataset.name!r}: some events have no user_id or item_id; "
            "validate the event log first (aisle's loaders reject such rows)"
        )
    user, _ = pd.factorize(events["user_id"])
    item, item_ids = pd.factorize(events["item_id"])
    etype, type_index = pd.factorize(events["event_type"].astype("string").fillna("unknown"))
    ts = _timestamps_ns(events["timestamp"]) if dataset.has_timestamps else None
    return _Codes(
        user=np.asarray(user, dtype=np.int64),
        item=np.asarray(item, dtype=np.int64),
        etype=np.asarray(etype, dtype=np.int64),
        type_names=[str(t) for t in type_index],
        item_ids=pd.Index(item_ids),
        n_users=int(user.max()) + 1,
        n_items=int(item.max()) + 1,
        ts=ts,
    )


def _type_mask(codes: _Codes, name: str) -> npt.NDArray[np.bool_]:
    if name not in codes.type_names:
        return np.zeros(codes.etype.size, dtype=bool)
    return np.asarray(codes.etype == codes.type_names.index(name))


def _pair_codes(codes: _Codes) -> tuple[IntArray, int]:
    key = codes.user * np.int64(codes.n_items) + codes.item
    pair, uniques = pd.factorize(key)
    return np.asarray(pair, dtype=np.int64), len(uniques)


# --------------------------------------------------------------------------------------------
# sections


def _activity(codes: _Codes, n_pairs: int) -> Activity:
    type_counts = np.bincount(codes.etype, minlength=len(codes.type_names))
    by_name = {codes.type_names[k]: int(c) for k, c in enumerate(type_counts)}
    ordered = {t: by_name.pop(t) for t in EVENT_TYPES if t in by_name}
    ordered.update(sorted(by_name.items()))
    return Activity(
        events_by_type=ordered,
        n_user_item_pairs=n_pairs,
        density=n_pairs / (codes.n_users * codes.n_items),
        events_per_user=_required_distribution(np.bincount(codes.user, minlength=codes.n_users)),
        events_per_item=_required_distribution(np.bincount(codes.item, minlength=codes.n_items)),
    )


def _time_span(codes: _Codes, n_events: int) -> TimeSpan:
    if codes.ts is None:
        return TimeSpan(
            has_timestamps=False,
            note="the timestamps only encode the order of events (sequence data): no time span",
        )
    first, last = int(codes.ts.min()), int(codes.ts.max())
    days = (last - first) / _NS_PER_DAY
    return TimeSpan(
        has_timestamps=True,
        first=_to_datetime(first),
        last=_to_datetime(last),
        days=days,
        events_per_day=n_events / days if days > 0 else None,
    )


def _long_tail(codes: _Codes, tail_threshold: int) -> LongTail:
    counts = np.bincount(codes.item, minlength=codes.n_items)
    desc = np.sort(counts)[::-1]
    total = float(desc.sum())
    k1 = max(1, math.ceil(0.01 * codes.n_items))
    k20 = max(1, math.ceil(0.20 * codes.n_items))
    return LongTail(
        gini=gini(counts),
        top_1pct_items=k1,
        top_1pct_event_share=float(desc[:k1].sum()) / total,
        top_20pct_items=k20,
        top_20pct_event_share=float(desc[:k20].sum()) / total,
        tail_threshold=tail_threshold,
        tail_item_share=float(np.mean(counts < tail_threshold)),
    )


def _periods(ts: IntArray, n_periods: int) -> tuple[IntArray, list[tuple[int, int]]] | None:
    first, last = int(ts.min()), int(ts.max())
    if last <= first:
        return None
    span = float(last - first)
    period = np.floor((ts - first) / span * n_periods).astype(np.int64)
    np.clip(period, 0, n_periods - 1, out=period)
    edges = [first + round(span * p / n_periods) for p in range(n_periods + 1)]
    return period, [(edges[p], edges[p + 1]) for p in range(n_periods)]


def _first_period(codes_: IntArray, n: int, period: IntArray, n_periods: int) -> IntArray:
    first = np.full(n, n_periods, dtype=np.int64)
    np.minimum.at(first, codes_, period)
    return first


def _cold_start(codes: _Codes, n_periods: int) -> ColdStart:
    if codes.ts is None:
        return ColdStart(
            applicable=False,
            n_periods=n_periods,
            note="not applicable: the timestamps only encode order, so 'new since' is undefined",
        )
    cut = _periods(codes.ts, n_periods)
    if cut is None:
        return ColdStart(
            applicable=False,
            n_periods=n_periods,
            note="not applicable: all events share one timestamp",
        )
    period, bounds = cut
    first_user = _first_period(codes.user, codes.n_users, period, n_periods)
    first_item = _first_period(codes.item, codes.n_items, period, n_periods)
    rows: list[ColdStartPeriod] = []
    for p in range(1, n_periods):
        mask = period == p
        users, items = codes.user[mask], codes.item[mask]
        active_users, active_items = np.unique(users), np.unique(items)
        n_ev = int(mask.sum())
        rows.append(
            ColdStartPeriod(
                period=p,
                start=_to_datetime(bounds[p][0]),
                end=_to_datetime(bounds[p][1]),
                n_events=n_ev,
                n_users=active_users.size,
                n_items=active_items.size,
                new_user_share=_ratio(np.sum(first_user[active_users] == p), active_users.size),
                new_user_event_share=_ratio(np.sum(first_user[users] == p), n_ev),
                new_item_share=_ratio(np.sum(first_item[active_items] == p), active_items.size),
                new_item_event_share=_ratio(np.sum(first_item[items] == p), n_ev),
            )
        )
    return ColdStart(
        applicable=True,
        n_periods=n_periods,
        periods=rows,
        mean_new_user_share=_mean([r.new_user_share for r in rows]),
        mean_new_user_event_share=_mean([r.new_user_event_share for r in rows]),
        mean_new_item_share=_mean([r.new_item_share for r in rows]),
        mean_new_item_event_share=_mean([r.new_item_event_share for r in rows]),
    )


def _session_codes(
    dataset: Dataset, codes: _Codes, gap_minutes: float
) -> tuple[
    IntArray | None, Literal["given", "anonymous_users", "derived", "unavailable"], bool, str | None
]:
    """Session code per event, where the sessions come from, whether users are anonymous, a note."""
    events = dataset.events
    given = events["session_id"] if "session_id" in events.columns else None
    note: str | None = None
    if given is not None and given.notna().all():
        anonymous = dataset.anonymous_sessions or bool(
            (given.astype("string") == events["user_id"].astype("string")).all()
        )
        if anonymous and not dataset.anonymous_sessions:
            note = "every session_id equals its user_id: the users are anonymous sessions"
        sess, _ = pd.factorize(given)
        key = codes.user * np.int64(int(sess.max()) + 1) + np.asarray(sess, dtype=np.int64)
        sid, _ = pd.factorize(key)
        return np.asarray(sid, dtype=np.int64), "given", anonymous, note
    if given is not None and given.notna().any():
        note = "session_id is only partly filled; sessions were derived from the timestamps instead"
    if dataset.anonymous_sessions:
        return codes.user.copy(), "anonymous_users", True, note
    if codes.ts is None:
        return (
            None,
            "unavailable",
            False,
            ("no session ids and no real timestamps: sessions cannot be derived"),
        )
    order = np.lexsort((codes.ts, codes.user))
    us, tss = codes.user[order], codes.ts[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (us[1:] != us[:-1]) | ((tss[1:] - tss[:-1]) > gap_minutes * _NS_PER_MINUTE)
    sid = np.empty(order.size, dtype=np.int64)
    sid[order] = np.cumsum(new) - 1
    return sid, "derived", False, note


def _sessions(
    codes: _Codes,
    sid: IntArray | None,
    source: Literal["given", "anonymous_users", "derived", "unavailable"],
    anonymous: bool,
    note: str | None,
    gap_minutes: float,
) -> Sessions:
    gap = gap_minutes if source == "derived" else None
    if sid is None:
        return Sessions(source=source, gap_minutes=gap, anonymous_sessions=anonymous, note=note)
    n_sessions = int(sid.max()) + 1
    length = np.bincount(sid, minlength=n_sessions)
    session_user = np.empty(n_sessions, dtype=np.int64)
    session_user[sid] = codes.user
    per_user = np.bincount(session_user, minlength=codes.n_users)
    duration: Distribution | None = None
    median_gap: float | None = None
    if codes.ts is not None:
        order = np.lexsort((codes.ts, sid))
        s_sorted, t_sorted = sid[order], codes.ts[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        ends = np.r_[starts[1:], s_sorted.size] - 1
        duration = _distribution((t_sorted[ends] - t_sorted[starts]) / _NS_PER_MINUTE)
        same = s_sorted[1:] == s_sorted[:-1]
        gaps = (t_sorted[1:] - t_sorted[:-1])[same]
        median_gap = float(np.median(gaps)) / 1e9 if gaps.size else None
    return Sessions(
        source=source,
        gap_minutes=gap,
        anonymous_sessions=anonymous,
        n_sessions=n_sessions,
        length=_distribution(length),
        single_event_session_share=float(np.mean(length == 1)),
        sessions_per_user=_distribution(per_user),
        single_session_user_share=float(np.mean(per_user == 1)),
        duration_minutes=duration,
        median_gap_seconds=median_gap,
        note=note,
    )


def _repeats(codes: _Codes, pair: IntArray, n_pairs: int, sid: IntArray | None) -> Repeats:
    n_types = len(codes.type_names)
    triple, uniques = pd.factorize(pair * np.int64(n_types) + codes.etype)
    counts = np.bincount(np.asarray(triple), minlength=len(uniques))
    triple_type = np.asarray(uniques, dtype=np.int64) % n_types
    repeated = counts > 1
    by_type: dict[str, float] = {}
    for name in [t for t in EVENT_TYPES if t in codes.type_names] + sorted(
        set(codes.type_names) - set(EVENT_TYPES)
    ):
        sel = triple_type == codes.type_names.index(name)
        by_type[name] = float(repeated[sel].mean())
    rate: float | None = None
    user_share: float | None = None
    if "purchase" in codes.type_names:
        sel = triple_type == codes.type_names.index("purchase")
        rate = float(repeated[sel].mean())
        # uniques are pair_code * n_types + type, so // n_types gives the (user, item) pair code
        bought_pairs = np.asarray(uniques, dtype=np.int64)[sel] // n_types
        pair_user = np.empty(n_pairs, dtype=np.int64)
        pair_user[pair] = codes.user
        buyers = pair_user[bought_pairs]
        again = np.bincount(buyers[repeated[sel]], minlength=codes.n_users) > 0
        bought = np.bincount(buyers, minlength=codes.n_users) > 0
        user_share = float(again[bought].mean())
    cross: float | None = None
    if sid is not None:
        n_sessions = int(sid.max()) + 1
        pair_session = pd.unique(pair * np.int64(n_sessions) + sid)
        sessions_per_pair = np.bincount(np.asarray(pair_session) // n_sessions, minlength=n_pairs)
        cross = float(np.mean(sessions_per_pair > 1))
    return Repeats(
        repeat_pair_share=float(repeated.mean()),
        repeat_pair_share_by_type=by_type,
        repeat_purchase_rate=rate,
        repeat_purchase_user_share=user_share,
        cross_session_repeat_share=cross,
    )


def _feedback(dataset: Dataset, codes: _Codes, sid: IntArray | None) -> Feedback:
    events = dataset.events
    n = codes.etype.size
    rating_mask = _type_mask(codes, "rating")
    n_ratings = int(rating_mask.sum())
    values: dict[str, int] | None = None
    mean = lo = hi = None
    if n_ratings and "value" in events.columns:
        rated = pd.to_numeric(events["value"][rating_mask], errors="coerce").dropna()
        if len(rated):
            mean, lo, hi = _num(rated.mean()), _num(rated.min()), _num(rated.max())
            counts = rated.value_counts().sort_index()
            if len(counts) <= _MAX_RATING_LEVELS:
                levels = np.asarray(counts.index, dtype=np.float64)
                values = {f"{v:g}": int(c) for v, c in zip(levels, counts.to_numpy(), strict=True)}
    share = n_ratings / n
    kind: Literal["explicit", "implicit", "mixed"] = (
        "explicit" if share >= 0.5 else "mixed" if n_ratings else "implicit"
    )
    funnel = {t: int(_type_mask(codes, t).sum()) for t in _FUNNEL}
    steps = (
        ("view", "click"),
        ("click", "add_to_cart"),
        ("add_to_cart", "purchase"),
        ("view", "purchase"),
        ("click", "purchase"),
    )
    # a step absent from the log is untracked, not zero: its ratios are None
    conversion = {
        f"{a}_to_{b}": _ratio(funnel[b], funnel[a]) if funnel[b] else None for a, b in steps
    }
    purchase_mask = _type_mask(codes, "purchase")
    session_conversion: float | None = None
    price_share: float | None = None
    if sid is not None and funnel["purchase"]:
        n_sessions = int(sid.max()) + 1
        with_purchase = np.bincount(sid[purchase_mask], minlength=n_sessions) > 0
        session_conversion = float(with_purchase.mean())
    if funnel["purchase"]:
        priced = np.zeros(n, dtype=bool)
        if "price" in events.columns:
            priced |= pd.to_numeric(events["price"], errors="coerce").notna().to_numpy()
        catalog = dataset.items
        if catalog is not None and "price" in catalog.columns and "item_id" in catalog.columns:
            has_price = catalog.loc[
                pd.to_numeric(catalog["price"], errors="coerce").notna(), "item_id"
            ]
            priced |= _isin(codes.item_ids, has_price)[codes.item]
        price_share = float(priced[purchase_mask].mean())
    return Feedback(
        kind=kind,
        n_ratings=n_ratings,
        rating_share=share,
        rating_values=values,
        rating_mean=mean,
        rating_min=lo,
        rating_max=hi,
        funnel=funnel,
        conversion=conversion,
        return_rate=_ratio(funnel["return"], funnel["purchase"]),
        session_conversion_rate=session_conversion,
        purchase_price_share=price_share,
    )


_NOT_DESCRIPTIVE = re.compile(r"(^|_)(id|ids|key|url|uri|link|href|image|img)$", re.IGNORECASE)


def _descriptive(catalog: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The candidate columns that describe items: text-like, not ids or links, not duplicates."""
    kept: list[str] = []
    seen: list[pd.Series] = []
    for name in candidates:
        if name not in catalog.columns or _NOT_DESCRIPTIVE.search(name):
            continue
        col = catalog[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
            continue
        text = col.astype("string")
        present = text.dropna()
        if len(present) and present.str.match(r"https?://").mean() > 0.5:
            continue  # links, not descriptions
        if any(text.fillna("").equals(other) for other in seen):
            continue  # the same values under another name (e.g. genres = category)
        seen.append(text.fillna(""))
        kept.append(name)
    return kept


def _metadata(dataset: Dataset, codes: _Codes) -> Metadata:
    catalog = dataset.items
    if catalog is None or "item_id" not in catalog.columns:
        return Metadata(has_catalog=False, n_catalog_items=0)
    known = pd.Index(catalog["item_id"].dropna().unique())
    in_catalog = _isin(codes.item_ids, known)
    standard = [c.name for c in CATALOG_COLUMNS if c.name != "item_id"]
    extras = [str(c) for c in catalog.columns if c not in standard and c != "item_id"]
    coverage = {c: _non_null_share(catalog[c]) for c in standard if c in catalog.columns}
    coverage.update({c: _non_null_share(catalog[c]) for c in extras})
    return Metadata(
        has_catalog=True,
        n_catalog_items=len(known),
        catalog_coverage=float(in_catalog.mean()),
        catalog_event_coverage=float(in_catalog[codes.item].mean()),
        catalog_items_without_events_share=_ratio(
            len(known) - int(_isin(known, codes.item_ids).sum()), len(known)
        ),
        attribute_coverage=coverage,
        extra_attributes=extras,
        descriptive_attributes=_descriptive(catalog, ["category", "brand", "text", *extras]),
    )


def _spearman(a: FloatArray, b: FloatArray) -> float | None:
    if a.size < 2:
        return None
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return _num(np.corrcoef(ra, rb)[0, 1])


def _drift(codes: _Codes, n_periods: int, top_k: int) -> Drift:
    if codes.ts is None:
        return Drift(
            applicable=False, top_k=top_k, note="not applicable: the timestamps only encode order"
        )
    cut = _periods(codes.ts, n_periods)
    if cut is None:
        return Drift(
            applicable=False, top_k=top_k, note="not applicable: all events share one timestamp"
        )
    period, _ = cut
    counts = [
        np.bincount(codes.item[period == p], minlength=codes.n_items).astype(np.float64)
        for p in range(n_periods)
    ]
    tops = []
    for c in counts:
        order = np.argsort(-c, kind="stable")[:top_k]
        tops.append(order[c[order] > 0])
    rows: list[PeriodOverlap] = []
    for p in range(1, n_periods):
        prev, cur = tops[p - 1], tops[p]
        union = np.union1d(prev, cur)
        if union.size == 0:
            rows.append(PeriodOverlap(period=p, jaccard=None, spearman=None, n_compared=0))
            continue
        inter = np.intersect1d(prev, cur).size
        rows.append(
            PeriodOverlap(
                period=p,
                jaccard=inter / union.size,
                spearman=_spearman(counts[p - 1][union], counts[p][union]),
                n_compared=int(union.size),
            )
        )
    return Drift(
        applicable=True,
        top_k=top_k,
        periods=rows,
        mean_jaccard=_mean([r.jaccard for r in rows]),
        mean_spearman=_mean([r.spearman for r in rows]),
    )


def compute_stats(
    dataset: Dataset,
    *,
    cold_start_periods: int = 4,
    session_gap_minutes: float = 30.0,
    drift_top_k: int = 100,
    tail_threshold: int = 5,
) -> DataStats:
    """Compute every descriptive section of a profile.

    Args:
        dataset: the dataset, in aisle's canonical schema.
        cold_start_periods: number of equal-width time periods for cold start and drift (>= 2).
        session_gap_minutes: inactivity gap that ends a derived session.
        drift_top_k: how many of each period's most frequent items drift compares.
        tail_threshold: items with fewer events than this count as the long tail.

    Returns:
        The figures, section by section.

    Raises:
        ConfigError: a parameter is out of range.
        SchemaError: a required event column is missing.
        DataError: the event log is empty or has events without user or item.
    """
    if cold_start_periods < 2:
        raise ConfigError(f"cold_start_periods must be at least 2, got {cold_start_periods}")
    if session_gap_minutes <= 0:
        raise ConfigError(f"session_gap_minutes must be positive, got {session_gap_minutes}")
    if drift_top_k < 1 or tail_threshold < 1:
        raise ConfigError(
            f"drift_top_k and tail_threshold must be at least 1, got {drift_top_k} and {tail_threshold}"
        )
    codes = _encode(dataset)
    pair, n_pairs = _pair_codes(codes)
    sid, source, anonymous, note = _session_codes(dataset, codes, session_gap_minutes)
    return DataStats(
        dataset=dataset.name,
        n_users=codes.n_users,
        n_items=codes.n_items,
        n_events=int(codes.user.size),
        parameters=ProfileParameters(
            cold_start_periods=cold_start_periods,
            session_gap_minutes=session_gap_minutes,
            drift_top_k=drift_top_k,
            tail_threshold=tail_threshold,
        ),
        activity=_activity(codes, n_pairs),
        time_span=_time_span(codes, int(codes.user.size)),
        long_tail=_long_tail(codes, tail_threshold),
        cold_start=_cold_start(codes, cold_start_periods),
        sessions=_sessions(codes, sid, source, anonymous, note, session_gap_minutes),
        repeats=_repeats(codes, pair, n_pairs, sid),
        feedback=_feedback(dataset, codes, sid),
        metadata=_metadata(dataset, codes),
        drift=_drift(codes, cold_start_periods, drift_top_k),
    )
