"""The trade-off curve on a small simulated shop, the ground-truth purchase model, serving."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.evaluation import evaluate
from aisle.evaluation._runner import make_split
from aisle.models import make_model
from aisle.ranking import (
    MultiObjectiveRanker,
    catalog_at,
    parse_lambdas,
    purchase_probability,
    tradeoff_curve,
)
from aisle.simulate import SimulatedShop, examination, simulate


@pytest.fixture(scope="module")
def shop() -> SimulatedShop:
    # little stock and no restocking, so that items sell out before the cutoff
    return simulate(20_000, seed=3, initial_stock_mean=2.0, restock_every_days=None)


@pytest.fixture(scope="module")
def fitted(shop: SimulatedShop) -> dict[str, Any]:
    ds = shop.dataset
    split = make_split(ds, "temporal")
    now = split.train["timestamp"].max()
    model = make_model("ease", l2=50.0).fit(build_interactions(split.train, FeedbackConfig()))
    ev = evaluate(model, split.test, ks=(10,), history=split.fold_in)
    catalog = catalog_at(ds.items, shop.stock_ledger, now)
    return {"split": split, "now": now, "model": model, "ev": ev, "catalog": catalog}


def test_catalog_at_replays_the_stock_ledger(shop: SimulatedShop) -> None:
    end = pd.Timestamp(shop.config.start) + pd.Timedelta(days=shop.config.n_days)
    at_end = catalog_at(shop.dataset.items, shop.stock_ledger, end)
    assert at_end["stock"].to_numpy() == pytest.approx(shop.state.stock)
    before = catalog_at(shop.dataset.items, shop.stock_ledger, pd.Timestamp(shop.config.start))
    created = pd.to_datetime(shop.dataset.items["created_at"], utc=True)
    assert (before.loc[(created > pd.Timestamp(shop.config.start)).to_numpy(), "stock"] == 0).all()


def test_purchase_probability_is_exam_times_true_funnel(shop: SimulatedShop) -> None:
    truth = shop.truth
    users = list(truth.user_ids[:3])
    lists = np.array([list(truth.item_ids[:4]), list(truth.item_ids[4:8]), [truth.item_ids[9], None, None, None]],
                     dtype=object)
    p = purchase_probability(truth, users, lists)
    exam = examination(np.arange(1, 5), shop.config)
    for row in range(2):
        direct = truth.true_relevance([users[row]], list(lists[row]), event="purchase")[0]
        assert p[row] == pytest.approx(direct * exam)
    assert p[2, 1:].tolist() == [0.0, 0.0, 0.0] and p[2, 0] > 0


def test_tradeoff_curve_figures(shop: SimulatedShop, fitted: dict[str, Any]) -> None:
    ranker = MultiObjectiveRanker.from_catalog(fitted["catalog"], events=fitted["split"].train, now=fitted["now"])
    res = tradeoff_curve(fitted["model"], fitted["ev"], ranker, parse_lambdas("0,0.2,1,5"), k=10,
                         history=fitted["split"].fold_in, truth=shop.truth, at=fitted["now"])
    policies = [p.policy for p in res.points]
    assert policies == ["model", "λ=0", "λ=0.2", "λ=1", "λ=5", "margin only"]
    before, *reranked = res.points
    # the setting sells items out: the model's own lists hold some, the reranked lists none
    assert before.unavailable_share > 0
    assert all(p.unavailable_share == 0 for p in reranked)
    assert all(p.fill == 1.0 for p in reranked)
    # the mean unit margin of the lists rises with λ (full lists, a linear objective)
    margins = [p.list_margin for p in reranked]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(margins))
    # ground truth: finite, positive, and a margin-hungry λ earns more than pure relevance
    assert all(math.isfinite(p.expected_margin) and p.expected_margin > 0 for p in res.points)
    lam0, lam1 = reranked[0], reranked[2]
    assert lam1.expected_margin > lam0.expected_margin
    assert lam0.ndcg >= reranked[-1].ndcg
    d = res.to_dict()
    assert d["ground_truth"] and d["points"][-1]["lam"] == "inf" and d["points"][0]["lam"] is None


def test_tradeoff_without_ground_truth_reports_the_proxy_only(fitted: dict[str, Any]) -> None:
    ranker = MultiObjectiveRanker.from_catalog(fitted["catalog"])
    res = tradeoff_curve(fitted["model"], fitted["ev"], ranker, [0.0, 1.0], k=5, history=fitted["split"].fold_in,
                         include_references=False)
    assert [p.policy for p in res.points] == ["λ=0", "λ=1"]
    assert all(math.isnan(p.expected_margin) for p in res.points)
    assert res.points[1].hit_margin >= 0 and not res.to_dict()["ground_truth"]
    assert res.to_dict()["points"][0]["expected_margin"] is None


# ---------------------------------------------------------------------------- serving hook
def _workspace(root: Path, shop: SimulatedShop) -> Path:
    from aisle.registry import register_run

    ds = shop.dataset
    run = root / "runs" / "r1"
    model = make_model("ease", l2=100.0).fit(build_interactions(ds.events, FeedbackConfig()))
    model.save(run / "models" / "ease")
    register_run(root, run, "ease", train_events=ds.events, catalog=ds.items, users=ds.users,
                 params=model.config.model_dump(), metrics={})
    return root


class _Spy:
    """A rerank hook that asks for a deeper pool and records what it gets."""

    pool_factor = 3

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, items: list[Any], query: Any, model: Any) -> list[Any]:
        self.sizes.append(len(items))
        return items[::-1]


def test_serving_hook_gets_a_deeper_pool_and_never_serves_unavailable_items(tmp_path: Path,
                                                                              shop: SimulatedShop) -> None:
    from aisle.serving import ServingSettings, create_app

    ws = _workspace(tmp_path, shop)
    settings = ServingSettings(workspace=ws, poll_interval_s=0)
    spy = _Spy()
    with TestClient(create_app(settings, reranker=spy)) as client:
        users = sorted(client.app.state.engine.model.known_users)[:5]  # type: ignore[attr-defined]
        body = client.get(f"/v1/recommendations/{users[0]}", params={"k": 6}).json()
    assert spy.sizes == [18] and len(body["items"]) == 6

    catalog = shop.dataset.items.copy()
    # the ranker knows more than the serving catalog: the most profitable items just sold out
    top_margin = catalog.assign(m=catalog["price"] * catalog["margin"]).nlargest(30, "m")["item_id"]
    catalog.loc[catalog["item_id"].isin(top_margin), "stock"] = 0.0
    served: dict[float, list[float]] = {}
    unit = dict(zip(catalog["item_id"], catalog["price"] * catalog["margin"], strict=True))
    for lam in (0.0, 3.0):
        ranker = MultiObjectiveRanker.from_catalog(catalog, lam=lam, overfetch=4)
        with TestClient(create_app(ServingSettings(workspace=ws, poll_interval_s=0), reranker=ranker)) as client:
            for u in users:
                items = client.get(f"/v1/recommendations/{u}", params={"k": 8}).json()["items"]
                assert len(items) == 8
                assert not {i["item_id"] for i in items} & set(top_margin)
                served.setdefault(lam, []).extend(unit[i["item_id"]] for i in items)
    assert np.mean(served[3.0]) > np.mean(served[0.0])
