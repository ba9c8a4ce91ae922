"""Property tests: the simulator's invariants hold for any small config."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisle.data._schema import EVENT_COLUMNS, pandas_dtype
from aisle.simulate import RandomPolicy, ShopSimulator, SimulatorConfig


@st.composite
def configs(draw: st.DrawFn) -> SimulatorConfig:
    n_top = draw(st.integers(1, 3))
    mean_len = draw(st.floats(1.0, 8.0))
    return SimulatorConfig(
        seed=draw(st.integers(0, 10_000)),
        n_users=draw(st.integers(1, 150)),
        n_items=draw(st.integers(1, 60)),
        n_top_categories=n_top,
        n_sub_categories=draw(st.integers(1, 3)),
        n_brands=n_top + draw(st.integers(0, 4)),
        n_days=draw(st.integers(1, 8)),
        steps_per_day=draw(st.integers(1, 6)),
        n_factors=draw(st.integers(1, 6)),
        mean_session_length=mean_len,
        max_session_length=draw(st.integers(int(mean_len) + 1, 20)),
        position_bias=draw(st.sampled_from(["log", "geometric", "none"])),
        restock_every_days=draw(st.one_of(st.none(), st.integers(1, 4))),
        initial_stock_mean=draw(st.floats(1.0, 20.0)),
        new_item_fraction=draw(st.floats(0.0, 1.0)),
        new_user_fraction=draw(st.floats(0.0, 1.0)),
        mean_sessions_per_user=draw(st.floats(0.5, 10.0)),
        extra_quantity_mean=draw(st.floats(0.0, 1.0)),
    )


def _dtype(kind: Any) -> Any:
    return pd.Series([], dtype=pandas_dtype(kind)).dtype


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_invariants_hold_for_any_small_shop(cfg: SimulatorConfig) -> None:
    sim = ShopSimulator(cfg)
    shop = sim.generate()
    ev = shop.dataset.events
    items, users = shop.dataset.items, shop.dataset.users
    assert items is not None and users is not None
    assert list(ev.columns) == [c.name for c in EVENT_COLUMNS]
    for c in EVENT_COLUMNS:
        assert repr(ev[c.name].dtype) == repr(_dtype(c.kind)), c.name
    assert ev["timestamp"].is_monotonic_increasing and ev["event_id"].is_unique
    start = pd.Timestamp(cfg.start)
    if len(ev):
        assert ev["timestamp"].min() >= start
        assert ev["timestamp"].max() < start + pd.Timedelta(days=cfg.n_days)
    assert (shop.stock_ledger["stock_after"] >= 0).all()
    assert (items["stock"] >= 0).all()
    created = items.set_index("item_id")["created_at"]
    assert (ev["timestamp"].to_numpy() >= created.reindex(ev["item_id"]).to_numpy()).all()
    signup = users.set_index("user_id")["signup_at"]
    assert (ev["timestamp"].to_numpy() >= signup.reindex(ev["user_id"]).to_numpy()).all()
    # every purchase follows a cart of the same item in the same session
    inner = ev[ev["event_type"].isin(["add_to_cart", "purchase"])]
    key = inner["session_id"] + "|" + inner["item_id"]
    carts = set(key[inner["event_type"] == "add_to_cart"])
    assert set(key[inner["event_type"] == "purchase"]) <= carts

    run = sim.simulate_policy(RandomPolicy(seed=cfg.seed), n_days=1, k=3, state=shop.state)
    assert (run.state.stock >= 0).all()
    assert run.summary.n_impressions >= len(run.impressions)
    assert (run.impressions["position"].between(1, 3)).all()
