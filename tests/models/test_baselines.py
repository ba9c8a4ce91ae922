"""Baselines: random, recent popularity and segment popularity, on hand-checkable data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataWarning, SchemaError
from aisle.models._baselines import RandomRecommender, RecentPopularity, SegmentPopularity
from aisle.models._popularity import Popularity


def _interactions(
    rows: list[list[int]], n_items: int, items: list[str] | None = None
) -> Interactions:
    r = [u for u, row in enumerate(rows) for _ in row]
    c = [i for row in rows for i in row]
    x = sp.csr_array((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))
    return Interactions(
        x,
        Vocabulary([f"u{u}" for u in range(len(rows))]),
        Vocabulary(items if items is not None else [f"i{i}" for i in range(n_items)]),
    )


# ------------------------------------------------------------------------------------ random


@pytest.fixture(scope="module")
def random_data() -> Interactions:
    rng = np.random.default_rng(0)
    return _interactions([sorted(rng.choice(50, 5, replace=False).tolist()) for _ in range(30)], 50)


def test_random_is_deterministic_given_seed(random_data: Interactions) -> None:
    users = [f"u{u}" for u in range(30)]
    a = RandomRecommender(seed=7).fit(random_data).recommend(users, k=10)
    b = RandomRecommender(seed=7).fit(random_data).recommend(users, k=10)
    c = RandomRecommender(seed=8).fit(random_data).recommend(users, k=10)
    assert (a.items == b.items).all()
    np.testing.assert_array_equal(a.scores, b.scores)
    assert (a.items != c.items).any()
    assert len({tuple(row) for row in a.items}) == 30  # different histories, different lists


def test_random_scores_are_uniform_and_filters_apply(random_data: Interactions) -> None:
    m = RandomRecommender(seed=1).fit(random_data)
    scores = m.score([f"u{u}" for u in range(30)], [f"i{i}" for i in range(50)])
    assert scores.min() >= 0.0 and scores.max() < 1.0
    assert abs(scores.mean() - 0.5) < 0.05
    recs = m.recommend(
        ["u0"], k=5, candidates=["i1", "i2", "i3"], exclude=["i3"], exclude_seen=False
    )
    assert set(recs.items[0][:2]) == {"i1", "i2"} and recs.items[0][2] is None


def test_random_fold_in_equals_the_known_user(random_data: Interactions) -> None:
    m = RandomRecommender(seed=3).fit(random_data)
    history = sp.csr_matrix(random_data.matrix)[[4]]
    folded = m.recommend(["new"], k=8, history=history)
    assert folded.sources.tolist() == ["fold-in"]
    assert folded.items.tolist() == m.recommend(["u4"], k=8).items.tolist()


# ------------------------------------------------------------------------------- recent-pop


@pytest.fixture(scope="module")
def shop_events() -> pd.DataFrame:
    t0 = pd.Timestamp("2024-06-30", tz="UTC")
    rows = [(f"a{u}", "classic", "purchase", t0 - pd.Timedelta(days=100)) for u in range(10)]
    rows += [(f"b{u}", "trend", "purchase", t0 - pd.Timedelta(days=1)) for u in range(3)]
    rows += [("c0", "steady", "view", t0 - pd.Timedelta(days=d)) for d in (0, 7, 14)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return conform_events(frame)[0]


def test_recent_pop_weights_are_decayed_popularity(shop_events: pd.DataFrame) -> None:
    m = RecentPopularity(half_life_days=14.0).fit_events(shop_events)
    got = dict(zip(m.items_.ids, m.scores_, strict=True))
    # reference = latest event (t0); purchase weighs 5, view 1
    assert got["classic"] == pytest.approx(10 * 5 * 0.5 ** (100 / 14), rel=1e-5)
    assert got["trend"] == pytest.approx(3 * 5 * 0.5 ** (1 / 14), rel=1e-5)
    assert got["steady"] == pytest.approx(1 + 0.5 ** (7 / 14) + 0.5, rel=1e-5)
    history = shop_events[shop_events["user_id"] == "c0"].assign(user_id="walk-in")
    folded = m.recommend(["walk-in"], k=1, history=history)
    assert folded.sources.tolist() == ["fold-in"] and folded.items[0].tolist() == ["trend"]
    # a user with no history at all gets the base fallback: all-time popularity by users
    unknown = m.recommend(["nobody"], k=1)
    assert unknown.sources.tolist() == ["popular"] and unknown.items[0].tolist() == ["classic"]
    top = [i for i, _ in m.recommend(["a0"], k=2).for_user("a0")]
    assert top == ["trend", "steady"]
    pop = Popularity().fit(_undecayed(shop_events))
    assert [i for i, _ in pop.recommend(["c0"], k=1).for_user("c0")] == ["classic"]


def _undecayed(events: pd.DataFrame) -> Interactions:
    return build_interactions(events, FeedbackConfig())


def test_recent_pop_warns_without_decay_and_uses_a_decayed_matrix(
    shop_events: pd.DataFrame,
) -> None:
    with pytest.warns(DataWarning, match="without time decay"):
        RecentPopularity().fit(_undecayed(shop_events))
    decayed = build_interactions(shop_events, FeedbackConfig(half_life_days=14.0))
    m = RecentPopularity(half_life_days=14.0).fit(decayed)
    np.testing.assert_allclose(m.scores_, np.asarray(decayed.matrix.sum(axis=0)).ravel())
    with pytest.warns(DataWarning, match="half-life"):
        RecentPopularity(half_life_days=3.0).fit(decayed)


def test_recent_pop_binary_dedup_keeps_the_decay(shop_events: pd.DataFrame) -> None:
    m = RecentPopularity(half_life_days=14.0).fit_events(
        shop_events, FeedbackConfig(dedup="binary")
    )
    assert m.feedback_.dedup == "max" and m.feedback_.half_life_days == 14.0
    got = dict(zip(m.items_.ids, m.scores_, strict=True))
    assert got["steady"] == pytest.approx(1.0, rel=1e-5)  # the latest view, undecayed
    assert got["trend"] > got["classic"]


def test_recent_pop_save_load(shop_events: pd.DataFrame, tmp_path: Path) -> None:
    m = RecentPopularity(half_life_days=7.0).fit_events(shop_events)
    m.save(tmp_path / "rp")
    back = RecentPopularity.load(tmp_path / "rp")
    assert back.config == m.config
    np.testing.assert_array_equal(
        back.recommend(["a1"], k=2).scores, m.recommend(["a1"], k=2).scores
    )


# ------------------------------------------------------------------------------ segment-pop

#           a  b  c  d  e  f
# u0        x  x     x
# u1        x     x
# u2                 x  x
# u3        x           x  x
ITEMS = ["a", "b", "c", "d", "e", "f"]
CATALOG = pd.DataFrame(
    {
        "item_id": ITEMS,
        "category": [
            "Shoes/Sneakers",
            "Shoes/Boots",
            "Shoes/Sneakers",
            "Bags/Tote",
            "Bags/Tote",
            "Bags/Clutch",
        ],
    }
)


@pytest.fixture(scope="module")
def shop() -> Interactions:
    return _interactions([[0, 1, 3], [0, 2], [3, 4], [0, 4, 5]], 6, ITEMS)


def test_category_pop_by_hand(shop: Interactions) -> None:
    m = SegmentPopularity(by="category", category_level=1, smoothing=1.0).fit(shop, catalog=CATALOG)
    assert m.groups_.tolist() == ["Bags", "Shoes"]
    np.testing.assert_allclose(m.prior_, [0.5, 0.5])  # 5 of 10 interactions each
    # u1 (a, c): P(Shoes|u1) = (2 + 1*0.5) / 3, P(Bags|u1) = 0.5 / 3; P(j|cat) = pop_j / pop_cat
    shoes, bags = 2.5 / 3, 0.5 / 3
    expected = [shoes * 3 / 5, shoes / 5, shoes / 5, bags * 2 / 5, bags * 2 / 5, bags / 5]
    np.testing.assert_allclose(m.score(["u1"], ITEMS)[0], expected)
    assert [i for i, _ in m.recommend(["u1"], k=2).for_user("u1")] == ["b", "d"]


def test_category_levels_and_uncategorised_items(shop: Interactions) -> None:
    partial = CATALOG[CATALOG["item_id"] != "f"]
    m = SegmentPopularity(by="category").fit(shop, catalog=partial)
    assert m.groups_.tolist() == ["", "Bags/Tote", "Shoes/Boots", "Shoes/Sneakers"]
    assert m.item_group_.tolist() == [3, 2, 3, 1, 1, 0]


def test_category_fold_in_equals_known_user(shop: Interactions) -> None:
    m = SegmentPopularity(by="category").fit(shop, catalog=CATALOG)
    history = sp.csr_matrix(shop.matrix)[[3]]
    folded = m.recommend(["new"], k=3, history=history)
    assert folded.items.tolist() == m.recommend(["u3"], k=3).items.tolist()


def test_no_side_data_is_global_popularity_with_a_warning(shop: Interactions) -> None:
    with pytest.warns(DataWarning, match="without catalog"):
        by_cat = SegmentPopularity().fit(shop)
    with pytest.warns(DataWarning, match="without users="):
        by_seg = SegmentPopularity(by="segment").fit(shop)
    pop = Popularity().fit(shop)
    for m in (by_cat, by_seg):
        assert m.recommend(["u2"], k=4).items.tolist() == pop.recommend(["u2"], k=4).items.tolist()


def test_wrong_side_data_is_refused(shop: Interactions) -> None:
    with pytest.raises(ConfigError, match="by='segment'"):
        SegmentPopularity().fit(shop, segments={"u0": "x"})
    with pytest.raises(SchemaError, match="category"):
        SegmentPopularity().fit(shop, catalog=pd.DataFrame({"item_id": ITEMS}))
    with pytest.raises(SchemaError, match="segment"):
        SegmentPopularity(by="segment").fit(shop, segments=pd.DataFrame({"user_id": ["u0"]}))


@pytest.fixture(scope="module")
def segmented() -> Interactions:
    # women (u0-u3) buy items 0-2 (mostly 0), men (u4-u6) buy items 3-5 (mostly 5); u7 unlabelled
    return _interactions([[0, 1], [0, 2], [0], [1, 2], [3, 5], [4, 5], [5], [0, 1]], 6)


USERS = pd.DataFrame(
    {
        "user_id": [f"u{u}" for u in range(7)],
        "segment": ["women"] * 4 + ["men"] * 3,
    }
)


def test_segment_pop_by_hand(segmented: Interactions) -> None:
    m = SegmentPopularity(by="segment", smoothing=2.0).fit(segmented, segments=USERS)
    assert m.groups_.tolist() == ["men", "women"]
    assert m.user_group_.tolist() == [1, 1, 1, 1, 0, 0, 0, -1]
    np.testing.assert_allclose(m.prior_, [3 / 7, 4 / 7])
    glob = np.array([4, 3, 2, 1, 1, 3]) / 14
    women = (np.array([3, 2, 2, 0, 0, 0]) + 2 * glob) / (7 + 2)
    np.testing.assert_allclose(m.score(["u2"], [f"i{i}" for i in range(6)])[0], women)
    assert [i for i, _ in m.recommend(["u6"], k=2).for_user("u6")] == ["i3", "i4"]


def test_segment_of_a_new_or_unlabelled_user_is_inferred(segmented: Interactions) -> None:
    m = SegmentPopularity(by="segment").fit(
        segmented, segments=dict(zip(USERS["user_id"], USERS["segment"], strict=True))
    )
    man = sp.csr_matrix((np.ones(1), ([0], [5])), shape=(1, 6))
    recs = m.recommend(["walk-in"], k=2, history=man)
    assert set(recs.items[0]) == {"i3", "i4"}
    # u7 is in training but has no segment: its history (items 0, 1) says women
    assert m.recommend(["u7"], k=1).items[0].tolist() == ["i2"]


def test_segment_pop_save_load(segmented: Interactions, tmp_path: Path) -> None:
    for m in (
        SegmentPopularity(by="segment").fit(segmented, segments=USERS),
        SegmentPopularity(by="category", category_level=1).fit(
            segmented,
            catalog=pd.DataFrame(
                {"item_id": [f"i{i}" for i in range(6)], "category": list("AABBCC")}
            ),
        ),
    ):
        m.save(tmp_path / m.config.by)
        back = SegmentPopularity.load(tmp_path / m.config.by)
        assert isinstance(back, SegmentPopularity) and back.config == m.config
        assert back.groups_.tolist() == m.groups_.tolist()
        users = [f"u{u}" for u in range(8)]
        np.testing.assert_allclose(
            back.recommend(users, k=3).scores, m.recommend(users, k=3).scores
        )
        new = sp.csr_matrix((np.ones(1), ([0], [4])), shape=(1, 6))
        assert (
            back.recommend(["x"], k=3, history=new).items.tolist()
            == m.recommend(["x"], k=3, history=new).items.tolist()
        )
