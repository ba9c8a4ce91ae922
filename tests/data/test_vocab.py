"""Vocabulary: ids ↔ dense indices, unknown-id policy, stability under extension."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, UnknownIdError


def test_ids_map_to_positions() -> None:
    v = Vocabulary(["b", "a", "c"])
    assert len(v) == 3
    assert v.index(["a", "b", "c"]).tolist() == [1, 0, 2]
    assert v.index(["a"]).dtype == np.int64
    assert v.ids.dtype == object
    assert v.ids.tolist() == ["b", "a", "c"]
    assert list(v) == ["b", "a", "c"]


def test_membership() -> None:
    v = Vocabulary(["x", "y"])
    assert "x" in v
    assert "z" not in v
    assert ["x"] not in v  # unhashable: simply not a member


def test_duplicates_are_refused_or_dropped_explicitly() -> None:
    with pytest.raises(DataError, match=r"unique.*'a'"):
        Vocabulary(["a", "b", "a"])
    v = Vocabulary(["a", "b", "a", "c", "b"], duplicates="drop")
    assert v.to_list() == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="duplicates"):
        Vocabulary(["a"], duplicates="keep")  # type: ignore[arg-type]


def test_missing_ids_are_refused() -> None:
    with pytest.raises(DataError, match="missing"):
        Vocabulary(["a", None])
    with pytest.raises(DataError, match="missing"):
        Vocabulary.from_values(pd.Series(["a", None, "b"], dtype="string"))


def test_from_values_keeps_first_appearance_order() -> None:
    s = pd.Series(["u3", "u1", "u3", "u2", "u1"], dtype="str")
    v = Vocabulary.from_values(s)
    assert v.to_list() == ["u3", "u1", "u2"]
    assert v.index(s).tolist() == [0, 1, 0, 2, 1]
    assert Vocabulary.from_values(np.array(["b", "a", "b"])).to_list() == ["b", "a"]


def test_unknown_ids_raise_with_count_and_examples() -> None:
    v = Vocabulary(["a", "b"])
    unknown = [f"z{k}" for k in range(7)]
    with pytest.raises(UnknownIdError) as err:
        v.index(["a", *unknown, "z0"])
    msg = str(err.value)
    assert "7 unknown id(s)" in msg
    assert all(f"'z{k}'" in msg for k in range(5))
    assert "'z5'" not in msg and "..." in msg
    assert isinstance(err.value, KeyError)  # the built-in still catches it


def test_unknown_ids_ignored_map_to_minus_one() -> None:
    v = Vocabulary(["a", "b"])
    assert v.index(["b", "nope", "a"], unknown="ignore").tolist() == [1, -1, 0]
    with pytest.raises(ConfigError, match="unknown"):
        v.index(["a"], unknown="skip")  # type: ignore[arg-type]


def test_single_string_is_one_id_and_empty_input() -> None:
    v = Vocabulary(["ab", "a"])
    assert v.index("ab").tolist() == [0]
    assert v.index([]).tolist() == []
    assert v.id_of([]).tolist() == []


def test_id_of_and_bad_indices() -> None:
    v = Vocabulary(["a", "b", "c"])
    assert v.id_of([2, 0]).tolist() == ["c", "a"]
    assert v.id_of(np.array([1])).tolist() == ["b"]
    with pytest.raises(UnknownIdError, match=r"outside 0\.\.2"):
        v.id_of([3])
    with pytest.raises(UnknownIdError, match="outside"):
        v.id_of([-1])  # -1 means "unknown", never "the last one"


def test_extend_keeps_old_indices_and_returns_a_new_object() -> None:
    v = Vocabulary(["a", "b"])
    w = v.extend(["c", "a", "d", "c"])
    assert w.to_list() == ["a", "b", "c", "d"]
    assert w.index(["a", "b"]).tolist() == v.index(["a", "b"]).tolist()
    assert v.to_list() == ["a", "b"]  # the old one is unchanged
    assert v.extend(["a"]) is v


def test_json_round_trip_and_equality() -> None:
    v = Vocabulary(["i1", "i2", "i3"])
    back = Vocabulary.from_list(json.loads(json.dumps(v.to_list())))
    assert back == v
    assert Vocabulary(["i1", "i3", "i2"]) != v
    assert Vocabulary(["i1"]) != v
    assert v != ["i1", "i2", "i3"]
    with pytest.raises(DataError):
        Vocabulary.from_list("i1,i2")  # type: ignore[arg-type]


def test_ids_are_read_only() -> None:
    v = Vocabulary(["a"])
    with pytest.raises(ValueError):
        v.ids[0] = "b"


def test_large_lookup_uses_the_vectorised_path() -> None:
    ids = np.array([f"u{k}" for k in range(10_000)], dtype=object)
    v = Vocabulary(ids)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, 10_000, 50_000)
    query = pd.Series(ids[picks], dtype="str")
    assert np.array_equal(v.index(query), picks)
    query.iloc[7] = "missing"
    got = v.index(query, unknown="ignore")
    assert got[7] == -1 and np.array_equal(np.delete(got, 7), np.delete(picks, 7))


def test_repr_is_short() -> None:
    assert repr(Vocabulary(["a", "b", "c", "d"])) == "Vocabulary(n=4, ids=['a', 'b', 'c', ...])"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=4), max_size=30))
def test_index_and_id_of_are_inverse(values: list[str]) -> None:
    v = Vocabulary.from_values(values)
    assert len(v) == len(set(values))
    idx = v.index(values)
    assert v.id_of(idx).tolist() == values
    assert sorted(set(idx.tolist())) == list(range(len(v)))


def test_odd_ids_survive_and_the_callers_array_stays_writable() -> None:
    assert Vocabulary(["\x00", "a\x00", "a"]).to_list() == ["\x00", "a\x00", "a"]
    mine = np.array(["x", "y"], dtype=object)
    v = Vocabulary(mine)
    mine[0] = "z"
    assert v.to_list() == ["x", "y"]
