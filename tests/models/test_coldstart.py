"""Cold start: the content → factors model (``content-cf``) and onboarding for new users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.errors import ConfigError, NotFittedError
from aisle.models import (
    IALS,
    ContentCF,
    ContentToFactors,
    Onboarding,
    OnboardingPolicy,
    Recommender,
    make_model,
)


def catalog() -> pd.DataFrame:
    rows = []
    for i in range(60):
        sport = i < 30
        rows.append({"item_id": f"i{i}", "title": ("trail running shoe" if sport else "steel kitchen knife") + f" {i}",
                     "category": "Sports/Running" if sport else "Home/Kitchen", "brand": "Swift" if sport else "Forge",
                     "price": float(10 + i)})
    rows += [{"item_id": "new-sport", "title": "running shoe for trail", "category": "Sports/Running",
              "brand": "Swift", "price": 30.0},
             {"item_id": "new-home", "title": "kitchen knife of steel", "category": "Home/Kitchen",
              "brand": "Forge", "price": 30.0}]
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


@pytest.fixture(scope="module")
def interactions() -> Interactions:
    return build_interactions(events(), FeedbackConfig())


@pytest.fixture(scope="module")
def model(interactions: Interactions) -> ContentCF:
    return ContentCF(factors=8, iterations=8).fit(interactions, catalog=catalog())


def test_new_item_scores_higher_for_users_who_like_similar_items(model: ContentCF) -> None:
    sport_users = [f"s{u}" for u in range(40)]
    home_users = [f"h{u}" for u in range(40)]
    s = model.score_new_items(sport_users + home_users, ["new-sport", "new-home"])
    assert s[:40, 0].mean() > s[40:, 0].mean()
    assert s[40:, 1].mean() > s[:40, 1].mean()
    assert (s[:40, 0] > s[:40, 1]).mean() > 0.9  # per user, the matching new item wins
    top = model.recommend_new_items(["s5", "h5"], k=1)
    assert top.for_user("s5")[0][0] == "new-sport" and top.for_user("h5")[0][0] == "new-home"


def test_known_items_are_plain_ials(model: ContentCF, interactions: Interactions) -> None:
    ials = IALS(factors=8, iterations=8).fit(interactions)
    np.testing.assert_allclose(model.score(["s1", "h2"], ["i3", "i40"]), ials.score(["s1", "h2"], ["i3", "i40"]),
                               rtol=1e-5)


def test_items_listed_after_fit_and_new_users(model: ContentCF) -> None:
    later = pd.DataFrame({"item_id": ["later"], "title": ["chef kitchen knife"], "category": ["Home/Kitchen"],
                          "brand": ["Forge"], "price": [20.0]})
    model.add_items(later)
    assert "later" in model.cold_items_
    history = events().query("user_id == 'h4'").assign(user_id="fresh")
    recs = model.recommend_new_items(["fresh"], k=2, items=["later", "new-sport"], history=history)
    assert recs.sources.tolist() == ["fold-in"] and recs.for_user("fresh")[0][0] == "later"
    f = model.predict_factors(later)
    assert f.shape == (1, 8) and np.isfinite(f).all()


def test_mapping_ridge_and_knn_recover_structure() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((200, 5))
    w = rng.standard_normal((5, 3))
    y = v @ w + 0.5
    ridge = ContentToFactors("ridge", l2=1e-6).fit(v, y)
    np.testing.assert_allclose(ridge.predict(v[:3]), y[:3], atol=1e-4)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)  # content vectors are unit length: dot = cosine
    knn = ContentToFactors("knn", neighbours=1).fit(unit, y)
    np.testing.assert_allclose(knn.predict(unit[:3]), y[:3], atol=1e-9)
    np.testing.assert_allclose(ridge.predict(np.zeros((1, 5)))[0], y.mean(axis=0))  # no content: the mean factor


def test_knn_mapping_model(interactions: Interactions) -> None:
    m = ContentCF(factors=8, iterations=8, mapping="knn", neighbours=10).fit(interactions, catalog=catalog())
    s = m.score_new_items(["s1", "h1"], ["new-sport", "new-home"])
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]


def test_needs_a_catalog(interactions: Interactions) -> None:
    with pytest.raises(ConfigError, match="catalog"):
        make_model("content-cf").fit(interactions)


def test_save_load_identical(model: ContentCF, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back, ContentCF) and back.config == model.config
    np.testing.assert_allclose(back.score_new_items(["s1", "h1"]), model.score_new_items(["s1", "h1"]))
    a = model.recommend_new_items(["s1", "h1"], k=5, include_known=True)
    b = back.recommend_new_items(["s1", "h1"], k=5, include_known=True)
    assert (a.items == b.items).all()


# ------------------------------------------------------------------ onboarding


@pytest.fixture(scope="module")
def onboarding(interactions: Interactions) -> Onboarding:
    users = pd.DataFrame({"user_id": [f"s{u}" for u in range(40)] + [f"h{u}" for u in range(40)] + ["signup"],
                          "segment": ["runner"] * 40 + ["cook"] * 40 + ["cook"]})
    return Onboarding(choice_boost=4.0).fit(interactions, catalog=catalog(), users=users)


def test_onboarding_choices_segments_and_fallback(onboarding: Onboarding) -> None:
    recs = onboarding.recommend(["a", "b", "signup", "c"], k=5, categories={"a": ["Sports"]},
                                brands={"b": ["Forge"]}, segments={"c": "unknown-segment"})
    assert recs.sources.tolist() == ["onboarding", "onboarding", "segment", "popular"]
    assert all(int(i[1:]) < 30 for i, _ in recs.for_user("a"))
    assert all(int(i[1:]) >= 30 for i, _ in recs.for_user("b"))
    assert all(int(i[1:]) >= 30 for i, _ in recs.for_user("signup"))  # the cook segment from the users table
    nothing = onboarding.recommend(["d"], k=3, categories={"d": ["Garden"]})
    assert nothing.sources.tolist() == ["popular"]
    with pytest.raises(NotFittedError):
        Onboarding().recommend(["x"], 3)
    with pytest.raises(ConfigError):
        Onboarding(choice_boost=-1.0)


def test_policy_folds_in_after_the_first_events(onboarding: Onboarding, model: ContentCF) -> None:
    policy = OnboardingPolicy(model, onboarding)
    first = events().query("user_id == 'h7'").head(3).assign(user_id="newbie")
    recs = policy.recommend(["newbie", "quiet", "s1"], k=5, history=first, categories={"quiet": ["Sports"]})
    assert recs.sources.tolist() == ["fold-in", "onboarding", "model"]
    assert all(int(i[1:]) >= 30 for i, _ in recs.for_user("newbie"))
    patient = OnboardingPolicy(model, onboarding, min_events=5)
    later = patient.recommend(["newbie"], k=5, history=first, categories={"newbie": ["Sports"]})
    assert later.sources.tolist() == ["onboarding"]  # 3 events are not enough yet
    assert patient.recommend(["newbie"], k=5, history=events().query("user_id == 'h7'").assign(
        user_id="newbie")).sources.tolist() == ["fold-in"]
