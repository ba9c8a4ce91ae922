"""The online store (embedded SQLite): one round trip per read, async reads, embeddings, TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aisle.features import (
    ITEM,
    EmbeddingView,
    FeatureView,
    OfflineStore,
    OnlineStore,
    SQLiteOnline,
    default_repository,
    materialize,
    replay,
)


class CountingBackend(SQLiteOnline):
    """SQLite backend that counts round trips."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gets = 0
        self.catalog_reads = 0

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        self.gets += 1
        return super().get(keys)

    def catalog(self, items: Sequence[str] | None = None) -> dict[str, str]:
        self.catalog_reads += 1
        return super().catalog(items)


@pytest.fixture(scope="module")
def materialized(offline: OfflineStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[OnlineStore, int]:
    online = OnlineStore(SQLiteOnline(tmp_path_factory.mktemp("online") / "online.sqlite"))
    results = [materialize(v, offline, online) for v in default_repository().views.values()]
    return online, results[0].as_of


def test_materialized_values_equal_the_replay(
    materialized: tuple[OnlineStore, int], offline: OfflineStore, catalog_map: dict[str, str],
    active_entities: Callable[..., list[Any]],
) -> None:
    online, as_of = materialized
    for view in default_repository().views.values():
        assert isinstance(view, FeatureView)
        keys = active_entities(offline, view, as_of)
        expected, absent = replay(view, offline.events(end=as_of), catalog=catalog_map).features(keys, as_of, catalog_map)
        frame = online.read(view, keys, as_of=as_of)
        assert np.array_equal(frame.values, expected, equal_nan=True), view.name
        assert np.array_equal(frame.absent, absent)
        assert online.watermarks(view)["materialized"] == as_of


def test_many_views_and_entities_in_one_round_trip(offline: OfflineStore, tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path / "o.sqlite")
    online = OnlineStore(backend)
    repo = default_repository()
    for view in repo.views.values():
        materialize(view, offline, online)
    online = OnlineStore(backend)  # a fresh reader: catalog not cached yet
    users = offline.events()["user_id"].unique()[:50].tolist()
    items = offline.events()["item_id"].unique()[:50].tolist()
    backend.gets = backend.catalog_reads = 0
    frames = online.read_many([(repo.view("user_activity"), users), (repo.view("item_stats"), items)])
    assert backend.gets == 1 and backend.catalog_reads == 1  # one read of states (+ the catalog once)
    assert [f.view for f in frames] == ["user_activity", "item_stats"]
    assert frames[1].values.shape == (50, 20)
    backend.gets = backend.catalog_reads = 0
    online.read_many([(repo.view("item_stats"), items)])
    assert (backend.gets, backend.catalog_reads) == (1, 0)  # the catalog stays cached
    online.read(repo.view("item_stats"), ["brand-new-item"])
    online.read(repo.view("item_stats"), ["brand-new-item"])
    assert backend.catalog_reads == 1  # an unknown item is looked up once, then remembered


def test_async_reads_equal_sync_reads(materialized: tuple[OnlineStore, int], offline: OfflineStore) -> None:
    online, as_of = materialized
    view = default_repository().view("item_stats")
    items = offline.events()["item_id"].unique()[:30].tolist()
    sync = online.read(view, items, as_of=as_of)
    result = asyncio.run(online.aread(view, items, as_of=as_of))
    assert np.array_equal(sync.values, result.values, equal_nan=True)


def test_feature_frame_forms(materialized: tuple[OnlineStore, int], offline: OfflineStore) -> None:
    online, as_of = materialized
    view = default_repository().view("user_category_affinity")
    user, category = offline.events()["user_id"].iloc[-1], "Nowhere"
    frame = online.read(view, [(user, category), f"{user}|{category}"], as_of=as_of)
    assert frame.keys == [f"{user}|{category}"] * 2
    dicts = frame.to_dicts()
    assert dicts[0]["seconds_since_view"] is None and dicts[0]["seconds_since_view_absent"] == 1.0
    assert frame.to_pandas().shape == (2, len(view.feature_names()))
    assert frame.row((user, category))["count_view_30d"] == 0.0


def test_embeddings_are_served_like_features(tmp_path: Path) -> None:
    online = OnlineStore(SQLiteOnline(tmp_path / "o.sqlite"))
    view = EmbeddingView(name="vec", entity=ITEM, dim=4)
    online.write_embeddings(view, ["a", "b"], np.arange(8, dtype=np.float32).reshape(2, 4))
    frame = online.read(view, ["b", "missing"])
    assert frame.names == ["vec_0", "vec_1", "vec_2", "vec_3"]
    assert frame.values[0].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert frame.absent.tolist() == [False, True] and np.isnan(frame.values[1]).all()


def test_sqlite_values_expire_after_their_ttl(tmp_path: Path) -> None:
    backend = SQLiteOnline(tmp_path / "o.sqlite")
    backend.put([("k", b"v")], ttl_s=0.05)
    backend.put([("forever", b"w")], ttl_s=None)
    assert backend.get(["k", "forever"]) == [b"v", b"w"]
    time.sleep(0.1)
    assert backend.get(["k", "forever"]) == [None, b"w"]


def test_compiled_and_numpy_reads_give_the_same_bits(offline: OfflineStore, tmp_path: Path,
                                                     active_entities: Callable[..., list[Any]]) -> None:
    from aisle.features import Count, Max, Mean, Min, Rate, Recency
    from aisle.features._fastread import available

    if not available():
        pytest.skip("numba is not installed: only the numpy path exists")
    extra = FeatureView(
        name="every_kind", entity=ITEM, windows=("1h", "1d/15m", "7d"), ttl="3d",
        aggregations=(
            Count(), Mean("price", "view"), Min("price"), Max("price", missing="default"),
            Rate("cvr", numerator="purchase", denominator=("view", "click"), prior="global"),
            Rate("ctr", numerator="click", denominator="view", strength=3), Recency("purchase"),
        ),
    )
    backend = SQLiteOnline(tmp_path / "o.sqlite")
    views = [*default_repository().views.values(), extra]
    for view in views:
        materialize(view, offline, OnlineStore(backend))
    end = int(offline.stats()["max_ts_ns"]) + 1
    fast, slow = OnlineStore(backend, compiled=True), OnlineStore(backend, compiled=False)
    for view in views:
        assert isinstance(view, FeatureView)
        keys = active_entities(offline, view, end)[:300] + (["nobody"] if len(view.entity.keys) == 1 else [("nobody", "Shoes")])
        for as_of in (end, end + 5 * 3600 * 10**9, end + 6 * 86400 * 10**9):
            a, b = fast.read(view, keys, as_of=as_of), slow.read(view, keys, as_of=as_of)
            assert np.array_equal(a.values, b.values, equal_nan=True), (view.name, as_of)
            assert np.array_equal(a.absent, b.absent)
