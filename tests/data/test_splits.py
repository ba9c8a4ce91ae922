"""Splits: no look-ahead (properties over random event logs), nothing lost, bad params refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisle.data._splits import (
    SPLITS,
    Split,
    fixed_split,
    leave_last_k,
    random_split,
    split_by_name,
    temporal_split,
    user_holdout,
)
from aisle.errors import ConfigError, DataError, SchemaError

MakeEvents = Callable[..., pd.DataFrame]
BASE_TIME = pd.Timestamp("2024-01-01", tz="UTC")  # time 0 of the conftest's make_events

# random event logs: few users, few distinct times (many ties), rows in no particular order
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u0", "u1", "u2", "u3", "u4"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["view", "click", "purchase"]),
        st.integers(0, 12),
    ),
    min_size=1,
    max_size=40,
)
FRACTION = st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.8])


def assert_partition(split: Split, events: pd.DataFrame) -> None:
    """Every input event is in exactly one part, with its columns, dtypes and index label."""
    parts = split.parts()
    ids = pd.concat([p["event_id"] for p in parts.values()])
    assert ids.is_unique
    assert set(ids) == set(events["event_id"])
    assert sum(len(p) for p in parts.values()) == len(events)
    for part in parts.values():
        assert list(part.columns) == list(events.columns)
        assert (part.dtypes == events.dtypes).all()
        assert part.index.is_monotonic_increasing  # input order kept
    whole = pd.concat(list(parts.values())).sort_index()
    pd.testing.assert_frame_equal(whole, events)


def order_key(part: pd.DataFrame) -> pd.Series:
    """(timestamp, input position) of each event, as one sortable tuple."""
    return pd.Series(list(zip(part["timestamp"], part.index, strict=True)), index=part.index)


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(rows=ROWS, test_fraction=FRACTION, validation=st.sampled_from([None, 0.2, 0.5]))
def test_temporal_split_has_no_look_ahead(
    make_events: MakeEvents,
    rows: list[tuple[Any, ...]],
    test_fraction: float,
    validation: float | None,
) -> None:
    events = make_events(rows)
    try:
        split = temporal_split(events, test_fraction=test_fraction, validation_fraction=validation)
    except DataError:
        # only when a cut is impossible: one timestamp overall, or in the train period
        ts = np.sort(events["timestamp"].unique())
        assert len(ts) < 2 or validation is not None
        return
    assert_partition(split, events)
    train, test = split.train, split.test
    assert len(train) and len(test)
    assert train["timestamp"].max() < test["timestamp"].min()
    cutoff = pd.Timestamp(split.params["cutoff"])
    assert train["timestamp"].max() < cutoff <= test["timestamp"].min()
    if validation is None:
        assert split.validation is None
    else:
        val = split.validation
        assert val is not None and len(val)
        assert train["timestamp"].max() < val["timestamp"].min()
        assert val["timestamp"].max() < test["timestamp"].min()


@settings(max_examples=80, deadline=None)
@given(rows=ROWS, test_fraction=FRACTION, fold_in=st.sampled_from([0.3, 0.5, 0.7]),
       validation=st.sampled_from([None, 0.3]))
def test_temporal_new_user_fold_in_has_no_look_ahead(
    make_events: MakeEvents, rows: list[tuple[Any, ...]], test_fraction: float, fold_in: float,
    validation: float | None,
) -> None:
    events = make_events(rows)
    try:
        split = temporal_split(events, test_fraction=test_fraction, new_user_fold_in=fold_in,
                               validation_fraction=validation)
    except DataError:
        return
    if validation is not None:
        assert split.validation_fold_in is not None and split.validation is not None
        assert not set(split.validation_fold_in["user_id"]) & set(split.train["user_id"])
        assert not set(split.fold_in["user_id"]) & set(split.validation["user_id"])  # type: ignore[index]
    assert_partition(split, events)
    assert split.fold_in is not None
    train_users = set(split.train["user_id"])
    # only users first seen after the cutoff get fold-in history, and it is after the cutoff
    assert not set(split.fold_in["user_id"]) & train_users
    cutoff = pd.Timestamp(split.params["cutoff"])
    assert (split.fold_in["timestamp"] >= cutoff).all()
    # per user, history comes no later than the events to predict
    for user, hist in split.fold_in.groupby("user_id"):
        targets = split.test[split.test["user_id"] == user]
        if len(targets):
            assert order_key(hist).max() < order_key(targets).min()


@settings(max_examples=80, deadline=None)
@given(
    rows=ROWS,
    k=st.integers(1, 3),
    validation_k=st.integers(0, 2),
    min_train=st.integers(0, 2),
    by=st.sampled_from(["time", "sequence"]),
)
def test_leave_last_k_has_no_look_ahead_per_user(
    make_events: MakeEvents,
    rows: list[tuple[Any, ...]],
    k: int,
    validation_k: int,
    min_train: int,
    by: str,
) -> None:
    events = make_events(rows)
    try:
        split = leave_last_k(
            events,
            k,
            by=by,  # type: ignore[arg-type]
            validation_k=validation_k,
            min_train=min_train,
        )
    except DataError:
        sizes = events["user_id"].value_counts()
        needed = min_train + k + validation_k if validation_k else min_train + k
        assert (sizes < needed).all()
        return
    assert_partition(split, events)

    def key(part: pd.DataFrame) -> pd.Series:
        return order_key(part) if by == "time" else pd.Series(part.index, index=part.index)

    val = split.validation if split.validation is not None else events.iloc[:0]
    sizes = events["user_id"].value_counts()
    for user, n in sizes.items():
        tr = key(split.train[split.train["user_id"] == user])
        va = key(val[val["user_id"] == user])
        te = key(split.test[split.test["user_id"] == user])
        if n >= min_train + k:
            assert len(te) == k
        else:
            assert len(te) == 0 and len(va) == 0
        if validation_k and n >= min_train + k + validation_k:
            assert len(va) == validation_k
        else:
            assert len(va) == 0
        if len(te) and len(tr) + len(va):
            assert max([*tr, *va]) < min(te)
        if len(va) and len(tr):
            assert max(tr) < min(va)


@settings(max_examples=80, deadline=None)
@given(
    rows=ROWS,
    test_users=st.sampled_from([0.2, 0.4]),
    fold=FRACTION,
    seed=st.integers(0, 5),
    validation=st.sampled_from([None, 0.2]),
)
def test_user_holdout_keeps_users_apart_and_history_first(
    make_events: MakeEvents,
    rows: list[tuple[Any, ...]],
    test_users: float,
    fold: float,
    seed: int,
    validation: float | None,
) -> None:
    events = make_events(rows)
    try:
        split = user_holdout(
            events,
            test_user_fraction=test_users,
            fold_in_fraction=fold,
            seed=seed,
            validation_user_fraction=validation,
        )
    except DataError:
        assert events["user_id"].nunique() < 2 + (validation is not None)
        return
    assert_partition(split, events)
    assert split.fold_in is not None
    train_users = set(split.train["user_id"])
    test_users_seen = set(split.test["user_id"]) | set(split.fold_in["user_id"])
    assert train_users and split.test.shape[0]
    assert not train_users & test_users_seen
    pairs = [(split.fold_in, split.test)]
    if validation is not None:
        assert split.validation is not None and split.validation_fold_in is not None
        val_users = set(split.validation["user_id"]) | set(split.validation_fold_in["user_id"])
        assert val_users and not val_users & train_users and not val_users & test_users_seen
        pairs.append((split.validation_fold_in, split.validation))
    for history, held in pairs:
        for user in set(held["user_id"]):
            h = order_key(history[history["user_id"] == user])
            t = order_key(held[held["user_id"] == user])
            assert len(t) >= 1
            if len(h):
                assert max(h) < min(t)
            assert len(h) == min(int(np.floor(fold * (len(h) + len(t)))), len(h) + len(t) - 1)


@settings(max_examples=40, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 3), validation=st.sampled_from([None, 0.3]))
def test_random_split_loses_nothing(
    make_events: MakeEvents, rows: list[tuple[Any, ...]], seed: int, validation: float | None
) -> None:
    events = make_events(rows)
    try:
        split = random_split(events, test_fraction=0.3, seed=seed, validation_fraction=validation)
    except DataError:
        assert len(events) < 2 + (validation is not None)
        return
    assert_partition(split, events)
    assert len(split.test) >= 1 and len(split.train) >= 1
    again = random_split(events, test_fraction=0.3, seed=seed, validation_fraction=validation)
    assert split.test.index.equals(again.test.index)


# --------------------------------------------------------------------------------------------
# temporal
# --------------------------------------------------------------------------------------------


def hourly(make_events: MakeEvents, n: int = 10, users: int = 2) -> pd.DataFrame:
    return make_events([(f"u{t % users}", f"i{t % 3}", "view", t) for t in range(n)])


def test_temporal_fraction_and_explicit_cutoff(make_events: MakeEvents) -> None:
    events = hourly(make_events)
    split = temporal_split(events, test_fraction=0.3)
    assert len(split.train) == 7 and len(split.test) == 3
    assert split.params["cutoff"] == (BASE_TIME + pd.Timedelta(hours=7)).isoformat()
    by_time = temporal_split(events, cutoff="2024-01-01T05:00:00")  # naive: UTC
    assert len(by_time.train) == 5 and by_time.params["test_fraction"] is None


def test_temporal_validation_sits_between(make_events: MakeEvents) -> None:
    events = hourly(make_events, n=20)
    split = temporal_split(events, test_fraction=0.25, validation_fraction=0.2)
    assert (
        len(split.train),
        len(split.validation if split.validation is not None else []),
        len(split.test),
    ) == (12, 3, 5)
    given = temporal_split(
        events,
        cutoff=BASE_TIME + pd.Timedelta(hours=15),
        validation_cutoff=BASE_TIME + pd.Timedelta(hours=10),
    )
    assert given.validation is not None
    assert given.validation["timestamp"].min() == BASE_TIME + pd.Timedelta(hours=10)
    with pytest.raises(ConfigError, match="validation_cutoff"):
        temporal_split(
            events,
            cutoff=BASE_TIME + pd.Timedelta(hours=5),
            validation_cutoff=BASE_TIME + pd.Timedelta(hours=6),
        )


def test_temporal_with_ties_never_splits_a_timestamp(make_events: MakeEvents) -> None:
    events = make_events([("u", "a", "view", t) for t in [0, 1, 1, 1, 1, 1, 1, 1, 2, 3]])
    split = temporal_split(events, test_fraction=0.5)
    assert split.train["timestamp"].max() < split.test["timestamp"].min()


def test_temporal_refuses_impossible_cuts(make_events: MakeEvents) -> None:
    events = hourly(make_events)
    with pytest.raises(DataError, match="leaves no events in train"):
        temporal_split(events, cutoff=BASE_TIME)
    with pytest.raises(DataError, match="leaves all events in train"):
        temporal_split(events, cutoff="2030-01-01")
    with pytest.raises(DataError, match="one timestamp"):
        temporal_split(make_events([("u", "a", "view", 0)] * 3))
    with pytest.raises(ConfigError, match="cutoff"):
        temporal_split(events, cutoff="soon")


def test_temporal_works_on_order_only_timestamps(make_events: MakeEvents) -> None:
    # sequence data: timestamps that are positions (1 ns apart) still split correctly
    events = make_events([("s1", f"i{k}", "click", k) for k in range(10)], unit="ns")
    split = temporal_split(events, test_fraction=0.2)
    assert split.test["item_id"].tolist() == ["i8", "i9"]


# --------------------------------------------------------------------------------------------
# leave-last-k
# --------------------------------------------------------------------------------------------


def test_leave_last_k_by_time_and_by_sequence(make_events: MakeEvents) -> None:
    # rows not in time order; u1's last two by time are e0 (t=9) and e3 (t=5)
    events = make_events(
        [
            ("u1", "a", "view", 9),
            ("u1", "b", "view", 1),
            ("u1", "c", "view", 2),
            ("u1", "d", "view", 5),
            ("u2", "a", "view", 3),
        ]
    )
    split = leave_last_k(events, 2)
    assert sorted(split.test["event_id"]) == ["e0", "e3"]
    assert split.train["event_id"].tolist() == ["e1", "e2", "e4"]  # u2 too short: all train
    seq = leave_last_k(events, 2, by="sequence")
    assert sorted(seq.test["event_id"]) == ["e2", "e3"]


def test_leave_last_k_ties_follow_input_order(make_events: MakeEvents) -> None:
    events = make_events([("u", "a", "view", 1), ("u", "b", "view", 1), ("u", "c", "view", 1)])
    split = leave_last_k(events, 1, validation_k=1)
    assert split.test["item_id"].tolist() == ["c"]
    assert split.validation is not None and split.validation["item_id"].tolist() == ["b"]


def test_leave_last_k_min_train(make_events: MakeEvents) -> None:
    events = make_events(
        [("u1", "a", "view", t) for t in range(3)] + [("u2", "a", "view", t) for t in range(2)]
    )
    split = leave_last_k(events, 1, min_train=2)
    assert split.test["user_id"].tolist() == ["u1"]
    with pytest.raises(DataError, match="enough events"):
        leave_last_k(events, 3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"k": 0}, "k"),
        ({"k": 1.5}, "k"),
        ({"validation_k": -1}, "validation_k"),
        ({"min_train": -1}, "min_train"),
        ({"by": "clock"}, "by"),
    ],
)
def test_leave_last_k_bad_params(
    make_events: MakeEvents, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        leave_last_k(hourly(make_events), **kwargs)


# --------------------------------------------------------------------------------------------
# user holdout, random, fixed
# --------------------------------------------------------------------------------------------


def test_user_holdout_is_deterministic_and_order_free(make_events: MakeEvents) -> None:
    events = make_events([(f"u{k % 10}", "a", "view", k) for k in range(50)])
    a = user_holdout(events, test_user_fraction=0.3, seed=1)
    b = user_holdout(events.iloc[::-1], test_user_fraction=0.3, seed=1)
    assert set(a.test["user_id"]) == set(b.test["user_id"])
    assert a.params["n_test_users"] == 3
    c = user_holdout(events, test_user_fraction=0.3, seed=2)
    assert isinstance(c.test, pd.DataFrame)  # another seed: another (valid) draw
    assert a.fold_in is not None
    # 5 events per held-out user, 80 % history: 4 fold-in, 1 test each
    assert len(a.fold_in) == 12 and len(a.test) == 3


def test_user_holdout_bad_params(make_events: MakeEvents) -> None:
    events = hourly(make_events, users=5)
    with pytest.raises(ConfigError, match="test_user_fraction"):
        user_holdout(events, test_user_fraction=1.0)
    with pytest.raises(ConfigError, match="fold_in_fraction"):
        user_holdout(events, fold_in_fraction=0)
    with pytest.raises(ConfigError, match="must be below 1"):
        user_holdout(events, test_user_fraction=0.5, validation_user_fraction=0.5)
    with pytest.raises(DataError, match="too few"):
        user_holdout(make_events([("u", "a", "view", 0)]))


def test_random_split_is_marked_as_look_ahead(make_events: MakeEvents) -> None:
    events = hourly(make_events, n=20)
    split = random_split(events, test_fraction=0.25, seed=3, validation_fraction=0.2)
    assert split.params["look_ahead"] is True
    assert (
        len(split.train),
        len(split.validation if split.validation is not None else []),
        len(split.test),
    ) == (12, 3, 5)
    assert "look-ahead" in (random_split.__doc__ or "")
    with pytest.raises(ConfigError, match="test_fraction"):
        random_split(events, test_fraction=0)


def test_fixed_split_carves_validation_by_time(make_events: MakeEvents) -> None:
    events = hourly(make_events, n=12)
    train, test = events.iloc[:10], events.iloc[10:]
    split = fixed_split(train, test, validation_fraction=0.2)
    assert split.validation is not None
    assert split.validation["timestamp"].min() > split.train["timestamp"].max()
    assert len(split.validation) == 2 and split.params["look_ahead"] is False
    assert_partition(split, events)
    shuffled = fixed_split(events.iloc[::2], events.iloc[1::2])
    assert shuffled.params["look_ahead"] is True
    with pytest.raises(SchemaError, match="different columns"):
        fixed_split(train, test.drop(columns=["page"]))
    with pytest.raises(ConfigError, match="validation_fraction"):
        fixed_split(train, test, validation_fraction=2)


# --------------------------------------------------------------------------------------------
# Split object, registry, input checks
# --------------------------------------------------------------------------------------------


def test_describe_and_train_with_validation(make_events: MakeEvents) -> None:
    events = hourly(make_events, n=20)
    split = temporal_split(events, test_fraction=0.25, validation_fraction=0.2)
    table = split.describe()
    assert table.index.tolist() == ["train", "validation", "test"]
    assert table["events"].tolist() == [12, 3, 5]
    assert table.loc["test", "first"] == BASE_TIME + pd.Timedelta(hours=15)
    assert table.loc["train", "last"] == BASE_TIME + pd.Timedelta(hours=11)
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["train", "users"] == 2
    pd.testing.assert_frame_equal(split.train_with_validation(), events.iloc[:15])
    assert "train=12" in repr(split)


def test_split_by_name(make_events: MakeEvents) -> None:
    events = hourly(make_events, n=20)
    assert set(SPLITS) == {"temporal", "leave-last", "user-holdout", "random", "fixed"}
    split = split_by_name("leave-last", events, k=2)
    assert split.name == "leave-last" and len(split.test) == 4
    assert split_by_name("temporal", events, test_fraction=0.5).name == "temporal"
    assert split_by_name("user-holdout", events).name == "user-holdout"
    assert split_by_name("random", events, seed=1).name == "random"
    fixed = split_by_name("fixed", events.iloc[:15], test=events.iloc[15:])
    assert fixed.name == "fixed" and len(fixed.test) == 5


def test_split_by_name_errors_list_what_is_valid(make_events: MakeEvents) -> None:
    events = hourly(make_events)
    with pytest.raises(ConfigError) as err:
        split_by_name("temproal", events)
    msg = str(err.value)
    assert "did you mean 'temporal'" in msg
    assert all(name in msg for name in SPLITS)
    with pytest.raises(ConfigError, match=r"'kk'.*k, by, validation_k, min_train"):
        split_by_name("leave-last", events, kk=1)
    with pytest.raises(ConfigError, match="test="):
        split_by_name("fixed", events)


def test_input_checks(make_events: MakeEvents) -> None:
    with pytest.raises(DataError, match="empty"):
        temporal_split(make_events([]))
    with pytest.raises(SchemaError, match="timestamp"):
        temporal_split(hourly(make_events).drop(columns=["timestamp"]))
    with pytest.raises(SchemaError, match="datetimes"):
        temporal_split(hourly(make_events).assign(timestamp=1))
    with pytest.raises(DataError, match="DataFrame"):
        leave_last_k([1, 2, 3])  # type: ignore[arg-type]
