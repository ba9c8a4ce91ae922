"""Tests of the shop simulator: schema, determinism, funnel, stock, bias, signal, config."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError as PydanticValidationError

from aisle.data._dataset import Dataset
from aisle.data._schema import (
    CATALOG_COLUMNS,
    EVENT_COLUMNS,
    USER_COLUMNS,
    ColumnSpec,
    pandas_dtype,
)
from aisle.errors import ConfigError
from aisle.simulate import (
    ShopSimulator,
    SimulatedShop,
    SimulatorConfig,
    examination,
    simulate,
)

FUNNEL = ("view", "click", "add_to_cart", "purchase", "return")


@pytest.fixture(scope="module")
def small_config() -> SimulatorConfig:
    return SimulatorConfig(seed=3, n_users=500, n_items=200, n_days=21, n_brands=12)


@pytest.fixture(scope="module")
def shop(small_config: SimulatorConfig) -> SimulatedShop:
    return ShopSimulator(small_config).generate()


def _dtype(kind: Any) -> Any:
    return pd.Series([], dtype=pandas_dtype(kind)).dtype


def _check_canonical(frame: pd.DataFrame, columns: tuple[ColumnSpec, ...]) -> None:
    assert list(frame.columns)[: len(columns)] == [c.name for c in columns]
    for c in columns:
        assert repr(frame[c.name].dtype) == repr(_dtype(c.kind)), c.name
        if c.required:
            assert not frame[c.name].isna().any(), c.name


# -- schema -----------------------------------------------------------------------------------
def test_events_follow_the_canonical_schema(shop: SimulatedShop) -> None:
    ev = shop.dataset.events
    assert isinstance(shop.dataset, Dataset)
    assert shop.dataset.name == "simulated"
    _check_canonical(ev, EVENT_COLUMNS)
    assert list(ev.columns) == [c.name for c in EVENT_COLUMNS]
    assert len(ev) > 1_000
    assert set(ev["event_type"].unique()) == set(FUNNEL)
    assert ev["timestamp"].is_monotonic_increasing
    assert ev["event_id"].is_unique
    assert ev["user_id"].str.fullmatch(r"u\d{6}").all()
    assert ev["item_id"].str.fullmatch(r"i\d{5}").all()
    assert ev["session_id"].str.fullmatch(r"s\d{7}").all()
    assert set(ev["device"].unique()) <= {"mobile", "desktop", "app"}
    assert set(ev["page"].unique()) <= {"home", "category", "search", "product", "orders"}
    assert ev["value"].isna().all()
    assert (ev["price"] > 0).all()
    listed = ev["event_type"] != "return"
    assert (ev.loc[listed, "position"] >= 1).all()
    assert (ev.loc[~listed, "page"] == "orders").all()
    units = ev["event_type"].isin(["add_to_cart", "purchase", "return"])
    assert (ev.loc[units, "quantity"] >= 1).all()
    assert ev.loc[~units, "quantity"].isna().all()
    # every event of a session belongs to one user
    assert (ev.groupby("session_id")["user_id"].nunique() == 1).all()


def test_catalog_and_users_follow_the_canonical_schema(shop: SimulatedShop) -> None:
    items, users = shop.dataset.items, shop.dataset.users
    assert items is not None and users is not None
    _check_canonical(items, CATALOG_COLUMNS)
    _check_canonical(users, USER_COLUMNS)
    assert items["item_id"].is_unique and users["user_id"].is_unique
    assert len(items) == 200 and len(users) == 500
    assert items["category"].str.fullmatch(r"[^/]+/[^/]+").all()
    assert items["category"].nunique() > 4
    assert (items["text"].str.len() > 20).all()
    assert ((items["margin"] > 0) & (items["margin"] < 1)).all()
    assert (items["price"] > 0).all() and (items["stock"] >= 0).all()
    assert set(users["segment"].unique()) == {"bargain", "mainstream", "premium"}
    # every event refers to a catalog item and a known user
    ev = shop.dataset.events
    assert ev["item_id"].isin(items["item_id"]).all()
    assert ev["user_id"].isin(users["user_id"]).all()


def test_the_data_validator_accepts_the_tables_unchanged(shop: SimulatedShop) -> None:
    from aisle.data import conform_catalog, conform_events, conform_users

    ds = shop.dataset
    assert ds.items is not None and ds.users is not None
    for conform, frame in (
        (conform_events, ds.events),
        (conform_catalog, ds.items),
        (conform_users, ds.users),
    ):
        out, _report = conform(frame)
        pd.testing.assert_frame_equal(out.reset_index(drop=True), frame.reset_index(drop=True))


# -- determinism ------------------------------------------------------------------------------
def test_same_config_gives_identical_output(
    small_config: SimulatorConfig, shop: SimulatedShop
) -> None:
    again = ShopSimulator(small_config).generate()
    pd.testing.assert_frame_equal(again.dataset.events, shop.dataset.events)
    assert (
        pd.util.hash_pandas_object(again.dataset.events, index=False).to_numpy()
        == pd.util.hash_pandas_object(shop.dataset.events, index=False).to_numpy()
    ).all()
    assert again.dataset.items is not None and shop.dataset.items is not None
    pd.testing.assert_frame_equal(again.dataset.items, shop.dataset.items)
    pd.testing.assert_frame_equal(again.stock_ledger, shop.stock_ledger)


def test_different_seeds_differ(small_config: SimulatorConfig, shop: SimulatedShop) -> None:
    other = ShopSimulator(small_config.model_copy(update={"seed": 4})).generate()
    a, b = shop.dataset.events, other.dataset.events
    assert len(a) != len(b) or not a["item_id"].equals(b["item_id"])
    assert not np.allclose(other.truth.user_factors, shop.truth.user_factors)


# -- funnel -----------------------------------------------------------------------------------
def test_funnel_follows_view_click_cart_purchase_in_session(shop: SimulatedShop) -> None:
    ev = shop.dataset.events
    inner = ev[ev["event_type"] != "return"]
    first = inner.pivot_table(
        index=["session_id", "user_id", "item_id"],
        columns="event_type",
        values="timestamp",
        aggfunc="min",
    )
    bought = first["purchase"].notna()
    assert bought.sum() > 20
    assert first.loc[bought, ["view", "click", "add_to_cart"]].notna().all().all()
    assert (first.loc[bought, "add_to_cart"] < first.loc[bought, "purchase"]).all()
    carted = first["add_to_cart"].notna()
    assert first.loc[carted, ["view", "click"]].notna().all().all()
    assert (first.loc[carted, "click"] < first.loc[carted, "add_to_cart"]).all()
    clicked = first["click"].notna()
    assert first.loc[clicked, "view"].notna().all()
    assert (first.loc[clicked, "view"] < first.loc[clicked, "click"]).all()
    # one purchase at most per item and session, with the carted quantity
    counts = inner[inner["event_type"] == "purchase"].groupby(["session_id", "item_id"]).size()
    assert counts.max() == 1


def test_returns_follow_purchases(shop: SimulatedShop) -> None:
    ev = shop.dataset.events
    buys = ev[ev["event_type"] == "purchase"]
    rets = ev[ev["event_type"] == "return"]
    assert len(rets) > 0
    n_buys = buys.groupby(["user_id", "item_id"]).size()
    n_rets = rets.groupby(["user_id", "item_id"]).size()
    assert (n_rets <= n_buys.reindex(n_rets.index).fillna(0)).all()
    first_buy = buys.groupby(["user_id", "item_id"])["timestamp"].min()
    first_ret = rets.groupby(["user_id", "item_id"])["timestamp"].min()
    delay = first_ret - first_buy.reindex(first_ret.index)
    assert (delay >= pd.Timedelta(hours=12)).all()
    # a return is a visit of its own, to the orders page
    assert not rets["session_id"].isin(buys["session_id"]).any()


def test_funnel_rates_match_the_config(shop: SimulatedShop) -> None:
    counts = shop.dataset.events["event_type"].value_counts()
    cfg = shop.config
    assert counts["click"] / counts["view"] == pytest.approx(cfg.click_rate, rel=0.3)
    assert counts["add_to_cart"] / counts["click"] == pytest.approx(cfg.cart_rate, rel=0.3)
    assert counts["purchase"] / counts["add_to_cart"] == pytest.approx(cfg.purchase_rate, rel=0.3)


# -- stock ------------------------------------------------------------------------------------
def test_stock_ledger_is_consistent(shop: SimulatedShop) -> None:
    led = shop.stock_ledger
    items = shop.dataset.items
    assert items is not None
    assert list(led.columns) == ["item_id", "timestamp", "change", "reason", "stock_after"]
    assert led["timestamp"].is_monotonic_increasing
    assert (led["stock_after"] >= 0).all()
    last = led.groupby("item_id")["stock_after"].last()
    final = items.set_index("item_id")["stock"]
    pd.testing.assert_series_equal(
        last.reindex(final.index), final, check_names=False, check_index_type=False
    )
    buys = shop.dataset.events.query("event_type == 'purchase'")
    assert -led.loc[led["reason"] == "purchase", "change"].sum() == buys["quantity"].sum()
    assert (led["reason"] == "restock").any()


def test_items_run_out_and_are_no_longer_shown() -> None:
    cfg = SimulatorConfig(
        seed=5,
        n_users=600,
        n_items=80,
        n_days=14,
        n_brands=8,
        initial_stock_mean=3,
        stock_sigma=0.0,
        restock_every_days=None,
    )
    shop = ShopSimulator(cfg).generate()
    ev = shop.dataset.events
    led = shop.stock_ledger
    assert (led["stock_after"] >= 0).all()
    bought = ev[ev["event_type"] == "purchase"].groupby("item_id")["quantity"].sum()
    assert (bought <= 3).all()
    sold_out = led[led["stock_after"] == 0].groupby("item_id")["timestamp"].min()
    assert len(sold_out) > 5
    session_start = ev.groupby("session_id")["timestamp"].transform("min")
    views = ev[ev["event_type"] == "view"].assign(start=session_start)
    late = views.merge(sold_out.rename("gone"), left_on="item_id", right_index=True)
    step = pd.Timedelta(days=1) / cfg.steps_per_day
    assert not (late["start"] >= late["gone"] + step).any()
    buys = ev[ev["event_type"] == "purchase"].merge(
        sold_out.rename("gone"), left_on="item_id", right_index=True
    )
    assert not (buys["timestamp"] > buys["gone"]).any()
    items = shop.dataset.items
    assert items is not None
    assert (items.set_index("item_id").loc[sold_out.index, "stock"] == 0).all()


# -- behaviour --------------------------------------------------------------------------------
def test_position_bias_is_visible(shop: SimulatedShop) -> None:
    ev = shop.dataset.events
    views = ev[ev["event_type"] == "view"].groupby("position").size()
    clicks = ev[ev["event_type"] == "click"].groupby("position").size()
    ctr = (clicks / views).reindex(range(1, 11))
    assert ctr[1] > ctr[2] > ctr[4] > ctr[8]
    assert ctr[1] > 2 * ctr[10]
    cfg = shop.config
    ex = examination(np.arange(1, 11), cfg)
    assert ex[0] == 1.0 and np.all(np.diff(ex) < 0)
    geo = examination([1, 2, 3], cfg.model_copy(update={"position_bias": "geometric"}))
    assert geo == pytest.approx([1.0, cfg.position_bias_decay, cfg.position_bias_decay**2])


def _recall_at_10(scores: np.ndarray, truth_sets: list[set[int]]) -> float:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    hits = [len(set(row) & t) / min(len(t), 10) for row, t in zip(top, truth_sets, strict=True)]
    return float(np.mean(hits))


def test_taste_signal_beats_popularity_on_future_clicks() -> None:
    cfg = SimulatorConfig(seed=11, n_users=1_500, n_items=300, n_days=45, n_brands=20)
    shop = ShopSimulator(cfg).generate()
    ev = shop.dataset.events
    cut = pd.Timestamp(cfg.start) + pd.Timedelta(days=34)
    signal = ev["event_type"].isin(["click", "add_to_cart", "purchase"])
    train = ev[signal & (ev["timestamp"] < cut)]
    test = ev[(ev["event_type"] == "click") & (ev["timestamp"] >= cut)]
    users = np.intersect1d(train["user_id"].unique(), test["user_id"].unique())
    assert len(users) > 200
    items = pd.Index(shop.truth.item_ids)
    uix = pd.Index(users)
    tr = train[train["user_id"].isin(users)]
    x = np.zeros((len(users), len(items)))
    x[uix.get_indexer(tr["user_id"]), items.get_indexer(tr["item_id"])] = 1.0
    te = test[test["user_id"].isin(users)]
    sets = te.groupby("user_id")["item_id"].agg(lambda s: set(items.get_indexer(s)))
    truth_sets = [sets[u] for u in users]

    popularity = np.tile(x.sum(axis=0), (len(users), 1))
    gram = x.T @ x + 100.0 * np.eye(len(items))  # EASE, a linear collaborative model
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    oracle = shop.truth.true_relevance(users, shop.truth.item_ids, event="click")

    r_pop = _recall_at_10(popularity, truth_sets)
    r_cf = _recall_at_10(x @ b, truth_sets)
    r_oracle = _recall_at_10(oracle, truth_sets)
    assert r_cf > 1.3 * r_pop
    assert r_oracle > 2 * r_pop


def test_true_relevance(shop: SimulatedShop) -> None:
    truth = shop.truth
    users, items = truth.user_ids[:7], truth.item_ids[:13]
    click = truth.true_relevance(users, items)
    cart = truth.true_relevance(users, items, event="add_to_cart")
    buy = truth.true_relevance(users, items, event="purchase")
    ret = truth.true_relevance(users, items, event="return")
    assert click.shape == (7, 13)
    for p in (click, cart, buy, ret):
        assert ((p > 0) & (p < 1)).all()
    assert (buy <= cart).all() and (cart <= click).all()
    at = pd.Timestamp(shop.config.start) + pd.Timedelta(days=3)
    seasonal = truth.true_relevance(users, items, at=at)
    assert seasonal.shape == (7, 13) and not np.allclose(seasonal, click)
    taste = truth.affinity(users, items)
    assert taste == pytest.approx(truth.user_factors[:7] @ truth.item_factors[:13].T)
    assert truth.user_factors.shape == (500, shop.config.n_factors)
    assert truth.item_popularity.shape == (200,)
    with pytest.raises(KeyError, match="nobody"):
        truth.true_relevance(["nobody"], items)
    with pytest.raises(ConfigError, match="event"):
        truth.true_relevance(users, items, event="teleport")  # type: ignore[arg-type]


def test_new_items_and_users_arrive_over_time(shop: SimulatedShop) -> None:
    cfg = shop.config
    start = pd.Timestamp(cfg.start)
    items, users = shop.dataset.items, shop.dataset.users
    assert items is not None and users is not None
    ev = shop.dataset.events
    new_items = items[items["created_at"] >= start]
    assert len(new_items) > 10 and (items["created_at"] < start).any()
    first_seen = ev.groupby("item_id")["timestamp"].min()
    created = items.set_index("item_id")["created_at"]
    assert (first_seen >= created.reindex(first_seen.index)).all()
    assert new_items["item_id"].isin(first_seen.index).sum() > 5  # cold-start items get shown
    new_users = users[users["signup_at"] >= start]
    assert len(new_users) > 50
    user_first = ev.groupby("user_id")["timestamp"].min()
    signup = users.set_index("user_id")["signup_at"]
    assert (user_first >= signup.reindex(user_first.index)).all()
    assert new_users["user_id"].isin(user_first.index).sum() > 20
    # the catalog grows: more items are listed late than at the start
    assert ev[ev["timestamp"] >= start + pd.Timedelta(days=14)]["item_id"].nunique() > 0


def test_untracked_users_leave_no_events() -> None:
    cfg = SimulatorConfig(seed=2, n_users=300, n_items=100, n_days=10, consent_tracking_rate=0.5)
    shop = ShopSimulator(cfg).generate()
    users = shop.dataset.users
    assert users is not None
    untracked = users.loc[~users["consent_tracking"].astype(bool), "user_id"]
    assert 0 < len(untracked) < len(users)
    assert not shop.dataset.events["user_id"].isin(untracked).any()


# -- config -----------------------------------------------------------------------------------
def test_bad_config_names_the_field() -> None:
    with pytest.raises(PydanticValidationError, match="n_users"):
        SimulatorConfig(n_users=0)
    with pytest.raises(ValueError, match="click_rate"):
        SimulatorConfig(click_rate=1.5)
    with pytest.raises(ValueError, match="n_brands"):
        SimulatorConfig(n_brands=2, n_top_categories=4)
    with pytest.raises(ValueError, match="max_session_length"):
        SimulatorConfig(max_session_length=3, mean_session_length=5)
    with pytest.raises(ConfigError, match="n_users"):
        simulate(n_users=-5)
    with pytest.raises(ConfigError, match="n_userz"):
        simulate(n_userz=5)
    with pytest.raises(ConfigError, match="n_events"):
        simulate(0)
    with pytest.raises(ConfigError, match="n_users"):
        simulate(1_000, n_users=10)
    cfg = SimulatorConfig()
    with pytest.raises(PydanticValidationError):
        cfg.n_users = 5  # type: ignore[misc]


def test_naive_start_is_utc() -> None:
    cfg = SimulatorConfig(start=pd.Timestamp("2023-06-01 00:00").to_pydatetime())
    assert cfg.start.utcoffset() == pd.Timedelta(0)


def test_simulate_sizes_the_shop_to_the_requested_events() -> None:
    shop = simulate(30_000, seed=1, n_days=20)
    assert 0.75 * 30_000 < len(shop.dataset.events) < 1.25 * 30_000
    assert shop.config.seed == 1 and shop.config.n_days == 20
    small = simulate(seed=1, n_users=100, n_items=50, n_days=5, n_brands=4)
    assert small.config.n_users == 100
