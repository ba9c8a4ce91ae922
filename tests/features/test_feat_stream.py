"""The stream (embedded): batch and stream agree, idempotent by event_id, crash between commit
and acknowledgement, late events after a materialization, dead letters, HTTP ingestion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aisle.features import (
    FeatureView,
    MemorySource,
    OfflineStore,
    OnlineStore,
    SQLiteOnline,
    StreamProcessor,
    create_ingest_app,
    default_repository,
    events_to_columns,
    materialize,
)
from aisle.features._stream import StreamEntry
from aisle.simulate import SimulatedShop

VIEWS = [v for v in default_repository().views.values() if isinstance(v, FeatureView)]


def _online(path: Path, catalog: dict[str, str]) -> OnlineStore:
    store = OnlineStore(SQLiteOnline(path))
    store.put_catalog(catalog)
    return store


def _assert_same_values(a: OnlineStore, b: OnlineStore, offline: OfflineStore, as_of: int,
                        active_entities: Callable[..., list[Any]]) -> None:
    for view in VIEWS:
        keys = active_entities(offline, view, as_of)
        va = a.read(view, keys, as_of=as_of).values
        vb = b.read(view, keys, as_of=as_of).values
        assert np.array_equal(va, vb, equal_nan=True), view.name


def test_stream_and_batch_replay_agree(
    shop: SimulatedShop, offline: OfflineStore, catalog_map: dict[str, str], end_of_shop: int, tmp_path: Path,
    active_entities: Callable[..., list[Any]],
) -> None:
    batch = _online(tmp_path / "batch.sqlite", catalog_map)
    for view in VIEWS:
        materialize(view, offline, batch, as_of=end_of_shop)
    stream = _online(tmp_path / "stream.sqlite", catalog_map)
    source = MemorySource(batch_entries=7)
    events = offline.events()
    for start in range(0, len(events), 250):
        source.put(events.iloc[start : start + 250])
    summary = StreamProcessor(VIEWS, stream).run(source, until_idle=0.2)
    assert summary.totals.applied == len(events) and summary.totals.duplicates == 0
    _assert_same_values(batch, stream, offline, end_of_shop, active_entities)


def test_repeated_events_count_once(shop: SimulatedShop, catalog_map: dict[str, str], tmp_path: Path) -> None:
    online = _online(tmp_path / "o.sqlite", catalog_map)
    processor = StreamProcessor(VIEWS[:2], online, name="dups")
    events = shop.events.iloc[:400]
    first = processor.process(events)
    assert (first.applied, first.duplicates) == (400, 0)
    again = processor.process(pd.concat([events.iloc[:100], shop.events.iloc[400:450], events.iloc[:10]]))
    assert (again.applied, again.duplicates) == (50, 110)
    # a fresh processor (cold cache, as after a restart) still recognises the ids
    cold = StreamProcessor(VIEWS[:2], online, name="dups").process(events.iloc[200:300])
    assert (cold.applied, cold.duplicates) == (0, 100)
    assert processor.counters()["applied"] == 450


class FlakySource:
    """An at-least-once source: entries stay pending until acknowledged; the n-th ack 'crashes'."""

    def __init__(self, entries: Sequence[StreamEntry], crash_on_ack: int | None) -> None:
        self.entries = list(entries)
        self.next = 0
        self.pending: list[StreamEntry] = []
        self.acks = 0
        self.crash_on_ack = crash_on_ack

    def read(self, block_s: float | None = None) -> list[StreamEntry]:
        if self.pending:
            return list(self.pending)
        batch = self.entries[self.next : self.next + 3]
        self.next += len(batch)
        self.pending = list(batch)
        return batch

    def ack(self, ids: Sequence[str]) -> None:
        self.acks += 1
        if self.crash_on_ack is not None and self.acks == self.crash_on_ack:
            raise KeyboardInterrupt("killed after the commit, before the acknowledgement")
        self.pending = [e for e in self.pending if e.id not in ids]

    def dead_letter(self, entry: StreamEntry) -> None:
        raise AssertionError(f"unexpected dead letter: {entry.error}")


def test_crash_between_commit_and_ack_does_not_double_count(
    shop: SimulatedShop, offline: OfflineStore, catalog_map: dict[str, str], end_of_shop: int, tmp_path: Path,
    active_entities: Callable[..., list[Any]],
) -> None:
    events = offline.events()
    entries = [
        StreamEntry(str(k), columns=events_to_columns(events.iloc[s : s + 200]))
        for k, s in enumerate(range(0, len(events), 200))
    ]
    source = FlakySource(entries, crash_on_ack=4)
    crashed = _online(tmp_path / "crashed.sqlite", catalog_map)
    with pytest.raises(KeyboardInterrupt):
        StreamProcessor(VIEWS, crashed, name="g").run(source, until_idle=0.05)
    assert source.pending  # the last batch was committed but never acknowledged
    source.crash_on_ack = None
    restarted = StreamProcessor(VIEWS, crashed, name="g")  # new process: empty cache
    summary = restarted.run(source, until_idle=0.05)
    assert summary.totals.duplicates == len(entries[9].columns["event_id"]) + sum(  # type: ignore[index]
        len(e) for e in entries[10:12]
    )
    assert restarted.counters()["applied"] == len(events)
    reference = _online(tmp_path / "reference.sqlite", catalog_map)
    for view in VIEWS:
        materialize(view, offline, reference, as_of=end_of_shop)
    _assert_same_values(reference, crashed, offline, end_of_shop, active_entities)


def test_events_older_than_a_materialization_are_skipped(
    offline: OfflineStore, catalog_map: dict[str, str], end_of_shop: int, tmp_path: Path,
    active_entities: Callable[..., list[Any]],
) -> None:
    events = offline.events()
    cut = int(events["timestamp"].iloc[len(events) // 2].value)
    online = _online(tmp_path / "o.sqlite", catalog_map)
    for view in VIEWS:
        materialize(view, offline, online, as_of=cut)
    result = StreamProcessor(VIEWS, online).process(events)
    before = int((events["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) < cut).sum())
    assert result.late == before * len(VIEWS)
    reference = _online(tmp_path / "r.sqlite", catalog_map)
    for view in VIEWS:
        materialize(view, offline, reference, as_of=end_of_shop)
    _assert_same_values(reference, online, offline, end_of_shop, active_entities)


def test_unreadable_entries_are_set_aside(shop: SimulatedShop, catalog_map: dict[str, str], tmp_path: Path) -> None:
    online = _online(tmp_path / "o.sqlite", catalog_map)
    source = MemorySource()
    source.put(shop.events.iloc[:20])
    source._queue.put(StreamEntry("bad", columns={"event_id": ["x"], "event_type": ["view"], "timestamp": ["not a time"]}))
    source.put(shop.events.iloc[20:40])
    dead: list[StreamEntry] = []
    source.dead_letter = dead.append  # type: ignore[method-assign]
    summary = StreamProcessor(VIEWS[:1], online).run(source, until_idle=0.1)
    assert summary.totals.applied == 40 and summary.dead_letters == 1
    assert "timestamp" in (dead[0].error or "")


def test_http_ingestion_validates_and_is_idempotent(catalog_map: dict[str, str], tmp_path: Path) -> None:
    from aisle.features import processor_sink

    online = _online(tmp_path / "o.sqlite", catalog_map)
    processor = StreamProcessor(VIEWS[:2], online, name="http")
    client = TestClient(create_ingest_app(processor_sink(processor)))
    events = [
        {"user_id": "u1", "item_id": "i00001", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"},
        {"user_id": "u1", "item_id": "i00001", "event_type": "purchase", "timestamp": "2024-03-01T10:05:00Z", "price": 9.5},
    ]
    assert client.get("/healthz").json() == {"status": "ok"}
    first = client.post("/events", json=events)
    assert first.status_code == 202 and first.json() == {"accepted": 2}
    retry = client.post("/events", json={"events": events})  # a client retry: ids derived from content
    assert retry.status_code == 202
    assert processor.counters()["applied"] == 2 and processor.counters()["duplicates"] == 2
    frame = online.read(VIEWS[0], ["u1"], as_of="2024-03-01T11:00:00Z")
    assert frame.row("u1")["count_purchase_1d"] == 1.0
    bad = client.post("/events", json=[{"user_id": "u1", "item_id": "", "event_type": "view", "timestamp": "soon"}])
    assert bad.status_code == 422
    assert "row 1" in bad.json()["detail"] and bad.json()["error"] == "ValidationError"
    assert client.post("/events", json={"nothing": 1}).status_code == 422
