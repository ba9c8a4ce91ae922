"""The aggregation engine: window semantics, smoothing, missing values, order and chunk invariance."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisle.features import (
    ITEM,
    USER,
    Count,
    FeatureView,
    Max,
    Mean,
    Min,
    Rate,
    Recency,
    Sum,
    compile_plan,
    default_repository,
    replay,
)
from aisle.simulate import SimulatedShop

H = 3600
WINDOW_VIEW = FeatureView(
    name="w", entity=USER, windows=("1h", "1d", "7d"),
    aggregations=(
        Count(), Count("purchase"), Sum("price", "purchase"), Mean("price", missing="flag"),
        Min("price"), Max("price"), Recency("view"),
    ),
)


def _reference(events: pd.DataFrame, user: str, as_of: int) -> dict[str, float]:
    """The view's features for one user, straight from the definition of a window."""
    plan = compile_plan(WINDOW_VIEW)
    ev = events[events["user_id"] == user]
    ts = ev["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    out: dict[str, float] = {}
    for w in WINDOW_VIEW.windows:
        hop = int(w.hop.total_seconds() * 1e9)
        start = ((as_of - 1) // hop - w.n_tiles + 1) * hop
        inside = ev[(ts >= start) & (ts < as_of)]
        prices = inside["price"].dropna()
        purchases = inside[inside["event_type"] == "purchase"]
        out[f"count_events_{w.name}"] = float(len(inside))
        out[f"count_purchase_{w.name}"] = float(len(purchases))
        out[f"sum_price_purchase_{w.name}"] = float(purchases["price"].dropna().sum())
        out[f"mean_price_events_{w.name}"] = float(prices.mean()) if len(prices) else math.nan
        out[f"min_price_events_{w.name}"] = float(prices.min()) if len(prices) else math.nan
        out[f"max_price_events_{w.name}"] = float(prices.max()) if len(prices) else math.nan
    views = ts[(ev["event_type"] == "view").to_numpy() & (ts < as_of) & (ts >= as_of - plan.lookback_ns)]
    out["seconds_since_view"] = (as_of - int(views.max())) / 1e9 if views.size else math.nan
    return out


event_rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["view", "click", "purchase"]),
        st.integers(0, 9 * 24 * H),
        st.one_of(st.none(), st.sampled_from([1.5, 9.99, 20.0, 125.25])),
    ),
    min_size=1, max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=event_rows, after=st.integers(0, 3 * 24 * H))
def test_tiles_match_the_window_definition(make_events: Callable[..., pd.DataFrame], rows: list[Any], after: int) -> None:
    events = make_events([(u, "i1", t, s, p if p is not None else math.nan) for u, t, s, p in rows])
    table = replay(WINDOW_VIEW, events, chunk_size=7)
    as_of = int(events["timestamp"].max().value) + 1 + after * 10**9
    values, absent = table.features(["u1", "u2", "u3"], as_of)
    names = compile_plan(WINDOW_VIEW).names
    for i, user in enumerate(["u1", "u2", "u3"]):
        got = dict(zip(names, values[i].tolist(), strict=True))
        if absent[i]:
            continue  # no event within the TTL: policies apply (tested elsewhere)
        for name, want in _reference(events, user, as_of).items():
            assert got[name] == pytest.approx(want, nan_ok=True, rel=1e-12, abs=1e-9), (user, name)


def test_chunking_does_not_change_a_bit(shop: SimulatedShop, catalog_map: dict[str, str], end_of_shop: int) -> None:
    events = shop.events.iloc[:3000]
    for view in default_repository().views.values():
        assert isinstance(view, FeatureView)
        whole = replay(view, events, catalog=catalog_map)
        pieces = replay(view, events, catalog=catalog_map, chunk_size=97)
        keys = [k for kind, k in whole.row_keys if kind == "e"]
        parsed: list[Any] = [k if len(view.entity.keys) == 1 else tuple(k.split("|")) for k in keys]
        a, _ = whole.features(parsed, end_of_shop, catalog_map)
        b, _ = pieces.features(parsed, end_of_shop, catalog_map)
        assert np.array_equal(a, b, equal_nan=True)
        rows = np.arange(len(whole))
        assert whole.blobs(rows) == pieces.blobs(np.array([pieces.find(*k) for k in whole.row_keys]))


def test_order_of_arrival_does_not_change_counts(shop: SimulatedShop, catalog_map: dict[str, str], end_of_shop: int) -> None:
    view = default_repository().view("item_stats")
    assert isinstance(view, FeatureView)
    events = shop.events
    shuffled = events.sample(frac=1.0, random_state=0)
    a = replay(view, events, catalog=catalog_map, chunk_size=500)
    b = replay(view, shuffled, catalog=catalog_map, chunk_size=500)
    items = sorted(events["item_id"].unique())[:200]
    va, _ = a.features(items, end_of_shop, catalog_map)
    vb, _ = b.features(items, end_of_shop, catalog_map)
    np.testing.assert_allclose(va, vb, rtol=1e-12, atol=1e-9)


def test_rates_are_smoothed_toward_the_category(make_events: Callable[..., pd.DataFrame]) -> None:
    view = FeatureView(
        name="conv", entity=ITEM, windows=("30d",),
        aggregations=(Rate("conversion", numerator="purchase", denominator="view", strength=20),),
    )
    rows = [("u", "tail", "view", 10), ("u", "tail", "purchase", 20)]
    rows += [("u", "head", "view", 30 + k) for k in range(1000)]
    rows += [("u", "head", "purchase", 2000 + k) for k in range(100)]
    rows += [("u", "other", "view", 5000 + k) for k in range(1000)]
    events = make_events(rows)
    catalog = {"tail": "Shoes", "head": "Shoes", "other": "Bags"}
    table = replay(view, events, catalog=catalog)
    as_of = int(events["timestamp"].max().value) + 1
    values, _ = table.features(["tail", "head", "unknown"], as_of, catalog)
    tail, head, unknown = values[:, 0]
    global_rate = 101 / 2001
    shoes_prior = (101 + 20 * global_rate) / (1001 + 20)
    assert tail == pytest.approx((1 + 20 * shoes_prior) / (1 + 20))
    assert tail < 0.2  # one view and one purchase is not "100 % conversion"
    assert head == pytest.approx((100 + 20 * shoes_prior) / (1000 + 20))
    assert unknown == pytest.approx(global_rate)  # absent, no category: the global prior


def test_missing_value_policies(make_events: Callable[..., pd.DataFrame]) -> None:
    view = FeatureView(
        name="m", entity=USER, windows=("1d",), ttl="2d",
        aggregations=(
            Count("view"), Mean("price"), Mean("price", name="mean_or_zero", missing={"policy": "default", "value": 0}),
            Min("price"), Recency(),
        ),
    )
    events = make_events([("old", "i", "view", 0, 10.0), ("new", "i", "view", 3 * 86400, 30.0), ("new", "i", "view", 3 * 86400 + 5, 50.0)])
    table = replay(view, events)
    as_of = int(events["timestamp"].max().value) + 1
    values, absent = table.features(["new", "old", "never"], as_of)
    got = [dict(zip(compile_plan(view).names, row, strict=True)) for row in values.tolist()]
    assert absent.tolist() == [False, True, True]  # "old" last acted 3 days ago: beyond the 2-day TTL
    assert got[0]["count_view_1d"] == 2 and got[0]["mean_price_events_1d"] == 40.0
    assert got[0]["min_price_events_1d_absent"] == 0.0 and got[0]["seconds_since_event"] == pytest.approx(5e-9, abs=1e-6)
    for row in got[1:]:
        assert row["count_view_1d"] == 0.0  # default policy: 0
        assert row["mean_price_events_1d"] == pytest.approx(40.0)  # prior policy: the global mean of the window
        assert row["mean_or_zero_1d"] == 0.0
        assert math.isnan(row["min_price_events_1d"]) and row["min_price_events_1d_absent"] == 1.0  # flag policy
        assert math.isnan(row["seconds_since_event"]) and row["seconds_since_event_absent"] == 1.0


def test_windows_decay_without_new_events(make_events: Callable[..., pd.DataFrame]) -> None:
    view = FeatureView(name="d", entity=USER, windows=("1h", "1d"), aggregations=(Count(),))
    events = make_events([("u", "i", "click", 0)])
    table = replay(view, events)
    t0 = int(events["timestamp"].max().value)
    at = [t0 + 1, t0 + 2 * H * 10**9, t0 + 2 * 86400 * 10**9]
    counts = [table.features(["u"], t)[0][0].tolist() for t in at]
    assert counts == [[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


def test_states_have_a_fixed_size_and_reject_others() -> None:
    plan = compile_plan(default_repository().view("item_stats"))  # type: ignore[arg-type]
    assert len(plan.empty_state) == plan.state_bytes
    from aisle.errors import DataError

    with pytest.raises(DataError, match="written by another definition"):
        plan.decode([b"short"])
