"""The offline store: idempotent ingest, point-in-time training sets (property-tested)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisle.errors import SchemaError
from aisle.features import (
    ITEM,
    Count,
    EmbeddingView,
    FeatureView,
    Mean,
    Min,
    OfflineStore,
    Rate,
    Recency,
    Sum,
    default_repository,
    replay,
)
from aisle.simulate import SimulatedShop

H = 3600
PIT_VIEW = FeatureView(
    name="pit", entity=ITEM, windows=("1h", "1d", "7d"),
    aggregations=(
        Count("view"), Count("purchase"), Sum("price", "purchase"), Mean("price", "view"), Min("price"),
        Rate("conversion", numerator="purchase", denominator="view", strength=5), Recency(),
    ),
)
CATALOG = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["Shoes", "Shoes", "Bags"]})


def test_ingest_is_idempotent_and_sorted(shop: SimulatedShop, tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "off")
    first = store.ingest(shop.events.iloc[:5000], catalog=shop.dataset.items)
    again = store.ingest(shop.events.iloc[:6000])
    assert (first.n_new, first.n_duplicates) == (5000, 0)
    assert (again.n_new, again.n_duplicates) == (1000, 5000)
    events = store.events()
    assert len(events) == 6000 and events["event_id"].is_unique
    assert events["timestamp"].is_monotonic_increasing
    stats = store.stats()
    assert stats["n_events"] == 6000 and stats["n_files"] == 2
    assert store.catalog_map()[shop.dataset.items["item_id"].iloc[0]] == shop.dataset.items["category"].iloc[0]


def test_offline_recomputation_matches_the_tiles(
    shop: SimulatedShop, offline: OfflineStore, catalog_map: dict[str, str], active_entities: Callable[..., list[Any]]
) -> None:
    """Two independent windowing paths (DuckDB range joins vs tiles) agree at several times."""
    t_end = int(shop.events["timestamp"].max().value) + 1
    for as_of in (t_end - 20 * 86400 * 10**9 + 12_345, t_end):
        for view in default_repository().views.values():
            assert isinstance(view, FeatureView)
            table = replay(view, offline.events(end=as_of), catalog=catalog_map)
            keys = active_entities(offline, view, as_of)
            assert keys, view.name
            online, _ = table.features(keys, as_of, catalog_map)
            labels = pd.DataFrame([[k] if isinstance(k, str) else list(k) for k in keys], columns=list(view.entity.keys))
            labels["timestamp"] = pd.Timestamp(as_of, tz="UTC")
            off = offline.training_set(view, labels)[view.feature_names()].to_numpy(dtype=float)
            np.testing.assert_allclose(online, off, rtol=1e-9, atol=1e-9, err_msg=view.name)


def _store(root: str, events: pd.DataFrame) -> OfflineStore:
    store = OfflineStore(root)
    store.ingest(events, catalog=CATALOG)
    return store


rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]), st.sampled_from(["view", "view", "click", "purchase"]),
        st.integers(0, 8 * 24 * H), st.sampled_from([5.0, 12.5, 99.0]),
    ),
    min_size=1, max_size=50,
)
labels_strategy = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "z"]), st.integers(0, 9 * 24 * H)), min_size=1, max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=rows, label_rows=labels_strategy, future=rows)
def test_point_in_time_features_never_see_the_future(
    make_events: Callable[..., pd.DataFrame], history: list[Any], label_rows: list[Any], future: list[Any]
) -> None:
    """For every label row: the features equal the ones computed from events strictly before
    its timestamp, and adding events at or after it changes nothing."""
    events = make_events([(f"u{i % 3}", item, etype, t, price) for i, (item, etype, t, price) in enumerate(history)])
    labels = pd.DataFrame({
        "item_id": [i for i, _ in label_rows],
        "timestamp": [pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(seconds=t) for _, t in label_rows],
        "label": range(len(label_rows)),
    })
    t_max = max(t for _, t in label_rows)
    # Events no label may see: at the last label's timestamp exactly (features use events
    # strictly before it) and after it.
    later = [("x", item, "purchase", t_max, 1.0) for item in ("a", "b", "c")]
    later += [(f"u{i}", item, etype, t_max + t, price) for i, (item, etype, t, price) in enumerate(future)]
    more = make_events(history_rows(history) + later)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        base = _store(a, events).training_set(PIT_VIEW, labels)
        leaked = _store(b, more).training_set(PIT_VIEW, labels)
    names = PIT_VIEW.feature_names()
    np.testing.assert_allclose(
        base[names].to_numpy(dtype=float), leaked[names].to_numpy(dtype=float), rtol=1e-9, atol=1e-9
    )
    assert base["label"].tolist() == list(range(len(label_rows)))
    catalog = dict(zip(CATALOG["item_id"], CATALOG["category"], strict=True))
    for i, (item, _) in enumerate(label_rows):
        t = int(labels["timestamp"].iloc[i].value)
        before = events[events["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) < t]
        expected, _ = replay(PIT_VIEW, before, catalog=catalog).features([item], t, catalog)
        got = base.loc[i, names].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected[0], rtol=1e-9, atol=1e-9, err_msg=f"row {i}")


def history_rows(history: list[Any]) -> list[tuple[Any, ...]]:
    """The rows of the base history, in the form make_events takes."""
    return [(f"u{i % 3}", item, etype, t, price) for i, (item, etype, t, price) in enumerate(history)]


def test_training_set_keeps_labels_and_needs_keys(offline: OfflineStore, shop: SimulatedShop) -> None:
    view = default_repository().view("user_activity")
    sample = shop.events.sample(50, random_state=1)
    labels = pd.DataFrame({"user_id": sample["user_id"].to_numpy(), "timestamp": sample["timestamp"].to_numpy(),
                           "label": np.arange(50)}, index=np.arange(100, 150))
    out = offline.training_set(view, labels)
    assert out["label"].tolist() == list(range(50)) and len(out) == 50
    assert set(view.feature_names()) <= set(out.columns)
    assert not out[view.feature_names()].drop(columns=[c for c in view.feature_names() if "seconds_since" in c]).isna().any().any()
    with pytest.raises(SchemaError, match="timestamp"):
        offline.training_set(view, labels.drop(columns=["timestamp"]))


def test_embedding_views_join_by_key(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path)
    view = EmbeddingView(name="vec", entity=ITEM, dim=3)
    store.write_embeddings(view, ["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    labels = pd.DataFrame({"item_id": ["b", "zz"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")] * 2})
    out = store.training_set(view, labels)
    assert out.loc[0, ["vec_0", "vec_1", "vec_2"]].tolist() == [4.0, 5.0, 6.0]
    assert math.isnan(out.loc[1, "vec_0"])
    keys, vectors = store.embeddings(view)
    assert keys == [("a",), ("b",)] and vectors.shape == (2, 3)
