"""The model contract, checked for every registered model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.errors import ConfigError, NotFittedError, UnknownIdError
from aisle.models import MODELS, Recommender, make_model


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n_users = 60
    # two taste groups: users < 30 like items < 20, the others like items >= 20
    rows = []
    for u in range(n_users):
        pool = np.arange(0, 20) if u < 30 else np.arange(20, 40)
        for i in rng.choice(pool, size=8, replace=False):
            rows.append((f"u{u}", f"i{i}", "purchase", pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 500)))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return conform_events(frame)[0]


@pytest.fixture(scope="module")
def interactions(events: pd.DataFrame) -> Interactions:
    return build_interactions(events, FeedbackConfig())


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(40)],
                         "category": ["Home/Kitchen" if i < 20 else "Sports/Running" for i in range(40)]})


#: Small settings so the slower (PyTorch) models fit the 60-user contract data in a second or two.
FAST: dict[str, dict[str, object]] = {
    "hybrid": {"dim": 16, "epochs": 5, "batch_size": 64, "negatives": 16, "device": "cpu"},
    "sasrec": {"embedding_dim": 16, "ffn_dim": 32, "max_len": 10, "epochs": 3, "patience": 0, "batch_size": 32,
               "device": "cpu"},
    "gru4rec": {"embedding_dim": 16, "hidden_dim": 16, "max_len": 10, "epochs": 3, "patience": 0, "batch_size": 32,
                "device": "cpu"},
    "two-tower": {"dim": 16, "hidden": 32, "epochs": 3, "batch_size": 32, "device": "cpu"},
    "mf": {"factors": 8, "epochs": 5, "batch_size": 64, "fold_in_steps": 20, "device": "cpu", "threads": 1},
    "ncf": {"factors": 8, "epochs": 5, "batch_size": 64, "fold_in_steps": 20, "device": "cpu", "threads": 1},
}


def fast_model(name: str) -> Recommender:
    return make_model(name, **FAST.get(name, {}))


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest, interactions: Interactions, catalog: pd.DataFrame,
          events: pd.DataFrame) -> Recommender:
    # every model accepts the side data of the contract; those that don't use it ignore it
    return fast_model(request.param).fit(interactions, catalog=catalog, events=events)


def test_fit_returns_self_and_unfitted_model_refuses(
    interactions: Interactions, catalog: pd.DataFrame, events: pd.DataFrame
) -> None:
    for name in MODELS:
        m = fast_model(name)
        with pytest.raises(NotFittedError):
            m.recommend(["u1"], 5)
        assert m.fit(interactions, catalog=catalog, events=events) is m


def test_recommend_excludes_seen_and_honours_filters(model: Recommender, interactions: Interactions) -> None:
    recs = model.recommend(["u1", "u40"], k=5)
    for user in ("u1", "u40"):
        seen, _ = interactions.user_items(user)
        got = [i for i, _ in recs.for_user(user)]
        assert len(got) == 5 and not set(got) & set(seen)
    only = ["i1", "i2", "i3", "unknown-item"]
    recs = model.recommend(["u1"], k=10, candidates=only, exclude_seen=False, exclude=["i2"])
    got = [i for i, _ in recs.for_user("u1")]
    assert set(got) == {"i1", "i3"}  # short list padded, never outside the candidates


def test_unknown_user_policies(model: Recommender) -> None:
    recs = model.recommend(["nobody"], k=3)
    assert recs.sources.tolist() == ["popular"] and None not in recs.items[0]
    empty = model.recommend(["nobody"], k=3, unknown_users="empty")
    assert empty.items[0].tolist() == [None, None, None]
    with pytest.raises(UnknownIdError, match="nobody"):
        model.recommend(["nobody"], k=3, unknown_users="raise")


def test_fold_in_matches_a_known_user(model: Recommender, events: pd.DataFrame) -> None:
    history = events[events["user_id"] == "u3"].assign(user_id="newcomer")
    folded = model.recommend(["newcomer"], k=5, history=history)
    known = model.recommend(["u3"], k=5)
    assert folded.sources.tolist() == ["fold-in"]
    assert folded.items[0].tolist() == known.items[0].tolist()


def test_score_and_unknown_items(model: Recommender) -> None:
    s = model.score(["u1"], ["i1", "nope"])
    assert s.shape == (1, 2) and np.isnan(s[0, 1]) and np.isfinite(s[0, 0])
    with pytest.raises(UnknownIdError):
        model.score(["nobody"], ["i1"])


def test_similar_items(model: Recommender) -> None:
    sims = model.similar_items(["i1"], k=4)
    got = [i for i, _ in sims.for_user("i1")]
    assert "i1" not in got and len(got) == 4
    with pytest.raises(UnknownIdError):
        model.similar_items(["nope"], k=3)


def test_save_load_identical(model: Recommender, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert type(back) is type(model) and back.config == model.config
    a = model.recommend(["u1", "u40", "nobody"], k=6)
    b = back.recommend(["u1", "u40", "nobody"], k=6)
    assert (a.items == b.items).all()
    np.testing.assert_allclose(a.scores, b.scores)


def test_registry_typo_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"valid names: .*Did you mean 'ease'"):
        make_model("eas")
    with pytest.raises(ConfigError, match="invalid config"):
        make_model("ease", l2=-1)


def test_ease_learns_the_taste_groups(interactions: Interactions) -> None:
    m = make_model("ease").fit(interactions)
    recs = m.recommend([f"u{u}" for u in range(60)], k=5)
    in_group = [
        all((int(i[1:]) < 20) == (u < 30) for i in recs.items[u]) for u in range(60)
    ]
    assert np.mean(in_group) > 0.9
