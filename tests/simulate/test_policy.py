"""Tests of policy simulation: determinism, events and impressions, stock, policies, errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aisle.data._schema import EVENT_COLUMNS, pandas_dtype
from aisle.errors import ConfigError, UnknownIdError
from aisle.simulate import (
    OraclePolicy,
    PolicyRun,
    PopularityPolicy,
    RandomPolicy,
    RankedLists,
    ShopSimulator,
    SimulatedShop,
    SimulatorConfig,
)


@pytest.fixture(scope="module")
def sim() -> ShopSimulator:
    return ShopSimulator(SimulatorConfig(seed=9, n_users=800, n_items=250, n_days=14, n_brands=12))


@pytest.fixture(scope="module")
def shop(sim: ShopSimulator) -> SimulatedShop:
    return sim.generate()


@pytest.fixture(scope="module")
def random_run(sim: ShopSimulator, shop: SimulatedShop) -> PolicyRun:
    return sim.simulate_policy(RandomPolicy(seed=1), n_days=7, state=shop.state)


def test_policy_run_is_deterministic(
    sim: ShopSimulator, shop: SimulatedShop, random_run: PolicyRun
) -> None:
    again = sim.simulate_policy(RandomPolicy(seed=1), n_days=7, state=shop.state)
    pd.testing.assert_frame_equal(again.events, random_run.events)
    pd.testing.assert_frame_equal(again.impressions, random_run.impressions)
    assert again.summary == random_run.summary
    other = sim.simulate_policy(RandomPolicy(seed=2), n_days=7, state=shop.state)
    assert not other.impressions["item_id"].equals(random_run.impressions["item_id"])
    # the same visits for every policy (common random numbers)
    assert other.summary.n_visits == random_run.summary.n_visits


def test_policy_events_and_impressions(shop: SimulatedShop, random_run: PolicyRun) -> None:
    ev, imp = random_run.events, random_run.impressions
    assert list(ev.columns) == [c.name for c in EVENT_COLUMNS]
    for c in EVENT_COLUMNS:
        assert repr(ev[c.name].dtype) == repr(pd.Series([], dtype=pandas_dtype(c.kind)).dtype)
    assert ev["timestamp"].is_monotonic_increasing and ev["event_id"].is_unique
    assert ev["timestamp"].min() >= shop.state.time
    assert ev["timestamp"].max() < shop.state.time + pd.Timedelta(days=7)
    listed = ev["event_type"] != "return"
    assert (ev.loc[listed, "page"] == "recommendations").all()
    assert ev.loc[listed, "position"].between(1, 10).all()
    assert list(imp.columns) == [
        "user_id", "item_id", "session_id", "position", "timestamp", "propensity", "clicked", "purchased",
    ]  # fmt: skip
    assert imp["timestamp"].is_monotonic_increasing
    sizes = imp.groupby("session_id").size()
    assert (sizes <= 10).all() and (sizes == 10).mean() > 0.99  # the run's end may cut a visit
    assert (imp.groupby("session_id")["item_id"].nunique() == sizes).all()
    # one view per impression, clicks and purchases match the outcome flags
    assert (ev["event_type"] == "view").sum() == len(imp)
    assert (ev["event_type"] == "click").sum() == imp["clicked"].sum()
    assert (ev["event_type"] == "purchase").sum() == imp["purchased"].sum()
    shown = ev.loc[listed, "session_id"].unique()
    assert set(shown) <= set(imp["session_id"])
    first = ev[listed].pivot_table(
        index=["session_id", "item_id"], columns="event_type", values="timestamp", aggfunc="min"
    )
    bought = first["purchase"].notna()
    assert (first.loc[bought, "click"] < first.loc[bought, "add_to_cart"]).all()
    assert (first.loc[bought, "add_to_cart"] < first.loc[bought, "purchase"]).all()
    # random policy: propensity 1 / number of available items
    assert ((imp["propensity"] > 0) & (imp["propensity"] < 0.05)).all()
    s = random_run.summary
    assert s.n_impressions == len(imp) and s.n_clicks == int(imp["clicked"].sum())
    assert s.ctr == pytest.approx(s.n_clicks / s.n_impressions)
    assert 0 < s.conversion_rate < 1 and s.revenue > 0 and 0 < s.margin < s.revenue
    assert set(s.as_dict()) >= {"ctr", "conversion_rate", "revenue", "margin"}


def test_deterministic_policy_has_propensity_one(sim: ShopSimulator, shop: SimulatedShop) -> None:
    run = sim.simulate_policy(PopularityPolicy.from_events(shop.events), n_days=2, state=shop.state)
    assert len(run.impressions) > 0
    assert (run.impressions["propensity"] == 1.0).all()


def test_position_bias_under_a_random_policy(random_run: PolicyRun) -> None:
    imp = random_run.impressions
    ctr = imp.groupby("position")["clicked"].mean()
    top, bottom = ctr.loc[1:3].mean(), ctr.loc[8:10].mean()
    assert top > 1.5 * bottom


def test_oracle_beats_random(
    sim: ShopSimulator, shop: SimulatedShop, random_run: PolicyRun
) -> None:
    oracle = sim.simulate_policy(OraclePolicy(shop.truth), n_days=7, state=shop.state)
    popular = sim.simulate_policy(
        PopularityPolicy.from_events(shop.events), n_days=7, state=shop.state
    )
    assert oracle.summary.n_visits == random_run.summary.n_visits
    assert oracle.summary.ctr > 2 * random_run.summary.ctr
    assert oracle.summary.ctr > popular.summary.ctr > random_run.summary.ctr
    assert oracle.summary.revenue > random_run.summary.revenue


def test_out_of_stock_items_cannot_be_bought() -> None:
    cfg = SimulatorConfig(
        seed=4, n_users=600, n_items=60, n_days=7, n_brands=6,
        initial_stock_mean=2, stock_sigma=0.0, restock_every_days=None,
    )  # fmt: skip
    sim = ShopSimulator(cfg)
    shop = sim.generate()
    best = sim.truth.item_ids[np.argsort(-sim.truth.item_popularity)[:10]]

    def stubborn(user_ids: np.ndarray, k: int, context: Mapping[str, Any]) -> list[list[str]]:
        return [list(best[:k]) for _ in user_ids]  # ignores stock on purpose

    run = sim.simulate_policy(stubborn, n_days=7, state=shop.state)
    start_stock = pd.Series(shop.state.stock, index=shop.state.item_ids)
    bought = run.events[run.events["event_type"] == "purchase"].groupby("item_id")["quantity"].sum()
    assert (bought <= start_stock.reindex(bought.index)).all()
    end_stock = pd.Series(run.state.stock, index=run.state.item_ids)
    assert (end_stock >= 0).all()
    spent = start_stock - end_stock
    assert spent.sum() == bought.sum()
    assert (end_stock.loc[best] == 0).sum() > 0  # the shown items sold out
    # shown while sold out, but never bought once gone
    assert (run.impressions["item_id"].isin(best)).all()


def test_runs_chain_through_state(sim: ShopSimulator, shop: SimulatedShop) -> None:
    policy = PopularityPolicy.from_events(shop.events)
    first = sim.simulate_policy(policy, n_days=2, state=shop.state)
    second = sim.simulate_policy(policy, n_days=2, state=first.state)
    assert second.start == first.state.time == shop.state.time + pd.Timedelta(days=2)
    assert second.events["timestamp"].min() >= first.state.time
    assert not second.events["session_id"].isin(first.events["session_id"]).any()
    # without a state the run starts after the generated period, from the initial stock
    fresh = sim.simulate_policy(policy, n_days=1)
    assert fresh.start == shop.state.time


def test_policy_forms(sim: ShopSimulator, shop: SimulatedShop) -> None:
    class Model:
        def recommend(self, user_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            ids = np.tile(shop.truth.item_ids[:k], (len(user_ids), 1))
            return ids, np.ones(ids.shape)

    users = shop.truth.user_ids[:100]
    run = sim.simulate_policy(Model(), n_days=3, users=users, k=5, state=shop.state)
    assert len(run.impressions) > 0
    assert run.impressions["user_id"].isin(users).all()
    assert (run.impressions["position"] <= 5).all()

    def with_propensities(user_ids: np.ndarray, k: int, context: Mapping[str, Any]) -> RankedLists:
        items = [list(context["available_items"][:k]) for _ in user_ids]
        return RankedLists(items, [[0.5] * len(row) for row in items])

    run = sim.simulate_policy(with_propensities, n_days=1, k=3, state=shop.state)
    assert (run.impressions["propensity"] == 0.5).all()

    def repeats(user_ids: np.ndarray, k: int, context: Mapping[str, Any]) -> np.ndarray:
        a, b = context["available_items"][:2]
        return np.array([[a, a, b, a] for _ in user_ids])

    run = sim.simulate_policy(repeats, n_days=1, state=shop.state)
    assert run.impressions.groupby("session_id")["position"].max().max() == 2
    assert not run.impressions.duplicated(["session_id", "item_id"]).any()


def test_policy_errors(sim: ShopSimulator, shop: SimulatedShop) -> None:
    policy = RandomPolicy()
    with pytest.raises(ConfigError, match="k must"):
        sim.simulate_policy(policy, k=0)
    with pytest.raises(ConfigError, match="n_days"):
        sim.simulate_policy(policy, n_days=0)
    with pytest.raises(UnknownIdError, match="nobody"):
        sim.simulate_policy(policy, users=["nobody"])

    def unknown_items(user_ids: np.ndarray, k: int, context: Mapping[str, Any]) -> list[list[str]]:
        return [["no-such-item"] for _ in user_ids]

    with pytest.raises(UnknownIdError, match="no-such-item"):
        sim.simulate_policy(unknown_items, n_days=1)

    def too_few(user_ids: np.ndarray, k: int, context: Mapping[str, Any]) -> list[list[str]]:
        return []

    with pytest.raises(ConfigError, match="lists for"):
        sim.simulate_policy(too_few, n_days=1)
    with pytest.raises(ConfigError, match="policy must"):
        sim.simulate_policy(object(), n_days=1)  # type: ignore[arg-type]
