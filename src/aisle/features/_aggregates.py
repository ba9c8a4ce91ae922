"""The one aggregation engine: tiles of windowed aggregates, used by batch replay and the stream.

A :class:`Plan` compiles a :class:`~aisle.features.FeatureView` into fixed-size state per entity:
for every distinct hop of the view's windows a ring of tiles (the tile index each slot holds,
and per metric the tile's sum, min or max), plus the latest event time per recency feature.
:meth:`TileTable.apply` folds a batch of events into that state with numpy; the result is the
same as applying the events one by one in order (``np.add.at`` adds in order, and a slot only
ever keeps its newest tile), so where micro-batches start and end does not change a single bit:
batch replay of a history and the stream consuming it end in identical states.

:meth:`Plan.basis_from_states` reads the window aggregates out of states as of a time, and
:func:`evaluate` turns window aggregates into feature values (means, smoothed rates, recency,
missing-value policies). The offline store computes the window aggregates from raw events with
DuckDB instead and then calls the same :func:`evaluate`, so the training-serving skew validator
compares two independent windowing paths.

Window semantics (shared with the offline store): as of time ``t`` (exclusive), a window of
``n`` tiles of size ``h`` covers the events with timestamps in
``[((t - 1ns) // h - n + 1) * h, t)``; tiles are aligned to UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from aisle.data._schema import EVENT_TYPES
from aisle.errors import DataError

from ._definitions import FeatureView, Missing, decode_key, encode_key

__all__ = [
    "NO_TIME",
    "Basis",
    "EventBatch",
    "Plan",
    "RowLayout",
    "TileTable",
    "compile_plan",
    "evaluate",
    "evaluate_states",
    "replay",
    "to_ns",
]

#: The "no event" timestamp of recency state.
NO_TIME = np.iinfo(np.int64).min
_NO_TILE = -1
_TYPE_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
GLOBAL_GROUP = "*"


def to_ns(value: Any) -> int:
    """A timestamp (datetime, pandas Timestamp, ISO text or epoch ns int) as epoch nanoseconds."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _ns(value: timedelta) -> int:
    return round(value.total_seconds() * 1e9)


# ----------------------------------------------------------------------------- events
@dataclass
class EventBatch:
    """Events as columns of numpy arrays, enriched with the item's ``category``.

    Attributes:
        ts: event times in epoch nanoseconds.
        type_code: index of the event type in ``EVENT_TYPES`` (-1 if unknown).
        event_id: the event ids (objects).
        keys: key columns (``user_id``, ``item_id``, ``session_id``, ``category``, ``device``,
            ``page``) as object arrays, ``None`` where null.
        values: numeric columns (``price``, ``quantity``, ``value``), NaN where null.
    """

    ts: NDArray[np.int64]
    type_code: NDArray[np.int8]
    event_id: NDArray[np.object_]
    keys: dict[str, NDArray[np.object_]]
    values: dict[str, NDArray[np.float64]]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def from_frame(cls, events: pd.DataFrame, catalog: Mapping[str, str] | None = None) -> EventBatch:
        """Build from a canonical event frame; ``catalog`` maps item id to category when the
        frame has no ``category`` column."""
        n = len(events)
        ts = events["timestamp"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            ts = pd.to_datetime(ts, utc=True)
        ts_ns = ts.dt.tz_convert("UTC").dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        codes = pd.Categorical(events["event_type"], categories=list(EVENT_TYPES)).codes.astype(np.int8)

        def obj(col: str) -> NDArray[np.object_]:
            if col not in events.columns:
                return np.full(n, None, dtype=object)
            arr = np.asarray(events[col].to_numpy(dtype=object), dtype=object)
            missing = pd.isna(arr)
            if missing.any():
                arr[missing] = None
            return arr

        keys = {c: obj(c) for c in ("user_id", "item_id", "session_id", "device", "page")}
        if "category" in events.columns:
            keys["category"] = obj("category")
        else:
            keys["category"] = _categories(keys["item_id"], catalog)
        values = {
            c: (events[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in events.columns else np.full(n, np.nan))
            for c in ("price", "quantity", "value")
        }
        return cls(
            ts=np.ascontiguousarray(ts_ns, dtype=np.int64),
            type_code=codes,
            event_id=obj("event_id"),
            keys=keys,
            values=values,
        )

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], catalog: Mapping[str, str] | None = None) -> EventBatch:
        """Build from event dicts (the stream's row wire format); see :meth:`from_columns`."""
        names = {k for r in records[:100] for k in r}
        names.update(("event_id", "event_type", "timestamp"))
        for r in records:
            if not names.issuperset(r):
                names.update(r)
        return cls.from_columns({c: [r.get(c) for r in records] for c in names}, catalog)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]], catalog: Mapping[str, str] | None = None) -> EventBatch:
        """Build from columns of equal length (the stream's columnar wire format).

        ``timestamp`` holds epoch nanoseconds (ints) or ISO 8601 text; ``event_id``,
        ``event_type`` and ``timestamp`` are required.

        Raises:
            DataError: a required column is missing, lengths differ, or a value cannot be read.
        """
        missing = [c for c in ("event_id", "event_type", "timestamp") if c not in columns]
        if missing:
            raise DataError(f"events lack the field(s) {missing}; events need event_id, event_type and timestamp")
        n = len(columns["event_id"])
        bad = [c for c, v in columns.items() if len(v) != n]
        if bad:
            raise DataError(f"event columns {bad} do not have {n} values like event_id")
        raw_ts = columns["timestamp"]
        try:
            ts = np.array(raw_ts, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            try:
                parsed = pd.to_datetime(pd.Series(list(raw_ts), dtype=object), utc=True, format="mixed")
            except (ValueError, TypeError) as exc:
                raise DataError(f"unreadable timestamp in events: {exc}") from exc
            if parsed.isna().any():
                raise DataError("events hold a missing timestamp") from None
            ts = parsed.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        get = _TYPE_CODE.get
        codes = np.array([get(t, -1) for t in columns["event_type"]], dtype=np.int8)
        none = [None] * n

        def obj(c: str) -> NDArray[np.object_]:
            return np.array(columns.get(c, none), dtype=object)

        keys = {c: obj(c) for c in ("user_id", "item_id", "session_id", "device", "page")}
        keys["category"] = obj("category") if "category" in columns else _categories(keys["item_id"], catalog)
        values = {}
        for c in ("price", "quantity", "value"):
            try:
                values[c] = np.array(columns.get(c, none), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"events hold a non-numeric {c!r}: {exc}") from exc
        return cls(ts=ts, type_code=codes, event_id=obj("event_id"), keys=keys, values=values)

    def to_columns(self) -> dict[str, list[Any]]:
        """The columnar wire format of these events (category left out)."""
        out: dict[str, list[Any]] = {
            "event_id": self.event_id.tolist(),
            "event_type": [EVENT_TYPES[c] if c >= 0 else None for c in self.type_code.tolist()],
            "timestamp": self.ts.tolist(),
        }
        for c in ("user_id", "item_id", "session_id", "device", "page"):
            col = self.keys[c]
            if not pd.isna(col).all():
                out[c] = [None if v is None or v != v else v for v in col.tolist()]
        for c, arr in self.values.items():
            if not np.isnan(arr).all():
                out[c] = [None if v != v else v for v in arr.tolist()]
        return out

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> EventBatch:
        """The events at ``index`` (positions or a mask), in that order."""
        return EventBatch(
            ts=self.ts[index],
            type_code=self.type_code[index],
            event_id=self.event_id[index],
            keys={k: v[index] for k, v in self.keys.items()},
            values={k: v[index] for k, v in self.values.items()},
        )

    @staticmethod
    def concat(batches: Sequence[EventBatch]) -> EventBatch:
        """One batch holding ``batches`` one after the other."""
        if len(batches) == 1:
            return batches[0]
        return EventBatch(
            ts=np.concatenate([b.ts for b in batches]),
            type_code=np.concatenate([b.type_code for b in batches]),
            event_id=np.concatenate([b.event_id for b in batches]),
            keys={k: np.concatenate([b.keys[k] for b in batches]) for k in batches[0].keys},
            values={k: np.concatenate([b.values[k] for b in batches]) for k in batches[0].values},
        )


def _categories(items: NDArray[np.object_], catalog: Mapping[str, str] | None) -> NDArray[np.object_]:
    if not catalog:
        return np.full(items.shape[0], None, dtype=object)
    get = catalog.get
    return np.array([get(i) if i is not None else None for i in items], dtype=object)


def _present(arr: NDArray[np.object_]) -> NDArray[np.bool_]:
    """True where an object array holds a usable key (not None/NaN/empty)."""
    return np.asarray(~pd.isna(arr) & (arr != ""), dtype=bool)



# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Metric:
    """One accumulated quantity: a sum (of 1, of a column, or of column presence), a min or a max."""

    op: Literal["sum", "min", "max"]
    column: str | None
    presence: bool
    types: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSpec:
    """One output feature, compiled."""

    name: str
    kind: Literal["sum", "mean", "min", "max", "rate", "recency"]
    window: int
    a: int
    b: int
    strength: float
    prior: str
    missing: Missing


@dataclass
class Basis:
    """Window aggregates of N rows, as of per-row times.

    Attributes:
        sums: (N, sum metrics, windows).
        mins: (N, min metrics, windows), +inf where empty.
        maxs: (N, max metrics, windows), -inf where empty.
        last: (N, recency metrics) latest event times in ns, :data:`NO_TIME` where none.
        as_of: (N,) the time each row is computed as of (exclusive), in ns.
    """

    sums: NDArray[np.float64]
    mins: NDArray[np.float64]
    maxs: NDArray[np.float64]
    last: NDArray[np.int64]
    as_of: NDArray[np.int64]

    def take(self, index: NDArray[np.intp]) -> Basis:
        """The rows at ``index``."""
        return Basis(self.sums[index], self.mins[index], self.maxs[index], self.last[index], self.as_of[index])


@dataclass
class Plan:
    """A feature view compiled into a state layout and vectorised feature formulas.

    Build with :func:`compile_plan`. ``utc_offset`` shifts tile alignment away from UTC; aisle
    always aligns in UTC, and a non-zero offset reproduces the classic local-time skew.
    """

    view: FeatureView
    utc_offset_ns: int
    hops: NDArray[np.int64]
    ring_sizes: NDArray[np.int64]
    ring_starts: NDArray[np.int64]
    slot_ring: NDArray[np.intp]
    win_ring: NDArray[np.intp]
    win_tiles: NDArray[np.int64]
    sum_metrics: list[Metric]
    min_metrics: list[Metric]
    max_metrics: list[Metric]
    recency_types: list[tuple[str, ...]]
    features: list[FeatureSpec]
    names: list[str]
    group_mode: Literal["none", "global", "category"]
    ttl_ns: int
    lookback_ns: int
    dtype: np.dtype[Any]
    namespace: str
    _ring_mask: NDArray[np.bool_] = field(repr=False, default_factory=lambda: np.zeros((0, 0), bool))
    _empty: bytes = field(repr=False, default=b"")
    _eval: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def n_slots(self) -> int:
        """Tile slots per entity, over all rings."""
        return int(self.slot_ring.shape[0])

    @property
    def state_bytes(self) -> int:
        """Size of one entity's encoded state."""
        return int(self.dtype.itemsize)

    @property
    def empty_state(self) -> bytes:
        """The encoded state of an entity with no events."""
        return self._empty

    def source_types(self) -> tuple[str, ...]:
        """The event types the view reads (empty: all)."""
        return self.view.source.event_types

    # ------------------------------------------------------------------ keys
    def entity_keys(self, batch: EventBatch) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
        """Each event's entity key (encoded) and whether it is usable (keys present, type in source)."""
        cols = self.view.entity.keys
        ok = np.ones(len(batch), dtype=bool)
        if self.source_types():
            ok &= np.isin(batch.type_code, [_TYPE_CODE[t] for t in self.source_types()])
        ok &= batch.type_code >= 0
        for c in cols:
            ok &= _present(batch.keys[c])
        if len(cols) == 1:
            return batch.keys[cols[0]], ok
        out = np.full(len(batch), None, dtype=object)
        idx = np.flatnonzero(ok)
        if idx.size:
            parts = []
            for c in cols:
                arr = pa.array(batch.keys[c][idx], type=pa.string(), from_pandas=True)
                arr = pc.replace_substring(pc.replace_substring(arr, "%", "%25"), "|", "%7C")
                parts.append(arr)
            joined = pc.binary_join_element_wise(*parts, "|")
            out[idx] = joined.to_numpy(zero_copy_only=False)
        return out, ok

    def group_of_keys(self, keys: Sequence[str | Sequence[str]], catalog: Mapping[str, str] | None) -> list[str | None]:
        """The category group of each entity key (``None``: unknown, use the global group)."""
        if self.group_mode != "category":
            return [None] * len(keys)
        cols = self.view.entity.keys
        if "category" in cols:
            pos = cols.index("category")
            n = len(cols)
            return [(decode_key(k, n) if isinstance(k, str) else k)[pos] or None for k in keys]
        get = (catalog or {}).get
        return [get(k if isinstance(k, str) else k[0]) for k in keys]

    # ------------------------------------------------------------------ windows
    def window_starts(self, t_ns: NDArray[np.int64]) -> NDArray[np.int64]:
        """(N, windows) start of every window as of ``t_ns`` (exclusive end), in ns."""
        hops = self.hops[self.win_ring]
        off = self.utc_offset_ns
        k = (t_ns[:, None] - 1 + off) // hops[None, :]
        return (k - self.win_tiles[None, :] + 1) * hops[None, :] - off

    def basis_from_states(self, states: NDArray[Any], as_of_ns: int) -> Basis:
        """Window aggregates of encoded states (a structured array) as of ``as_of_ns``."""
        n = states.shape[0]
        tiles = states["tiles"]
        k_ring = (as_of_ns - 1 + self.utc_offset_ns) // self.hops
        k_slot = k_ring[self.slot_ring]
        lo = np.where(self._ring_mask, k_slot[None, :] - self.win_tiles[:, None], np.iinfo(np.int64).max)
        valid = (tiles[:, None, :] > lo[None]) & (tiles[:, None, :] <= k_slot[None, None, :])
        ms, mn, mx = len(self.sum_metrics), len(self.min_metrics), len(self.max_metrics)
        nw = self.win_tiles.shape[0]
        if ms:
            # cumsum adds in slot order (np.sum would add pairwise): the compiled read path adds
            # in the same order, so both give the same bits.
            sums = np.where(valid[:, None, :, :], states["sums"][:, :, None, :], 0.0).cumsum(axis=-1)[..., -1]
        else:
            sums = np.zeros((n, 0, nw))
        if mn:
            mins = np.where(valid[:, None, :, :], states["mins"][:, :, None, :], np.inf).min(axis=-1)
        else:
            mins = np.zeros((n, 0, nw))
        if mx:
            maxs = np.where(valid[:, None, :, :], states["maxs"][:, :, None, :], -np.inf).max(axis=-1)
        else:
            maxs = np.zeros((n, 0, nw))
        return Basis(sums, mins, maxs, states["last"].reshape(n, -1), np.full(n, as_of_ns, dtype=np.int64))

    # ------------------------------------------------------------------ encoding
    def join(self, blobs: Sequence[bytes | None]) -> bytes:
        """Encoded states (``None`` = empty) concatenated.

        Raises:
            DataError: a blob has the wrong size (written by a different layout).
        """
        empty = self._empty
        size = self.dtype.itemsize
        joined = b"".join([empty if b is None else b for b in blobs])
        if len(joined) != size * len(blobs):
            bad = next(i for i, b in enumerate(blobs) if b is not None and len(b) != size)
            raise DataError(
                f"online state {bad} of view {self.view.name!r} has {len(blobs[bad] or b'')} bytes, "
                f"expected {size}: it was written by another definition; run `aisle features materialize`"
            )
        return joined

    def decode(self, blobs: Sequence[bytes | None]) -> NDArray[Any]:
        """Encoded states (``None`` = empty) as one structured array (see :meth:`join`)."""
        return np.frombuffer(self.join(blobs), dtype=self.dtype)


def _compile(view: FeatureView, utc_offset_ns: int) -> Plan:
    windows = list(view.windows)
    hop_list = sorted({_ns(w.hop) for w in windows})
    win_ring = np.array([hop_list.index(_ns(w.hop)) for w in windows], dtype=np.intp)
    win_tiles = np.array([w.n_tiles for w in windows], dtype=np.int64)
    ring_sizes = np.array([max(w.n_tiles for w in windows if _ns(w.hop) == h) for h in hop_list], dtype=np.int64)
    ring_starts = np.concatenate([[0], np.cumsum(ring_sizes)[:-1]]).astype(np.int64)
    slot_ring = np.repeat(np.arange(len(hop_list)), ring_sizes).astype(np.intp)
    ring_mask = slot_ring[None, :] == win_ring[:, None]

    sums: list[Metric] = []
    mins: list[Metric] = []
    maxs: list[Metric] = []
    recency: list[tuple[str, ...]] = [()]

    def metric(lst: list[Metric], m: Metric) -> int:
        if m not in lst:
            lst.append(m)
        return lst.index(m)

    win_index = {w.name: i for i, w in enumerate(windows)}
    features: list[FeatureSpec] = []
    for agg in view.aggregations:
        if agg.kind == "recency":
            if agg.event_types not in recency:
                recency.append(agg.event_types)
            features.append(FeatureSpec(agg.base_name, "recency", -1, recency.index(agg.event_types), -1, 0.0, "", agg.missing))
            continue
        for w in view.windows_of(agg):
            name = f"{agg.base_name}_{w.name}"
            wi = win_index[w.name]
            if agg.kind == "count":
                a = metric(sums, Metric("sum", None, False, agg.event_types))
                features.append(FeatureSpec(name, "sum", wi, a, -1, 0.0, "", agg.missing))
            elif agg.kind == "sum":
                a = metric(sums, Metric("sum", agg.column, False, agg.event_types))
                features.append(FeatureSpec(name, "sum", wi, a, -1, 0.0, "", agg.missing))
            elif agg.kind == "mean":
                a = metric(sums, Metric("sum", agg.column, False, agg.event_types))
                b = metric(sums, Metric("sum", agg.column, True, agg.event_types))
                features.append(FeatureSpec(name, "mean", wi, a, b, 0.0, "", agg.missing))
            elif agg.kind == "min":
                a = metric(mins, Metric("min", agg.column, False, agg.event_types))
                features.append(FeatureSpec(name, "min", wi, a, -1, 0.0, "", agg.missing))
            elif agg.kind == "max":
                a = metric(maxs, Metric("max", agg.column, False, agg.event_types))
                features.append(FeatureSpec(name, "max", wi, a, -1, 0.0, "", agg.missing))
            else:  # rate
                a = metric(sums, Metric("sum", None, False, agg.numerator))
                b = metric(sums, Metric("sum", None, False, agg.denominator))
                features.append(FeatureSpec(name, "rate", wi, a, b, float(agg.strength), agg.prior, agg.missing))
    needs_groups = any(f.kind == "rate" or f.missing.policy == "prior" for f in features)
    if not needs_groups:
        group_mode: Literal["none", "global", "category"] = "none"
    else:
        group_mode = "category" if view.entity.prior_by == "category" else "global"

    s = int(slot_ring.shape[0])
    fields: list[tuple[str, str, tuple[int, ...]]] = [("tiles", "<i8", (s,))]
    if sums:
        fields.append(("sums", "<f8", (len(sums), s)))
    if mins:
        fields.append(("mins", "<f8", (len(mins), s)))
    if maxs:
        fields.append(("maxs", "<f8", (len(maxs), s)))
    fields.append(("last", "<i8", (len(recency),)))
    dtype = np.dtype(fields)
    empty = np.zeros(1, dtype=dtype)
    empty["tiles"] = _NO_TILE
    if mins:
        empty["mins"] = np.inf
    if maxs:
        empty["maxs"] = -np.inf
    empty["last"] = NO_TIME
    ttl = _ns(view.effective_ttl)
    max_span = max(_ns(w.length) + _ns(w.hop) for w in windows)
    names = view.feature_names()
    plan = Plan(
        view=view,
        utc_offset_ns=utc_offset_ns,
        hops=np.array(hop_list, dtype=np.int64),
        ring_sizes=ring_sizes,
        ring_starts=ring_starts,
        slot_ring=slot_ring,
        win_ring=win_ring,
        win_tiles=win_tiles,
        sum_metrics=sums,
        min_metrics=mins,
        max_metrics=maxs,
        recency_types=recency,
        features=features,
        names=names,
        group_mode=group_mode,
        ttl_ns=ttl,
        lookback_ns=max(ttl, max_span),
        dtype=dtype,
        namespace=f"{view.name}:{view.fingerprint[:12]}",
        _ring_mask=ring_mask,
        _empty=empty.tobytes(),
    )
    plan._eval = _compile_eval(plan)
    return plan


def compile_plan(view: FeatureView, utc_offset: timedelta | None = None) -> Plan:
    """Compile (and cache) the state layout and formulas of a feature view.

    Args:
        view: the feature view.
        utc_offset: shift of tile alignment from UTC; leave ``None`` (UTC). A non-zero offset
            reproduces windows computed in local time.

    Returns:
        The compiled plan.
    """
    offset = _ns(utc_offset or timedelta(0))
    hit = _BY_ID.get((id(view), offset))
    if hit is not None and hit[0] is view:
        return hit[1]
    key = (view.fingerprint, offset)
    plan = _BY_FINGERPRINT.get(key)
    if plan is None:
        plan = _compile(view.model_copy(update={"version": None}), offset)
        if len(_BY_FINGERPRINT) > 512:
            _BY_FINGERPRINT.clear()
        _BY_FINGERPRINT[key] = plan
    if len(_BY_ID) > 512:
        _BY_ID.clear()
    _BY_ID[(id(view), offset)] = (view, plan)
    return plan


_BY_ID: dict[tuple[int, int], tuple[FeatureView, Plan]] = {}
_BY_FINGERPRINT: dict[tuple[str, int], Plan] = {}


# ----------------------------------------------------------------------------- evaluation
def _compile_eval(plan: Plan) -> dict[str, Any]:
    """Index arrays that let :func:`evaluate` compute every feature of a kind at once."""
    nw = int(plan.win_tiles.shape[0])
    out: dict[str, Any] = {}
    cols: list[int] = []
    flag_cols: dict[int, int] = {}
    pos = 0
    for i, f in enumerate(plan.features):
        cols.append(pos)
        pos += 1
        if f.missing.policy == "flag":
            flag_cols[i] = pos
            pos += 1
    out["n_out"] = pos
    out["cols"] = np.array(cols, dtype=np.intp)
    out["flag_src"] = np.array(list(flag_cols), dtype=np.intp)
    out["flag_dst"] = np.array(list(flag_cols.values()), dtype=np.intp)
    for kind in ("sum", "mean", "min", "max", "rate", "recency"):
        idx = [i for i, f in enumerate(plan.features) if f.kind == kind]
        out[f"{kind}_feat"] = np.array(idx, dtype=np.intp)
        out[f"{kind}_a"] = np.array([plan.features[i].a * nw + plan.features[i].window for i in idx], dtype=np.intp)
        out[f"{kind}_b"] = np.array([plan.features[i].b * nw + plan.features[i].window for i in idx], dtype=np.intp)
    rec = out["recency_feat"]
    out["recency_a"] = np.array([plan.features[i].a for i in rec], dtype=np.intp)
    rates = out["rate_feat"]
    out["rate_strength"] = np.array([plan.features[i].strength for i in rates], dtype=np.float64)
    out["rate_global"] = np.array([plan.features[i].prior == "global" for i in rates], dtype=bool)
    out["fill"] = np.array([f.missing.fill() for f in plan.features], dtype=np.float64)
    out["prior_policy"] = np.array([f.missing.policy == "prior" for f in plan.features], dtype=bool)
    return out


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def evaluate(
    plan: Plan,
    entity: Basis,
    group: Basis | None = None,
    category: Basis | None = None,
    has_category: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Feature values from window aggregates.

    Args:
        plan: the compiled view.
        entity: the entities' window aggregates.
        group: the all-entities group aggregates, row-aligned with ``entity`` (needed when the
            view has rates or prior-filled features).
        category: the category group aggregates, row-aligned (rows without a category are ignored).
        has_category: which rows have a category group.

    Returns:
        ``(values, absent)``: values (N, len(plan.names)) in ``plan.names`` order, and whether
        each entity was absent (no event within the TTL).
    """
    e = plan._eval
    n = entity.as_of.shape[0]
    nf = len(plan.features)
    vals = np.empty((n, nf), dtype=np.float64)
    prior_vals = np.full((n, nf), np.nan)
    flat = entity.sums.reshape(n, -1)

    if e["sum_feat"].size:
        vals[:, e["sum_feat"]] = flat[:, e["sum_a"]]
    if e["mean_feat"].size:
        vals[:, e["mean_feat"]] = _ratio(flat[:, e["mean_a"]], flat[:, e["mean_b"]])
    if e["min_feat"].size:
        v = entity.mins.reshape(n, -1)[:, e["min_a"]]
        vals[:, e["min_feat"]] = np.where(np.isinf(v), np.nan, v)
    if e["max_feat"].size:
        v = entity.maxs.reshape(n, -1)[:, e["max_a"]]
        vals[:, e["max_feat"]] = np.where(np.isinf(v), np.nan, v)
    if e["recency_feat"].size:
        last = entity.last[:, e["recency_a"]]
        ok = (last != NO_TIME) & (last >= entity.as_of[:, None] - plan.lookback_ns)
        age = np.maximum(entity.as_of[:, None] - last, 0) / 1e9
        vals[:, e["recency_feat"]] = np.where(ok, age, np.nan)
    if group is not None and (e["rate_feat"].size or e["mean_feat"].size):
        gflat = group.sums.reshape(n, -1)
        cflat = category.sums.reshape(n, -1) if category is not None else None
        hc = has_category if has_category is not None and cflat is not None else np.zeros(n, dtype=bool)
        if e["rate_feat"].size:
            s = e["rate_strength"][None, :]
            a, b = e["rate_a"], e["rate_b"]
            pg = np.nan_to_num(_ratio(gflat[:, a], gflat[:, b]), nan=0.0)
            if cflat is not None:
                pc = _smooth(cflat[:, a], cflat[:, b], s, pg)
                pc = np.where(hc[:, None], pc, pg)
            else:
                pc = pg
            p = np.where(e["rate_global"][None, :], pg, pc)
            vals[:, e["rate_feat"]] = _smooth(flat[:, a], flat[:, b], s, p)
            prior_vals[:, e["rate_feat"]] = p
        if e["mean_feat"].size:
            a, b = e["mean_a"], e["mean_b"]
            pg = _ratio(gflat[:, a], gflat[:, b])
            if cflat is not None:
                pc = _ratio(cflat[:, a], cflat[:, b])
                pc = np.where(hc[:, None] & ~np.isnan(pc), pc, pg)
            else:
                pc = pg
            prior_vals[:, e["mean_feat"]] = pc
    elif e["rate_feat"].size:
        a, b = e["rate_a"], e["rate_b"]
        vals[:, e["rate_feat"]] = np.nan_to_num(_ratio(flat[:, a], flat[:, b]), nan=0.0)

    last_any = entity.last[:, 0]
    absent = (last_any == NO_TIME) | (last_any < entity.as_of - plan.ttl_ns)
    missing = np.isnan(vals)
    if absent.any():
        missing |= absent[:, None]
    out = np.empty((n, e["n_out"]), dtype=np.float64)
    if missing.any():
        fill = np.broadcast_to(e["fill"], vals.shape)
        prior_fill = np.where(np.isnan(prior_vals), fill, prior_vals)
        vals = np.where(missing, np.where(e["prior_policy"][None, :], prior_fill, fill), vals)
    out[:, e["cols"]] = vals
    if e["flag_src"].size:
        out[:, e["flag_dst"]] = missing[:, e["flag_src"]]
    return out, absent


def _smooth(
    num: NDArray[np.float64], den: NDArray[np.float64], strength: NDArray[np.float64], prior: NDArray[np.float64]
) -> NDArray[np.float64]:
    total = den + strength
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (num + strength * prior) / np.where(total > 0, total, 1.0), prior)


# ----------------------------------------------------------------------------- state
class TileTable:
    """Tile state of many entities (and their prior groups) of one view, in memory.

    Rows are entities (``"e"``) or prior groups (``"g"``: ``"*"`` for all entities, a category
    name otherwise). :meth:`apply` folds events in; :meth:`blobs` encodes rows for a store.
    """

    def __init__(self, plan: Plan, capacity: int = 1024) -> None:
        self.plan = plan
        self._index: dict[tuple[str, str], int] = {}
        self.row_keys: list[tuple[str, str]] = []
        s = plan.n_slots
        self._tiles = np.full((capacity, s), _NO_TILE, dtype=np.int64)
        self._sums = np.zeros((capacity, len(plan.sum_metrics), s))
        self._mins = np.full((capacity, len(plan.min_metrics), s), np.inf)
        self._maxs = np.full((capacity, len(plan.max_metrics), s), -np.inf)
        self._last = np.full((capacity, len(plan.recency_types)), NO_TIME, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.row_keys)

    # ------------------------------------------------------------------ rows
    def _grow(self, need: int) -> None:
        cap = self._tiles.shape[0]
        if need <= cap:
            return
        new = max(need, cap * 2)

        def grow(arr: NDArray[Any], fill: Any) -> NDArray[Any]:
            out = np.full((new, *arr.shape[1:]), fill, dtype=arr.dtype)
            out[:cap] = arr
            return out

        self._tiles = grow(self._tiles, _NO_TILE)
        self._sums = grow(self._sums, 0.0)
        self._mins = grow(self._mins, np.inf)
        self._maxs = grow(self._maxs, -np.inf)
        self._last = grow(self._last, NO_TIME)

    def rows(self, kind: str, keys: Iterable[str]) -> NDArray[np.intp]:
        """Row of each key (``kind`` ``"e"`` entity or ``"g"`` group), adding empty rows for new keys."""
        out = []
        index = self._index
        for k in keys:
            r = index.get((kind, k))
            if r is None:
                r = len(self.row_keys)
                index[(kind, k)] = r
                self.row_keys.append((kind, k))
            out.append(r)
        self._grow(len(self.row_keys))
        return np.array(out, dtype=np.intp)

    def _rows_of(self, kind: str, keys: NDArray[np.object_]) -> NDArray[np.intp]:
        if keys.shape[0] == 0:
            return np.zeros(0, dtype=np.intp)
        codes, uniques = pd.factorize(keys)
        return self.rows(kind, (str(u) for u in uniques))[codes]

    def find(self, kind: str, key: str) -> int | None:
        """The row of a key, or ``None``."""
        return self._index.get((kind, key))

    def keys_in(
        self, batch: EventBatch, keys: tuple[NDArray[np.object_], NDArray[np.bool_]] | None = None
    ) -> list[tuple[str, str]]:
        """The (kind, key) rows a batch touches that this table does not hold yet.

        ``keys`` is ``plan.entity_keys(batch)`` when the caller has it already.
        """
        ekeys, ok = keys if keys is not None else self.plan.entity_keys(batch)
        need = {("e", str(k)) for k in pd.unique(ekeys[ok])} if ok.any() else set()
        if self.plan.group_mode != "none" and ok.any():
            need.add(("g", GLOBAL_GROUP))
            if self.plan.group_mode == "category":
                cats = self._group_column(batch)[ok]
                need.update(("g", str(c)) for c in pd.unique(cats[_present(cats)]))
        return [k for k in need if k not in self._index]

    def load(self, keys: Sequence[tuple[str, str]], blobs: Sequence[bytes | None]) -> None:
        """Set rows from encoded states (``None`` leaves a row empty)."""
        if not keys:
            return
        states = self.plan.decode(blobs)
        rows = np.empty(len(keys), dtype=np.intp)
        for kind in {k for k, _ in keys}:
            pos = [i for i, (k, _) in enumerate(keys) if k == kind]
            rows[pos] = self.rows(kind, [keys[i][1] for i in pos])
        present = np.array([b is not None for b in blobs], dtype=bool)
        if present.any():
            self._set(rows[present], states[present])

    def _set(self, rows: NDArray[np.intp], states: NDArray[Any]) -> None:
        self._tiles[rows] = states["tiles"]
        if self._sums.shape[1]:
            self._sums[rows] = states["sums"]
        if self._mins.shape[1]:
            self._mins[rows] = states["mins"]
        if self._maxs.shape[1]:
            self._maxs[rows] = states["maxs"]
        self._last[rows] = states["last"]

    def _group_column(self, batch: EventBatch) -> NDArray[np.object_]:
        return batch.keys["category"]

    # ------------------------------------------------------------------ folding
    def apply(
        self, batch: EventBatch, keys: tuple[NDArray[np.object_], NDArray[np.bool_]] | None = None
    ) -> NDArray[np.intp]:
        """Fold events into the state, as if one by one in order.

        Args:
            batch: the events (any order; order only matters for float rounding).
            keys: ``plan.entity_keys(batch)`` when the caller has it already.

        Returns:
            The rows that changed.
        """
        plan = self.plan
        ekeys, ok = keys if keys is not None else plan.entity_keys(batch)
        ev = np.flatnonzero(ok)
        if ev.size == 0:
            return np.zeros(0, dtype=np.intp)
        row_parts = [self._rows_of("e", ekeys[ev])]
        ev_parts = [ev]
        if plan.group_mode != "none":
            row_parts.append(np.full(ev.size, self.rows("g", [GLOBAL_GROUP])[0], dtype=np.intp))
            ev_parts.append(ev)
            if plan.group_mode == "category":
                cats = self._group_column(batch)[ev]
                has = _present(cats)
                row_parts.append(self._rows_of("g", cats[has]))
                ev_parts.append(ev[has])
        rows = np.concatenate(row_parts)
        evi = np.concatenate(ev_parts)
        ts = batch.ts[evi]
        codes = batch.type_code[evi]
        s = plan.n_slots
        tiles_flat = self._tiles.reshape(-1)

        def mask_of(types: tuple[str, ...]) -> NDArray[np.bool_]:
            if not types:
                return np.ones(evi.size, dtype=bool)
            return np.isin(codes, [_TYPE_CODE[t] for t in types])

        def values_of(m: Metric) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
            sel = mask_of(m.types)
            if m.column is None:
                return sel, np.ones(evi.size)
            col = batch.values[m.column][evi]
            present = ~np.isnan(col)
            if m.presence:
                return sel & present, np.ones(evi.size)
            return sel & present, col

        metric_values = {
            "sums": [values_of(m) for m in plan.sum_metrics],
            "mins": [values_of(m) for m in plan.min_metrics],
            "maxs": [values_of(m) for m in plan.max_metrics],
        }
        for r in range(plan.hops.shape[0]):
            hop = int(plan.hops[r])
            size = int(plan.ring_sizes[r])
            tile = (ts + plan.utc_offset_ns) // hop
            slot = plan.ring_starts[r] + tile % size
            flat = rows * s + slot
            old = tiles_flat[flat]
            np.maximum.at(tiles_flat, flat, tile)
            new = tiles_flat[flat]
            reset = new > old
            if reset.any():
                rr, ss = rows[reset], slot[reset]
                self._sums[rr, :, ss] = 0.0
                self._mins[rr, :, ss] = np.inf
                self._maxs[rr, :, ss] = -np.inf
            keep = tile == new
            for name, ufunc, arr in (
                ("sums", np.add, self._sums),
                ("mins", np.minimum, self._mins),
                ("maxs", np.maximum, self._maxs),
            ):
                pairs = metric_values[name]
                if not pairs:
                    continue
                m_count = arr.shape[1]
                idx_parts = []
                val_parts = []
                for j, (sel, vals) in enumerate(pairs):
                    use = keep & sel
                    idx_parts.append(rows[use] * (m_count * s) + j * s + slot[use])
                    val_parts.append(vals[use])
                ufunc.at(arr.reshape(-1), np.concatenate(idx_parts), np.concatenate(val_parts))
        last_flat = self._last.reshape(-1)
        n_rec = self._last.shape[1]
        for j, types in enumerate(plan.recency_types):
            use = mask_of(types)
            np.maximum.at(last_flat, rows[use] * n_rec + j, ts[use])
        return np.unique(rows)

    # ------------------------------------------------------------------ output
    def states(self, rows: NDArray[np.intp]) -> NDArray[Any]:
        """The rows as a structured array in the encoded layout."""
        rec = np.empty(rows.shape[0], dtype=self.plan.dtype)
        rec["tiles"] = self._tiles[rows]
        if self._sums.shape[1]:
            rec["sums"] = self._sums[rows]
        if self._mins.shape[1]:
            rec["mins"] = self._mins[rows]
        if self._maxs.shape[1]:
            rec["maxs"] = self._maxs[rows]
        rec["last"] = self._last[rows]
        return rec

    def blobs(self, rows: NDArray[np.intp]) -> list[bytes]:
        """The encoded state of each row."""
        buf = self.states(rows).tobytes()
        size = self.plan.dtype.itemsize
        return [buf[i * size : (i + 1) * size] for i in range(rows.shape[0])]

    def entity_rows(self) -> NDArray[np.intp]:
        """Rows that hold entities (not prior groups)."""
        return np.array([i for i, (kind, _) in enumerate(self.row_keys) if kind == "e"], dtype=np.intp)

    def features(
        self, keys: Sequence[str | Sequence[str]], as_of: Any, catalog: Mapping[str, str] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Feature values of entities straight from this table (as the online store computes them).

        Args:
            keys: entity keys.
            as_of: the time (exclusive) the values hold for.
            catalog: item id -> category, for item entities smoothed toward their category.

        Returns:
            ``(values, absent)`` as :func:`evaluate`.
        """
        plan = self.plan
        enc = [encode_key(k) for k in keys]
        layout = RowLayout.build(plan, keys, catalog)
        wanted = [("e", k) for k in enc] + [("g", g) for g in layout.group_keys]
        present = [self._index.get(k, -1) for k in wanted]
        blobs: list[bytes | None] = [None] * len(wanted)
        have = [i for i, r in enumerate(present) if r >= 0]
        if have:
            encoded = self.blobs(np.array([present[i] for i in have], dtype=np.intp))
            for i, b in zip(have, encoded, strict=True):
                blobs[i] = b
        return evaluate_states(plan, plan.decode(blobs), layout, to_ns(as_of))

    def reset(self) -> None:
        """Forget every row (a store keeps the states)."""
        fresh = TileTable(self.plan, capacity=16)
        self.__dict__.update(fresh.__dict__)


@dataclass
class RowLayout:
    """How decoded states are laid out for :func:`evaluate_states`:
    ``[entities..., group rows...]`` where the group rows are the all-entities group followed
    by the distinct categories of the entities (when the view needs priors).

    Attributes:
        n: number of entities.
        group_keys: storage keys of the group rows (``"*"`` first, then categories).
        category_row: for each entity, the index of its category among the group rows, or -1.
        category_state_row: the same as a row among all rows (entities first), or -1.
    """

    n: int
    group_keys: list[str]
    category_row: NDArray[np.intp]
    category_state_row: NDArray[np.int64]

    @classmethod
    def build(
        cls, plan: Plan, keys: Sequence[str | Sequence[str]], catalog: Mapping[str, str] | None
    ) -> RowLayout:
        """The layout for these entity keys."""
        n = len(keys)
        if plan.group_mode != "category":
            none = np.full(n, -1, dtype=np.intp)
            return cls(n, [] if plan.group_mode == "none" else [GLOBAL_GROUP], none, none.astype(np.int64))
        groups = [GLOBAL_GROUP]
        position: dict[str, int] = {}
        rows = []
        for g in plan.group_of_keys(keys, catalog):
            if not g:
                rows.append(-1)
                continue
            pos = position.get(g)
            if pos is None:
                pos = position[g] = len(groups)
                groups.append(g)
            rows.append(pos)
        return cls(n, groups, np.array(rows, dtype=np.intp),
                   np.array([r + n if r >= 0 else -1 for r in rows], dtype=np.int64))


def evaluate_states(
    plan: Plan, states: NDArray[Any], layout: RowLayout, as_of_ns: int, chunk: int = 1024
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Features from decoded states laid out as described by :class:`RowLayout`.

    Args:
        plan: the compiled view.
        states: the decoded states, ``layout.n`` entities then the group rows.
        layout: the row layout.
        as_of_ns: the time (exclusive) in ns.
        chunk: entities evaluated per vectorised step (bounds memory).

    Returns:
        ``(values, absent)`` as :func:`evaluate`.
    """
    n = layout.n
    if plan.group_mode == "none" and n <= chunk:
        return evaluate(plan, plan.basis_from_states(states, as_of_ns))
    group_basis = plan.basis_from_states(states[n:], as_of_ns) if plan.group_mode != "none" else None
    out_v: list[NDArray[np.float64]] = []
    out_a: list[NDArray[np.bool_]] = []
    for start in range(0, max(n, 1), chunk):
        stop = min(start + chunk, n)
        ent = plan.basis_from_states(states[start:stop], as_of_ns)
        if group_basis is None:
            v, a = evaluate(plan, ent)
        else:
            m = stop - start
            glob = group_basis.take(np.zeros(m, dtype=np.intp))
            if plan.group_mode == "category":
                crow = layout.category_row[start:stop]
                cat = group_basis.take(np.maximum(crow, 0))
                v, a = evaluate(plan, ent, glob, cat, crow >= 0)
            else:
                v, a = evaluate(plan, ent, glob)
        out_v.append(v)
        out_a.append(a)
    if len(out_v) == 1:
        return out_v[0], out_a[0]
    return np.concatenate(out_v), np.concatenate(out_a)


def replay(
    view: FeatureView,
    events: pd.DataFrame | EventBatch,
    *,
    catalog: Mapping[str, str] | None = None,
    table: TileTable | None = None,
    chunk_size: int = 500_000,
    utc_offset: timedelta | None = None,
) -> TileTable:
    """Batch replay: fold a history of events into tile state (the code the stream runs).

    Args:
        view: the feature view.
        events: canonical events, in the order to apply them (by time for a history).
        catalog: item id -> category for events without a ``category`` column.
        table: continue from this state instead of an empty one.
        chunk_size: events per vectorised step (does not change the result).
        utc_offset: tile alignment shift (leave ``None``: UTC).

    Returns:
        The tile table.
    """
    plan = compile_plan(view, utc_offset)
    table = table if table is not None else TileTable(plan)
    batch = events if isinstance(events, EventBatch) else EventBatch.from_frame(events, catalog)
    for start in range(0, len(batch), chunk_size):
        table.apply(batch.take(np.arange(start, min(start + chunk_size, len(batch)))))
    return table
