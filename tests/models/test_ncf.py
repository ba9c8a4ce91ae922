"""NeuMF and MF: planted taste groups, towers, losses and samplers, fold-in, persistence, device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError
from aisle.models import MF, NeuMF, Recommender
from aisle.models._ncf import _binomial_cdf, _positives
from aisle.models._popularity import Popularity
from aisle.models._samplers import sampler_by_name

torch = pytest.importorskip("torch")

#: Small, single-threaded settings: each fit takes a second or two on the planted data.
FAST: dict[str, Any] = {"factors": 8, "epochs": 15, "batch_size": 64, "fold_in_steps": 30, "device": "cpu",
                        "threads": 1}


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


def _recall(model: Recommender, test: list[set[int]], users: range, k: int = 5) -> float:
    recs = model.recommend([f"u{u}" for u in users], k=k)
    return float(np.mean([len({int(i[1:]) for i in recs.items[j]} & test[u]) / len(test[u])
                          for j, u in enumerate(users)]))


def _in_group(model: Recommender, k: int = 5) -> float:
    recs = model.recommend([f"u{u}" for u in range(120)], k=k)
    return float(np.mean([(int(i[1:]) < 20) == (u < 80) for u in range(120) for i in recs.items[u]]))


def _arp(model: Recommender, inter: Interactions, k: int = 10) -> float:
    recs = model.recommend(list(inter.users.ids), k=k)
    idx = model.items_.index(recs.items.ravel().astype(object))
    return float(model.item_popularity_[idx].mean())


@pytest.fixture(scope="module")
def groups() -> tuple[Interactions, list[set[int]]]:
    return _groups()


@pytest.fixture(scope="module")
def skewed() -> Interactions:
    return _skewed()


@pytest.mark.parametrize(("name", "params"), [
    ("mf", {}),
    ("ncf", {}),
    ("ncf", {"mode": "gmf"}),
    ("ncf", {"mode": "mlp"}),
    ("ncf", {"pretrain_epochs": 8, "epochs": 8}),
])
def test_learns_the_planted_groups(groups: tuple[Interactions, list[set[int]]], name: str,
                                   params: dict[str, Any]) -> None:
    inter, test = groups
    model = (MF if name == "mf" else NeuMF)(**{**FAST, "learning_rate": 0.01, **params}).fit(inter)
    pop = Popularity().fit(inter)
    assert model.loss_history_[-1] < model.loss_history_[0]
    assert _in_group(model) > 0.9 > 0.75 > _in_group(pop)
    # the minority group: popularity recommends it the majority's items
    minority = range(80, 120)
    assert _recall(model, test, minority) > 0.2 > _recall(pop, test, minority) + 0.15
    assert _recall(model, test, range(120)) > _recall(pop, test, range(120))


@pytest.mark.parametrize(("loss", "sampler"), [
    ("bpr", "uniform"), ("softmax", "uniform"), ("softmax", "in-batch"), ("softmax", "mixed"),
    ("bce", "popularity"), ("bce", "hard"), ("softmax", "hard"),
])
def test_mf_losses_and_samplers_learn(groups: tuple[Interactions, list[set[int]]], loss: str, sampler: str) -> None:
    inter, _ = groups
    model = MF(**{**FAST, "learning_rate": 0.01, "loss": loss, "sampler": sampler}).fit(inter)
    assert np.isfinite(model.loss_history_).all()
    # hard negatives in a 40-item catalog are mostly the user's own group's unseen items
    assert _in_group(model) > (0.75 if sampler == "hard" else 0.9)


def test_ncf_hard_negatives_learn(groups: tuple[Interactions, list[set[int]]]) -> None:
    model = NeuMF(**{**FAST, "learning_rate": 0.01, "sampler": "hard"}).fit(groups[0])
    assert _in_group(model) > 0.75


def test_recorded_negative_popularity_follows_the_sampler(skewed: Interactions) -> None:
    counts = np.asarray((sp.csr_matrix(skewed.matrix) > 0).sum(axis=0)).ravel().astype(float)
    fits = {s: MF(**{**FAST, "epochs": 3, "sampler": s, "sampler_alpha": 1.0}).fit(skewed)
            for s in ("uniform", "popularity")}
    uniform, popular = (fits[s].negative_popularity_ for s in ("uniform", "popularity"))
    assert uniform.shape == popular.shape == (3,)
    assert popular.min() > 3 * uniform.max()
    # what was drawn is what each sampler declares, once each user's positives are redrawn
    rows = _positives(sp.csr_matrix(skewed.matrix))
    for name, seen in (("uniform", uniform), ("popularity", popular)):
        q = sampler_by_name(name, counts, alpha=1.0).probabilities()
        per_user = []
        for u in range(rows.shape[0]):
            mine = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
            other = np.setdiff1d(np.arange(counts.size), mine)
            per_user += [q[other] @ counts[other] / q[other].sum()] * mine.size
        assert seen.mean() == pytest.approx(np.mean(per_user), rel=0.03)
    # in-batch: every positive of an epoch is a negative of the rest of its batch, so the mean
    # count is that of the training pairs, sum c^2 / sum c (up to the smaller last batch)
    inb = MF(**{**FAST, "epochs": 2, "loss": "softmax", "sampler": "in-batch"}).fit(skewed)
    assert inb.negative_popularity_[0] == pytest.approx(counts @ counts / counts.sum(), rel=0.02)


def test_popularity_sampling_lowers_recommendation_popularity(skewed: Interactions) -> None:
    arp = {s: _arp(MF(**{**FAST, "sampler": s, "sampler_alpha": 1.0, "learning_rate": 0.01}).fit(skewed), skewed)
           for s in ("uniform", "popularity")}
    assert arp["popularity"] < 0.8 * arp["uniform"]


def test_invalid_configs_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"in-batch.*softmax"):
        MF(sampler="in-batch")
    with pytest.raises(ConfigError, match="mixed"):
        MF(sampler="mixed", loss="bpr")
    with pytest.raises(ConfigError):
        NeuMF(sampler="in-batch")
    with pytest.raises(ConfigError):
        NeuMF(mode="both")
    for klass in (MF, NeuMF):
        assert set(klass.search_space) <= set(klass.Config.model_fields)
        assert {"factors", "learning_rate", "regularization", "n_negatives"} <= set(klass.search_space)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
@pytest.mark.parametrize("klass", [MF, NeuMF])
def test_cuda_without_a_gpu_is_a_config_error(groups: tuple[Interactions, list[set[int]]],
                                              klass: type[Recommender]) -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        klass(**{**FAST, "device": "cuda"}).fit(groups[0])


@pytest.mark.parametrize(("name", "params"), [
    ("mf", {"loss": "softmax", "sampler": "in-batch"}),
    ("mf", {"loss": "bpr", "fold_in_items": 16}),
    ("ncf", {}),
    ("ncf", {"mode": "mlp", "sampler": "hard", "fold_in_items": 16}),
])
def test_fold_in_is_the_solve_of_known_users(groups: tuple[Interactions, list[set[int]]], name: str,
                                             params: dict[str, Any]) -> None:
    inter, _ = groups
    model = (MF if name == "mf" else NeuMF)(**{**FAST, "epochs": 4, **params}).fit(inter)
    rows = sp.csr_matrix(inter.matrix)
    some = np.array([3, 7, 90, 101])
    folded = model.fold_in(rows[some])  # other batch composition than at the end of fit
    for table, vecs in zip(model.net_.user_tables(), folded, strict=True):
        stored = table.weight.detach().numpy()[some]
        np.testing.assert_allclose(vecs, stored, rtol=1e-4, atol=1e-5)
    again = model.fold_in(rows[some[::-1]])
    for a, b in zip(folded, again, strict=True):
        np.testing.assert_allclose(a[::-1], b, rtol=1e-4, atol=1e-5)
    # an empty history gets the starting point (the mean training user)
    empty = model.fold_in(sp.csr_matrix((1, rows.shape[1]), dtype=np.float32))
    start = np.concatenate([e[0] for e in empty])
    np.testing.assert_allclose(start, model.net_.user_start.numpy(), rtol=1e-6)


@pytest.mark.parametrize(("loss", "sampler", "fold_in_items"), [
    ("bce", "uniform", 0), ("bce", "popularity", 0), ("bpr", "popularity", 0), ("bce", "popularity", 100),
])
def test_expected_loss_is_the_mean_sampled_loss(skewed: Interactions, loss: str, sampler: str,
                                                fold_in_items: int) -> None:
    """The fold-in objective is the sampled training loss averaged over the sampler, in closed form."""
    model = MF(**{**FAST, "epochs": 2, "loss": loss, "sampler": sampler, "sampler_alpha": 0.5,
                  "fold_in_items": fold_in_items}).fit(skewed)
    rows = _positives(sp.csr_matrix(skewed.matrix))
    user = 5
    items = rows.indices[rows.indptr[user]:rows.indptr[user + 1]].astype(np.int64)
    p = model.net_.user.weight.detach()[user:user + 1]
    plan = model._fold_in_plan()
    with torch.no_grad():
        x_all = model.net_.cross_logits([p])
        cols = plan["cols"]
        xs = x_all if cols is None else x_all[:, cols]
        member = torch.zeros(1, rows.shape[1], dtype=torch.bool)
        member[0, torch.as_tensor(items)] = True
        keep = (~(member if cols is None else member[:, cols])).float()
        pos_idx = torch.as_tensor(items)[None, :]
        pos_ok = torch.ones(1, items.size)
        xp = x_all[:, pos_idx[0]]
        pw = (plan["weight"][pos_idx] * pos_ok).sum(1)
        closed = float(model._expected_loss(plan, xs, keep, xp, pos_idx, pos_ok, pw)[0])
        # Monte Carlo of the training loss: each positive with n negatives from the sampler
        counts = model.item_popularity_
        smp = sampler_by_name(sampler, counts, alpha=0.5)
        rng = np.random.default_rng(0)
        reps = 4000
        negs = smp.sample(np.full(items.size * reps, user), 4, rng, positives=rows)
        xn = x_all[0, torch.as_tensor(negs)].reshape(reps, items.size, 4)
        xpos = x_all[0, torch.as_tensor(items)][None, :, None]
        f = torch.nn.functional.softplus
        per = f(-xpos[..., 0]) + f(xn).sum(-1) if loss == "bce" else f(xn - xpos).sum(-1)
        mc = float(per.mean())
    # a subset of the catalog estimates the negative term (unbiased over subsets, not exact)
    assert closed == pytest.approx(mc, rel=0.1 if fold_in_items else 0.01)


def test_binomial_cdf_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    s = torch.linspace(0, 1, 11)
    for trials, upto in ((19, 0), (19, 3), (7, 7)):
        np.testing.assert_allclose(_binomial_cdf(torch, s, trials, upto).numpy(),
                                   stats.binom.cdf(upto, trials, s.numpy()), atol=1e-5)


@pytest.mark.parametrize(("name", "params"), [
    ("mf", {"loss": "softmax", "sampler": "mixed"}),
    ("ncf", {"pretrain_epochs": 2, "epochs": 2}),
    ("ncf", {"mode": "gmf"}),
])
def test_save_load_identical(groups: tuple[Interactions, list[set[int]]], tmp_path: Path, name: str,
                             params: dict[str, Any]) -> None:
    inter, _ = groups
    model = (MF if name == "mf" else NeuMF)(**{**FAST, "epochs": 3, **params}).fit(inter)
    model.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert type(back) is type(model) and back.config == model.config
    users = ["u1", "u100", "nobody"]
    a, b = model.recommend(users, k=6), back.recommend(users, k=6)
    assert (a.items == b.items).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    history = sp.csr_matrix(inter.matrix)[[5, 5, 5]]  # "nobody"s get u5's history
    fa = model.recommend(["n1", "n2", "n3"], k=5, history=history)
    fb = back.recommend(["n1", "n2", "n3"], k=5, history=history)
    np.testing.assert_allclose(fa.scores, fb.scores, rtol=1e-5)
    np.testing.assert_array_equal(back.loss_history_, model.loss_history_)
    np.testing.assert_array_equal(back.negative_popularity_, model.negative_popularity_)


def test_seed_makes_training_reproducible(groups: tuple[Interactions, list[set[int]]]) -> None:
    a = NeuMF(**{**FAST, "epochs": 2}).fit(groups[0])
    b = NeuMF(**{**FAST, "epochs": 2}).fit(groups[0])
    np.testing.assert_array_equal(a.loss_history_, b.loss_history_)
    np.testing.assert_allclose(a.score(["u1"], ["i1", "i30"]), b.score(["u1"], ["i1", "i30"]))


@pytest.mark.slow
@pytest.mark.realdata
def test_movielens_100k_mf_and_ncf_beat_popularity() -> None:
    from aisle.data import FeedbackConfig
    from aisle.datasets import load_dataset
    from aisle.errors import DatasetNotFoundError
    from aisle.evaluation._runner import run_evaluation

    try:
        ds = load_dataset("movielens-100k")
    except DatasetNotFoundError as exc:
        pytest.skip(str(exc))
    run = run_evaluation(
        ds, ["pop", "mf", "ncf"], ["ndcg@10", "hr@10"], split_name="leave-last",
        feedback=FeedbackConfig(rating_threshold=None),
        configs={"mf": {"epochs": 10, "threads": 1, "device": "cpu"},
                 "ncf": {"factors": 8, "epochs": 8, "fold_in_items": 256, "threads": 1, "device": "cpu"}},
    )
    got = {r.model: r.metrics for r in run.results}
    for name in ("mf", "ncf"):
        assert got[name]["ndcg@10"] > 1.2 * got["pop"]["ndcg@10"]
        assert got[name]["hr@10"] > got["pop"]["hr@10"]
