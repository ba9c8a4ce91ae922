"""Validation of events, catalogs and users: clear errors, quarantine, nothing dropped silently."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from aisle.data import EVENT_COLUMNS, conform_catalog, conform_events, conform_users
from aisle.errors import ConfigError, DataWarning, SchemaError, ValidationError


def frame(**overrides: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "user_id": ["u1", "u2", "u1"],
        "item_id": ["a", "b", "c"],
        "event_type": ["view", "purchase", "add_to_cart"],
        "timestamp": ["2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z", "2024-05-01T11:00:00+02:00"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_canonical_columns_and_dtypes() -> None:
    events, report = conform_events(frame())
    assert list(events.columns) == [c.name for c in EVENT_COLUMNS]
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert events["user_id"].dtype == "str"
    assert events["price"].dtype == np.float64
    assert report.n_rows == 3 and report.n_loaded == 3 and report.n_quarantined == 0


def test_sorted_by_time_with_timezones_converted() -> None:
    events, _ = conform_events(frame())
    # 11:00+02:00 is 09:00 UTC: ties keep source order (row 2 before row 3)
    assert events["item_id"].tolist() == ["b", "c", "a"]
    assert events["timestamp"].iloc[1] == pd.Timestamp("2024-05-01T09:00:00Z")


def test_derived_event_ids_are_stable_and_unique() -> None:
    f = frame(user_id=["u1", "u1", "u1"], item_id=["a", "a", "a"], event_type=["view"] * 3,
              timestamp=["2024-05-01T10:00:00Z"] * 3)
    a, _ = conform_events(f)
    b, _ = conform_events(f)
    assert a["event_id"].is_unique
    assert a["event_id"].tolist() == b["event_id"].tolist()


def test_unix_seconds_and_milliseconds() -> None:
    s, _ = conform_events(frame(timestamp=[1714557600, 1714557601, 1714557602]))
    ms, _ = conform_events(frame(timestamp=[1714557600000, 1714557601000, 1714557602000]))
    assert (s["timestamp"] == ms["timestamp"]).all()
    assert s["timestamp"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00Z")


def test_aliases_and_default_event_type() -> None:
    ev, _ = conform_events(frame(event_type=["addtocart", "transaction", "PageView"]))
    assert sorted(ev["event_type"]) == ["add_to_cart", "purchase", "view"]
    f = frame().drop(columns="event_type")
    ev, _ = conform_events(f, event_type="click")
    assert set(ev["event_type"]) == {"click"}


def test_one_error_names_every_bad_row_and_column() -> None:
    f = frame(
        user_id=["u1", None, "u3"],
        event_type=["view", "purchase", "teleport"],
        timestamp=["2024-05-01T10:00:00Z", "yesterday", "2024-05-01T10:00:00Z"],
    )
    with pytest.raises(ValidationError) as info:
        conform_events(f, source="shop.csv")
    msg = str(info.value)
    assert "shop.csv" in msg and "2 of 3 rows" in msg
    assert "data row 2, column 'user_id'" in msg
    assert "data row 2, column 'timestamp'" in msg
    assert "data row 3, column 'event_type'" in msg
    assert "--on-error quarantine" in msg
    assert {p.row for p in info.value.problems} == {2, 3}


def test_impossible_timestamps_and_negative_numbers() -> None:
    future = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=30)).isoformat()
    f = frame(timestamp=["1960-01-01T00:00:00Z", future, "2024-05-01T10:00:00Z"],
              price=["1.5", "-2", "abc"])
    with pytest.raises(ValidationError) as info:
        conform_events(f)
    reasons = {(p.row, p.column): p.reason for p in info.value.problems}
    assert "impossible" in reasons[(1, "timestamp")]
    assert "impossible" in reasons[(2, "timestamp")]
    assert "negative" in reasons[(2, "price")]
    assert "not a number" in reasons[(3, "price")]


def test_duplicate_event_ids_name_the_first_row() -> None:
    f = frame(event_id=["e1", "e2", "e1"])
    with pytest.raises(ValidationError) as info:
        conform_events(f)
    (problem,) = info.value.problems
    assert problem.row == 3 and "first seen in data row 1" in problem.reason


def test_quarantine_keeps_good_rows_and_writes_reasons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = frame(item_id=["a", "", "c"])
    q = tmp_path / "q.csv"
    with pytest.warns(DataWarning, match="1 of 3 rows were quarantined"):
        events, report = conform_events(f, on_error="quarantine", quarantine_path=q)
    assert len(events) == 2 and report.n_quarantined == 1 and report.n_loaded == 2
    bad = pd.read_csv(q)
    assert bad["_row"].tolist() == [2]
    assert "item_id is missing" in bad["_reason"].iloc[0]
    assert bad["user_id"].iloc[0] == "u2"  # the row as read is kept


def test_quarantine_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="quarantine_path"):
        conform_events(frame(item_id=["a", None, "c"]), on_error="quarantine")


def test_missing_required_column_and_bad_mapping() -> None:
    with pytest.raises(SchemaError, match="required column 'item_id'"):
        conform_events(frame().drop(columns="item_id"))
    with pytest.raises(ConfigError, match="not canonical columns"):
        conform_events(frame(), mapping={"customer": "user_id"})
    with pytest.raises(SchemaError, match="not in the data"):
        conform_events(frame(), mapping={"user_id": "userId"})


def test_mapping_renames_and_numeric_ids_lose_float_suffix() -> None:
    f = pd.DataFrame({"userId": [1, 2], "movieId": [10.0, 20.0], "rating": [4.0, 2.5],
                      "ts": [964982703, 964981247]})
    ev, _ = conform_events(f, mapping={"user_id": "userId", "item_id": "movieId", "value": "rating",
                                       "timestamp": "ts"}, event_type="rating")
    assert sorted(ev["item_id"]) == ["10", "20"]
    assert sorted(ev["value"]) == [2.5, 4.0]


def test_polars_and_arrow_inputs() -> None:
    pl = pytest.importorskip("polars")
    import pyarrow as pa

    base = frame()
    a, _ = conform_events(pl.from_pandas(base))
    b, _ = conform_events(pa.Table.from_pandas(base))
    c, _ = conform_events(base)
    assert a["event_id"].tolist() == b["event_id"].tolist() == c["event_id"].tolist()
    with pytest.raises(ConfigError, match="expected a pandas DataFrame"):
        conform_events([1, 2, 3])


def test_catalog_and_users() -> None:
    cat = pd.DataFrame({"item_id": ["a", "b", "a"], "price": ["1", "x", "3"], "color": ["red", "blue", "red"]})
    with pytest.raises(ValidationError) as info:
        conform_catalog(cat)
    assert {(p.row, p.column) for p in info.value.problems} == {(2, "price"), (3, "item_id")}
    good, _ = conform_catalog(cat.iloc[:1])
    assert good["color"].tolist() == ["red"]  # extra attributes are kept
    users, _ = conform_users(pd.DataFrame({"user_id": ["u1"], "consent_tracking": ["yes"]}))
    assert users["consent_tracking"].tolist() == [True]


def test_no_warning_when_everything_is_valid() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conform_events(frame())


def test_fractional_and_nanosecond_timestamps_are_exact() -> None:
    ev, _ = conform_events(frame(timestamp=[1396314141.719, 1396314141.5, 1396314142.0]))
    assert ev["timestamp"].iloc[1] == pd.Timestamp("2014-04-01T01:02:21.719Z")
    ns = 1714557600123456789
    ev, _ = conform_events(frame(timestamp=[ns, ns + 1, ns + 2]))
    assert ev["timestamp"].iloc[0].value == ns


def test_catalog_dates_before_1970_are_fine() -> None:
    cat, _ = conform_catalog(pd.DataFrame({"item_id": ["a"], "created_at": ["1922-01-01"]}))
    assert cat["created_at"].iloc[0].year == 1922
