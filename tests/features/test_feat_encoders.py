"""Encoders: out-of-fold target encoding vs the in-fold leak, hashing, learned embeddings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import rankdata

from aisle.data import Vocabulary
from aisle.errors import ConfigError, NotFittedError
from aisle.features import (
    ITEM,
    EmbeddingView,
    OnlineStore,
    SQLiteOnline,
    TargetEncoder,
    embeddings_from_model,
    hash_ids,
    learn_item_embeddings,
    naive_target_encoding,
)
from aisle.simulate import SimulatedShop


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney)."""
    ranks = rankdata(score)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logistic_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One-feature logistic regression (intercept, slope) by Newton's method."""
    w = np.zeros(2)
    design = np.column_stack([np.ones_like(x), x])
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ w))
        grad = design.T @ (p - y)
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        w -= np.linalg.solve(hess, grad)
    return float(w[0]), float(w[1])


def log_loss(x: np.ndarray, y: np.ndarray, w: tuple[float, float]) -> float:
    p = np.clip(1 / (1 + np.exp(-(w[0] + w[1] * x))), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_out_of_fold_encoding_does_not_inflate_the_validation_metric() -> None:
    rng = np.random.default_rng(7)
    n_cat = 2000
    true_rate = np.clip(rng.normal(0.3, 0.05, n_cat), 0.01, 0.99)  # a weak real signal per category
    train_cat = rng.integers(0, n_cat, 8000)
    test_cat = rng.integers(0, n_cat, 8000)
    y_train = (rng.random(8000) < true_rate[train_cat]).astype(float)
    y_test = (rng.random(8000) < true_rate[test_cat]).astype(float)

    naive = naive_target_encoding(train_cat, y_train, smoothing=1.0)
    encoder = TargetEncoder(n_folds=5, smoothing=1.0, seed=0)
    oof = encoder.fit_transform(train_cat, y_train)
    test_feature = encoder.transform(test_cat)  # what the model sees in production
    holdout = auc(test_feature, y_test)

    # The metric computed on the training rows: inflated by the leak, honest out of fold.
    assert auc(naive, y_train) > holdout + 0.15
    assert abs(auc(oof, y_train) - holdout) < 0.03
    # And a model trained on the leaky feature trusts it too much: worse on fresh data.
    w_naive, w_oof = logistic_fit(naive, y_train), logistic_fit(oof, y_train)
    assert w_naive[1] > w_oof[1]
    assert log_loss(test_feature, y_test, w_naive) > log_loss(test_feature, y_test, w_oof)


def test_target_encoder_details(tmp_path: Path) -> None:
    enc = TargetEncoder(smoothing=2.0, n_folds=2)
    with pytest.raises(NotFittedError):
        enc.transform(["a"])
    enc.fit(["a", "a", "a", "b"], [1, 1, 0, 0])
    prior = 0.5
    assert enc.transform(["a", "b", "new"]).tolist() == pytest.approx([(2 + 2 * prior) / 5, (0 + 2 * prior) / 3, prior])
    back = TargetEncoder.load(enc.save(tmp_path / "enc.json"))
    assert back.transform(["a", "new"]).tolist() == enc.transform(["a", "new"]).tolist()
    folds = np.array([0, 1, 0, 1])
    out = TargetEncoder(smoothing=0.0).fit_transform(["a", "a", "a", "b"], [1, 1, 0, 0], folds=folds)
    assert out[0] == 1.0  # row 0 (fold 0) sees only row 1 of category a (fold 1)
    with pytest.raises(ConfigError):
        TargetEncoder(n_folds=1)


def test_hashing_is_stable_uniform_and_seeded() -> None:
    ids = [f"user-{i}" for i in range(50_000)]
    a = hash_ids(ids, 64)
    assert isinstance(a, np.ndarray) and np.array_equal(a, hash_ids(ids, 64))
    assert a.min() >= 0 and a.max() < 64
    counts = np.bincount(a, minlength=64)
    assert counts.max() < 1.2 * counts.mean() and counts.min() > 0.8 * counts.mean()
    b = hash_ids(ids, 64, seed=1)
    assert isinstance(b, np.ndarray) and (a != b).mean() > 0.9
    buckets, signs = hash_ids(ids[:1000], 8, signed=True)
    assert set(np.unique(signs)) == {-1.0, 1.0} and buckets.shape == (1000,)
    assert hash_ids(["x"], 1000).tolist() == hash_ids(np.array(["x"], dtype=object), 1000).tolist()


def test_learned_item_embeddings_are_served(shop: SimulatedShop, tmp_path: Path) -> None:
    items, vectors = learn_item_embeddings(shop.events, dim=16, seed=0)
    assert vectors.shape == (len(items), 16) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    again = learn_item_embeddings(shop.events, dim=16, seed=0)[1]
    assert np.allclose(vectors, again, atol=1e-5)
    # items viewed in the same session are closer than random pairs
    index = {item: i for i, item in enumerate(items)}
    pairs = shop.events.groupby("session_id")["item_id"].unique()
    co = [(index[s[0]], index[s[1]]) for s in pairs if len(s) >= 2 and s[0] in index and s[1] in index][:500]
    rng = np.random.default_rng(0)
    rand = rng.integers(0, len(items), (500, 2))
    cos_co = np.mean([vectors[i] @ vectors[j] for i, j in co])
    cos_rand = np.mean([vectors[i] @ vectors[j] for i, j in rand])
    assert cos_co > cos_rand + 0.1
    view = EmbeddingView(name="item_vec", entity=ITEM, dim=16)
    online = OnlineStore(SQLiteOnline(tmp_path / "o.sqlite"))
    online.write_embeddings(view, items, vectors)
    frame = online.read(view, items[:3])
    assert np.allclose(frame.values, vectors[:3])


def test_embeddings_from_a_fitted_factor_model() -> None:
    model = SimpleNamespace(item_factors_=np.ones((3, 4)), items_=Vocabulary.from_list(["a", "b", "c"]))
    ids, vectors = embeddings_from_model(model, "item")
    assert ids == ["a", "b", "c"] and vectors.shape == (3, 4) and vectors.dtype == np.float32
    with pytest.raises(ConfigError, match="no user factors"):
        embeddings_from_model(model, "user")
