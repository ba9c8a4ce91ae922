"""Acceptance on real data through the command line (needs AISLE_DATA_HOME)."""

from __future__ import annotations

import json

import pytest

from aisle.cli import main

pytestmark = pytest.mark.realdata


def profile_json(name: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    with pytest.raises(SystemExit) as info:
        main(["profile", name, "--json"])
    assert info.value.code == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_profile_movielens_counts_and_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    out = profile_json("movielens-100k", capsys)
    assert (out["n_users"], out["n_items"], out["n_events"]) == (943, 1682, 100_000)
    assert out["strategy"]["name"] == "collaborative" and out["strategy"]["reasons"]


def test_profile_yoochoose_recommends_session_based(capsys: pytest.CaptureFixture[str]) -> None:
    out = profile_json("yoochoose-sample", capsys)
    assert out["strategy"]["name"] == "session-based"
    assert any("session" in reason for reason in out["strategy"]["reasons"])


def test_datasets_list_verifies_checksums(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["datasets", "list", "--verify", "--json"])
    assert info.value.code == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert {"movielens-100k", "yoochoose-sample", "obd", "s3rec-beauty"} <= set(rows)
    assert all(r["present"] and r["checksums"] == "ok" for r in rows.values())


def test_quickstart_on_movielens(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--dataset", "movielens-100k", "--workspace", str(tmp_path), "--json"])
    assert info.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "movielens-100k" and out["split"]["name"] == "temporal"
    assert set(out["models"]) == {"pop", "ease"}
    for res in out["models"].values():
        assert set(res["metrics"]) == {"ndcg@10", "recall@20", "coverage@20"}
        assert res["counts"]["users_evaluated"] > 50
