"""Cold-start protocols: held-out items and users never reach training; the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aisle.cli import main
from aisle.data import Dataset, conform_events
from aisle.errors import ConfigError
from aisle.evaluation import _cold_start as protocol
from aisle.evaluation import (
    attribute_popularity,
    cold_start_items,
    cold_start_users,
    split_cold_items,
    split_cold_users,
)
from aisle.models import Recommender

WORDS = {0: "trail running shoe", 1: "steel kitchen knife", 2: "garden hose reel"}
CATEGORIES = {0: "Sports/Running", 1: "Home/Kitchen", 2: "Garden/Tools"}


def toy_shop(seed: int = 0) -> Dataset:
    """Three taste groups over three categories; 150 items, 120 users, ~12 purchases each."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(150)],
        "title": [f"{WORDS[i % 3]} {i}" for i in range(150)],
        "category": [CATEGORIES[i % 3] for i in range(150)],
        "brand": [f"b{i % 3}" for i in range(150)],
        "price": [float(5 + i % 50) for i in range(150)],
    })
    weights = np.linspace(2.0, 0.2, 50)  # popularity within each group
    rows = []
    for u in range(120):
        group = u % 3
        pool = np.arange(group, 150, 3)
        for i in rng.choice(pool, size=12, replace=False, p=weights / weights.sum()):
            rows.append((f"u{u}", f"i{i}", "purchase",
                         pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 2000)))))
    events = conform_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]))[0]
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(120)], "segment": [f"s{u % 3}" for u in range(120)]})
    return Dataset(name="toy-shop", events=events, items=items, users=users)


@pytest.fixture(scope="module")
def shop() -> Dataset:
    return toy_shop()


def test_split_cold_items_holds_items_out_entirely(shop: Dataset) -> None:
    split = split_cold_items(shop.events, shop.items, fraction=0.2, seed=3)
    assert len(split.held_out) == 30
    assert not set(split.train["item_id"]) & set(split.held_out)
    assert set(split.test["item_id"]) <= set(split.held_out)
    assert len(split.train) + len(split.test) == len(shop.events)
    again = split_cold_items(shop.events, shop.items, fraction=0.2, seed=3)
    assert list(again.held_out) == list(split.held_out)
    with pytest.raises(ConfigError):
        split_cold_items(shop.events, shop.items, fraction=1.5)


def test_item_protocol_never_trains_on_held_out_items(shop: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    make = protocol._make

    def spy(name: str, configs: Any) -> Recommender:
        model = make(name, configs)
        fit = model.fit

        def recording_fit(interactions: Any, **side: Any) -> Recommender:
            seen.append({"items": set(interactions.items.ids), "events": set(side["events"]["item_id"]),
                         "catalog": set(side["catalog"]["item_id"])})
            return fit(interactions, **side)

        model.fit = recording_fit  # type: ignore[method-assign]
        return model

    monkeypatch.setattr(protocol, "_make", spy)
    result = cold_start_items(shop, ["content-cf", "content", "pop", "random"], item_fraction=0.2, seed=1,
                              configs={"content-cf": {"factors": 8, "iterations": 5}})
    held = set(split_cold_items(shop.events, shop.items, fraction=0.2, seed=1).held_out)
    assert len(seen) == 2
    for record in seen:
        assert not record["items"] & held and not record["events"] & held and not record["catalog"] & held
    by = {r["model"]: r for r in result.rows}
    assert set(by) == {"content-cf", "content", "pop", "random"}
    assert by["content-cf"]["ndcg@10"] > by["random"]["ndcg@10"]
    assert by["content"]["ndcg@10"] > by["random"]["ndcg@10"]
    assert result.protocol["n_held_out_items"] == 30 and result.protocol["test_users"] > 0
    assert "attribute popularity" in result.protocol["baselines"]["pop"]


def test_item_protocol_all_candidates_and_refusals(shop: Dataset) -> None:
    result = cold_start_items(shop, ["content", "random"], candidates="all", metrics=["recall@20"])
    assert [r["model"] for r in result.rows] == ["content", "random"]
    assert result.protocol["candidates"].startswith("all")
    with pytest.raises(ConfigError, match="cannot score items without interactions"):
        cold_start_items(shop, ["ials"])
    with pytest.raises(ConfigError, match="candidates"):
        cold_start_items(shop, ["pop"], candidates="some")  # type: ignore[arg-type]


def test_attribute_popularity_follows_the_attributes() -> None:
    cat = pd.DataFrame({"item_id": ["a", "b", "c", "new1", "new2", "new3"],
                        "category": ["X", "X", "Y", "X", "Y", None]})
    pop = np.asarray([10.0, 6.0, 1.0])
    est = attribute_popularity(pop, np.asarray(["a", "b", "c"], dtype=object), cat,
                               np.asarray(["new1", "new2", "new3"], dtype=object), columns=["category"])
    np.testing.assert_allclose(est, [8.0, 1.0, pop.mean()])


def test_split_cold_users_holds_users_out_entirely(shop: Dataset) -> None:
    split = split_cold_users(shop.events, fraction=0.25, max_history=3, seed=0)
    assert not set(split.train["user_id"]) & set(split.held_out)
    assert set(split.prefix["user_id"]) == set(split.held_out)
    assert split.prefix.groupby("user_id").size().max() == 3
    first = split.prefix.groupby("user_id")["timestamp"].max()
    then = split.target.groupby("user_id")["timestamp"].min()
    assert (first.reindex(then.index) <= then).all()  # the prefix comes first in time


def test_user_protocol_rows_and_fold_in(shop: Dataset) -> None:
    result = cold_start_users(shop, ["onboarding", "pop", "content-cf", "random"], user_fraction=0.25,
                              history_sizes=(0, 2), configs={"content-cf": {"factors": 8, "iterations": 5}})
    rows = {(r["model"], r["history_events"]): r for r in result.rows}
    assert set(rows) == {(m, n) for m in ("onboarding", "pop", "content-cf", "random") for n in (0, 2)}
    assert rows[("content-cf", 0)]["sources"] == {"popular": result.protocol["test_users"]}
    assert rows[("content-cf", 2)]["sources"] == {"fold-in": result.protocol["test_users"]}
    assert rows[("onboarding", 0)]["ndcg@10"] > rows[("pop", 0)]["ndcg@10"]  # the questionnaire helps
    assert rows[("content-cf", 2)]["ndcg@10"] > rows[("content-cf", 0)]["ndcg@10"]  # so do first events
    assert result.protocol["history_sizes"] == [0, 2]


def test_cli_cold_start_json(shop: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = shop.events[["user_id", "item_id", "event_type", "timestamp"]]
    events.to_csv(tmp_path / "events.csv", index=False)
    assert shop.items is not None
    shop.items.to_csv(tmp_path / "catalog.csv", index=False)
    with pytest.raises(SystemExit) as info:
        main(["cold-start", "--data", str(tmp_path / "events.csv"), "--catalog", str(tmp_path / "catalog.csv"),
              "--items", "--models", "content,pop,random", "--fraction", "0.2", "--json"])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    doc = json.loads(out.out)
    assert [r["model"] for r in doc["results"]] == ["content", "pop", "random"]
    assert doc["protocol"]["kind"] == "new items" and len(doc["protocol"]["dataset_sha256"]) == 64
    with pytest.raises(SystemExit) as info:
        main(["cold-start", "--data", str(tmp_path / "events.csv"), "--users", "--models", "pop",
              "--history-sizes", "0,1", "--json"])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    assert {r["history_events"] for r in json.loads(out.out)["results"]} == {0, 1}
