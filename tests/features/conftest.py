"""Shared fixtures of the feature-store tests: one simulated shop, its offline store, small logs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aisle.data._schema import EVENT_COLUMNS, pandas_dtype
from aisle.features import OfflineStore, RedisOnline
from aisle.simulate import SimulatedShop, simulate

REDIS_URL = "redis://127.0.0.1:6379/0"
BASE = pd.Timestamp("2024-03-01", tz="UTC")


def tiny_events(rows: Sequence[Sequence[Any]], *, start: int = 0) -> pd.DataFrame:
    """Canonical events from ``(user, item, event_type, seconds after BASE[, price])`` rows.

    ``event_id`` is ``e<start>, e<start+1>, ...``; rows are sorted by time (stable).
    """
    n = len(rows)
    data: dict[str, Any] = {c.name: pd.Series([None] * n, dtype=pandas_dtype(c.kind)) for c in EVENT_COLUMNS}  # type: ignore[call-overload]
    data["event_id"] = pd.Series([f"e{start + k}" for k in range(n)], dtype="str")
    data["user_id"] = pd.Series([str(r[0]) for r in rows], dtype="str")
    data["item_id"] = pd.Series([str(r[1]) for r in rows], dtype="str")
    data["event_type"] = pd.Series([str(r[2]) for r in rows], dtype="str")
    data["timestamp"] = pd.Series([BASE + pd.Timedelta(seconds=float(r[3])) for r in rows]).astype(pandas_dtype("timestamp"))  # type: ignore[call-overload]
    data["price"] = pd.Series([float(r[4]) if len(r) > 4 else np.nan for r in rows], dtype="float64")
    frame = pd.DataFrame(data)
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


@pytest.fixture(scope="session")
def shop() -> SimulatedShop:
    """One small simulated shop (about 11k events, 60 days) shared by the feature tests."""
    return simulate(8000, seed=3)


@pytest.fixture(scope="session")
def catalog_map(shop: SimulatedShop) -> dict[str, str]:
    """Item id -> category of the shop."""
    items = shop.dataset.items
    assert items is not None
    return dict(zip(items["item_id"].astype(str), items["category"].astype(str), strict=True))


@pytest.fixture(scope="session")
def offline(shop: SimulatedShop, tmp_path_factory: pytest.TempPathFactory) -> OfflineStore:
    """The shop's events and catalog in an offline store (read-only for tests)."""
    store = OfflineStore(tmp_path_factory.mktemp("offline"))
    store.ingest(shop.events, catalog=shop.dataset.items)
    return store


@pytest.fixture(scope="session")
def end_of_shop(shop: SimulatedShop) -> int:
    """Just after the shop's last event, in epoch ns."""
    return int(shop.events["timestamp"].max().value) + 1


@pytest.fixture
def redis_online() -> Iterator[RedisOnline]:
    """A Redis online backend under a unique prefix, deleted afterwards (needs Redis running)."""
    backend = RedisOnline(REDIS_URL, prefix=f"aisle-test-{uuid.uuid4().hex[:10]}")
    try:
        yield backend
    finally:
        backend.delete_prefix("")
        backend.close()


def entity_keys(offline: OfflineStore, view: Any, as_of: int) -> list[Any]:
    """Every entity of a view active within its TTL before ``as_of`` (str or tuple keys)."""
    ents = offline.entity_sample(view, as_of, 10**9)
    return [e[0] if len(e) == 1 else e for e in ents]


@pytest.fixture(scope="session")
def make_events() -> Callable[..., pd.DataFrame]:
    """:func:`tiny_events` as a fixture (session scope: safe with hypothesis)."""
    return tiny_events


@pytest.fixture(scope="session")
def active_entities() -> Callable[..., list[Any]]:
    """:func:`entity_keys` as a fixture."""
    return entity_keys
