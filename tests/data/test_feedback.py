"""The implicit-feedback builder: weights, returns, ratings, decay, dedup, k-core, fold-in."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aisle.data._feedback import (
    DEFAULT_WEIGHTS,
    FeedbackConfig,
    Interactions,
    build_interactions,
    fold_in,
)
from aisle.data._schema import EVENT_TYPES
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning, SchemaError, UnknownIdError

BASE_TIME = pd.Timestamp("2024-01-01", tz="UTC")  # time 0 of the conftest's make_events
MakeEvents = Callable[..., pd.DataFrame]


def entries(inter: Interactions) -> dict[tuple[str, str], float]:
    frame = inter.to_frame()
    return {
        (u, i): float(w)
        for u, i, w in zip(frame["user_id"], frame["item_id"], frame["weight"], strict=True)
    }


def check_matrix(inter: Interactions) -> None:
    m = inter.matrix
    assert isinstance(m, sp.csr_array)
    assert m.dtype == np.float32
    assert m.shape == (len(inter.users), len(inter.items))
    assert m.has_sorted_indices
    copy = m.copy()
    copy.sort_indices()
    assert np.array_equal(copy.indices, m.indices)
    assert (m.data != 0).all()


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    cfg = FeedbackConfig()
    assert cfg.weights == DEFAULT_WEIGHTS
    assert cfg.returns == "cancel" and cfg.return_weight == 5.0
    assert cfg.rating_threshold == 4.0 and not cfg.rating_as_weight
    assert cfg.half_life_days is None and cfg.dedup == "sum"
    assert cfg.min_user_events == 0 and cfg.min_item_events == 0
    assert cfg.confidence == "none" and cfg.alpha == 1.0 and cfg.epsilon == 1.0


def test_config_unknown_event_type_names_key_and_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        FeedbackConfig(weights={"purchse": 5.0})
    msg = str(err.value)
    assert "'purchse'" in msg and "weights" in msg
    assert all(t in msg for t in ("view", "click", "add_to_cart", "purchase", "rating"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weights": {"return": 1.0}}, "return_weight"),
        ({"weights": {"view": -1.0}}, "view"),
        ({"weights": {"view": float("nan")}}, "weights"),
        ({"half_life_days": 0}, "half_life_days"),
        ({"alpha": -1}, "alpha"),
        ({"epsilon": 0}, "epsilon"),
        ({"return_weight": -2}, "return_weight"),
        ({"min_user_events": -1}, "min_user_events"),
        ({"dedup": "mean"}, "dedup"),
        ({"returns": "drop"}, "returns"),
        ({"confidance": "log"}, "confidance"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FeedbackConfig(**kwargs)


def test_config_is_frozen_and_round_trips() -> None:
    cfg = FeedbackConfig(weights={"purchase": 1.0}, half_life_days=7, dedup="max")
    with pytest.raises(ValueError):
        cfg.dedup = "sum"  # type: ignore[misc]
    assert FeedbackConfig(**cfg.model_dump()) == cfg
    assert FeedbackConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ConfigError, match="alpha"):
        FeedbackConfig.model_validate({"alpha": 0})


# --------------------------------------------------------------------------------------------
# weights and matrix shape
# --------------------------------------------------------------------------------------------


def test_default_weights_per_event_type(make_events: MakeEvents) -> None:
    rows = [("u", t, t, 0, 5 if t == "rating" else None) for t in EVENT_TYPES]
    inter = build_interactions(make_events(rows))
    check_matrix(inter)
    assert entries(inter) == {
        ("u", "view"): 1.0,
        ("u", "click"): 2.0,
        ("u", "add_to_cart"): 3.0,
        ("u", "purchase"): 5.0,
        ("u", "rating"): 1.0,
    }
    # search has weight 0 and a lone return cancels nothing: neither makes a column
    assert "search" not in inter.items and "return" not in inter.items


def test_only_listed_event_types_count(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u1", "b", "purchase", 1), ("u2", "a", "view", 2)])
    inter = build_interactions(ev, FeedbackConfig(weights={"purchase": 1.0}))
    assert entries(inter) == {("u1", "b"): 1.0}
    assert inter.users.to_list() == ["u1"]
    assert inter.items.to_list() == ["b"]


def test_vocabularies_follow_first_appearance(make_events: MakeEvents) -> None:
    ev = make_events([("u2", "b", "view", 0), ("u1", "a", "view", 1), ("u2", "c", "click", 2)])
    inter = build_interactions(ev)
    assert inter.users.to_list() == ["u2", "u1"]
    assert inter.items.to_list() == ["b", "a", "c"]
    assert inter.matrix.toarray().tolist() == [[1, 0, 2], [0, 1, 0]]


def test_helpers(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u1", "b", "purchase", 1), ("u2", "a", "click", 2)])
    inter = build_interactions(ev)
    assert (inter.n_users, inter.n_items, inter.nnz) == (2, 2, 3)
    assert inter.density == pytest.approx(0.75)
    items, weights = inter.user_items("u1")
    assert items.tolist() == ["a", "b"] and weights.tolist() == [1.0, 5.0]
    assert weights.dtype == np.float32
    with pytest.raises(UnknownIdError):
        inter.user_items("nobody")
    assert inter.reference_time == BASE_TIME + pd.Timedelta(hours=2)
    assert "nnz=3" in repr(inter)


def test_binarize_and_confidence(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u1", "b", "purchase", 1), ("u1", "c", "search", 1)])
    inter = build_interactions(ev, FeedbackConfig(confidence="linear", alpha=40))
    assert inter.confidence().toarray().tolist() == [[40.0, 200.0]]
    assert inter.binarize().matrix.toarray().tolist() == [[1.0, 1.0]]
    assert inter.matrix.toarray().tolist() == [[1.0, 5.0]]  # unchanged
    log = build_interactions(ev, FeedbackConfig(confidence="log", alpha=2, epsilon=0.5))
    assert np.allclose(log.confidence().toarray(), [[2 * math.log(3), 2 * math.log(11)]])
    plain = build_interactions(ev)
    assert plain.confidence().toarray().tolist() == [[1.0, 5.0]]


def test_empty_events_give_an_empty_matrix(make_events: MakeEvents) -> None:
    inter = build_interactions(make_events([]))
    assert inter.matrix.shape == (0, 0) and inter.nnz == 0 and inter.density == 0.0
    assert inter.reference_time is None


def test_missing_column_is_a_schema_error(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0)]).drop(columns=["event_type"])
    with pytest.raises(SchemaError, match="event_type"):
        build_interactions(ev)


def test_missing_ids_are_refused(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u2", "b", "view", 1)])
    ev.loc[1, "item_id"] = None
    with pytest.raises(DataError, match="'item_id' has 1 missing"):
        build_interactions(ev)
    with pytest.raises(DataError, match="'item_id' has 1 missing"):
        build_interactions(ev, items=["a", "b"])


def test_unknown_event_types_are_reported(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u1", "b", "wishlist", 1)])
    with pytest.warns(DataWarning, match="1 events of unknown type.*'wishlist'"):
        inter = build_interactions(ev)
    assert entries(inter) == {("u1", "a"): 1.0}


# --------------------------------------------------------------------------------------------
# returns
# --------------------------------------------------------------------------------------------


def test_return_cancels_the_purchase(make_events: MakeEvents) -> None:
    ev = make_events(
        [
            ("u", "a", "view", 0),
            ("u", "a", "purchase", 1),
            ("u", "a", "return", 2),
            ("u", "b", "purchase", 1),
            ("u", "b", "return", 2),
        ]
    )
    inter = build_interactions(ev)
    assert entries(inter) == {("u", "a"): 1.0}  # b's purchase is gone, and no negative left


def test_cancel_never_goes_below_zero(make_events: MakeEvents) -> None:
    ev = make_events(
        [
            ("u", "a", "purchase", 0),
            ("u", "a", "return", 1),
            ("u", "a", "return", 2),
            ("u", "a", "click", 3),
            ("u", "b", "return", 0),
        ]
    )
    inter = build_interactions(ev)
    assert entries(inter) == {("u", "a"): 2.0}


def test_return_only_cancels_earlier_purchases(make_events: MakeEvents) -> None:
    ev = make_events([("u", "a", "return", 0), ("u", "a", "purchase", 1)])
    assert entries(build_interactions(ev)) == {("u", "a"): 5.0}


def test_cancel_matches_the_latest_earlier_purchase(make_events: MakeEvents) -> None:
    day = 24
    cfg = FeedbackConfig(weights={"purchase": 4.0}, half_life_days=1.0)
    # buy on day 0 and day 1, return on day 2: the day-1 purchase is undone
    ev = make_events(
        [("u", "a", "purchase", 0), ("u", "a", "purchase", day), ("u", "a", "return", 2 * day)]
    )
    assert entries(build_interactions(ev, cfg)) == {("u", "a"): pytest.approx(4.0 / 4)}
    # buy day 0, return day 1, buy again day 2: the first purchase is undone
    ev = make_events(
        [("u", "a", "purchase", 0), ("u", "a", "return", day), ("u", "a", "purchase", 2 * day)]
    )
    assert entries(build_interactions(ev, cfg)) == {("u", "a"): pytest.approx(4.0)}


def test_negative_returns(make_events: MakeEvents) -> None:
    ev = make_events(
        [
            ("u", "a", "purchase", 0),
            ("u", "a", "return", 1),
            ("u", "b", "view", 0),
            ("u", "b", "return", 1),
        ]
    )
    inter = build_interactions(ev, FeedbackConfig(returns="negative", return_weight=2.0))
    assert entries(inter) == {("u", "a"): 3.0, ("u", "b"): -1.0}
    binary = build_interactions(ev, FeedbackConfig(returns="negative", dedup="binary"))
    assert entries(binary) == {("u", "b"): -1.0}  # a: 5 - 5 = 0 is not stored


def test_ignored_returns(make_events: MakeEvents) -> None:
    ev = make_events([("u", "a", "purchase", 0), ("u", "a", "return", 1), ("u", "b", "return", 1)])
    inter = build_interactions(ev, FeedbackConfig(returns="ignore"))
    assert entries(inter) == {("u", "a"): 5.0}
    assert inter.items.to_list() == ["a"]


# --------------------------------------------------------------------------------------------
# ratings
# --------------------------------------------------------------------------------------------


def test_rating_threshold(make_events: MakeEvents) -> None:
    ev = make_events(
        [("u", "a", "rating", 0, 3.0), ("u", "b", "rating", 0, 4.0), ("u", "c", "rating", 0, 5.0)]
    )
    assert entries(build_interactions(ev)) == {("u", "b"): 1.0, ("u", "c"): 1.0}
    all_kept = build_interactions(ev, FeedbackConfig(rating_threshold=None))
    assert len(entries(all_kept)) == 3


def test_rating_as_weight(make_events: MakeEvents) -> None:
    ev = make_events([("u", "a", "rating", 0, 3.0), ("u", "b", "rating", 0, 4.5)])
    cfg = FeedbackConfig(rating_threshold=None, rating_as_weight=True)
    assert entries(build_interactions(ev, cfg)) == {("u", "a"): 3.0, ("u", "b"): 4.5}
    scaled = FeedbackConfig(rating_threshold=4, rating_as_weight=True, weights={"rating": 2.0})
    assert entries(build_interactions(ev, scaled)) == {("u", "b"): 9.0}


def test_rating_without_value_is_dropped_with_a_warning(make_events: MakeEvents) -> None:
    ev = make_events([("u", "a", "rating", 0), ("u", "b", "rating", 0, 5.0)])
    with pytest.warns(DataWarning, match="1 rating events without a value"):
        inter = build_interactions(ev)
    assert entries(inter) == {("u", "b"): 1.0}


# --------------------------------------------------------------------------------------------
# decay and dedup
# --------------------------------------------------------------------------------------------


def test_decay_halves_weight_at_one_half_life(make_events: MakeEvents) -> None:
    ev = make_events(
        [("u", "old", "purchase", 0), ("u", "new", "purchase", 72), ("u", "mid", "purchase", 36)]
    )
    inter = build_interactions(ev, FeedbackConfig(half_life_days=3.0))
    got = entries(inter)
    assert got[("u", "new")] == pytest.approx(5.0)
    assert got[("u", "old")] == pytest.approx(2.5)
    assert got[("u", "mid")] == pytest.approx(5.0 * 0.5**0.5)
    assert inter.reference_time == BASE_TIME + pd.Timedelta(hours=72)


def test_decay_from_a_given_reference_time(make_events: MakeEvents) -> None:
    ev = make_events([("u", "a", "view", 0), ("u", "b", "view", 48)])
    ref = (BASE_TIME + pd.Timedelta(days=2)).tz_convert(None)  # naive: read as UTC
    inter = build_interactions(ev, FeedbackConfig(half_life_days=1.0), reference_time=ref)
    assert entries(inter) == {("u", "a"): pytest.approx(0.25), ("u", "b"): pytest.approx(1.0)}
    early = BASE_TIME + pd.Timedelta(days=1)
    with pytest.warns(DataWarning, match="1 events are later than reference_time"):
        inter = build_interactions(ev, FeedbackConfig(half_life_days=1.0), reference_time=early)
    assert entries(inter)[("u", "b")] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="reference_time"):
        build_interactions(ev, reference_time="not a time")


@pytest.mark.parametrize(("dedup", "expected"), [("sum", 8.0), ("max", 5.0), ("binary", 1.0)])
def test_dedup_modes(make_events: MakeEvents, dedup: str, expected: float) -> None:
    ev = make_events(
        [
            ("u", "a", "view", 0),
            ("u", "a", "view", 1),
            ("u", "a", "view", 2),
            ("u", "a", "purchase", 3),
        ]
    )
    inter = build_interactions(ev, FeedbackConfig(dedup=dedup))  # type: ignore[arg-type]
    assert entries(inter) == {("u", "a"): expected}


# --------------------------------------------------------------------------------------------
# given vocabularies, k-core
# --------------------------------------------------------------------------------------------


def test_given_vocabularies_fix_the_shape_and_drop_unknown_ids(make_events: MakeEvents) -> None:
    ev = make_events(
        [
            ("u1", "a", "view", 0),
            ("u9", "a", "view", 1),
            ("u1", "z", "view", 2),
            ("u2", "b", "click", 3),
        ]
    )
    users, items = Vocabulary(["u2", "u1", "u3"]), Vocabulary(["a", "b"])
    with pytest.warns(DataWarning, match="2 of 4 events"):
        inter = build_interactions(ev, users=users, items=items)
    assert inter.users is users and inter.items is items
    assert inter.matrix.toarray().tolist() == [[0, 2], [1, 0], [0, 0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_interactions(ev, users=["u1", "u9", "u2"], items=["a", "z", "b"])  # nothing unknown


def naive_kcore(cells: set[tuple[str, str]], min_u: int, min_i: int) -> set[tuple[str, str]]:
    while True:
        per_user: dict[str, int] = defaultdict(int)
        per_item: dict[str, int] = defaultdict(int)
        for u, i in cells:
            per_user[u] += 1
            per_item[i] += 1
        kept = {(u, i) for u, i in cells if per_user[u] >= min_u and per_item[i] >= min_i}
        if kept == cells:
            return kept
        cells = kept


@settings(max_examples=30, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=60),
    min_u=st.integers(0, 4),
    min_i=st.integers(0, 4),
)
def test_kcore_satisfies_the_thresholds(
    make_events: MakeEvents, pairs: list[tuple[int, int]], min_u: int, min_i: int
) -> None:
    ev = make_events([(f"u{u}", f"i{i}", "view", k) for k, (u, i) in enumerate(pairs)])
    cfg = FeedbackConfig(min_user_events=min_u, min_item_events=min_i)
    inter = build_interactions(ev, cfg)
    check_matrix(inter)
    m = inter.matrix
    assert (np.diff(m.indptr) >= min_u).all()
    assert (np.bincount(m.indices, minlength=inter.n_items) >= min_i).all()
    all_cells = {(f"u{u}", f"i{i}") for u, i in pairs}
    assert set(entries(inter)) == naive_kcore(all_cells, min_u, min_i)
    # the full matrix restricted to the core gives the same weights
    full = entries(build_interactions(ev))
    assert entries(inter) == {k: full[k] for k in entries(inter)}


def test_kcore_with_given_vocabularies_keeps_the_shape(make_events: MakeEvents) -> None:
    ev = make_events([("u1", "a", "view", 0), ("u1", "b", "view", 1), ("u2", "a", "view", 2)])
    cfg = FeedbackConfig(min_user_events=2)
    inter = build_interactions(ev, cfg, users=Vocabulary(["u1", "u2"]))
    assert inter.matrix.shape == (2, 2)
    assert inter.matrix.toarray().tolist() == [[1, 1], [0, 0]]


# --------------------------------------------------------------------------------------------
# fold-in
# --------------------------------------------------------------------------------------------


def fold_in_events(make_events: MakeEvents) -> pd.DataFrame:
    return make_events(
        [
            ("u1", "a", "view", 0),
            ("u2", "a", "purchase", 5),
            ("u1", "b", "purchase", 10),
            ("u2", "c", "click", 20),
            ("u1", "b", "return", 30),
            ("u1", "c", "rating", 40, 5.0),
            ("u3", "a", "add_to_cart", 48),
            ("u1", "a", "click", 50),
        ]
    )


@pytest.mark.parametrize(
    "cfg",
    [
        FeedbackConfig(),
        FeedbackConfig(half_life_days=1.0, dedup="max", returns="negative"),
        FeedbackConfig(dedup="binary", returns="ignore", rating_as_weight=True),
    ],
)
def test_fold_in_row_equals_the_training_row(make_events: MakeEvents, cfg: FeedbackConfig) -> None:
    ev = fold_in_events(make_events)
    inter = build_interactions(ev, cfg)
    mine = ev[ev["user_id"] == "u1"]
    with warnings.catch_warnings():
        # items whose only signal was cancelled are not in the vocabulary: reported, not kept
        warnings.simplefilter("ignore", DataWarning)
        row = fold_in(mine, inter)
    assert row.shape == (1, inter.n_items) and row.dtype == np.float32
    expected = inter.matrix[[int(inter.users.index(["u1"])[0])]]
    assert np.array_equal(row.toarray(), expected.toarray())
    assert np.array_equal(row.indices, expected.indices)


def test_fold_in_several_users_in_order(make_events: MakeEvents) -> None:
    ev = fold_in_events(make_events)
    inter = build_interactions(ev)
    with pytest.warns(DataWarning, match="4 of 8 events"):  # u2's, and u1's on cancelled b
        rows = fold_in(ev, inter, users=["u3", "u1"])
    users = inter.users.index(["u3", "u1"])
    assert np.array_equal(rows.toarray(), inter.matrix[users].toarray())


def test_fold_in_ignores_unknown_items_with_a_count(make_events: MakeEvents) -> None:
    items = Vocabulary(["a", "b"])
    ev = make_events(
        [("new", "a", "click", 0), ("new", "zz", "purchase", 1), ("new", "yy", "view", 2)]
    )
    with pytest.warns(DataWarning, match="2 of 3 events on items unknown"):
        row = fold_in(ev, items)
    assert row.toarray().tolist() == [[2.0, 0.0]]


def test_fold_in_user_without_usable_events_gets_an_empty_row(make_events: MakeEvents) -> None:
    ev = make_events([("new", "a", "search", 0)])
    row = fold_in(ev, Vocabulary(["a"]))
    assert row.shape == (1, 1) and row.nnz == 0
    with pytest.raises(ConfigError, match="target"):
        fold_in(ev, ["a"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# the whole builder against a slow, obvious reference
# --------------------------------------------------------------------------------------------


def reference_build(
    rows: list[tuple[Any, ...]], cfg: FeedbackConfig
) -> dict[tuple[str, str], float]:
    """Event by event, with a stack of purchases per user-item (what the docs promise)."""
    ref_t = max(r[3] for r in rows)
    pairs: dict[tuple[str, str], list[tuple[int, int, str, float | None]]] = defaultdict(list)
    for pos, (u, i, typ, t, value) in enumerate(rows):
        pairs[(u, i)].append((t, pos, typ, value))

    def decay(t: int) -> float:
        if cfg.half_life_days is None:
            return 1.0
        return float(0.5 ** (((ref_t - t) / 24) / cfg.half_life_days))

    out = {}
    for pair, evs in pairs.items():
        evs.sort(key=lambda e: (e[0], e[2] == "return", e[1]))
        weights: list[float | None] = []
        stack: list[int] = []
        penalty = 0.0
        for t, _, typ, value in evs:
            if typ == "return":
                if cfg.returns == "cancel" and stack:
                    weights[stack.pop()] = None
                elif cfg.returns == "negative":
                    penalty += cfg.return_weight * decay(t)
                continue
            w = cfg.weights.get(typ, 0.0)
            if typ == "rating" and (cfg.rating_threshold is not None or cfg.rating_as_weight):
                if value is None:
                    continue
                if cfg.rating_threshold is not None and value < cfg.rating_threshold:
                    continue
                if cfg.rating_as_weight:
                    w *= value
            if w == 0:
                continue
            if typ == "purchase":
                stack.append(len(weights))
            weights.append(w * decay(t))
        pos_w = [w for w in weights if w is not None]
        if cfg.dedup == "sum":
            v = sum(pos_w) - penalty
        elif cfg.dedup == "max":
            v = (max(pos_w) if pos_w else 0.0) - penalty
        else:
            v = float(np.sign(sum(pos_w) - penalty))
        if np.float32(v) != 0:
            out[pair] = v
    return out


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["u0", "u1", "u2"]),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(EVENT_TYPES),
            st.integers(0, 72),
            st.one_of(st.none(), st.sampled_from([1.0, 3.0, 4.0, 5.0])),
        ),
        min_size=1,
        max_size=30,
    ),
    returns=st.sampled_from(["cancel", "negative", "ignore"]),
    dedup=st.sampled_from(["sum", "max", "binary"]),
    half_life=st.sampled_from([None, 1.0]),
    threshold=st.sampled_from([None, 4.0]),
    as_weight=st.booleans(),
)
def test_builder_matches_the_reference(
    make_events: MakeEvents,
    rows: list[tuple[Any, ...]],
    returns: str,
    dedup: str,
    half_life: float | None,
    threshold: float | None,
    as_weight: bool,
) -> None:
    cfg = FeedbackConfig(
        returns=returns,
        dedup=dedup,
        half_life_days=half_life,
        rating_threshold=threshold,
        rating_as_weight=as_weight,
        return_weight=3.0,
    )
    ev = make_events(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # ratings without value
        inter = build_interactions(ev, cfg)
    check_matrix(inter)
    got = entries(inter)
    expected = reference_build(rows, cfg)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6)
