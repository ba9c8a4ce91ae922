"""Figures of aisle.profile checked against values computed by hand on tiny frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from aisle.data._dataset import Dataset
from aisle.data._schema import EVENT_COLUMNS, pandas_dtype
from aisle.errors import ConfigError, DataError, SchemaError
from aisle.profile import DataProfile, compute_stats, gini, profile

T0 = pd.Timestamp("2024-01-01", tz="UTC")
Row = tuple[str, str, str, float]  # user, item, event type, minutes after T0


def frame(rows: list[Row], **columns: list[object]) -> pd.DataFrame:
    """A canonical event table from (user, item, type, minutes) rows plus optional columns."""
    users, items, types, minutes = zip(*rows, strict=True)
    data: dict[str, object] = {
        "event_id": [str(k) for k in range(len(rows))],
        "user_id": users,
        "item_id": items,
        "event_type": types,
        "timestamp": T0 + pd.to_timedelta(np.asarray(minutes, dtype=float), unit="min"),
    }
    data.update(columns)
    out = pd.DataFrame(
        {
            c.name: pd.Series(data.get(c.name), dtype=pandas_dtype(c.kind))  # type: ignore[call-overload]
            for c in EVENT_COLUMNS
        }
    )
    out["timestamp"] = pd.DatetimeIndex(data["timestamp"]).as_unit("ns")  # type: ignore[arg-type]
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def dataset(rows: list[Row], *, items: pd.DataFrame | None = None, **kwargs: object) -> Dataset:
    columns = {k: v for k, v in kwargs.items() if k in {c.name for c in EVENT_COLUMNS}}
    flags = {k: v for k, v in kwargs.items() if k not in columns}
    return Dataset("tiny", frame(rows, **columns), items, **flags)  # type: ignore[arg-type]


DAY = 24 * 60.0

# ------------------------------------------------------------------------------------ gini


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([5, 5, 5, 5], 0.0),
        ([0, 0, 0, 1], 0.75),  # (n - 1) / n: one item holds everything
        ([1, 2, 3, 4], 0.25),  # 2 * (1 + 4 + 9 + 16) / (4 * 10) - 5 / 4
        ([4, 1, 3, 2], 0.25),  # order does not matter
        ([], 0.0),
    ],
)
def test_gini_of_known_distributions(counts: list[int], expected: float) -> None:
    assert gini(counts) == pytest.approx(expected)


def test_gini_matches_mean_absolute_difference() -> None:
    counts = np.random.default_rng(3).integers(0, 50, 200)
    diffs = np.abs(counts[:, None] - counts[None, :]).sum()
    assert gini(counts) == pytest.approx(diffs / (2 * len(counts) ** 2 * counts.mean()))


# ------------------------------------------------------------------------ activity and tail


def test_counts_density_and_per_user_distribution() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u1", "b", "view", 1),
        ("u1", "a", "purchase", 2),
        ("u1", "c", "view", 3),
        ("u2", "a", "view", 4),
        ("u2", "b", "click", 5),
        ("u3", "a", "view", 6),
    ]
    p = profile(dataset(rows))
    assert (p.n_users, p.n_items, p.n_events) == (3, 3, 7)
    assert list(p.activity.events_by_type) == ["view", "click", "purchase"]  # funnel order
    assert p.activity.events_by_type == {"view": 5, "click": 1, "purchase": 1}
    # pairs: u1-a, u1-b, u1-c, u2-a, u2-b, u3-a = 6 of 3 x 3
    assert p.activity.n_user_item_pairs == 6
    assert p.activity.density == pytest.approx(6 / 9)
    per_user = p.activity.events_per_user  # [4, 2, 1]
    assert (per_user.mean, per_user.median, per_user.min, per_user.max) == pytest.approx(
        (7 / 3, 2, 1, 4)
    )
    assert per_user.p90 == pytest.approx(2 + 0.8 * 2)  # linear: rank 1.8 between 2 and 4
    assert p.activity.events_per_item.max == 4  # item a


def test_long_tail_shares() -> None:
    # item 0 has 100 events, items 1..99 one each: 199 events on 100 items
    rows: list[Row] = [(f"u{k}", "i0", "view", k) for k in range(100)]
    rows += [(f"u{k}", f"i{k}", "view", 100 + k) for k in range(1, 100)]
    lt = profile(dataset(rows)).long_tail
    assert lt.top_1pct_items == 1
    assert lt.top_1pct_event_share == pytest.approx(100 / 199)
    assert lt.top_20pct_items == 20
    assert lt.top_20pct_event_share == pytest.approx(119 / 199)
    assert lt.tail_item_share == pytest.approx(0.99)
    # mean absolute difference: 2 * 99 * 99 / (2 * 100^2 * 1.99)
    assert lt.gini == pytest.approx(19602 / 39800)


# ------------------------------------------------------------------------------ cold start


def test_cold_start_shares_two_periods() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u2", "b", "view", 1 * DAY),
        ("u1", "a", "view", 2 * DAY),  # period 1 starts at day 2 (span 4 days / 2)
        ("u3", "c", "view", 3 * DAY),
        ("u3", "a", "view", 4 * DAY),
    ]
    cs = profile(dataset(rows), cold_start_periods=2).cold_start
    assert cs.applicable and cs.n_periods == 2 and len(cs.periods) == 1
    p1 = cs.periods[0]
    assert (p1.period, p1.n_events, p1.n_users, p1.n_items) == (1, 3, 2, 2)
    assert p1.start == (T0 + pd.Timedelta(days=2)).to_pydatetime()
    assert p1.new_user_share == pytest.approx(1 / 2)  # u3 of {u1, u3}
    assert p1.new_user_event_share == pytest.approx(2 / 3)  # u3's two events
    assert p1.new_item_share == pytest.approx(1 / 2)  # c of {a, c}
    assert p1.new_item_event_share == pytest.approx(1 / 3)
    assert cs.mean_new_user_share == pytest.approx(1 / 2)


def test_cold_start_four_periods_averages_later_periods() -> None:
    # one event per day 0..4 over 4 periods of one day; the last event falls in period 3
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u2", "a", "view", 1 * DAY),  # period 1: u2 new, a old
        ("u2", "b", "view", 2 * DAY),  # period 2: u2 old, b new
        ("u1", "a", "view", 3 * DAY),  # period 3 ...
        ("u3", "c", "view", 4 * DAY),  # ... with u3 and c new
    ]
    cs = profile(dataset(rows)).cold_start
    assert [r.period for r in cs.periods] == [1, 2, 3]
    assert [r.new_user_share for r in cs.periods] == pytest.approx([1, 0, 0.5])
    assert [r.new_item_share for r in cs.periods] == pytest.approx([0, 1, 0.5])
    assert cs.mean_new_user_share == pytest.approx(0.5)
    assert cs.mean_new_item_event_share == pytest.approx(0.5)


def test_cold_start_not_applicable_without_timestamps() -> None:
    rows: list[Row] = [("u1", "a", "view", 0), ("u1", "b", "view", 1), ("u2", "a", "view", 2)]
    p = profile(dataset(rows, has_timestamps=False))
    assert not p.cold_start.applicable and "order" in (p.cold_start.note or "")
    assert p.cold_start.mean_new_item_share is None
    assert not p.time_span.has_timestamps and p.time_span.days is None
    assert not p.drift.applicable
    assert p.sessions.source == "unavailable" and p.sessions.n_sessions is None
    assert p.cold_start_plan.items.severity == "unknown"


# -------------------------------------------------------------------------------- sessions


def test_sessions_derived_with_a_30_minute_gap() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u1", "b", "view", 10),
        ("u1", "c", "view", 45),  # 35 min gap: new session
        ("u1", "a", "view", 74),  # 29 min: same session
        ("u1", "b", "view", 200),  # new session of one event
        ("u2", "a", "view", 0),
        ("u2", "b", "view", 30),  # exactly 30 min: same session (gap must exceed 30)
        ("u3", "c", "view", 5),
    ]
    s = profile(dataset(rows)).sessions
    assert s.source == "derived" and s.gap_minutes == 30 and not s.anonymous_sessions
    assert s.n_sessions == 5  # lengths [2, 2, 1, 2, 1]
    assert s.length is not None and s.sessions_per_user is not None
    assert (s.length.mean, s.length.median, s.length.p90, s.length.max) == pytest.approx(
        (1.6, 2, 2, 2)
    )
    assert s.single_event_session_share == pytest.approx(2 / 5)
    assert s.sessions_per_user.max == 3
    assert s.single_session_user_share == pytest.approx(2 / 3)  # u2 and u3
    assert s.duration_minutes is not None
    assert s.duration_minutes.median == pytest.approx(10)  # durations [10, 29, 0, 30, 0]
    assert s.median_gap_seconds == pytest.approx(29 * 60)  # gaps 10, 29, 30 minutes


def test_session_gap_is_a_parameter() -> None:
    rows: list[Row] = [("u1", "a", "view", 0), ("u1", "b", "view", 45), ("u1", "c", "view", 200)]
    assert profile(dataset(rows)).sessions.n_sessions == 3
    assert profile(dataset(rows), session_gap_minutes=60).sessions.n_sessions == 2


def test_given_session_ids_equal_to_user_ids_mean_anonymous_users() -> None:
    rows: list[Row] = [("s1", "a", "click", 0), ("s1", "b", "click", 1), ("s2", "a", "click", 2)]
    s = profile(dataset(rows, session_id=["s1", "s1", "s2"])).sessions
    assert s.source == "given" and s.anonymous_sessions and s.n_sessions == 2
    assert s.note is not None and "anonymous" in s.note


def test_given_session_ids_are_scoped_by_user() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u1", "b", "view", 1),
        ("u2", "a", "view", 2),  # same session label "1" but another user
        ("u1", "c", "view", 300),
    ]
    s = profile(dataset(rows, session_id=["1", "1", "1", "2"])).sessions
    assert s.source == "given" and not s.anonymous_sessions
    assert s.n_sessions == 3
    assert s.single_session_user_share == pytest.approx(1 / 2)


def test_anonymous_flag_makes_each_user_a_session_without_session_ids() -> None:
    rows: list[Row] = [("s1", "a", "click", 0), ("s1", "b", "click", 500), ("s2", "a", "click", 2)]
    s = profile(dataset(rows, anonymous_sessions=True)).sessions
    assert s.source == "anonymous_users" and s.anonymous_sessions
    assert s.n_sessions == 2 and s.single_session_user_share == 1.0


# -------------------------------------------------------------------- repeats and feedback


def test_repeat_consumption() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u1", "a", "view", 1),
        ("u1", "a", "purchase", 2),
        ("u1", "a", "purchase", 3 * DAY),
        ("u2", "a", "purchase", 4),
        ("u2", "b", "purchase", 5),
        ("u3", "c", "view", 6),
    ]
    r = profile(dataset(rows)).repeats
    # (user, item, type): u1-a-view 2, u1-a-purchase 2, u2-a-p 1, u2-b-p 1, u3-c-view 1
    assert r.repeat_pair_share == pytest.approx(2 / 5)
    assert r.repeat_pair_share_by_type == pytest.approx({"view": 1 / 2, "purchase": 1 / 3})
    assert r.repeat_purchase_rate == pytest.approx(1 / 3)
    assert r.repeat_purchase_user_share == pytest.approx(1 / 2)  # u1 of buyers {u1, u2}
    # pairs u1-a (2 sessions), u2-a, u2-b, u3-c
    assert r.cross_session_repeat_share == pytest.approx(1 / 4)


def test_implicit_funnel_conversion_and_returns() -> None:
    rows: list[Row] = [(f"u{k}", "a", "view", k) for k in range(10)]
    rows += [(f"u{k}", "a", "click", 10 + k) for k in range(5)]
    rows += [(f"u{k}", "a", "add_to_cart", 20 + k) for k in range(4)]
    rows += [(f"u{k}", "a", "purchase", 30 + k) for k in range(2)]
    rows += [("u0", "a", "return", 40)]
    prices = [None] * 19 + [10.0, None, None]  # one of the two purchases has a price
    fb = profile(dataset(rows, price=prices)).feedback
    assert fb.kind == "implicit" and fb.n_ratings == 0 and fb.rating_values is None
    assert fb.funnel == {"view": 10, "click": 5, "add_to_cart": 4, "purchase": 2, "return": 1}
    assert fb.conversion == pytest.approx(
        {
            "view_to_click": 0.5,
            "click_to_add_to_cart": 0.8,
            "add_to_cart_to_purchase": 0.5,
            "view_to_purchase": 0.2,
            "click_to_purchase": 0.4,
        }
    )
    assert fb.return_rate == pytest.approx(0.5)
    assert fb.session_conversion_rate == pytest.approx(2 / 10)  # one session per user
    assert fb.purchase_price_share == pytest.approx(0.5)


def test_untracked_funnel_steps_have_no_ratio() -> None:
    rows: list[Row] = [("u1", "a", "click", 0), ("u2", "b", "click", 1)]
    fb = profile(dataset(rows)).feedback
    assert fb.conversion["click_to_purchase"] is None  # purchases are not logged at all
    assert fb.conversion["view_to_click"] is None
    assert fb.session_conversion_rate is None and fb.return_rate is None


def test_explicit_ratings_distribution() -> None:
    rows: list[Row] = [(f"u{k % 3}", f"i{k}", "rating", k) for k in range(6)]
    fb = profile(dataset(rows, value=[5.0, 4.0, 4.0, 3.0, 5.0, 1.0])).feedback
    assert fb.kind == "explicit" and fb.n_ratings == 6 and fb.rating_share == 1.0
    assert fb.rating_values == {"1": 1, "3": 1, "4": 2, "5": 2}
    assert (fb.rating_mean, fb.rating_min, fb.rating_max) == pytest.approx((22 / 6, 1, 5))


# -------------------------------------------------------------------------------- metadata


def test_metadata_coverage_per_attribute() -> None:
    rows: list[Row] = [("u1", "a", "view", 0), ("u1", "b", "view", 1), ("u2", "z", "view", 2)]
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["A", "B", "C", "D"],
            "category": ["x/y", "", None, "x"],  # an empty string is no value
            "price": [1.0, np.nan, 3.0, 4.0],
            "genres": [None, None, None, "drama"],
        }
    )
    md = profile(dataset(rows, items=items)).metadata
    assert md.has_catalog and md.n_catalog_items == 4
    assert md.catalog_coverage == pytest.approx(2 / 3)  # z is not in the catalog
    assert md.catalog_event_coverage == pytest.approx(2 / 3)
    assert md.catalog_items_without_events_share == pytest.approx(1 / 2)  # c, d
    assert md.attribute_coverage == pytest.approx(
        {"title": 1.0, "category": 0.5, "price": 0.75, "genres": 0.25}
    )
    assert md.extra_attributes == ["genres"]


def test_descriptive_attributes_skip_ids_links_numbers_and_copies() -> None:
    rows: list[Row] = [("u1", "a", "view", 0), ("u1", "b", "view", 1)]
    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "title": ["A", "B"],
            "category": ["Drama|Comedy", "Thriller"],
            "genres": ["Drama|Comedy", "Thriller"],  # a copy of category
            "imdb_url": ["http://imdb/a", "http://imdb/b"],
            "supplier_id": ["s1", "s2"],
            "weight": [1.0, 2.0],
            "material": ["leather", None],
        }
    )
    md = profile(dataset(rows, items=items)).metadata
    assert md.descriptive_attributes == ["category", "material"]
    assert md.extra_attributes == ["genres", "imdb_url", "supplier_id", "weight", "material"]


def test_no_catalog() -> None:
    md = profile(dataset([("u1", "a", "view", 0), ("u2", "a", "view", 1)])).metadata
    assert not md.has_catalog and md.catalog_coverage is None and md.attribute_coverage == {}


# ----------------------------------------------------------------------------------- drift


def test_drift_jaccard_and_spearman_of_top_items() -> None:
    # period 0 (day 0): a x3, b x2, c x1; period 1 (day 1 to 2): b x3, d x2, a x1
    rows: list[Row] = [("u0", i, "view", float(k)) for k, i in enumerate("aaabbc")]
    rows += [("u1", i, "view", DAY + k) for k, i in enumerate("bbbdd")]
    rows += [("u1", "a", "view", 2 * DAY)]
    d = profile(dataset(rows), cold_start_periods=2, drift_top_k=2).drift
    assert d.applicable and d.top_k == 2 and len(d.periods) == 1
    overlap = d.periods[0]
    # top-2: {a, b} then {b, d}: union {a, b, d}, intersection {b}
    assert overlap.n_compared == 3
    assert overlap.jaccard == pytest.approx(1 / 3)
    # counts over (a, b, d): (3, 2, 0) then (1, 3, 2); ranks (3, 2, 1) vs (1, 3, 2): r = -0.5
    assert overlap.spearman == pytest.approx(-0.5)
    assert d.mean_jaccard == pytest.approx(1 / 3)


def test_drift_identical_and_disjoint_periods() -> None:
    same: list[Row] = [("u", i, "view", float(k)) for k, i in enumerate("aaabbc")]
    same += [("u", i, "view", DAY + k) for k, i in enumerate("aaabbc")]
    d = profile(dataset(same), cold_start_periods=2, drift_top_k=3).drift
    assert d.mean_jaccard == pytest.approx(1.0) and d.mean_spearman == pytest.approx(1.0)

    disjoint: list[Row] = [("u", i, "view", float(k)) for k, i in enumerate("aab")]
    disjoint += [("u", i, "view", DAY + k) for k, i in enumerate("ccd")]
    d = profile(dataset(disjoint), cold_start_periods=2, drift_top_k=2).drift
    assert d.periods[0].jaccard == 0.0 and d.periods[0].n_compared == 4
    # union (a, b, c, d): before (2, 1, 0, 0), after (0, 0, 2, 1): ranks anti-correlated
    a = pd.Series([2, 1, 0, 0]).rank()
    b = pd.Series([0, 0, 2, 1]).rank()
    assert d.periods[0].spearman == pytest.approx(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------- output, errors, speed-ups


def test_to_dict_is_json_safe_with_the_top_level_keys() -> None:
    rows: list[Row] = [
        ("u1", "a", "view", 0),
        ("u2", "b", "purchase", 60),
        ("u1", "b", "view", 9000),
    ]
    out = profile(dataset(rows)).to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
    for key in (
        "n_users",
        "n_items",
        "n_events",
        "strategy",
        "activity",
        "time_span",
        "long_tail",
        "cold_start",
        "sessions",
        "repeats",
        "feedback",
        "metadata",
        "drift",
        "cold_start_plan",
        "kpis",
        "latency_budget",
    ):
        assert key in out, key
    assert {"name", "reasons", "alternatives"} <= set(out["strategy"])
    assert out["time_span"]["first"].startswith("2024-01-01T00:00:00")
    assert DataProfile.model_validate(out).n_events == 3  # the JSON round-trips


def test_render_shows_figures_and_strategy() -> None:
    rows: list[Row] = [("u1", "a", "view", 0), ("u2", "b", "click", 60), ("u1", "b", "view", 9000)]
    items = pd.DataFrame({"item_id": ["a", "b"], "category": ["[x]", "y"]})
    p = profile(Dataset("shop [test]", frame(rows), items))
    console = Console(record=True, width=120)
    console.print(p.render())
    text = console.export_text()
    assert "shop [test]" in text  # markup in names is escaped, not swallowed
    assert f"recommended strategy: {p.strategy.name}" in text
    assert "2 / 2 / 3" in text


def test_missing_column_empty_log_and_bad_parameters_raise() -> None:
    ok = frame([("u1", "a", "view", 0), ("u1", "b", "view", 1)])
    with pytest.raises(SchemaError, match="event_type"):
        profile(Dataset("x", ok.drop(columns=["event_type"])))
    with pytest.raises(DataError, match="no events"):
        profile(Dataset("x", ok.iloc[:0]))
    with pytest.raises(ConfigError):
        profile(Dataset("x", ok), cold_start_periods=1)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        compute_stats(Dataset("x", ok), session_gap_minutes=0)


def test_microsecond_timestamps_and_unsorted_events_are_handled() -> None:
    events = frame([("u1", "a", "view", 0), ("u1", "b", "view", 45), ("u2", "a", "view", 10)])
    shuffled = events.iloc[[2, 0, 1]].reset_index(drop=True)
    shuffled["timestamp"] = shuffled["timestamp"].dt.as_unit("us")
    p = profile(Dataset("x", shuffled))
    assert p.sessions.n_sessions == 3  # u1's 45-minute gap splits its events
    assert p.time_span.days == pytest.approx(45 / DAY)
