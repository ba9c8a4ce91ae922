"""SASRec: learns a sequential pattern, reads order, folds in, saves, early-stops, beats pop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import conform_events
from aisle.data._feedback import FeedbackConfig, Interactions, build_interactions
from aisle.errors import ConfigError
from aisle.models import Popularity, Recommender, SASRec
from aisle.models._sasrec import _batches, _full_softmax_grads, _windows

torch = pytest.importorskip("torch")

N_ITEMS = 30
SMALL = {"embedding_dim": 32, "ffn_dim": 64, "max_len": 10, "n_heads": 2, "dropout": 0.1, "learning_rate": 5e-3,
         "batch_size": 32, "epochs": 20, "patience": 0, "device": "cpu", "threads": 1}


def _events(sequences: dict[str, list[int]]) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [(u, f"i{i}", "purchase", start + pd.Timedelta(minutes=t))
            for u, items in sequences.items() for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return conform_events(frame)[0]


def _successor_data(n_users: int = 120, seed: int = 0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Item i is always followed by item i + 1 (mod 30); each user's next item is held out."""
    rng = np.random.default_rng(seed)
    seqs: dict[str, list[int]] = {}
    nxt: dict[str, int] = {}
    for u in range(n_users):
        first, length = int(rng.integers(N_ITEMS)), int(rng.integers(4, 9))
        items = [(first + t) % N_ITEMS for t in range(length + 1)]
        seqs[f"u{u}"], nxt[f"u{u}"] = items[:-1], items[-1]
    return _events(seqs), nxt


@pytest.fixture(scope="module")
def successor() -> tuple[pd.DataFrame, Interactions, dict[str, int]]:
    events, nxt = _successor_data()
    return events, build_interactions(events, FeedbackConfig()), nxt


@pytest.fixture(scope="module")
def fitted(successor: tuple[pd.DataFrame, Interactions, dict[str, int]]) -> SASRec:
    events, inter, _ = successor
    return SASRec(**SMALL).fit(inter, events=events)


def _hit_rate(model: Recommender, nxt: dict[str, int], k: int = 1) -> float:
    recs = model.recommend(list(nxt), k=k)
    return float(np.mean([f"i{nxt[u]}" in recs.items[r].tolist() for r, u in enumerate(nxt)]))


def test_learns_the_successor_pattern(
    fitted: SASRec, successor: tuple[pd.DataFrame, Interactions, dict[str, int]]
) -> None:
    _, inter, nxt = successor
    pop = Popularity().fit(inter)
    assert _hit_rate(fitted, nxt) > 0.9
    assert _hit_rate(pop, nxt, k=5) < 0.4
    assert fitted.loss_history_[-1] < fitted.loss_history_[0]


def test_order_matters(fitted: SASRec) -> None:
    history = _events({"fwd": [3, 4, 5, 6], "rev": [6, 5, 4, 3]})
    recs = fitted.recommend(["fwd", "rev"], k=1, history=history, exclude_seen=False)
    assert recs.items[:, 0].tolist() == ["i7", "i4"]  # what follows the last item
    scores = fitted.score(["fwd", "rev"], [f"i{i}" for i in range(N_ITEMS)], history=history)
    assert not np.allclose(scores[0], scores[1])


def test_fold_in_equals_known_user(
    fitted: SASRec, successor: tuple[pd.DataFrame, Interactions, dict[str, int]]
) -> None:
    events, _, _ = successor
    history = events[events["user_id"] == "u7"].assign(user_id="newcomer")
    items = [f"i{i}" for i in range(N_ITEMS)]
    known = fitted.score(["u7"], items)
    folded = fitted.score(["newcomer"], items, history=history)
    np.testing.assert_allclose(folded, known, rtol=1e-5, atol=1e-5)
    recs = fitted.recommend(["newcomer"], k=3, history=history)
    assert recs.sources.tolist() == ["fold-in"]
    assert recs.items[0].tolist() == fitted.recommend(["u7"], k=3).items[0].tolist()


def test_save_load_identical_scores(fitted: SASRec, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert isinstance(back, SASRec) and back.config == fitted.config
    users = ["u0", "u1", "u99"]
    items = [f"i{i}" for i in range(N_ITEMS)]
    np.testing.assert_array_equal(back.score(users, items), fitted.score(users, items))
    np.testing.assert_array_equal(back.loss_history_, fitted.loss_history_)


def test_early_stopping_keeps_the_best_epoch(
    successor: tuple[pd.DataFrame, Interactions, dict[str, int]]
) -> None:
    events, inter, nxt = successor
    m = SASRec(**{**SMALL, "epochs": 40, "patience": 3, "val_fraction": 0.5}).fit(inter, events=events)
    assert len(m.val_history_) == len(m.loss_history_) <= 40
    assert m.best_epoch_ == int(np.argmax(m.val_history_)) + 1
    assert len(m.val_history_) == 40 or len(m.val_history_) == m.best_epoch_ + 3
    assert _hit_rate(m, nxt) > 0.8


@pytest.mark.parametrize("loss", ["sampled", "bce"])
def test_other_losses_learn_the_pattern(
    loss: str, successor: tuple[pd.DataFrame, Interactions, dict[str, int]]
) -> None:
    events, inter, nxt = successor
    m = SASRec(**{**SMALL, "loss": loss, "n_negatives": 10, "negative_sampling": "popularity"}).fit(
        inter, events=events)
    assert _hit_rate(m, nxt, k=3) > 0.8


def test_cuda_without_a_gpu_is_a_config_error(
    successor: tuple[pd.DataFrame, Interactions, dict[str, int]]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    events, inter, _ = successor
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        SASRec(**{**SMALL, "device": "cuda"}).fit(inter, events=events)


def test_heads_must_divide_the_embedding(successor: tuple[pd.DataFrame, Interactions, dict[str, int]]) -> None:
    events, inter, _ = successor
    with pytest.raises(ConfigError, match="n_heads"):
        SASRec(**{**SMALL, "n_heads": 3}).fit(inter, events=events)


def test_windows_cover_every_transition() -> None:
    seq = np.arange(12)
    inp, tgt = _windows([seq, np.asarray([5]), np.asarray([7, 8])], max_len=4)
    pairs = {(int(a) - 1, int(b) - 1) for r in range(inp.shape[0]) for a, b in zip(inp[r], tgt[r], strict=True) if b}
    assert pairs == {(i, i + 1) for i in range(11)} | {(7, 8)}
    assert ((inp > 0) == (tgt > 0)).all()  # right padding, aligned


def test_batches_are_a_shuffled_partition() -> None:
    lengths = np.random.default_rng(1).integers(1, 50, size=1000)
    batches = _batches(lengths, 32, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert len(batches) == int(np.ceil(1000 / 32)) and max(len(b) for b in batches) == 32


def test_full_softmax_gradients_match_autograd() -> None:
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(70, 8, generator=gen, requires_grad=True)
    w = torch.randn(50, 8, generator=gen, requires_grad=True)
    target = torch.randint(0, 50, (70,), generator=gen)
    loss, grad_h, grad_w = _full_softmax_grads(h.detach(), w.detach(), target)
    ref = torch.nn.functional.cross_entropy(h @ w.T, target, reduction="sum")
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-5)
    torch.testing.assert_close(grad_h, h.grad)
    torch.testing.assert_close(grad_w, w.grad)


@pytest.mark.slow
@pytest.mark.realdata
def test_beats_popularity_on_lastfm() -> None:
    from aisle.datasets import load_dataset
    from aisle.evaluation._evaluate import evaluate
    from aisle.evaluation._runner import make_split

    ds = load_dataset("s3rec-lastfm")
    split = make_split(ds, "leave-last")
    train = build_interactions(split.train, FeedbackConfig())
    sasrec = SASRec(device="cpu").fit(train, events=split.train)  # the defaults: about 20 epochs
    pop = Popularity().fit(train)
    got = {m.name: evaluate(m, split.test, ks=(10,)).metrics["hr@10"] for m in (sasrec, pop)}
    assert got["sasrec"] > got["pop"]
