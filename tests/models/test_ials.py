"""iALS: exact sweeps against a dense reference, CG convergence, monotone loss, quality, fold-in,
persistence."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError
from aisle.models._ials import IALS, IALSConfig, confidence_weights, half_step, objective
from aisle.models._popularity import Popularity

pytest.importorskip("numba")


def _interactions(x: sp.csr_matrix) -> Interactions:
    n_users, n_items = x.shape
    return Interactions(
        sp.csr_array(x, dtype=np.float32),
        Vocabulary([f"u{u}" for u in range(n_users)]),
        Vocabulary([f"i{i}" for i in range(n_items)]),
    )


def _tiny() -> sp.csr_matrix:
    """9 users x 7 items, mixed weights, one negative entry, an empty user and an empty item."""
    dense = np.array(
        [
            [1, 0, 3, 0, 0, 0, 0],
            [0, 2, 0, 0, 1, 0, 0],
            [5, 0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 2],
            [0, 0, -5, 4, 0, 0, 0],
            [0, 3, 0, 0, 2, 0, 1],
            [2, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0],
        ],
        dtype=np.float32,
    )
    return sp.csr_matrix(dense)


def _reference_half_step(d: np.ndarray, Y: np.ndarray, cfg: IALSConfig) -> np.ndarray:
    """Minimise the full objective over X for fixed Y, cell by cell (no Gramian trick)."""
    a0 = cfg.unobserved_weight
    C = np.where(d != 0, a0 + np.abs(d), a0)  # weight of every cell
    P = (d > 0).astype(np.float64)  # target of every cell
    counts = (d != 0).sum(axis=1)
    if cfg.reg_scaling == "frequency":
        lam = cfg.regularization * (counts + a0 * d.shape[1]) ** cfg.reg_exponent
    else:
        lam = np.full(d.shape[0], cfg.regularization)
    X = np.zeros((d.shape[0], Y.shape[1]))
    for u in range(d.shape[0]):
        if counts[u] == 0:
            continue
        A = Y.T @ (C[u][:, None] * Y) + lam[u] * np.eye(Y.shape[1])
        X[u] = np.linalg.solve(A, Y.T @ (C[u] * P[u]))
    return X


def _reference_loss(d: np.ndarray, X: np.ndarray, Y: np.ndarray, cfg: IALSConfig) -> float:
    a0 = cfg.unobserved_weight
    C = np.where(d != 0, a0 + np.abs(d), a0)
    P = (d > 0).astype(np.float64)
    lam_u = cfg.regularization * ((d != 0).sum(1) + a0 * d.shape[1]) ** cfg.reg_exponent
    lam_i = cfg.regularization * ((d != 0).sum(0) + a0 * d.shape[0]) ** cfg.reg_exponent
    fit = float(np.sum(C * (P - X @ Y.T) ** 2))
    return fit + float(lam_u @ (X**2).sum(1) + lam_i @ (Y**2).sum(1))


CFG = IALSConfig(
    factors=5,
    regularization=0.05,
    reg_exponent=0.7,
    unobserved_weight=0.5,
    alpha=2.0,
    confidence="log",
    epsilon=2.0,
    num_threads=1,
)


@pytest.mark.parametrize("factors", [5, 2])  # rows of <= f entries take the n-space path
def test_exact_sweep_matches_the_dense_reference(factors: int) -> None:
    cfg = CFG.model_copy(update={"factors": factors})
    rows = confidence_weights(_tiny(), cfg)
    d = rows.toarray().astype(np.float64)
    assert d[5, 2] < 0 and d[0, 0] == pytest.approx(2.0 * np.log1p(0.5))
    rng = np.random.default_rng(1)
    Y = rng.normal(0, 0.5, (7, factors)).astype(np.float32)
    X = rng.normal(0, 0.5, (9, factors)).astype(np.float32)
    half_step(rows, X, Y, cfg, solver="cholesky")
    np.testing.assert_allclose(
        X, _reference_half_step(d, Y.astype(np.float64), cfg), rtol=2e-5, atol=1e-6
    )
    assert not X[3].any()  # the empty user
    # the item side is the same solve on the transpose; the empty item gets zeros
    half_step(sp.csr_matrix(rows.T), Y, X, cfg, solver="cholesky")
    np.testing.assert_allclose(
        Y, _reference_half_step(d.T, X.astype(np.float64), cfg), rtol=2e-5, atol=1e-6
    )
    assert not Y[5].any()
    # and the objective kernel agrees with the cell-by-cell loss
    ref = _reference_loss(d, X.astype(np.float64), Y.astype(np.float64), cfg)
    assert objective(rows, X, Y, cfg) == pytest.approx(ref, rel=1e-5)


def test_cg_converges_to_the_exact_solution() -> None:
    cfg = CFG.model_copy(update={"factors": 8, "reg_scaling": "none", "confidence": "linear"})
    rows = confidence_weights(_tiny(), cfg)
    rng = np.random.default_rng(2)
    Y = rng.normal(0, 0.5, (7, 8)).astype(np.float32)
    X0 = rng.normal(0, 0.5, (9, 8)).astype(np.float32)
    exact = X0.copy()
    half_step(rows, exact, Y, cfg, solver="cholesky")
    errors = []
    for steps in (1, 2, 4, 8, 16):
        X = X0.copy()
        half_step(rows, X, Y, cfg, solver="cg", cg_steps=steps)
        errors.append(float(np.linalg.norm(X - exact) / np.linalg.norm(exact)))
    # in exact arithmetic CG is exact after f = 8 steps; float32 needs a few more
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-5, errors


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_training_loss_decreases_monotonically(solver: str) -> None:
    x, _ = _groups()
    cfg = IALSConfig(factors=8, iterations=8, solver=solver, track_loss=True)  # type: ignore[arg-type]
    model = IALS(cfg).fit(x)
    loss = model.loss_history_
    assert len(loss) == 8 and len(model.epoch_seconds_) == 8
    assert np.all(np.diff(loss) <= 1e-6 * loss[:-1]), loss
    assert loss[-1] < 0.9 * loss[0]


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


def _recall(model: IALS | Popularity, test: list[set[int]], k: int = 5) -> float:
    recs = model.recommend([f"u{u}" for u in range(len(test))], k=k)
    hits = [
        len({int(i[1:]) for i in recs.items[u]} & test[u]) / len(test[u]) for u in range(len(test))
    ]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def fitted() -> tuple[IALS, Interactions, list[set[int]]]:
    x, test = _groups()
    # 40 items: frequency scaling gives each user only λ·(6 + 40), so λ is set above the default
    return IALS(factors=16, iterations=15, regularization=0.1).fit(x), x, test


def test_beats_popularity_on_planted_taste_groups(
    fitted: tuple[IALS, Interactions, list[set[int]]],
) -> None:
    model, x, test = fitted
    ials, pop = _recall(model, test), _recall(Popularity().fit(x), test)
    assert ials > pop + 0.08, (ials, pop)  # 5/14 = 0.357 is the most anyone can get
    # every user's list stays inside their own taste group
    recs = model.recommend([f"u{u}" for u in range(120)], k=5)
    inside = [all((int(i[1:]) < 20) == (u < 80) for i in recs.items[u]) for u in range(120)]
    assert np.mean(inside) > 0.95


def test_fold_in_of_a_training_row_matches_the_stored_factor(
    fitted: tuple[IALS, Interactions, list[set[int]]],
) -> None:
    model, x, _ = fitted
    users = np.arange(0, 120, 7)
    rows = sp.csr_matrix(x.matrix)[users]
    # the last user half-step of training is the same exact solve: bit-for-bit equal
    np.testing.assert_array_equal(model.fold_in(rows), model.user_factors_[users])
    # the public path: users unknown to the model, with their rows as history
    names = [f"new{u}" for u in users]
    recs = model.recommend(names, k=5, history=rows)
    known = model.recommend([f"u{u}" for u in users], k=5)
    assert (recs.sources == "fold-in").all()
    assert (recs.items == known.items).all()


def test_save_load_roundtrip(
    fitted: tuple[IALS, Interactions, list[set[int]]], tmp_path: Path
) -> None:
    model, _, _ = fitted
    model.save(tmp_path / "ials")
    back = IALS.load(tmp_path / "ials")
    assert isinstance(back, IALS) and back.config == model.config
    np.testing.assert_array_equal(back.item_factors_, model.item_factors_)
    users = ["u1", "u90", "nobody"]
    a, b = model.recommend(users, k=6), back.recommend(users, k=6)
    assert (a.items == b.items).all()
    np.testing.assert_array_equal(a.scores, b.scores)
    sims = back.similar_items(["i3"], k=5)
    assert all(int(i[1:]) < 20 for i, _ in sims.for_user("i3"))


def test_same_factors_on_any_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import aisle.models._ials as ials

    monkeypatch.setattr(ials, "_PARALLEL_WORK", 0)  # force the parallel path on tiny data
    x, _ = _groups()
    one = IALS(factors=8, iterations=3, num_threads=1).fit(x)
    two = IALS(factors=8, iterations=3, num_threads=2).fit(x)
    np.testing.assert_array_equal(one.user_factors_, two.user_factors_)


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="factors"):
        IALS(factors=0)
    with pytest.raises(ConfigError, match="solver"):
        IALS(solver="lu")
    with pytest.raises(ConfigError, match="reg_scaling"):
        IALS(reg_scaling="sqrt")
