"""Evaluation protocols, segments, confidence intervals, paired tests and ablations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from aisle.data import FeedbackConfig, build_interactions, conform_events, temporal_split
from aisle.errors import ConfigError, DataError
from aisle.evaluation import (
    Ablation,
    bootstrap_ci,
    evaluate,
    intra_list_diversity,
    item_popularity_groups,
    paired_comparison,
    run_ablation,
    segment_results,
)
from aisle.models import make_model


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two taste groups with a popularity skew, events spread over 40 days."""
    rng = np.random.default_rng(1)
    rows = []
    for u in range(120):
        group = np.arange(0, 30) if u % 2 == 0 else np.arange(30, 60)
        weights = 1.0 / (1 + np.arange(30))
        for i in rng.choice(group, size=12, replace=False, p=weights / weights.sum()):
            rows.append((f"u{u}", f"i{i}", "purchase", pd.Timestamp("2024-01-01", tz="UTC")
                         + pd.Timedelta(hours=int(rng.integers(0, 960)))))
    events = conform_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]))[0]
    catalog = pd.DataFrame({"item_id": [f"i{i}" for i in range(60)],
                            "category": [f"Dept{i % 3}/Sub{i % 6}" for i in range(60)],
                            "brand": [f"b{i % 4}" for i in range(60)]})
    return events, catalog


def test_sampled_protocol_is_labelled_and_easier_than_full(shop: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, _ = shop
    split = temporal_split(events, test_fraction=0.25)
    model = make_model("ease").fit(build_interactions(split.train))
    full = evaluate(model, split.test, ks=(10,))
    sampled = evaluate(model, split.test, ks=(10,), protocol="sampled", n_negatives=5, seed=3)
    again = evaluate(model, split.test, ks=(10,), protocol="sampled", n_negatives=5, seed=3)
    assert full.protocol == "full ranking"
    assert sampled.protocol == "sampled: 5 negatives per user, seed 3"
    assert sampled.metrics["hit_rate@10"] >= full.metrics["hit_rate@10"]
    assert sampled.metrics == again.metrics  # seeded
    # with 5 negatives a list holds at most relevant + 5 items
    lengths = (sampled.top >= 0).sum(axis=1)
    n_rel = np.diff(sampled.relevant.indptr)
    assert np.all(lengths <= n_rel + 5)
    with pytest.raises(ConfigError, match="protocol"):
        evaluate(model, split.test, protocol="popular")  # type: ignore[arg-type]


def test_intra_list_diversity_by_hand() -> None:
    # items 0,1 share all attributes; item 2 shares nothing
    attrs = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]], dtype=float))
    top = np.array([[0, 1, -1], [0, 2, -1], [0, 1, 2], [0, -1, -1]])
    ild = intra_list_diversity(top, attrs, k=3)
    assert ild[0] == pytest.approx(0.0)
    assert ild[1] == pytest.approx(1.0)
    assert ild[2] == pytest.approx(1 - 1 / 3)  # pairs: (0,1)=1, (0,2)=0, (1,2)=0
    assert np.isnan(ild[3])


def test_ild_reported_with_a_catalog(shop: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, catalog = shop
    split = temporal_split(events, test_fraction=0.25)
    model = make_model("pop").fit(build_interactions(split.train))
    res = evaluate(model, split.test, ks=(5,), catalog=catalog)
    assert 0 <= res.metrics["ild@5"] <= 1
    with pytest.raises(DataError, match="attribute columns"):
        evaluate(model, split.test, ks=(5,), catalog=catalog[["item_id"]])


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(1.0, 1.0, 50), seed=1)
    large = bootstrap_ci(rng.normal(1.0, 1.0, 5000), seed=1)
    assert small.low < small.mean < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert bootstrap_ci(np.array([1.0, np.nan, 3.0])).n == 2
    with pytest.raises(DataError):
        bootstrap_ci(np.array([np.nan]))


def test_paired_comparison_matches_scipy_and_aligns_users() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(200)
    b = a + 0.05 + rng.normal(0, 0.1, 200)
    users = np.array([f"u{i}" for i in range(200)], dtype=object)
    perm = rng.permutation(200)
    cmp = paired_comparison(users, a, users[perm], b[perm], metric="ndcg@10")
    assert cmp.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert cmp.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert cmp.diff.mean == pytest.approx(float((b - a).mean()))
    assert cmp.diff.low > 0


def test_item_popularity_groups() -> None:
    pop = np.array([50.0, 20, 10, 10, 5, 3, 1, 1])  # total 100
    groups = item_popularity_groups(pop)
    assert groups[0] == "head"  # 50 % alone
    assert groups[1] == "torso"
    assert list(groups[-3:]) == ["tail", "tail", "tail"]  # the last 5 % -> tail


def test_segment_results(shop: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, _ = shop
    split = temporal_split(events, test_fraction=0.25)
    model = make_model("itemknn").fit(build_interactions(split.train))
    res = evaluate(model, split.test, ks=(10,))
    rows = segment_results(res, model, metrics=["ndcg@10"], n_boot=200)
    seen = {(r["segmentation"], r["segment"]) for r in rows}
    assert ("user-type", "returning") in seen and ("item-pop", "head") in seen
    for r in rows:
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    activity = [r for r in rows if r["segmentation"] == "activity"]
    assert sum(r["n"] for r in activity) == res.counts["users_evaluated"]
    with pytest.raises(ConfigError, match="segmentations"):
        segment_results(res, model, segmentations=["country"])


def test_ablation_reports_changes_with_cis(shop: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, _ = shop
    split = temporal_split(events, test_fraction=0.25)
    rows = run_ablation("itemknn", split.train, split.test,
                        [Ablation("no-bm25", {"weighting": "none"}),
                         Ablation("binary", feedback={"dedup": "binary"}),
                         Ablation("no-views", drop_event_types=("view",))],
                        metric="ndcg@10", n_boot=200)
    assert [r.name for r in rows] == ["base", "no-bm25", "binary", "no-views"]
    assert rows[0].diff is None
    for row in rows[1:]:
        assert row.ci_low is not None and row.ci_low <= row.diff <= row.ci_high  # type: ignore[operator]
        assert row.value == pytest.approx(rows[0].value + row.diff)  # type: ignore[operator]
    # the shop has purchases only: dropping views changes nothing
    assert rows[3].diff == pytest.approx(0.0)


def test_feedback_config_is_default() -> None:
    assert FeedbackConfig().weights["purchase"] > FeedbackConfig().weights["view"]
