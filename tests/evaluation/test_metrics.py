"""Ranking metrics checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.errors import ConfigError
from aisle.evaluation import beyond_accuracy, gini, per_user_metrics


def rel(rows: list[list[int]], n_items: int = 6) -> sp.csr_matrix:
    m = sp.lil_matrix((len(rows), n_items))
    for u, items in enumerate(rows):
        for i in items:
            m[u, i] = 1
    return sp.csr_matrix(m)


def test_hand_computed_single_user() -> None:
    # ranking [3, 1, 4]; relevant {1, 5}: one hit at rank 2
    top = np.array([[3, 1, 4]])
    m = per_user_metrics(top, rel([[1, 5]]), ks=[3])
    assert m["precision@3"][0] == pytest.approx(1 / 3)
    assert m["recall@3"][0] == pytest.approx(1 / 2)
    assert m["capped_recall@3"][0] == pytest.approx(1 / 2)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@3"][0] == pytest.approx((1 / math.log2(3)) / idcg)
    assert m["map@3"][0] == pytest.approx((1 / 2) / 2)
    assert m["mrr@3"][0] == pytest.approx(1 / 2)
    assert m["hit_rate@3"][0] == 1.0


def test_capped_recall_differs_from_recall_when_many_relevant() -> None:
    top = np.array([[0, 1]])
    m = per_user_metrics(top, rel([[0, 1, 2, 3]]), ks=[2])
    assert m["recall@2"][0] == pytest.approx(0.5)
    assert m["capped_recall@2"][0] == pytest.approx(1.0)
    assert m["ndcg@2"][0] == pytest.approx(1.0)


def test_padding_and_no_hits_and_users_without_relevant_items() -> None:
    top = np.array([[2, -1, -1], [0, 1, 2]])
    m = per_user_metrics(top, rel([[2], []]), ks=[1, 3])
    assert m["ndcg@1"][0] == 1.0 and m["precision@3"][0] == pytest.approx(1 / 3)
    assert np.isnan(m["ndcg@3"][1])  # no relevant items: undefined, excluded from means


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown metrics"):
        per_user_metrics(np.zeros((1, 2), int), rel([[0]]), ks=[1], metrics=["auc"])
    with pytest.raises(ConfigError, match="k=5"):
        per_user_metrics(np.zeros((1, 2), int), rel([[0]]), ks=[5])


def test_gini_known_values() -> None:
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # (n-1)/n for one holder
    assert gini(np.array([])) == 0.0


def test_beyond_accuracy() -> None:
    top = np.array([[0, 1], [0, 2]])
    pop = np.array([4.0, 2.0, 1.0, 1.0])
    out = beyond_accuracy(top, pop, n_train_users=4, ks=[2])
    assert out["coverage@2"] == pytest.approx(3 / 4)
    assert out["arp@2"] == pytest.approx((4 + 2 + 4 + 1) / 4)
    expected_novelty = np.mean([-math.log2(1.0), -math.log2(0.5), -math.log2(1.0), -math.log2(0.25)])
    assert out["novelty@2"] == pytest.approx(expected_novelty)
    assert out["gini@2"] == pytest.approx(gini(np.array([2, 1, 1, 0])))
