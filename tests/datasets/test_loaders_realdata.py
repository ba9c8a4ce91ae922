"""Every shared real dataset loads with the counts its README gives, in the canonical schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import Dataset
from aisle.data._schema import (
    CATALOG_COLUMNS,
    EVENT_COLUMNS,
    USER_COLUMNS,
    ColumnSpec,
    pandas_dtype,
)
from aisle.datasets import (
    DATASETS,
    list_datasets,
    load_bandit_log,
    load_bts_prior,
    load_dataset,
    load_movielens_tags,
    load_sampled_negatives,
)
from aisle.settings import get_settings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module", autouse=True)
def _needs_data() -> None:
    home = get_settings().data_home
    if not home.is_dir():
        pytest.skip(f"the shared datasets are not at {home} (set AISLE_DATA_HOME)")


def _assert_canonical(frame: pd.DataFrame, specs: tuple[ColumnSpec, ...]) -> None:
    for spec in specs:
        assert frame[spec.name].dtype == pandas_dtype(spec.kind), (spec.name, frame[spec.name].dtype)
        if spec.required:
            assert frame[spec.name].notna().all(), spec.name


def _assert_dataset(ds: Dataset, name: str) -> None:
    """Canonical dtypes, sorted events, a catalog that covers them, registered sources."""
    assert ds.name == name and ds.meta["dataset"] == name
    _assert_canonical(ds.events, EVENT_COLUMNS)
    assert ds.events["timestamp"].is_monotonic_increasing
    assert ds.events["event_id"].is_unique
    if ds.items is not None:
        _assert_canonical(ds.items, CATALOG_COLUMNS)
        assert ds.items["item_id"].is_unique
        assert ds.events["item_id"].isin(ds.items["item_id"]).all()
    if ds.users is not None:
        _assert_canonical(ds.users, USER_COLUMNS)
        assert ds.events["user_id"].isin(ds.users["user_id"]).all()
    registered = {f.sha256 for f in DATASETS[name].files}
    assert ds.sources
    for src in ds.sources:
        assert Path(src.path).is_file() and src.bytes == Path(src.path).stat().st_size
        assert src.sha256 in registered


def _counts(ds: Dataset) -> tuple[int, int, int]:
    return ds.n_events, ds.n_users, ds.n_items


# --- MovieLens ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_dataset("movielens-100k")


def test_movielens_100k(ml100k: Dataset) -> None:
    _assert_dataset(ml100k, "movielens-100k")
    assert _counts(ml100k) == (100_000, 943, 1_682)
    assert ml100k.has_timestamps and not ml100k.anonymous_sessions and ml100k.fixed_split is None
    assert set(ml100k.events["event_type"]) == {"rating"}
    assert sorted(ml100k.events["value"].unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    ts = ml100k.events["timestamp"]
    assert ts.min() == pd.Timestamp(874724710, unit="s", tz="UTC")
    assert ts.max() == pd.Timestamp(893286638, unit="s", tz="UTC")
    assert ml100k.events.groupby("user_id").size().min() >= 20


def test_movielens_100k_catalog_and_users(ml100k: Dataset) -> None:
    items = ml100k.items
    assert items is not None and len(items) == 1_682
    toy = items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)"
    assert toy["category"] == toy["genres"] == "Animation|Children's|Comedy"
    assert toy["created_at"] == pd.Timestamp("1995-01-01", tz="UTC")
    assert items["created_at"].min() < pd.Timestamp("1970-01-01", tz="UTC")  # old films keep their date
    assert items["created_at"].isna().sum() == 1  # item 267 has no release date
    assert items["title"].str.contains("é").any()  # latin-1 decoded
    users = ml100k.users
    assert users is not None and len(users) == 943
    first = users.set_index("user_id").loc["1"]
    assert (first["age"], first["gender"], first["occupation"], first["zip"]) == (24, "M", "technician", "85711")
    assert (users["segment"] == users["occupation"]).all()
    assert users["occupation"].nunique() == 21


@pytest.mark.parametrize(("split", "n_train", "n_test"), [("u1", 80_000, 20_000), ("ua", 90_570, 9_430)])
def test_movielens_100k_official_splits(ml100k: Dataset, split: str, n_train: int, n_test: int) -> None:
    ds = load_dataset("movielens-100k", split=split)
    _assert_dataset(ds, "movielens-100k")
    assert ds.fixed_split is not None and ds.meta["split"] == split
    train, test = ds.fixed_split
    assert (len(train), len(test)) == (n_train, n_test)
    assert ds.n_events == 100_000
    key = ["user_id", "item_id", "timestamp", "value"]
    assert train.merge(test, on=key).empty  # disjoint
    union = pd.concat([train, test])[key].sort_values(key).reset_index(drop=True)
    full = ml100k.events[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(union, full)
    if split == "ua":
        assert (test.groupby("user_id").size() == 10).all()
    assert {Path(s.path).name for s in ds.sources} >= {f"{split}.base", f"{split}.test"}


def test_movielens_latest_small() -> None:
    ds = load_dataset("movielens-latest-small")
    _assert_dataset(ds, "movielens-latest-small")
    assert _counts(ds) == (100_836, 610, 9_724)
    assert set(ds.events["value"].unique()) == {x / 2 for x in range(1, 11)}
    items = ds.items
    assert items is not None and len(items) == 9_742
    toy = items.set_index("item_id").loc["1"]
    assert toy["category"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert toy["text"] == "pixar, fun" and toy["tags"] == "pixar|fun"
    assert (toy["year"], toy["imdb_id"], toy["tmdb_id"]) == (1995.0, "0114709", "862")
    assert items["category"].isna().sum() == 34  # "(no genres listed)"
    assert items["text"].notna().sum() == 1_572  # movies with at least one tag
    tags = load_movielens_tags()
    assert len(tags) == ds.meta["n_tags"] == 3_683
    assert list(tags.columns) == ["user_id", "item_id", "tag", "timestamp"]
    assert tags["timestamp"].dtype == pandas_dtype("timestamp")


# --- S3-Rec sequences ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "counts", "n_attributes", "user_1"),
    [
        ("s3rec-beauty", (198_502, 22_363, 12_101), 637, ["1", "2", "3", "4", "5"]),
        ("s3rec-lastfm", (52_551, 1_090, 3_646), 388, ["1", "2", "3", "4", "5", "6", "7", "8"]),
    ],
    ids=["beauty", "lastfm"],
)
def test_s3rec_sequences(
    name: str, counts: tuple[int, int, int], n_attributes: int, user_1: list[str]
) -> None:
    ds = load_dataset(name)
    _assert_dataset(ds, name)
    assert _counts(ds) == counts
    assert not ds.has_timestamps
    assert ds.meta["n_attributes"] == n_attributes
    assert ds.items is not None and len(ds.items) == counts[2]
    assert ds.items["attributes"].notna().all() and ds.items["category"].notna().all()
    assert ds.events[ds.events["user_id"] == "1"]["item_id"].tolist() == user_1  # file order kept


def test_lastfm_sampled_negatives() -> None:
    ds = load_dataset("s3rec-lastfm")
    assert Path(ds.meta["sampled_negatives"]).name == "LastFM_sample.txt"
    negatives = load_sampled_negatives("s3rec-lastfm")
    assert len(negatives) == 1_090 and {len(v) for v in negatives.values()} == {99}
    history = ds.events.groupby("user_id")["item_id"].agg(set)
    assert set(negatives) == set(history.index)
    assert all(not set(neg) & history[user] for user, neg in negatives.items())


# --- session logs ----------------------------------------------------------------------------


def test_yoochoose_sample() -> None:
    ds = load_dataset("yoochoose-sample")
    _assert_dataset(ds, "yoochoose-sample")
    assert ds.anonymous_sessions and ds.has_timestamps and ds.fixed_split is not None
    train, test = ds.fixed_split
    assert (len(train), len(test)) == (70_278, 13_568)
    assert (train["session_id"].nunique(), test["session_id"].nunique()) == (17_794, 3_416)
    assert ds.n_events == 70_278 + 13_568
    assert (ds.events["user_id"] == ds.events["session_id"]).all()
    assert set(ds.events["event_type"]) == {"click"}
    assert train["timestamp"].max() <= test["timestamp"].min() + pd.Timedelta(days=1)
    first = ds.events["timestamp"].iloc[0]
    assert first.value % 1_000_000 == 0  # whole milliseconds, no float noise
    assert pd.Timestamp("2014-04-01", tz="UTC") <= first < pd.Timestamp("2014-04-09", tz="UTC")
    tr = load_dataset("yoochoose-sample", split="tr-valid")
    assert tr.fixed_split is not None
    assert tuple(map(len, tr.fixed_split)) == (53_254, 16_539)


def test_diginetica_sample() -> None:
    ds = load_dataset("diginetica-sample")
    _assert_dataset(ds, "diginetica-sample")
    assert _counts(ds) == (12_391, 2_986, 7_139)
    assert ds.anonymous_sessions and set(ds.events["event_type"]) == {"view"}
    assert ds.events["session_id"].nunique() == 2_986
    # within each session the views follow timeframe, also in the 2 sessions that cross midnight
    raw = pd.read_csv(ds.sources[0].path, sep=";", dtype={"session_id": str, "item_id": str})
    expected = raw.sort_values(["session_id", "timeframe"], kind="stable")
    loaded = ds.events.sort_values(["session_id", "timestamp"], kind="stable")
    assert loaded["item_id"].tolist() == expected["item_id"].tolist()


# --- Open Bandit Dataset ---------------------------------------------------------------------

CLICKS = {("bts", "all"): 42, ("bts", "men"): 69, ("bts", "women"): 46,
          ("random", "all"): 38, ("random", "men"): 46, ("random", "women"): 46}
N_ACTIONS = {"all": 80, "men": 34, "women": 46}


@pytest.mark.parametrize(("policy", "campaign"), sorted(CLICKS))
def test_obd_bandit_log(policy: str, campaign: str) -> None:
    log = load_bandit_log(campaign, policy)
    n = N_ACTIONS[campaign]
    assert (log.n_rounds, log.n_actions, log.n_positions) == (10_000, n, 3)
    assert log.n_clicks == CLICKS[policy, campaign]
    assert log.action.dtype == np.int64 and log.action.min() >= 0 and log.action.max() < n
    assert set(np.unique(log.position)) == {0, 1, 2}
    assert set(np.unique(log.reward)) == {0, 1}
    if policy == "random":
        np.testing.assert_allclose(log.pscore, 1 / n)
    else:
        assert log.pscore.min() > 0 and log.pscore.max() < 1
    assert log.context.shape[0] == 10_000 and log.context.dtype == np.float64
    assert len(log.context_names) == log.context.shape[1]
    assert log.context.shape[1] - n == sum(name.startswith("user_feature_") for name in log.context_names)
    onehot = log.context[:, : log.context.shape[1] - n]
    assert (onehot.sum(axis=1) == 4).all()  # one level of each of the 4 user features
    assert log.action_context.shape == (n, 4)
    assert np.all(np.diff(log.timestamp.astype(np.int64)) >= 0)
    assert not log.action.flags.writeable
    assert set(log.as_bandit_feedback()) >= {"n_rounds", "action", "position", "reward", "pscore", "context"}


@pytest.mark.parametrize(("policy", "campaign"), [("random", "all"), ("bts", "men")])
def test_obd_as_dataset(policy: str, campaign: str) -> None:
    ds = load_dataset("obd", campaign=campaign, policy=policy)
    _assert_dataset(ds, "obd")
    events = ds.events
    views = events[events["event_type"] == "view"]
    clicks = events[events["event_type"] == "click"]
    assert (len(views), len(clicks)) == (10_000, CLICKS[policy, campaign])
    assert views["session_id"].is_unique and clicks["session_id"].isin(views["session_id"]).all()
    assert set(views["position"].unique()) == {1.0, 2.0, 3.0}
    assert ds.items is not None and len(ds.items) == N_ACTIONS[campaign]
    assert (ds.meta["campaign"], ds.meta["policy"]) == (campaign, policy)
    # a click follows its view: same session, time, item and position
    pair = clicks.merge(views, on="session_id", suffixes=("", "_view"))
    assert (pair["timestamp"] == pair["timestamp_view"]).all()
    assert (pair["item_id"] == pair["item_id_view"]).all() and (pair["position"] == pair["position_view"]).all()
    log = load_bandit_log(campaign, policy)
    assert ds.events["user_id"].nunique() == len(np.unique(log.context[:, : -N_ACTIONS[campaign]], axis=0))


def test_obd_bts_prior() -> None:
    for campaign, n in N_ACTIONS.items():
        alpha, beta = load_bts_prior(campaign)
        assert alpha.shape == beta.shape == (n,)
        assert (alpha > 0).all() and (beta > 0).all()


# --- the registry against the files ----------------------------------------------------------


def test_every_shared_dataset_is_present_and_verified() -> None:
    statuses = list_datasets(verify=True)
    assert [s.name for s in statuses] == list(DATASETS)
    for status in statuses:
        assert status.present, (status.name, status.missing)
        assert status.verified, (status.name, status.mismatched)
        assert status.bytes_on_disk == sum(f.bytes for f in status.files)
        assert status.to_dict()["checksums"] == "ok"
