"""Real services: the Redis online store and stream consumer group, the PostgreSQL registry.

These tests fail (they do not skip) when Redis or PostgreSQL is down: CI starts them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from aisle.errors import ServiceError
from aisle.features import (
    ITEM,
    Count,
    FeatureView,
    OfflineStore,
    OnlineStore,
    PostgresRegistry,
    RedisOnline,
    RedisStreamSource,
    SQLiteOnline,
    StreamProcessor,
    default_repository,
    materialize,
    publish_events,
)
from aisle.simulate import SimulatedShop

pytestmark = pytest.mark.services

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
VIEWS = [v for v in default_repository().views.values() if isinstance(v, FeatureView)]


class CountingRedis(RedisOnline):
    """Counts the round trips of reads."""

    gets = 0

    def get(self, keys: Any) -> list[bytes | None]:
        self.gets += 1
        return super().get(keys)


def test_redis_online_store_serves_the_same_values_as_sqlite(
    offline: OfflineStore, end_of_shop: int, tmp_path: Path, redis_online: RedisOnline,
    active_entities: Callable[..., list[Any]],
) -> None:
    on_redis = OnlineStore(redis_online)
    on_sqlite = OnlineStore(SQLiteOnline(tmp_path / "o.sqlite"))
    for view in VIEWS:
        materialize(view, offline, on_redis, as_of=end_of_shop)
        materialize(view, offline, on_sqlite, as_of=end_of_shop)
    for view in VIEWS:
        keys = active_entities(offline, view, end_of_shop)
        a = on_redis.read(view, keys, as_of=end_of_shop)
        b = on_sqlite.read(view, keys, as_of=end_of_shop)
        assert np.array_equal(a.values, b.values, equal_nan=True), view.name
        c = asyncio.run(on_redis.aread(view, keys, as_of=end_of_shop))
        assert np.array_equal(a.values, c.values, equal_nan=True)
    key = redis_online.scan("f:item_stats:", limit=1)[0]
    ttl_ms = redis_online.client.pttl(f"{redis_online.prefix}:{key}")
    assert 0 < ttl_ms <= 30 * 86_400_000  # states expire after the view's TTL


def test_redis_reads_many_views_in_one_round_trip(offline: OfflineStore, end_of_shop: int) -> None:
    backend = CountingRedis(REDIS_URL, prefix=f"aisle-test-{uuid.uuid4().hex[:8]}")
    try:
        online = OnlineStore(backend)
        for view in VIEWS:
            materialize(view, offline, online, as_of=end_of_shop)
        events = offline.events()
        backend.gets = 0
        frames = online.read_many([
            (default_repository().view("user_activity"), events["user_id"].unique()[:100].tolist()),
            (default_repository().view("item_stats"), events["item_id"].unique()[:100].tolist()),
        ], as_of=end_of_shop)
        assert backend.gets == 1 and [len(f.keys) for f in frames] == [100, 100]
    finally:
        backend.delete_prefix("")


def test_redis_commit_is_atomic_and_ids_are_remembered(redis_online: RedisOnline) -> None:
    redis_online.commit(
        [("f:v:e:a", b"state-a", 60.0), ("f:v:e:b", b"state-b", None)],
        namespace="p:t", ids=["e1", "e2", "e3"], counters={"applied": 3}, meta={"hw:v": "42"},
    )
    assert redis_online.get(["f:v:e:a", "f:v:e:b", "f:v:e:c"]) == [b"state-a", b"state-b", None]
    assert 0 < redis_online.client.pttl(f"{redis_online.prefix}:f:v:e:a") <= 60_000  # the state's TTL
    assert redis_online.client.pttl(f"{redis_online.prefix}:f:v:e:b") == -1  # no TTL asked
    assert redis_online.seen("p:t", ["e0", "e2", "e3", "e9"]).tolist() == [False, True, True, False]
    assert redis_online.counters("p:t") == {"applied": 3}
    assert redis_online.get_meta(["hw:v", "nope"]) == {"hw:v": "42", "nope": None}
    # A commit that cannot be encoded sends nothing.
    with pytest.raises(ValueError):
        redis_online.commit([("f:v:e:z", b"z", 1.0)], namespace="p:t", ids=["e4"],
                            counters={"applied": "not a number"}, meta={})  # type: ignore[dict-item]
    assert redis_online.get(["f:v:e:z"]) == [None] and not redis_online.seen("p:t", ["e4"])[0]
    assert redis_online.counters("p:t") == {"applied": 3}


def test_redis_unreachable_is_a_service_error() -> None:
    backend = RedisOnline("redis://127.0.0.1:1/0", socket_timeout=0.5)
    with pytest.raises(ServiceError, match="cannot reach Redis"):
        backend.get(["x"])


@pytest.fixture
def stream_names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    names = {"stream": f"aisle-test-stream-{tag}", "group": f"g-{tag}", "prefix": f"aisle-test-{tag}"}
    yield names
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(names["stream"], names["stream"] + ":dead")
    RedisOnline(REDIS_URL, prefix=names["prefix"]).delete_prefix("")


def test_consumer_group_applies_each_event_once(
    shop: SimulatedShop, offline: OfflineStore, catalog_map: dict[str, str], end_of_shop: int,
    stream_names: dict[str, str], tmp_path: Path, active_entities: Callable[..., list[Any]],
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    events = offline.events()
    publish_events(client, stream_names["stream"], events, per_entry=200)
    retried = events.sample(300, random_state=0)  # a producer retrying some events
    publish_events(client, stream_names["stream"], retried, per_entry=50)
    client.xadd(stream_names["stream"], {"events": "{not json"})
    online = OnlineStore(RedisOnline(REDIS_URL, prefix=stream_names["prefix"]))
    online.put_catalog(catalog_map)
    source = RedisStreamSource(REDIS_URL, stream_names["stream"], stream_names["group"], "c1", batch_entries=10, block_ms=100)
    summary = StreamProcessor(VIEWS, online, name=stream_names["group"]).run(source, until_idle=0.5)
    assert summary.totals.applied == len(events) and summary.totals.duplicates == 300
    assert summary.dead_letters == 1 and client.xlen(stream_names["stream"] + ":dead") == 1
    assert source.pending() == 0
    reference = OnlineStore(SQLiteOnline(tmp_path / "ref.sqlite"))
    for view in VIEWS:
        materialize(view, offline, reference, as_of=end_of_shop)
        keys = active_entities(offline, view, end_of_shop)
        a = reference.read(view, keys, as_of=end_of_shop).values
        b = online.read(view, keys, as_of=end_of_shop).values
        assert np.array_equal(a, b, equal_nan=True), view.name


def test_pending_entries_of_a_dead_consumer_are_claimed(
    shop: SimulatedShop, catalog_map: dict[str, str], stream_names: dict[str, str],
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    publish_events(client, stream_names["stream"], shop.events.iloc[:600], per_entry=100)
    online = OnlineStore(RedisOnline(REDIS_URL, prefix=stream_names["prefix"]))
    dead = RedisStreamSource(REDIS_URL, stream_names["stream"], stream_names["group"], "dead", batch_entries=2)
    assert len(dead.read()) == 2  # delivered, never acknowledged: its process died
    heir = RedisStreamSource(REDIS_URL, stream_names["stream"], stream_names["group"], "heir",
                             batch_entries=10, block_ms=50, claim_idle_ms=0)
    summary = StreamProcessor(VIEWS[:1], online, name=stream_names["group"]).run(heir, until_idle=0.3)
    assert summary.totals.applied == 600 and heir.pending() == 0


@pytest.fixture
def pg_table() -> Iterator[str]:
    import psycopg

    table = f"aisle_test_registry_{uuid.uuid4().hex[:10]}"
    yield table
    with psycopg.connect(POSTGRES_DSN) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_postgres_registry_versions(pg_table: str) -> None:
    registry = PostgresRegistry(POSTGRES_DSN, pg_table)
    v1 = FeatureView(name="clicks", entity=ITEM, windows=("1d",), aggregations=(Count("click"),))
    v2 = FeatureView(name="clicks", entity=ITEM, windows=("1d", "7d"), aggregations=(Count("click"),))
    assert [r.status for r in registry.apply([v1, *VIEWS])] == ["created"] * 5
    assert [(r.status, r.version) for r in registry.apply([v1])] == [("unchanged", 1)]
    assert [(r.status, r.version) for r in registry.apply([v2])] == [("new_version", 2)]
    assert registry.get("clicks", 1).fingerprint == v1.fingerprint
    assert registry.get("clicks").fingerprint == v2.fingerprint
    assert {e.name for e in registry.list()} == {"clicks", *(v.name for v in VIEWS)}
    again = PostgresRegistry(POSTGRES_DSN, pg_table)  # another process sees the same history
    assert [e.version for e in again.versions("clicks")] == [1, 2]
    created = again.versions("clicks")[0].created_at
    assert created.tzinfo is not None and created <= pd.Timestamp.now(tz="UTC")


def test_postgres_unreachable_is_a_service_error() -> None:
    with pytest.raises(ServiceError, match="PostgreSQL"):
        PostgresRegistry("postgresql://postgres@127.0.0.1:1/test").list()
