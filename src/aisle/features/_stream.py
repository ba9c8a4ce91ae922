"""The real-time path (kappa): events from Redis Streams or HTTP folded into online aggregates.

:class:`StreamProcessor` applies micro-batches of events to the online tile state with the
same code that replays history in batch (:class:`~aisle.features._aggregates.TileTable`), so a
stream and a batch replay of the same events end in identical values.

Delivery is at-least-once and updates are idempotent, keyed by ``event_id``:

1. read a batch of stream entries (first this consumer's pending entries, i.e. those delivered
   before a crash and never acknowledged; then entries idle too long at dead consumers, claimed
   with ``XAUTOCLAIM``; then new ones);
2. drop events whose id repeats within the batch or was already applied (the store keeps the
   applied ids per consumer group, for a horizon);
3. fold the rest into the cached state of the touched entities (loaded from the store on a
   cache miss);
4. commit atomically: the new states, the applied ids, progress counters and the event-time
   high-water mark, in one ``MULTI``/``EXEC`` (Redis) or one transaction (SQLite);
5. acknowledge the entries (``XACK``).

A process killed anywhere in this loop leaves either nothing or the whole commit behind; after
a restart the unacknowledged entries come back and every event already committed is skipped
by its id. The final values equal those of an uninterrupted run: no event is lost or counted
twice. Events within a batch are applied in stream order, so even float sums match bit for bit.

Wire format: a stream entry has a field ``columns`` holding a JSON object of equal-length lists
(what :func:`publish_events` writes; cheap to decode), or ``events`` holding a JSON list of event
objects (``event``: one object), with the canonical event columns; ``timestamp`` is epoch
nanoseconds (an integer) or ISO 8601 text. Unreadable entries go to ``<stream>:dead``.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pandas as pd

from aisle.errors import ConfigError, DataError, ServiceError, require

from ._aggregates import EventBatch, TileTable
from ._definitions import FeatureView
from ._online import OnlineStore

__all__ = [
    "BatchResult",
    "MemorySource",
    "RedisStreamSource",
    "RunSummary",
    "StreamEntry",
    "StreamProcessor",
    "events_to_columns",
    "events_to_records",
    "publish_events",
]


def events_to_records(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Canonical events as wire records (``timestamp`` in epoch ns, nulls as ``None``)."""
    cols = [c for c in events.columns if c != "timestamp"]
    ts = events["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    ts_ns = ts.dt.tz_convert("UTC").dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    columns = {c: events[c].astype(object).where(events[c].notna(), None).tolist() for c in cols}
    out = []
    for i, t in enumerate(ts_ns):
        rec: dict[str, Any] = {"timestamp": int(t)}
        for c in cols:
            v = columns[c][i]
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                rec[c] = v
        out.append(rec)
    return out


def _columns_of(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    return {c: [r.get(c) for r in records] for c in names}


def events_to_columns(events: pd.DataFrame) -> dict[str, list[Any]]:
    """Canonical events in the columnar wire format (``timestamp`` in epoch ns, nulls as ``None``)."""
    return EventBatch.from_frame(events).to_columns()


def publish_events(
    client: Any, stream: str, events: pd.DataFrame | Sequence[Mapping[str, Any]], *, per_entry: int = 100,
    maxlen: int | None = None,
) -> list[str]:
    """Append events to a Redis stream, ``per_entry`` events per entry, in order.

    Entries use the columnar wire format (a field ``columns`` holding a JSON object of
    equal-length lists), which is much cheaper to decode than one object per event.

    Args:
        client: a ``redis.Redis`` client, or a URL.
        stream: the stream key.
        events: canonical events or wire records.
        per_entry: events per stream entry.
        maxlen: trim the stream to about this many entries (``None``: no trimming).

    Returns:
        The ids of the entries written.
    """
    if isinstance(client, str):
        redis: Any = cast(Any, require("redis", "redis"))
        client = redis.Redis.from_url(client)
    columns = events_to_columns(events) if isinstance(events, pd.DataFrame) else _columns_of(events)
    n = len(columns.get("event_id", []))
    ids: list[str] = []
    try:
        for start in range(0, n, 50 * per_entry):
            pipe = client.pipeline(transaction=False)
            for s in range(start, min(start + 50 * per_entry, n), per_entry):
                chunk = {c: v[s : s + per_entry] for c, v in columns.items()}
                payload = json.dumps(chunk, separators=(",", ":"))
                pipe.xadd(stream, {"columns": payload}, maxlen=maxlen, approximate=maxlen is not None)
            ids.extend(i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute())
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise ServiceError(f"cannot publish to Redis stream {stream!r}: {exc}") from exc
        raise
    return ids


# ----------------------------------------------------------------------------- sources
@dataclass
class StreamEntry:
    """One delivered stream entry: its id and its events as columns, or why they are unreadable."""

    id: str
    columns: dict[str, list[Any]] | None = None
    error: str | None = None
    raw: Mapping[Any, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return 0 if self.columns is None else len(self.columns.get("event_id", []))


def _parse_entry(entry_id: Any, fields: Mapping[Any, Any]) -> StreamEntry:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    data = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in fields.items()}
    try:
        if "columns" in data:
            columns = json.loads(data["columns"])
            if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
                return StreamEntry(eid, error="'columns' must be a JSON object of lists", raw=data)
        elif "events" in data or "event" in data:
            events = json.loads(data["events"]) if "events" in data else [json.loads(data["event"])]
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                return StreamEntry(eid, error="'events' must be a JSON list of objects", raw=data)
            columns = _columns_of(events)
        else:
            return StreamEntry(eid, error="entry has no 'columns', 'events' or 'event' field", raw=data)
    except (ValueError, TypeError) as exc:
        return StreamEntry(eid, error=f"unreadable JSON: {exc}", raw=data)
    lacking = [f for f in ("event_id", "event_type", "timestamp") if f not in columns or any(v is None for v in columns[f])]
    if lacking:
        return StreamEntry(eid, error=f"events lack {lacking}", raw=data)
    if len({len(v) for v in columns.values()}) > 1:
        return StreamEntry(eid, error="columns have different lengths", raw=data)
    return StreamEntry(eid, columns=columns)


class MemorySource:
    """The embedded stream: an in-process queue (what the HTTP endpoint feeds without Redis)."""

    def __init__(self, batch_entries: int = 100) -> None:
        self.batch_entries = batch_entries
        self._queue: queue.Queue[StreamEntry] = queue.Queue()
        self._n = 0

    def put(self, events: pd.DataFrame | Sequence[Mapping[str, Any]]) -> None:
        """Enqueue events (canonical frame or wire records) as one entry."""
        self._n += 1
        columns = events_to_columns(events) if isinstance(events, pd.DataFrame) else _columns_of(events)
        self._queue.put(StreamEntry(str(self._n), columns=columns))

    def read(self, block_s: float | None = 0.1) -> list[StreamEntry]:
        """Up to ``batch_entries`` entries, waiting at most ``block_s`` for the first."""
        out: list[StreamEntry] = []
        try:
            out.append(self._queue.get(timeout=0.1 if block_s is None else block_s))
            while len(out) < self.batch_entries:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def ack(self, ids: Sequence[str]) -> None:
        """Nothing to acknowledge in process."""

    def dead_letter(self, entry: StreamEntry) -> None:
        """Unreadable entries are dropped (they are counted as invalid)."""


class RedisStreamSource:
    """A Redis Streams consumer in a consumer group (``pip install 'aisle[redis]'``).

    Args:
        url: the Redis server (loopback in tests).
        stream: the stream key.
        group: the consumer group (one group per set of views kept up to date).
        consumer: this consumer's name; a restarted process should keep its name so it gets its
            own pending entries back first.
        start_id: where a newly created group starts (``"0"``: the whole stream, ``"$"``: new).
        batch_entries: entries per read.
        block_ms: how long a read waits for new entries.
        claim_idle_ms: entries pending this long at other (dead) consumers are claimed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        stream: str = "aisle:events",
        group: str = "aisle-features",
        consumer: str = "consumer-1",
        *,
        start_id: str = "0",
        batch_entries: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self._redis: Any = cast(Any, require("redis", "redis"))
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.start_id = start_id
        self.batch_entries = batch_entries
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.client: Any = self._redis.Redis.from_url(url, socket_timeout=max(10.0, block_ms / 1000 + 5))
        self._own_pending_done = False
        self._next_claim = 0.0
        self._ready = False

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._redis.exceptions.ConnectionError as exc:
            raise ServiceError(f"cannot reach Redis at {self.url}: {exc}") from exc

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if needed."""
        try:
            self._call(lambda: self.client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True))
        except self._redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ServiceError(f"cannot create consumer group {self.group!r}: {exc}") from exc
        self._ready = True

    def read(self, block_s: float | None = None) -> list[StreamEntry]:
        """The next entries: own pending ones first, then claimed ones, then new ones."""
        if not self._ready:
            self.ensure_group()
        if not self._own_pending_done:
            got = self._read("0", None)
            if got:
                return got
            self._own_pending_done = True
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 1000, 1.0)
            claimed = self._call(lambda: self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.batch_entries
            ))
            entries = [_parse_entry(i, f) for i, f in claimed[1] if f is not None]
            if entries:
                return entries
        block = self.block_ms if block_s is None else int(block_s * 1000)
        return self._read(">", max(block, 1))

    def _read(self, start: str, block: int | None) -> list[StreamEntry]:
        resp = self._call(lambda: self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.batch_entries, block=block
        ))
        out: list[StreamEntry] = []
        for _, items in resp or []:
            out.extend(_parse_entry(i, f) for i, f in items if f is not None)
        return out

    def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge processed entries."""
        if ids:
            self._call(lambda: self.client.xack(self.stream, self.group, *ids))

    def dead_letter(self, entry: StreamEntry) -> None:
        """Copy an unreadable entry to ``<stream>:dead`` with the reason."""
        fields = {"source_id": entry.id, "reason": entry.error or "", **{str(k): v for k, v in entry.raw.items()}}
        self._call(lambda: self.client.xadd(f"{self.stream}:dead", fields))

    def pending(self) -> int:
        """Entries delivered to the group and not yet acknowledged."""
        info = self._call(lambda: self.client.xpending(self.stream, self.group))
        return int(info["pending"])

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


# ----------------------------------------------------------------------------- processor
@dataclass
class BatchResult:
    """What one micro-batch did.

    Attributes:
        received: events in the batch.
        applied: events folded into the state (new ids).
        duplicates: events skipped because their id was already applied (or repeated).
        invalid: events without a usable event type, timestamp or id.
        late: (view, event) pairs skipped because the event is older than the view's last
            materialization (the batch already counted it).
        states: entity and group states written.
    """

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    invalid: int = 0
    late: int = 0
    states: int = 0

    def add(self, other: BatchResult) -> None:
        """Accumulate another result into this one."""
        for name in ("received", "applied", "duplicates", "invalid", "late", "states"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunSummary:
    """What :meth:`StreamProcessor.run` did."""

    totals: BatchResult
    entries: int
    dead_letters: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        t = self.totals
        return {
            "entries": self.entries, "received": t.received, "applied": t.applied, "duplicates": t.duplicates,
            "invalid": t.invalid, "late": t.late, "states_written": t.states, "dead_letters": self.dead_letters,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(t.received / self.seconds, 1) if self.seconds > 0 else None,
        }


class StreamProcessor:
    """Applies micro-batches of events to the online state of some views, once per event id.

    Args:
        views: the feature views kept up to date.
        online: the online store written to (its tile alignment is used).
        name: the consumer group's name; applied ids and counters are kept per name.
        dedup_horizon: how long applied ids are remembered (redeliveries and producer retries
            older than this are not recognised).
        max_cached_rows: states kept in memory before the cache is dropped (the store keeps them).
    """

    def __init__(
        self,
        views: Sequence[FeatureView],
        online: OnlineStore,
        *,
        name: str = "default",
        dedup_horizon: timedelta = timedelta(days=7),
        max_cached_rows: int = 2_000_000,
    ) -> None:
        if not views:
            raise ConfigError("a stream processor needs at least one feature view")
        bad = [v for v in views if not isinstance(v, FeatureView)]
        if bad:
            raise ConfigError(f"only aggregate feature views can be streamed, not {[getattr(b, 'name', b) for b in bad]}")
        self.views = list(views)
        self.online = online
        self.name = name
        self.dedup_horizon = dedup_horizon
        self.max_cached_rows = max_cached_rows
        self.namespace = f"p:{name}"
        self._tables: dict[str, TileTable] | None = None
        self._generation: dict[str, str | None] = {}
        self._watermark: dict[str, int] = {}
        self._high: dict[str, int] = {}
        self._catalog: dict[str, str] | None = None
        self._next_trim = 0.0

    # ------------------------------------------------------------------ state
    def _init(self) -> dict[str, TileTable]:
        if self._tables is None:
            self._tables = {}
            for v in self.views:
                plan = self.online.plan(v)
                self._tables[plan.namespace] = TileTable(plan)
            self._catalog = self.online.backend.catalog()
            self._refresh_meta(force=True)
        return self._tables

    def _refresh_meta(self, force: bool = False) -> None:
        tables = self._tables or {}
        names = [f"{p}:{ns}" for ns in tables for p in ("gen", "wm", "hw")]
        meta = self.online.backend.get_meta(names)
        for ns, table in tables.items():
            gen = meta[f"gen:{ns}"]
            if force or gen != self._generation.get(ns):
                if not force:
                    table.reset()
                self._generation[ns] = gen
                self._watermark[ns] = int(meta[f"wm:{ns}"] or np.iinfo(np.int64).min)
            self._high[ns] = max(self._high.get(ns, np.iinfo(np.int64).min), int(meta[f"hw:{ns}"] or np.iinfo(np.int64).min))

    def _catalog_map(self) -> dict[str, str]:
        self._init()
        return self._catalog or {}

    def counters(self) -> dict[str, int]:
        """Progress counters of this consumer group, from the store."""
        return self.online.backend.counters(self.namespace)

    # ------------------------------------------------------------------ processing
    def process(self, events: pd.DataFrame | Sequence[Mapping[str, Any]] | EventBatch) -> BatchResult:
        """Apply one micro-batch and commit it atomically.

        Args:
            events: canonical events, wire records, or an :class:`EventBatch`, in stream order.

        Returns:
            What the batch did.
        """
        tables = self._init()
        self._refresh_meta()
        if isinstance(events, EventBatch):
            batch = events
        elif isinstance(events, pd.DataFrame):
            batch = EventBatch.from_frame(events, self._catalog)
        else:
            batch = EventBatch.from_records(events, self._catalog)
        result = BatchResult(received=len(batch))
        if len(batch) == 0:
            return result
        ids = pd.Series(batch.event_id, dtype=object)
        valid = (batch.type_code >= 0) & ids.notna().to_numpy() & (batch.ts > 0)
        result.invalid = int((~valid).sum())
        first = valid & ~ids.duplicated(keep="first").to_numpy()
        repeated = int((valid & ~first).sum())
        cand = np.flatnonzero(first)
        id_list = [str(i) for i in batch.event_id[cand]]
        horizon = self.dedup_horizon.total_seconds()
        seen = self.online.backend.seen(self.namespace, id_list, horizon) if id_list else np.zeros(0, dtype=bool)
        keep = cand[~seen]
        result.duplicates = repeated + int(seen.sum())
        fresh = batch.take(keep)
        applied_ids = [id_list[i] for i in np.flatnonzero(~seen)]
        result.applied = len(fresh)

        # Per view: skip events the last materialization already covered, then load states.
        per_view: dict[str, EventBatch] = {}
        view_keys: dict[str, tuple[Any, Any]] = {}
        wanted: list[tuple[str, tuple[str, str]]] = []
        for ns, table in tables.items():
            if len(table) > self.max_cached_rows:
                table.reset()
            wm = self._watermark.get(ns, np.iinfo(np.int64).min)
            sub = fresh if len(fresh) == 0 or fresh.ts.min() >= wm else fresh.take(fresh.ts >= wm)
            result.late += len(fresh) - len(sub)
            per_view[ns] = sub
            view_keys[ns] = table.plan.entity_keys(sub)
            wanted.extend((ns, k) for k in table.keys_in(sub, view_keys[ns]))
        if wanted:
            keys = [f"f:{ns}:{kind}:{key}" for ns, (kind, key) in wanted]
            blobs = self.online.backend.get_bulk(keys)
            by_view: dict[str, tuple[list[tuple[str, str]], list[bytes | None]]] = {}
            for (ns, k), b in zip(wanted, blobs, strict=True):
                entry = by_view.setdefault(ns, ([], []))
                entry[0].append(k)
                entry[1].append(b)
            for ns, (ks, bs) in by_view.items():
                tables[ns].load(ks, bs)

        items: list[tuple[str, bytes, float | None]] = []
        meta: dict[str, str] = {}
        for ns, table in tables.items():
            sub = per_view[ns]
            if len(sub) == 0:
                continue
            rows = table.apply(sub, view_keys[ns])
            ttl = table.plan.ttl_ns / 1e9
            prefix = f"f:{ns}:"
            for r, blob in zip(rows.tolist(), table.blobs(rows), strict=True):
                kind, key = table.row_keys[r]
                items.append((f"{prefix}{kind}:{key}", blob, ttl))
            high = max(self._high.get(ns, np.iinfo(np.int64).min), int(sub.ts.max()))
            self._high[ns] = high
            meta[f"hw:{ns}"] = str(high)
        result.states = len(items)
        counters = {
            "received": result.received, "applied": result.applied, "duplicates": result.duplicates,
            "invalid": result.invalid, "late": result.late, "batches": 1,
        }
        self.online.backend.commit(
            items, namespace=self.namespace, ids=applied_ids, counters=counters, meta=meta, horizon_s=horizon
        )
        now = time.monotonic()
        if now >= self._next_trim:
            self._next_trim = now + 60.0
            self.online.backend.trim_dedup(self.namespace, 2 * horizon)
        return result

    def run(
        self,
        source: RedisStreamSource | MemorySource,
        *,
        until_idle: float | None = None,
        max_events: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> RunSummary:
        """Consume a source until stopped, idle or a number of events.

        Args:
            source: where entries come from.
            until_idle: return after this many seconds without a new entry (``None``: never).
            max_events: return after at least this many events.
            stop: return when this event is set.
            on_batch: called after every committed batch (progress bars).

        Returns:
            Totals of the run.
        """
        totals = BatchResult()
        entries_seen = 0
        dead = 0
        started = time.monotonic()
        idle_since = started
        while not (stop is not None and stop.is_set()):
            block = None if until_idle is None else max(0.05, min(1.0, until_idle))
            entries = source.read(block)
            if not entries:
                if until_idle is not None and time.monotonic() - idle_since >= until_idle:
                    break
                continue
            idle_since = time.monotonic()
            batches: list[EventBatch] = []
            for entry in entries:
                if entry.columns is not None:
                    try:
                        batches.append(EventBatch.from_columns(entry.columns, self._catalog_map()))
                        continue
                    except DataError as exc:
                        entry.error = str(exc)
                        entry.raw = {"columns": json.dumps(entry.columns)}
                source.dead_letter(entry)
                dead += 1
            result = self.process(EventBatch.concat(batches)) if batches else BatchResult()
            source.ack([e.id for e in entries])
            entries_seen += len(entries)
            totals.add(result)
            if on_batch is not None:
                on_batch(result)
            if max_events is not None and totals.received >= max_events:
                break
        return RunSummary(totals, entries_seen, dead, time.monotonic() - started)
