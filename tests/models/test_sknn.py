"""Session-based kNN (sknn, vsknn): behaviour on constructed sessions, a brute-force reference,
fold-in, saving, and the real YooChoose sample."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.models import VSKNN, Recommender, SessionKNN, make_model
from aisle.models._sknn import _row_then_descending, match_decay, position_decay

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def session_events(sessions: list[list[str]], *, start_minutes: list[int] | None = None) -> pd.DataFrame:
    """Canonical click events: session ``s<j>`` clicks ``sessions[j]`` in order, one minute apart."""
    rows = []
    for j, items in enumerate(sessions):
        base = (start_minutes[j] if start_minutes else j * 100)
        for p, item in enumerate(items):
            rows.append((f"s{j}", item, "click", T0 + pd.Timedelta(minutes=base + p)))
    return conform_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]))[0]


def fit(name: str, events: pd.DataFrame, *, timestamps: bool = True, **config: object) -> Recommender:
    train = build_interactions(events, FeedbackConfig())
    return make_model(name, **config).fit(train, events=events if timestamps else events.drop(columns="timestamp"))


def query(model: Recommender, clicks: list[str], k: int = 3, **kw: object) -> list[str]:
    hist = pd.DataFrame({"user_id": "q", "item_id": clicks, "event_type": "click",
                         "timestamp": [T0 + pd.Timedelta(days=30, minutes=m) for m in range(len(clicks))]})
    recs = model.recommend(["q"], k=k, history=conform_events(hist)[0], **kw)  # type: ignore[arg-type]
    return [i for i, _ in recs.for_user("q")]


def test_sknn_recommends_items_that_co_occur_with_the_session() -> None:
    sessions = [["a", "b"]] * 5 + [["a", "c"]] * 3 + [["d", "e"]] * 8 + [["f", "e", "d"]] * 4
    model = fit("sknn", session_events(sessions))
    assert query(model, ["a"], k=2) == ["b", "c"]
    assert set(query(model, ["d"], k=2)) == {"e", "f"}


@pytest.mark.parametrize("weighting", ["linear", "log", "quadratic"])
def test_vsknn_lets_the_last_click_decide(weighting: str) -> None:
    # x-sessions lead to "tx", y-sessions to "ty"; equally many of each, so only the order differs
    sessions = [["x1", "tx"]] * 6 + [["y1", "ty"]] * 6
    events = session_events(sessions)
    v = fit("vsknn", events, position_weighting=weighting)
    assert query(v, ["x1", "y1"], k=1) == ["ty"]
    assert query(v, ["y1", "x1"], k=1) == ["tx"]
    # plain sknn ignores the order: both queries get the same list
    s = fit("sknn", events)
    assert query(s, ["x1", "y1"], k=2) == query(s, ["y1", "x1"], k=2)


def test_recency_sampling_keeps_the_most_recent_sessions() -> None:
    # ten old sessions lead from "a" to "old", three recent ones to "new"
    sessions = [["a", "old"]] * 10 + [["a", "new"]] * 3
    events = session_events(sessions)
    assert query(fit("sknn", events, sample_size=3), ["a"], k=1) == ["new"]
    assert query(fit("sknn", events, sample_size=0), ["a"], k=1) == ["old"]
    # recency is the session's last event time, not its position in the log: here the old
    # sessions are the latest in time but come first in the frame
    late_old = session_events(sessions, start_minutes=[1000 + j for j in range(10)] + [0, 1, 2])
    shuffled = late_old.iloc[::-1].reset_index(drop=True)
    assert query(fit("sknn", shuffled, sample_size=3), ["a"], k=1) == ["old"]
    # events without timestamps (or equal ones): the order of the log decides
    assert query(fit("sknn", shuffled, sample_size=3, timestamps=False), ["a"], k=1) == ["new"]
    same_time = session_events(sessions, start_minutes=[0] * 13)
    assert query(fit("sknn", same_time, sample_size=3), ["a"], k=1) == ["new"]


def test_k_keeps_only_the_most_similar_neighbours() -> None:
    # the query [a, b] matches the two "ab" sessions fully, the five "a" ones partly
    sessions = [["a", "b", "near"]] * 2 + [["a", "far"]] * 5
    events = session_events(sessions)
    assert query(fit("sknn", events, k=2), ["a", "b"], k=1) == ["near"]
    assert query(fit("sknn", events, k=100), ["a", "b"], k=1) == ["far"]


# ------------------------------------------------------------------ brute-force reference


def reference_scores(sessions: list[list[int]], end: np.ndarray, queries: list[list[int]], n_items: int,
                     cfg: dict[str, object]) -> np.ndarray:
    """The algorithm written per query with dense arrays (no popularity backfill)."""
    k, sample, sim_kind = int(cfg.get("k", 100)), int(cfg.get("sample_size", 500)), str(cfg.get("similarity", "cosine"))
    pos_kind, match_kind = str(cfg.get("position_weighting", "same")), str(cfg.get("match_weighting", "same"))
    nb_kind, lam = str(cfg.get("neighbor_weighting", "same")), float(cfg.get("idf_weight", 0.0))  # type: ignore[arg-type]
    n_s = len(sessions)
    member = np.zeros((n_s, n_items))
    votes = np.zeros((n_s, n_items))
    for s, seq in enumerate(sessions):
        for p, i in enumerate(seq, start=1):
            member[s, i] = 1
            votes[s, i] = position_decay(nb_kind, np.array([float(p)]), np.array([float(len(seq))]))[0]
    df = member.sum(axis=0)
    idf = np.where(df > 0, np.log((member.sum(axis=1) > 0).sum() / np.maximum(df, 1)), 0.0)
    recency = np.argsort(np.lexsort((np.arange(n_s), end)))  # rank, 0 = oldest
    out = np.zeros((len(queries), n_items))
    for r, q in enumerate(queries):
        last = {i: p for p, i in enumerate(q, start=1)}
        items = np.array(sorted(last))
        w = position_decay(pos_kind, np.array([float(last[i]) for i in items]), np.full(items.size, float(len(q))))
        cand = [s for s in range(n_s) if member[s, items].any()]
        cand.sort(key=lambda s: -recency[s])
        if sample > 0:
            cand = cand[:sample]
        sims = []
        for s in cand:
            dot = float((w * member[s, items]).sum())
            size, inter = member[s].sum(), member[s, items].sum()
            if sim_kind == "cosine":
                sims.append(dot / (np.sqrt((w**2).sum()) * np.sqrt(size)))
            elif sim_kind == "jaccard":
                sims.append(dot / (items.size + size - inter))
            else:
                sims.append(dot / items.size)
        neigh = sorted(zip(cand, sims, strict=True), key=lambda t: (-round(t[1], 12), -recency[t[0]]))[:k]
        for s, sim in neigh:
            shared = [last[i] for i in items if member[s, i]]
            decay = match_decay(match_kind, np.array([float(len(q) - max(shared) + 1)]))[0]
            out[r] += sim * decay * votes[s]
        out[r] *= 1 + lam * idf
    return out


CONFIGS = [
    {"similarity": "cosine"},
    {"similarity": "jaccard", "k": 3, "sample_size": 7},
    {"similarity": "dot", "position_weighting": "linear", "match_weighting": "div"},
    {"similarity": "cosine", "position_weighting": "log", "match_weighting": "quadratic", "k": 5,
     "sample_size": 12, "idf_weight": 2.0},
    {"similarity": "jaccard", "position_weighting": "quadratic", "match_weighting": "log",
     "neighbor_weighting": "linear", "k": 4, "sample_size": 0},
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_vectorised_scores_equal_a_brute_force_reference(cfg: dict[str, object]) -> None:
    rng = np.random.default_rng(7)
    n_items = 15
    # skewed item choice so that popular items pull in many candidate sessions
    prob = 1.0 / np.arange(1, n_items + 1)
    prob /= prob.sum()
    sessions = [rng.choice(n_items, size=int(rng.integers(1, 7)), p=prob).tolist() for _ in range(40)]
    starts = rng.permutation(40) * 50  # recency differs from the order of the log
    events = session_events([[f"i{i:02d}" for i in s] for s in sessions], start_minutes=starts.tolist())
    name = "sknn" if set(cfg) <= {"similarity", "k", "sample_size"} else "vsknn"
    model = fit(name, events, popular_backfill=False, **cfg)
    assert isinstance(model, SessionKNN | VSKNN)
    # map the model's vocabularies back to the constructed indices
    item_of = np.array([int(str(i)[1:]) for i in model.items_.ids])
    seqs = [model.sequences_[int(u)] for u in range(len(model.users_))]
    sess_order = [int(str(u)[1:]) for u in model.users_.ids]
    train = [item_of[s].tolist() for s in seqs]
    end = np.asarray(starts)[sess_order] + np.array([len(s) for s in train])
    queries = [rng.choice(n_items, size=int(rng.integers(1, 6)), p=prob).tolist() for _ in range(25)]
    queries = [[int(np.flatnonzero(item_of == i)[0]) for i in q if (item_of == i).any()] for q in queries]
    queries = [q for q in queries if q]
    got = model._score_sequences([np.asarray(q, dtype=np.int64) for q in queries])
    want = reference_scores([[int(i) for i in s] for s in seqs], end, queries, len(item_of),
                            model.config.model_dump())
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)  # float32 scores
    # the block size only bounds memory: one query per block gives the same scores
    small = fit(name, events, popular_backfill=False, max_pairs=1, **cfg)
    np.testing.assert_allclose(small._score_sequences([np.asarray(q) for q in queries]), got, rtol=1e-12)


def test_neighbour_order_packs_row_and_similarity_like_a_lexsort() -> None:
    rng = np.random.default_rng(1)
    rows = np.sort(rng.integers(0, 50, 2000))
    sims = np.round(rng.random(2000), 3)  # many exact ties: the stable order must keep them
    sims[:10] = 1 / 3 + np.arange(10) * 1e-15  # equal at 12 decimals: ties too
    packed = _row_then_descending(rows, sims)
    np.testing.assert_array_equal(packed, np.lexsort((-np.round(sims, 12), rows)))
    # beyond 2**23 rows the lexsort itself is used, with the same result
    np.testing.assert_array_equal(_row_then_descending(rows + (1 << 23), sims), packed)


def test_popular_backfill_ranks_the_items_no_neighbour_contains() -> None:
    sessions = [["a", "b"]] * 3 + [["c", "d"]] * 9 + [["e"]] * 20
    events = session_events(sessions)
    plain = fit("sknn", events, popular_backfill=False)
    filled = fit("sknn", events)
    # "a" has one co-occurring item; the rest of the list is the most popular items
    assert query(plain, ["a"], k=1) == query(filled, ["a"], k=1) == ["b"]
    assert query(filled, ["a"], k=4) == ["b", "e", "c", "d"]


# ------------------------------------------------------------------ fold-in and saving


@pytest.fixture(scope="module")
def shop_sessions() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    sessions = [[f"i{i}" for i in rng.choice(30, size=int(rng.integers(2, 8)))] for _ in range(80)]
    return session_events(sessions)


VSKNN_VARIANT = {"position_weighting": "quadratic", "match_weighting": "log", "neighbor_weighting": "linear",
                 "idf_weight": 1.0, "similarity": "jaccard", "k": 10, "sample_size": 30}


@pytest.mark.parametrize(("name", "cfg"), [("sknn", {}), ("vsknn", {}), ("vsknn", VSKNN_VARIANT)])
def test_fold_in_from_a_history_frame_equals_the_known_session(
    shop_sessions: pd.DataFrame, name: str, cfg: dict[str, object]
) -> None:
    model = fit(name, shop_sessions, **cfg)
    history = shop_sessions[shop_sessions["user_id"] == "s5"].assign(user_id="visitor")
    folded = model.score(["visitor"], list(model.items_.ids), history=history)
    known = model.score(["s5"], list(model.items_.ids))
    np.testing.assert_array_equal(folded, known)
    a = model.recommend(["visitor"], k=8, history=history)
    b = model.recommend(["s5"], k=8)
    assert a.sources.tolist() == ["fold-in"] and a.items.tolist() == b.items.tolist()


@pytest.mark.parametrize(("name", "cfg"), [("sknn", {"similarity": "jaccard"}), ("vsknn", VSKNN_VARIANT)])
def test_save_load_identical(shop_sessions: pd.DataFrame, tmp_path: Path, name: str, cfg: dict[str, object]) -> None:
    model = fit(name, shop_sessions, **cfg)
    model.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert type(back) is type(model) and back.config == model.config
    users = ["s1", "s40", "s79"]
    np.testing.assert_array_equal(back.score(users, list(model.items_.ids)), model.score(users, list(model.items_.ids)))
    history = shop_sessions[shop_sessions["user_id"] == "s9"].assign(user_id="visitor")
    assert (back.recommend(["visitor"], k=5, history=history).items
            == model.recommend(["visitor"], k=5, history=history).items).all()


def test_fit_without_events_warns_and_uses_the_matrix(shop_sessions: pd.DataFrame) -> None:
    train = build_interactions(shop_sessions, FeedbackConfig())
    with pytest.warns(UserWarning, match="order"):
        model = make_model("vsknn").fit(train)
    assert len(model.recommend(["s1"], k=5).for_user("s1")) == 5


# ------------------------------------------------------------------ real data


@pytest.mark.realdata
@pytest.mark.slow
def test_session_knn_beats_popularity_on_yoochoose() -> None:
    from aisle.datasets import load_dataset
    from aisle.errors import DatasetNotFoundError
    from aisle.evaluation._runner import run_evaluation

    try:
        ds = load_dataset("yoochoose-sample", data_home=os.environ.get("AISLE_DATA_HOME"))
    except DatasetNotFoundError:
        pytest.skip("yoochoose-sample is not under AISLE_DATA_HOME")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_evaluation(ds, ["pop", "sknn", "vsknn"], ["hr@20", "mrr@20"])
    hr = {r.model: r.metrics["hr@20"] for r in run.results}
    assert hr["sknn"] > 2 * hr["pop"] and hr["vsknn"] > 2 * hr["pop"], hr
    assert run.protocol.split["name"] == "session-next-item"
