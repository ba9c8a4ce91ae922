"""Acceptance: every collaborative model beats popularity on MovieLens-100K (temporal split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisle.cli import main

pytestmark = pytest.mark.realdata


def test_every_model_beats_pop_on_movielens_temporal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--dataset", "movielens-100k", "--split", "temporal",
              "--models", "pop,itemknn,ease,ials,bpr", "--metrics", "ndcg@10,recall@20",
              "--out", str(tmp_path), "--json"])
    assert info.value.code == 0
    out = json.loads(capsys.readouterr().out)
    ndcg = {r["model"]: r["metrics"]["ndcg@10"] for r in out["results"]}
    assert set(ndcg) == {"pop", "itemknn", "ease", "ials", "bpr"}
    for model, value in ndcg.items():
        if model != "pop":
            assert value > ndcg["pop"], (model, value, ndcg["pop"])
    assert out["protocol"]["split"]["name"] == "temporal"
    assert out["protocol"]["n_test_users"] > 200
