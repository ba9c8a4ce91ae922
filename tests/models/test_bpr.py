"""BPR-MF: learning curves, planted groups, popularity-aware sampling, fold-in, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.models._bpr import BPR
from aisle.models._popularity import Popularity

pytest.importorskip("numba")


def _interactions(x: sp.csr_matrix) -> Interactions:
    n_users, n_items = x.shape
    return Interactions(
        sp.csr_array(x, dtype=np.float32),
        Vocabulary([f"u{u}" for u in range(n_users)]),
        Vocabulary([f"i{i}" for i in range(n_items)]),
    )


def _groups(seed: int = 0) -> tuple[Interactions, list[set[int]]]:
    """80 users like items 0-19, 40 users like items 20-39; 6 train + 2 held-out items each."""
    rng = np.random.default_rng(seed)
    rows, cols, test = [], [], []
    for u in range(120):
        pool = np.arange(0, 20) if u < 80 else np.arange(20, 40)
        chosen = rng.choice(pool, size=8, replace=False)
        rows += [u] * 6
        cols += chosen[:6].tolist()
        test.append(set(chosen[6:].tolist()))
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(120, 40))
    return _interactions(x), test


def _skewed(seed: int = 0) -> Interactions:
    """Zipf-popular items, no taste structure: 300 users x 10 items among 150."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 151) ** 1.1
    p /= p.sum()
    rows, cols = [], []
    for u in range(300):
        cols += rng.choice(150, size=10, replace=False, p=p).tolist()
        rows += [u] * 10
    return _interactions(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(300, 150)))


def _recall(model: BPR | Popularity, test: list[set[int]], k: int = 5) -> float:
    recs = model.recommend([f"u{u}" for u in range(len(test))], k=k)
    hits = [
        len({int(i[1:]) for i in recs.items[u]} & test[u]) / len(test[u]) for u in range(len(test))
    ]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def groups() -> tuple[Interactions, list[set[int]]]:
    return _groups()


@pytest.fixture(scope="module")
def fitted(groups: tuple[Interactions, list[set[int]]]) -> BPR:
    return BPR(factors=16, epochs=30, seed=2).fit(groups[0])


def test_training_loss_falls_and_auc_rises(fitted: BPR) -> None:
    loss, auc = fitted.loss_history_, fitted.auc_history_
    assert loss.shape == auc.shape == (30,)
    assert loss[-1] < 0.6 * loss[0]
    assert auc[-1] > auc[0] and auc[-1] > 0.9
    assert np.mean(loss[-5:]) < np.mean(loss[:5])


def test_beats_popularity_on_planted_groups(
    fitted: BPR, groups: tuple[Interactions, list[set[int]]]
) -> None:
    interactions, test = groups
    pop = Popularity().fit(interactions)
    # in-group guessing finds 10/14 of the held-out items; popularity fails the 40 group-B users
    bpr_recall, pop_recall = _recall(fitted, test, k=10), _recall(pop, test, k=10)
    assert bpr_recall > pop_recall + 0.15
    recs = fitted.recommend([f"u{u}" for u in range(120)], k=5)
    in_group = [all((int(i[1:]) < 20) == (u < 80) for i in recs.items[u]) for u in range(120)]
    assert np.mean(in_group) > 0.9


def test_popularity_sampling_lowers_recommended_popularity() -> None:
    data = _skewed()
    users = [f"u{u}" for u in range(300)]

    def mean_pop(model: BPR) -> float:
        top = model.items_.index(model.recommend(users, k=10).items.ravel().astype(object))
        return float(model.item_popularity_[top].mean())

    uniform = BPR(factors=16, epochs=20, seed=1).fit(data)
    popular = BPR(factors=16, epochs=20, seed=1, sampling="popularity", popularity_alpha=1.0).fit(
        data
    )
    assert mean_pop(popular) < 0.5 * mean_pop(uniform)


def test_deterministic_given_seed(groups: tuple[Interactions, list[set[int]]], fitted: BPR) -> None:
    again = BPR(factors=16, epochs=30, seed=2).fit(groups[0])
    np.testing.assert_array_equal(again.item_factors_, fitted.item_factors_)
    np.testing.assert_array_equal(again.user_factors_, fitted.user_factors_)
    other = BPR(factors=16, epochs=30, seed=4).fit(groups[0])
    assert not np.array_equal(other.item_factors_, fitted.item_factors_)


def test_fold_in_reproduces_a_known_user(
    fitted: BPR, groups: tuple[Interactions, list[set[int]]]
) -> None:
    x = sp.csr_matrix(groups[0].matrix)
    history = sp.csr_matrix(x[[7, 100]])
    users = ["new-a", "new-b"]
    folded = fitted.recommend(users, k=5, history=history)
    known = fitted.recommend(["u7", "u100"], k=5)
    assert folded.sources.tolist() == ["fold-in", "fold-in"]
    assert folded.items.tolist() == known.items.tolist()
    np.testing.assert_allclose(folded.scores, known.scores, rtol=1e-5)
    # a brand-new history: deterministic, and in the right group
    fresh = sp.csr_matrix((np.ones(3), ([0, 0, 0], [21, 25, 33])), shape=(1, 40))
    a = fitted.recommend(["x"], k=5, history=fresh)
    b = fitted.recommend(["x"], k=5, history=fresh)
    assert a.items.tolist() == b.items.tolist()
    assert all(int(i[1:]) >= 20 for i in a.items[0])


def test_save_load_roundtrip(fitted: BPR, tmp_path: Path) -> None:
    fitted.save(tmp_path / "bpr")
    back = BPR.load(tmp_path / "bpr")
    assert isinstance(back, BPR) and back.config == fitted.config
    np.testing.assert_array_equal(back.loss_history_, fitted.loss_history_)
    users = ["u1", "u90", "nobody"]
    a, b = fitted.recommend(users, k=6), back.recommend(users, k=6)
    assert (a.items == b.items).all()
    np.testing.assert_allclose(a.scores, b.scores)
    fresh = sp.csr_matrix((np.ones(2), ([0, 0], [3, 5])), shape=(1, 40))
    np.testing.assert_allclose(
        fitted.recommend(["x"], k=5, history=fresh).scores,
        back.recommend(["x"], k=5, history=fresh).scores,
    )


def test_hogwild_threads_learn(groups: tuple[Interactions, list[set[int]]]) -> None:
    m = BPR(factors=16, epochs=30, seed=3, threads=2).fit(groups[0])
    assert m.auc_history_[-1] > 0.9
    assert (
        _recall(m, groups[1], k=10) > _recall(Popularity().fit(groups[0]), groups[1], k=10) + 0.15
    )
