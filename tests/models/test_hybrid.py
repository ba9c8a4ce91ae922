"""The feature-aware factorisation model (``hybrid``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.errors import ConfigError
from aisle.models import Hybrid, Recommender

FAST = {"dim": 16, "epochs": 15, "batch_size": 128, "negatives": 32, "lr": 0.02, "device": "cpu", "seed": 1}


def catalog() -> pd.DataFrame:
    rows = [{"item_id": f"i{i}", "category": "Sports/Running" if i < 30 else "Home/Kitchen",
             "brand": "Swift" if i < 30 else "Forge", "price": float(10 + (i % 30)),
             "stock": float(i % 4)} for i in range(60)]
    rows += [{"item_id": "new-sport", "category": "Sports/Running", "brand": "Swift", "price": 20.0, "stock": 3.0},
             {"item_id": "new-home", "category": "Home/Kitchen", "brand": "Forge", "price": 20.0, "stock": 3.0}]
    return pd.DataFrame(rows)


def events(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for group, pool in (("s", range(0, 30)), ("h", range(30, 60))):
        for u in range(40):
            for i in rng.choice(list(pool), size=8, replace=False):
                rows.append((f"{group}{u}", f"i{i}", "purchase",
                             pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 900)))))
    return conform_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]))[0]


def users() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"s{u}" for u in range(40)] + [f"h{u}" for u in range(40)] + ["signup"],
                         "segment": ["runner"] * 40 + ["cook"] * 40 + ["runner"]})


@pytest.fixture(scope="module")
def interactions() -> Interactions:
    return build_interactions(events(), FeedbackConfig())


@pytest.fixture(scope="module")
def model(interactions: Interactions) -> Hybrid:
    return Hybrid(**FAST).fit(interactions, catalog=catalog(), users=users(), events=events())  # type: ignore[arg-type]


def test_learns_the_taste_groups(model: Hybrid) -> None:
    recs = model.recommend([f"s{u}" for u in range(10)] + [f"h{u}" for u in range(10)], k=5)
    hits = [all((int(i[1:]) < 30) == u.startswith("s") for i, _ in recs.for_user(u)) for u in recs.users]
    assert np.mean(hits) > 0.9
    assert model.loss_history_[-1] < model.loss_history_[0]


def test_new_items_are_scored_through_their_features(model: Hybrid) -> None:
    assert set(model.cold_items_.ids) == {"new-sport", "new-home"}
    s = model.score_new_items([f"s{u}" for u in range(40)] + [f"h{u}" for u in range(40)], ["new-sport", "new-home"])
    assert (s[:40, 0] > s[:40, 1]).mean() > 0.9  # sport fans: the new sport item first
    assert (s[40:, 1] > s[40:, 0]).mean() > 0.9
    later = pd.DataFrame({"item_id": ["later"], "category": ["Home/Kitchen"], "brand": ["Forge"], "price": [12.0],
                          "stock": [2.0]})
    model.add_items(later)
    top = model.recommend_new_items(["h3"], k=1, items=["later", "new-sport"])
    assert top.for_user("h3")[0][0] == "later"


def test_without_features_new_items_are_blind(interactions: Interactions) -> None:
    plain = Hybrid(**FAST, use_item_features=False, use_user_features=False).fit(  # type: ignore[arg-type]
        interactions, catalog=catalog(), users=users(), events=events())
    assert len(plain.item_tokens_) == 0 and len(plain.user_tokens_) == 0
    s = plain.score_new_items(["s1", "h1"], ["new-sport", "new-home"])
    np.testing.assert_allclose(s, 0.0)  # nothing to tell the new items apart


def test_user_features_reach_folded_in_users_of_the_users_table(model: Hybrid) -> None:
    history = events().query("user_id == 'h2'")
    as_signup = model.score(["signup"], ["i1", "i40"], history=history.assign(user_id="signup"))
    as_stranger = model.score(["stranger"], ["i1", "i40"], history=history.assign(user_id="stranger"))
    assert not np.allclose(as_signup, as_stranger)  # 'signup' is in the users table (segment runner)
    assert as_signup[0, 0] - as_signup[0, 1] > as_stranger[0, 0] - as_stranger[0, 1]


def test_save_load_identical(model: Hybrid, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back, Hybrid) and back.config == model.config
    a = model.recommend(["s1", "h1"], k=6)
    b = back.recommend(["s1", "h1"], k=6)
    assert (a.items == b.items).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    np.testing.assert_allclose(back.score_new_items(["s1"]), model.score_new_items(["s1"]), rtol=1e-6)
    more = pd.DataFrame({"item_id": ["x1"], "category": ["Sports/Running"], "brand": ["Swift"], "price": [15.0],
                         "stock": [1.0]})
    back.add_items(more)
    assert back.recommend_new_items(["s1"], k=1, items=["x1", "new-home"]).for_user("s1")[0][0] == "x1"


def test_seeded_bpr_and_device(interactions: Interactions) -> None:
    cfg = {**FAST, "epochs": 3, "loss": "bpr"}
    a = Hybrid(**cfg).fit(interactions, catalog=catalog())  # type: ignore[arg-type]
    b = Hybrid(**cfg).fit(interactions, catalog=catalog())  # type: ignore[arg-type]
    np.testing.assert_allclose(a.item_vectors_, b.item_vectors_)
    with pytest.raises(ConfigError, match="device"):
        Hybrid(**{**cfg, "device": "tpu"}).fit(interactions)  # type: ignore[arg-type]
