"""GRU4Rec: learns a sequential pattern, reads order, scores held-out sessions, saves, beats pop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.errors import ConfigError
from aisle.evaluation._evaluate import evaluate
from aisle.models import GRU4Rec, Popularity, Recommender

torch = pytest.importorskip("torch")

N_ITEMS = 30
SMALL = {"embedding_dim": 32, "hidden_dim": 32, "max_len": 10, "dropout": 0.1, "learning_rate": 1e-2,
         "batch_size": 32, "epochs": 20, "patience": 0, "device": "cpu", "threads": 1}


def _events(sessions: dict[str, list[int]]) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [(s, f"i{i}", "click", start + pd.Timedelta(minutes=t))
            for s, items in sessions.items() for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return conform_events(frame)[0]


def _sessions(n: int, prefix: str, seed: int) -> dict[str, list[int]]:
    """Sessions in which item i is always followed by item i + 2 (mod 30)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {}
    for s in range(n):
        first, length = int(rng.integers(N_ITEMS)), int(rng.integers(3, 8))
        out[f"{prefix}{s}"] = [(first + 2 * t) % N_ITEMS for t in range(length)]
    return out


@pytest.fixture(scope="module")
def train_events() -> pd.DataFrame:
    return _events(_sessions(150, "s", seed=0))


@pytest.fixture(scope="module")
def fitted(train_events: pd.DataFrame) -> GRU4Rec:
    inter = build_interactions(train_events, FeedbackConfig())
    return GRU4Rec(**SMALL).fit(inter, events=train_events)


def test_predicts_the_next_click_of_held_out_sessions(fitted: GRU4Rec, train_events: pd.DataFrame) -> None:
    held_out = _events(_sessions(60, "new", seed=1))
    # session-next-item protocol: the last click is the target, the clicks before it the history
    last = held_out.groupby("user_id")["timestamp"].transform("max") == held_out["timestamp"]
    test, history = held_out[last], held_out[~last]
    got = evaluate(fitted, test, ks=(1, 5), history=history)
    pop = evaluate(Popularity().fit(build_interactions(train_events, FeedbackConfig())), test, ks=(1, 5),
                   history=history)
    assert got.counts["users_evaluated"] == 60
    assert got.metrics["hr@1"] > 0.9
    assert pop.metrics["hr@5"] < 0.4


def test_order_matters(fitted: GRU4Rec) -> None:
    history = _events({"fwd": [2, 4, 6], "rev": [6, 4, 2]})
    recs = fitted.recommend(["fwd", "rev"], k=1, history=history, exclude_seen=False)
    assert recs.items[0, 0] == "i8"  # what follows the last click
    assert recs.items[1, 0] != "i8"  # the same clicks in another order


def test_fold_in_equals_known_session(fitted: GRU4Rec, train_events: pd.DataFrame) -> None:
    history = train_events[train_events["user_id"] == "s5"].assign(user_id="again")
    items = [f"i{i}" for i in range(N_ITEMS)]
    np.testing.assert_allclose(fitted.score(["again"], items, history=history), fitted.score(["s5"], items),
                               rtol=1e-5, atol=1e-5)


def test_save_load_identical_scores(fitted: GRU4Rec, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back, GRU4Rec) and back.config == fitted.config
    items = [f"i{i}" for i in range(N_ITEMS)]
    np.testing.assert_array_equal(back.score(["s0", "s1"], items), fitted.score(["s0", "s1"], items))


def test_cuda_without_a_gpu_is_a_config_error(train_events: pd.DataFrame) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    inter = build_interactions(train_events, FeedbackConfig())
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        GRU4Rec(**{**SMALL, "device": "cuda"}).fit(inter, events=train_events)


def test_early_stopping(train_events: pd.DataFrame) -> None:
    inter = build_interactions(train_events, FeedbackConfig())
    m = GRU4Rec(**{**SMALL, "epochs": 30, "patience": 2}).fit(inter, events=train_events)
    assert m.best_epoch_ == int(np.argmax(m.val_history_)) + 1
    assert m.val_history_.max() > 0.5


@pytest.mark.slow
@pytest.mark.realdata
def test_beats_popularity_on_yoochoose_sessions() -> None:
    from aisle.datasets import load_dataset
    from aisle.evaluation._runner import run_evaluation

    ds = load_dataset("yoochoose-sample")
    run = run_evaluation(ds, ["pop", "gru4rec"], ["hr@20", "mrr@20"],
                         configs={"gru4rec": {"epochs": 5, "patience": 0, "device": "cpu", "threads": 1}})
    got = {r.model: r.metrics for r in run.results}
    assert got["gru4rec"]["hr@20"] > got["pop"]["hr@20"]
    assert got["gru4rec"]["mrr@20"] > got["pop"]["mrr@20"]
