"""The strategy advisor on synthetic shops shaped like the cases it must tell apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest

from aisle.data._dataset import Dataset
from aisle.data._schema import EVENT_COLUMNS, pandas_dtype
from aisle.profile import AdvisorConfig, advise, compute_stats, profile

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def events(
    users: np.ndarray,
    items: np.ndarray,
    seconds: np.ndarray,
    types: np.ndarray | str = "view",
    **columns: object,
) -> pd.DataFrame:
    """A canonical event table from integer users/items and seconds after T0."""
    n = len(users)
    data: dict[str, object] = {
        "event_id": np.arange(n).astype(str),
        "user_id": np.char.add("u", np.asarray(users).astype(str)),
        "item_id": np.char.add("i", np.asarray(items).astype(str)),
        "event_type": np.broadcast_to(np.asarray(types), (n,)),
        **columns,
    }
    out = pd.DataFrame(
        {
            c.name: pd.Series(data[c.name], dtype=pandas_dtype(c.kind))  # type: ignore[call-overload]
            if c.name in data
            else pd.Series([None] * n, dtype=pandas_dtype(c.kind))  # type: ignore[call-overload]
            for c in EVENT_COLUMNS
            if c.name != "timestamp"
        }
    )
    out["timestamp"] = (T0 + pd.to_timedelta(np.asarray(seconds), unit="s")).as_unit("ns")
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def rich_catalog(n_items: int) -> pd.DataFrame:
    ids = [f"i{k}" for k in range(n_items)]
    return pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"Product {k}" for k in range(n_items)],
            "category": [f"Women/Shoes/{k % 7}" for k in range(n_items)],
            "brand": [f"brand{k % 13}" for k in range(n_items)],
            "text": [f"a long description of product {k} in soft leather" for k in range(n_items)],
            "price": np.linspace(5, 200, n_items),
        }
    )


def movielens_like(seed: int = 0, *, catalog: bool = True) -> Dataset:
    """Explicit ratings, many per user, rated in bursts; no session ids; titles and genres."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 400, 600
    per_user = rng.integers(20, 150, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=users.size, p=pop / pop.sum())
    start = rng.uniform(0, 200 * 86400, n_users)  # users arrive over 200 days
    back = rng.random(n_users) < 0.5  # half of them come back two weeks later
    second = rng.random(users.size) < 0.3
    seconds = start[users] + rng.uniform(0, 1800, users.size)
    seconds += np.where(back[users] & second, 14 * 86400, 0)
    ev = events(users, items, seconds, "rating", value=rng.integers(1, 6, users.size).astype(float))
    ev = ev.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    items_df = None
    if catalog:
        items_df = pd.DataFrame(
            {
                "item_id": [f"i{k}" for k in range(n_items)],
                "title": [f"Movie {k} (1995)" for k in range(n_items)],
                "genres": [["Drama", "Comedy", "Action"][k % 3] for k in range(n_items)],
            }
        )
    return Dataset("movielens-like", ev, items_df)


def anonymous_sessions(seed: int = 0) -> Dataset:
    """YooChoose-like: short anonymous click sessions, user_id == session_id, no catalog."""
    rng = np.random.default_rng(seed)
    n_sessions = 3000
    length = rng.integers(2, 7, n_sessions)
    sessions = np.repeat(np.arange(n_sessions), length)
    items = rng.zipf(1.4, sessions.size) % 800
    start = rng.uniform(0, 6 * 86400, n_sessions)
    seconds = start[sessions] + np.concatenate([np.arange(k) * 40.0 for k in length])
    ev = events(sessions, items, seconds, "click")
    ev["session_id"] = ev["user_id"]
    return Dataset("sessions", ev, None, anonymous_sessions=True)


def sparse_new_items(
    seed: int = 0, *, per_user: tuple[int, int] = (1, 3), catalog: bool = True
) -> Dataset:
    """A shop whose items keep arriving: each event is on an item listed in the last week."""
    rng = np.random.default_rng(seed)
    n_users, n_items, days = 3000, 2000, 120
    counts = rng.integers(per_user[0], per_user[1] + 1, n_users)
    users = np.repeat(np.arange(n_users), counts)
    listed = np.sort(rng.uniform(0, days * 86400, n_items))
    seconds = rng.uniform(7 * 86400, days * 86400, users.size)
    # an item listed in the 7 days before the event
    lo = np.searchsorted(listed, seconds - 7 * 86400)
    hi = np.searchsorted(listed, seconds)
    items = lo + (rng.random(users.size) * np.maximum(hi - lo, 1)).astype(int)
    items = np.minimum(items, n_items - 1)
    types = rng.choice(["view", "add_to_cart", "purchase"], users.size, p=[0.8, 0.12, 0.08])
    ev = events(users, items, seconds, types)
    return Dataset("new-items", ev, rich_catalog(n_items) if catalog else None)


# -------------------------------------------------------------------------------- strategy


def test_movielens_shape_is_collaborative() -> None:
    p = profile(movielens_like())
    assert p.sessions.source == "derived"
    assert p.activity.events_per_user.median >= 20
    assert p.strategy.name == "collaborative", p.strategy.reasons
    first = p.strategy.reasons[0]
    assert f"median user has {p.activity.events_per_user.median:.0f} events" in first
    assert {a.name for a in p.strategy.alternatives} == {"session-based", "content-based", "hybrid"}
    assert any("explicit" in n for n in p.strategy.notes)
    assert "Recall@10" in " ".join(k.name for k in p.kpis)
    assert p.latency_budget.batch_precompute_fits


def test_anonymous_short_sessions_are_session_based() -> None:
    p = profile(anonymous_sessions())
    assert p.strategy.name == "session-based"
    reason = p.strategy.reasons[0]
    assert "anonymous (user_id = session_id)" in reason and "3,000 sessions" in reason
    assert p.cold_start_plan.users.severity == "high"
    assert any("first click" in a for a in p.cold_start_plan.users.actions)
    lb = p.latency_budget
    assert lb.mode == "real-time" and not lb.batch_precompute_fits
    assert lb.p99_ms == AdvisorConfig().session_p99_ms
    kpi_names = [k.name for k in p.kpis]
    assert any("HitRate@20" in k for k in kpi_names)
    assert any("click-through" in k for k in kpi_names)
    why_not = {a.name: a.why_not for a in p.strategy.alternatives}
    assert "no catalog" in why_not["content-based"]


def test_logged_in_single_session_users_are_session_based() -> None:
    # users are known (no anonymous flag, no session ids) but come once for a few clicks
    ds = anonymous_sessions()
    ds = Dataset("one-visit", ds.events.drop(columns=["session_id"]), None)
    p = profile(ds)
    assert p.sessions.source == "derived" and not p.sessions.anonymous_sessions
    assert p.sessions.single_session_user_share is not None
    assert p.sessions.single_session_user_share > 0.9
    assert p.strategy.name == "session-based"
    assert "have a single session" in p.strategy.reasons[0]


def test_sparse_interactions_with_rich_metadata_and_new_items_are_content_based() -> None:
    p = profile(sparse_new_items())
    assert p.cold_start.mean_new_item_share is not None and p.cold_start.mean_new_item_share > 0.3
    assert p.activity.events_per_user.median < 5
    assert p.strategy.name in ("content-based", "hybrid")
    assert p.strategy.name == "content-based"
    assert any("metadata is rich" in r for r in p.strategy.reasons)
    assert p.cold_start_plan.items.severity == "high"
    assert any("content model" in a for a in p.cold_start_plan.items.actions)
    kpis = {k.name: k for k in p.kpis}
    assert "conversion rate (sessions with a purchase)" in kpis
    assert "revenue per session" in kpis  # catalog prices cover every purchase
    assert "add-to-cart rate" in kpis


def test_long_histories_with_many_new_items_and_rich_metadata_are_hybrid() -> None:
    p = profile(sparse_new_items(per_user=(10, 30)))
    assert p.activity.events_per_user.median >= 5
    assert p.strategy.name == "hybrid", p.strategy.reasons
    assert any("item side is hard" in r for r in p.strategy.reasons)


def test_new_items_without_metadata_stay_collaborative_and_say_why() -> None:
    p = profile(sparse_new_items(per_user=(10, 30), catalog=False))
    assert p.strategy.name == "collaborative"
    assert any("metadata cannot do better" in r for r in p.strategy.reasons)
    assert any("exploration" in a for a in p.cold_start_plan.items.actions)


# ----------------------------------------------------------------------------- the config


def test_config_is_frozen_typed_and_rejects_unknown_fields() -> None:
    cfg = AdvisorConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.min_median_user_events = 3
    with pytest.raises(pydantic.ValidationError):
        AdvisorConfig(min_median_user_event=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        AdvisorConfig(high_new_item_share=1.5)


def test_thresholds_change_the_decision() -> None:
    stats = compute_stats(movielens_like(catalog=False))
    assert advise(stats).strategy.name == "collaborative"
    strict = AdvisorConfig(session_single_user_share=0.0, session_max_median_user_events=10_000)
    assert advise(stats, strict).strategy.name == "session-based"


def test_metadata_richness_threshold() -> None:
    ds = sparse_new_items()
    assert ds.items is not None
    stats = compute_stats(ds)
    assert advise(stats).strategy.name == "content-based"
    # text filled for every item makes metadata rich however many attributes are demanded
    assert advise(stats, AdvisorConfig(min_rich_attributes=10)).strategy.name == "content-based"
    # without text, category and brand are 2 descriptive attributes (3 needed by default)
    no_text = compute_stats(Dataset("no-text", ds.events, ds.items.drop(columns=["text"])))
    advice = advise(no_text)
    assert advice.strategy.name == "collaborative"
    assert "category, brand" in advice.strategy.figures["descriptive_attributes"]  # type: ignore[operator]
    assert advise(no_text, AdvisorConfig(min_rich_attributes=2)).strategy.name == "content-based"


# ------------------------------------------------------------------- cold start, KPIs, serving


def test_latency_budget_batch_and_real_time() -> None:
    stats = compute_stats(movielens_like())
    lb = advise(stats).latency_budget
    assert lb.batch_precompute_fits and not lb.needs_ann
    assert lb.figures["precomputed_rows"] == stats.n_users * 100
    assert any(f"{stats.n_users:,} users x top-100" in r for r in lb.reasons)
    tight = advise(stats, AdvisorConfig(max_batch_rows=1000, ann_min_items=100)).latency_budget
    assert tight.mode == "real-time" and not tight.batch_precompute_fits and tight.needs_ann
    assert tight.p99_ms == AdvisorConfig().realtime_p99_ms


def test_returns_and_margins_add_kpis() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    users = rng.integers(0, 100, n)
    items = rng.integers(0, 50, n)
    types = rng.choice(["view", "purchase", "return"], n, p=[0.7, 0.25, 0.05])
    ev = events(
        users, items, np.sort(rng.uniform(0, 30 * 86400, n)), types, price=rng.uniform(1, 9, n)
    )
    catalog = rich_catalog(50).assign(margin=0.3)
    p = profile(Dataset("shop", ev, catalog))
    kinds = {k.name: k.kind for k in p.kpis}
    assert kinds["return rate of recommended purchases"] == "guardrail"
    assert kinds["margin per session"] == "business"
    assert kinds["catalog coverage@10"] == "guardrail"
    assert any(k.startswith("popularity bias") for k in kinds)
    ret = next(k for k in p.kpis if k.name.startswith("return rate"))
    assert f"{100 * p.feedback.return_rate:.0f} %" in ret.why  # type: ignore[operator]


def test_repeat_purchases_and_fast_drift_are_noted() -> None:
    # period 0 buys items 0-9, period 1 items 10-19: no overlap; each user rebuys the same item
    users = np.repeat(np.arange(40), 3)
    items = np.where(users < 20, users % 10, 10 + users % 10)
    seconds = np.where(users < 20, 0, 10 * 86400) + np.tile([0, 100, 200], 40)
    p = profile(Dataset("s", events(users, items, seconds, "purchase")), cold_start_periods=2)
    assert p.repeats.repeat_purchase_rate == 1.0
    assert p.drift.mean_jaccard == 0.0
    notes = " ".join(p.strategy.notes)
    assert "changes fast" in notes and "bought again" in notes


def test_every_reason_quotes_a_figure() -> None:
    for ds in (movielens_like(), anonymous_sessions(), sparse_new_items()):
        p = profile(ds)
        texts = p.strategy.reasons + [a.why_not for a in p.strategy.alternatives]
        texts += p.latency_budget.reasons + [k.why for k in p.kpis]
        for text in texts:
            assert any(ch.isdigit() for ch in text) or "no catalog" in text, text
