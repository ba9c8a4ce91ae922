"""Off-policy estimators, policies and diagnostics on tiny logs computed by hand.

obp (the reference implementation) does not install on this stack (0.4.1 breaks on pandas 3,
0.5.x needs Python < 3.11), so every estimator is checked against arithmetic written out here.
"""

from __future__ import annotations

import doctest
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from scipy import integrate, stats
from scipy.special import logsumexp

import aisle.evaluation.ope as ope_pkg
from aisle.cli._ope import ope
from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning, SchemaError
from aisle.evaluation.ope import (
    ESTIMATORS,
    ActionDistribution,
    LoggedFeedback,
    PositionBasedRewardModel,
    UnsupportedActionWarning,
    _data,
    _diagnostics,
    _estimators,
    _policies,
    _reward,
    bts_policy,
    diagnose,
    epsilon_greedy_policy,
    estimate_policy_value,
    kish_ess,
    make_config,
    model_policy,
    parse_estimators,
    plackett_luce_marginals,
    rank_marginals,
    simulate_bts_rankings,
    softmax_policy,
    top_k_policy,
    uniform_policy,
)
from aisle.models import Popularity

# ----------------------------------------------------------------------------- a tiny log
# 4 rows, 2 actions, one slot. Target: π = (0.8, 0.2).
ACTION = [0, 1, 0, 1]
REWARD = [1.0, 0.0, 0.0, 1.0]
PSCORE = [0.5, 0.5, 0.25, 0.75]
PI = np.array([0.8, 0.2])
Q = np.array([0.5, 0.4])  # fixed reward predictions q̂(a)
W = [0.8 / 0.5, 0.2 / 0.5, 0.8 / 0.25, 0.2 / 0.75]  # 1.6, 0.4, 3.2, 0.2667
DM = 0.8 * 0.5 + 0.2 * 0.4  # 0.48 for every row
RESID = [1 - 0.5, 0 - 0.4, 0 - 0.5, 1 - 0.4]


@pytest.fixture
def tiny() -> LoggedFeedback:
    return LoggedFeedback.from_arrays(ACTION, REWARD, PSCORE, n_actions=2)


def _fixed_q() -> np.ndarray:
    return Q[None, :, None]


HAND = {
    "ips": (W[0] * 1 + W[3] * 1) / 4,
    "snips": (W[0] + W[3]) / (W[0] + W[1] + W[2] + W[3]),
    "dm": DM,
    "dr": DM + (W[0] * RESID[0] + W[1] * RESID[1] + W[2] * RESID[2] + W[3] * RESID[3]) / 4,
}


@pytest.mark.parametrize("name", ["ips", "snips", "dm", "dr"])
def test_single_slot_estimators_match_hand_computation(tiny: LoggedFeedback, name: str) -> None:
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), [name], reward_model=_fixed_q(),
                                n_bootstrap=0)
    assert res[name].estimate == pytest.approx(HAND[name], rel=1e-12)


def test_clipped_ips_caps_weights(tiny: LoggedFeedback) -> None:
    # clip = 1: weights 1.6 -> 1, 3.2 -> 1; the clicked rows are rows 0 and 3.
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), "clipped-ips", n_bootstrap=0, clip=1.0)
    assert res["clipped-ips"].estimate == pytest.approx((1.0 * 1 + W[3] * 1) / 4)
    # a cap above every weight is plain IPS
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), "clipped-ips,ips", n_bootstrap=0, clip=10.0)
    assert res["clipped-ips"].estimate == pytest.approx(res["ips"].estimate)


def test_switch_dr_drops_the_correction_above_tau(tiny: LoggedFeedback) -> None:
    # tau = 2: row 2 (w = 3.2) falls back to DM
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), "switch-dr", reward_model=_fixed_q(),
                                n_bootstrap=0, switch_tau=2.0)
    expected = DM + (W[0] * RESID[0] + W[1] * RESID[1] + W[3] * RESID[3]) / 4
    assert res["switch-dr"].estimate == pytest.approx(expected)
    # tau above every weight: DR; tau below every weight: DM
    big = estimate_policy_value(tiny, ActionDistribution.shared(PI), "switch-dr,dr", reward_model=_fixed_q(),
                                n_bootstrap=0, switch_tau=100.0)
    assert big["switch-dr"].estimate == pytest.approx(big["dr"].estimate)
    small = estimate_policy_value(tiny, ActionDistribution.shared(PI), "switch-dr", reward_model=_fixed_q(),
                                  n_bootstrap=0, switch_tau=0.1)
    assert small["switch-dr"].estimate == pytest.approx(DM)


def test_dr_os_shrinks_weights(tiny: LoggedFeedback) -> None:
    lam = 1.0
    shrunk = [lam * w / (w * w + lam) for w in W]
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), "dr-os", reward_model=_fixed_q(),
                                n_bootstrap=0, shrinkage=lam)
    expected = DM + sum(s * e for s, e in zip(shrunk, RESID, strict=True)) / 4
    assert res["dr-os"].estimate == pytest.approx(expected)
    assert res["dr-os"].ess == pytest.approx(kish_ess(np.array(shrunk)))


def test_dm_and_dr_with_per_row_predictions() -> None:
    # predictions differ per row: q̂(x_i, a) = row-specific
    log = LoggedFeedback.from_arrays([0, 1], [1.0, 0.0], [0.5, 0.5], n_actions=2)
    q = np.array([[0.2, 0.6], [0.4, 0.0]])[:, :, None]
    res = estimate_policy_value(log, ActionDistribution.shared(PI), "dm,dr", reward_model=q, n_bootstrap=0)
    dm_rows = [0.8 * 0.2 + 0.2 * 0.6, 0.8 * 0.4 + 0.2 * 0.0]
    assert res["dm"].estimate == pytest.approx(sum(dm_rows) / 2)
    dr = (dm_rows[0] + 1.6 * (1 - 0.2) + dm_rows[1] + 0.4 * (0 - 0.0)) / 2
    assert res["dr"].estimate == pytest.approx(dr)


def test_ranked_list_uses_each_slots_propensity() -> None:
    # 2 actions, 2 slots. Target: item 1 first, item 0 second, with prob 0.9; the reverse 0.1.
    target = ActionDistribution.shared(np.array([[0.1, 0.9], [0.9, 0.1]]))
    log = LoggedFeedback.from_arrays(
        action=[1, 0, 0, 1, 1, 0], position=[0, 1, 0, 1, 0, 1],
        reward=[1, 1, 0, 0, 0, 1], pscore=[0.5] * 6, n_actions=2, n_positions=2,
    )
    res = estimate_policy_value(log, target, "ips,snips", n_bootstrap=0)
    w = [0.9 / 0.5, 0.9 / 0.5, 0.1 / 0.5, 0.1 / 0.5, 0.9 / 0.5, 0.9 / 0.5]
    r = [1, 1, 0, 0, 0, 1]
    assert res["ips"].estimate == pytest.approx(sum(wi * ri for wi, ri in zip(w, r, strict=True)) / 6)
    # slot 0: rows 0, 2, 4; slot 1: rows 1, 3, 5
    slot0 = (w[0] * 1 + w[2] * 0 + w[4] * 0) / 3
    slot1 = (w[1] * 1 + w[3] * 0 + w[5] * 1) / 3
    assert res["ips"].by_position == pytest.approx((slot0, slot1))
    snips0 = (w[0] * 1) / (w[0] + w[2] + w[4])
    assert res["snips"].by_position[0] == pytest.approx(snips0)


def test_logging_policy_as_target_gives_the_logged_mean() -> None:
    rng = np.random.default_rng(3)
    n, a = 500, 5
    log = LoggedFeedback.from_arrays(rng.integers(0, a, n), rng.binomial(1, 0.3, n), np.full(n, 1 / a))
    res = estimate_policy_value(log, uniform_policy(a), "ips,snips,clipped-ips", n_bootstrap=0)
    for e in res.estimates.values():
        assert e.estimate == pytest.approx(log.reward.mean())
        assert e.ess == pytest.approx(n)
    assert res.diagnostics.weights.mean == pytest.approx(1.0)


# ----------------------------------------------------------------------------- reward model
def test_position_based_reward_model_matches_the_formulas() -> None:
    log = LoggedFeedback.from_arrays(
        action=[0, 0, 1, 1, 2, 0], position=[0, 1, 0, 1, 0, 1], reward=[1, 0, 0, 1, 0, 0],
        pscore=[1 / 3] * 6, n_actions=3, n_positions=2,
    )
    m_pos, m_item = 2.0, 1.0
    model = PositionBasedRewardModel(position_prior=m_pos, item_prior=m_item).fit(log)
    mu = 2 / 6
    mu0 = (1 + m_pos * mu) / (3 + m_pos)  # slot 0: rows 0, 2, 4 -> one click
    mu1 = (1 + m_pos * mu) / (3 + m_pos)  # slot 1: rows 1, 3, 5 -> one click
    exp0 = mu0 + mu1 + mu1  # item 0 at slots 0, 1, 1
    exp1 = mu0 + mu1
    exp2 = mu0
    rho = [(1 + m_item) / (exp0 + m_item), (1 + m_item) / (exp1 + m_item), (0 + m_item) / (exp2 + m_item)]
    expected = np.outer(rho, [mu0, mu1])
    np.testing.assert_allclose(model.predict(log)[0], expected)
    assert model.predict(log).shape == (1, 3, 2)


def test_reward_model_weights_equal_duplicated_rows() -> None:
    log = LoggedFeedback.from_arrays([0, 1, 1, 2], [1, 0, 1, 0], [1 / 3] * 4, n_actions=3)
    dup = LoggedFeedback.from_arrays([0, 0, 0, 1, 2], [1, 1, 1, 0, 0], [1 / 3] * 5, n_actions=3)
    weighted = PositionBasedRewardModel().fit(log, sample_weight=np.array([3.0, 1.0, 0.0, 1.0]))
    np.testing.assert_allclose(weighted.predict(log), PositionBasedRewardModel().fit(dup).predict(dup))


def test_reward_model_rejects_negative_rewards() -> None:
    log = LoggedFeedback.from_arrays([0, 1], [1.0, -2.0], [0.5, 0.5])
    with pytest.raises(DataError, match="non-negative"):
        PositionBasedRewardModel().fit(log)


# ----------------------------------------------------------------------------- bootstrap, ESS
def _random_log(n: int = 2000, a: int = 4, seed: int = 0) -> LoggedFeedback:
    rng = np.random.default_rng(seed)
    action = rng.integers(0, a, n)
    reward = rng.binomial(1, 0.1 + 0.1 * action)
    return LoggedFeedback.from_arrays(action, reward, np.full(n, 1 / a), n_actions=a)


def test_bootstrap_interval_is_seeded_and_contains_the_estimate() -> None:
    log = _random_log()
    target = ActionDistribution.shared(np.array([0.1, 0.2, 0.3, 0.4]))
    a = estimate_policy_value(log, target, n_bootstrap=200, seed=5)
    b = estimate_policy_value(log, target, n_bootstrap=200, seed=5)
    c = estimate_policy_value(log, target, n_bootstrap=200, seed=6)
    for name in ESTIMATORS:
        assert a[name].ci_low == b[name].ci_low and a[name].ci_high == b[name].ci_high
        assert a[name].ci_low <= a[name].estimate <= a[name].ci_high, name
        assert a[name].ci_low < a[name].ci_high, name
    assert a["ips"].ci_low != c["ips"].ci_low


def test_bootstrap_standard_error_matches_the_analytic_one_for_ips() -> None:
    log = _random_log(n=4000)
    target = ActionDistribution.shared(np.array([0.1, 0.2, 0.3, 0.4]))
    res = estimate_policy_value(log, target, "ips", n_bootstrap=1000, seed=0)
    w = target.probs[0, log.action, 0] / log.pscore
    analytic = np.std(w * log.reward, ddof=1) / math.sqrt(log.n_rounds)
    assert res["ips"].std_error == pytest.approx(analytic, rel=0.1)


def test_dm_interval_includes_the_reward_models_uncertainty() -> None:
    log = _random_log()
    target = ActionDistribution.shared(np.array([0.1, 0.2, 0.3, 0.4]))
    refit = estimate_policy_value(log, target, "dm", n_bootstrap=200)
    assert refit["dm"].ci_high - refit["dm"].ci_low > 0.01
    q = PositionBasedRewardModel().fit(log).predict(log)
    fixed = estimate_policy_value(log, target, "dm", reward_model=q, n_bootstrap=200)
    assert fixed["dm"].estimate == pytest.approx(refit["dm"].estimate)
    assert fixed["dm"].ci_high - fixed["dm"].ci_low < 1e-12  # known predictions: nothing to resample


def test_no_bootstrap_gives_undefined_intervals(tiny: LoggedFeedback) -> None:
    res = estimate_policy_value(tiny, ActionDistribution.shared(PI), "ips", n_bootstrap=0)
    assert math.isnan(res["ips"].ci_low) and res["ips"].to_dict()["ci_low"] is None


def test_effective_sample_size() -> None:
    assert kish_ess(np.ones(10)) == pytest.approx(10)
    assert kish_ess(np.array([0, 0, 5.0])) == pytest.approx(1)
    assert kish_ess(np.array([1.0, 3.0])) == pytest.approx(16 / 10)
    assert kish_ess(np.zeros(3)) == 0.0
    log = LoggedFeedback.from_arrays(ACTION, REWARD, PSCORE, n_actions=2)
    res = estimate_policy_value(log, ActionDistribution.shared(PI), "ips,dm,clipped-ips", n_bootstrap=0, clip=1.0)
    assert res["ips"].ess == pytest.approx(sum(W) ** 2 / sum(w * w for w in W))
    assert res["dm"].ess == 4
    assert res["clipped-ips"].ess == pytest.approx(kish_ess(np.minimum(W, 1.0)))


# ----------------------------------------------------------------------------- diagnostics
def test_support_warning_and_coverage() -> None:
    # the log never shows item 2; the target gives it 0.3
    log = LoggedFeedback.from_arrays([0, 1, 0, 1], [1, 0, 0, 0], [0.5] * 4, n_actions=3,
                                     action_ids=["a", "b", "c"])
    target = ActionDistribution.shared(np.array([0.5, 0.2, 0.3]))
    with pytest.warns(UnsupportedActionWarning, match="30.0%"):
        res = estimate_policy_value(log, target, "ips", n_bootstrap=0)
    d = res.diagnostics
    assert d.unsupported_mass == pytest.approx(0.3)
    assert d.target_coverage == pytest.approx(0.7)
    assert d.unsupported_actions == ("c",) and d.n_unsupported_actions == 1
    assert d.logged_pairs == 2 and d.total_pairs == 3
    assert d.weights.mean == pytest.approx((1.0 + 0.4 + 1.0 + 0.4) / 4)  # = 0.7, the supported mass
    assert d.warnings and "never showed" in d.warnings[0]
    assert issubclass(UnsupportedActionWarning, DataWarning)


def test_no_warning_inside_the_support(tiny: LoggedFeedback) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = diagnose(tiny, ActionDistribution.shared(PI))
    assert d.unsupported_mass == 0.0 and d.warnings == ()


def test_weight_summary() -> None:
    log = LoggedFeedback.from_arrays(list(range(100)), [0.0] * 100, [0.01] * 100, n_actions=100)
    probs = np.zeros(100)
    probs[0], probs[1:] = 0.5, 0.5 / 99
    d = diagnose(log, ActionDistribution.shared(probs))
    assert d.weights.max == pytest.approx(50.0)
    assert d.weights.top1pct_share == pytest.approx(0.5)  # the top row carries half the weight
    assert d.weights.share_zero == 0.0
    assert d.weights.mean == pytest.approx(1.0)


# ----------------------------------------------------------------------------- policies
def test_top_k_policy_is_one_hot_in_score_order_with_ties_to_the_lower_index() -> None:
    p = top_k_policy([0.1, 0.9, 0.5, 0.9], n_positions=3).probs[0]
    assert p[:, 0].argmax() == 1 and p[:, 1].argmax() == 3 and p[:, 2].argmax() == 2
    assert p.sum() == 3 and set(np.unique(p)) == {0.0, 1.0}
    p = top_k_policy([1.0, np.nan, 0.0], n_positions=3).probs[0]
    assert p[1, 2] == 1.0  # nan ranks last


def test_epsilon_greedy_mixes_top_k_with_uniform() -> None:
    p = epsilon_greedy_policy([0.1, 0.9, 0.5, 0.2], n_positions=2, epsilon=0.2).probs[0]
    assert p[1, 0] == pytest.approx(0.8 + 0.2 / 4)
    assert p[2, 1] == pytest.approx(0.8 + 0.2 / 4)
    assert p[0, 0] == pytest.approx(0.2 / 4)
    with pytest.raises(ConfigError):
        epsilon_greedy_policy([0.1, 0.2], epsilon=1.5)


def _brute_pl(logits: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((logits.size, k))
    for perm in itertools.permutations(range(logits.size), k):
        lp, rest = 0.0, list(range(logits.size))
        for a in perm:
            lp += logits[a] - logsumexp(logits[rest])
            rest.remove(a)
        for slot, a in enumerate(perm):
            out[a, slot] += math.exp(lp)
    return out


@pytest.mark.parametrize("logits", [
    [0.3, -1.2, 2.0, 0.0, 0.7],
    [3.0, 3.0, 3.0, 3.0],
    [50.0, 0.0, -3.0, 2.0, 1.0],
    [800.0, 790.0, -20.0, 5.0, 4.0, 3.0],
    [0.0, -np.inf, 1.0, 2.0, -1.0],
    [0.0, 1.0, 2.0],
])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_plackett_luce_marginals_are_exact(logits: list[float], k: int) -> None:
    arr = np.array(logits)
    np.testing.assert_allclose(plackett_luce_marginals(arr, k)[0], _brute_pl(arr, k), atol=1e-12)


def test_softmax_policy() -> None:
    scores = np.array([1.0, 2.0, 0.0])
    p = softmax_policy(scores, 1, temperature=2.0).probs[0, :, 0]
    np.testing.assert_allclose(p, np.exp(scores / 2) / np.exp(scores / 2).sum())
    # low temperature approaches top-k; a -inf item is never shown
    cold = softmax_policy([1.0, 2.0, 0.0, -np.inf], 3, temperature=1e-3).probs[0]
    np.testing.assert_allclose(cold, top_k_policy([1.0, 2.0, 0.0, -np.inf], 3).probs[0], atol=1e-12)
    # more than 3 slots: Monte Carlo, close to the exact enumeration
    logits = np.array([0.5, -0.3, 1.2, 0.0, 0.8])
    mc = softmax_policy(logits, 4, n_draws=40_000, seed=1).probs[0]
    np.testing.assert_allclose(mc, _brute_pl(logits, 4), atol=0.012)
    with pytest.raises(ConfigError, match="finite"):
        softmax_policy([1.0, -np.inf, -np.inf], 2)


def test_policies_with_per_user_scores_and_groups() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    group = np.array([0, 1, 1, 0])
    log = LoggedFeedback.from_arrays([0, 0, 1, 1], [1, 0, 1, 0], [0.5] * 4, n_actions=2)
    res = estimate_policy_value(log, top_k_policy(scores, 1, group=group), "ips", n_bootstrap=0)
    # rows 0 (user 0 takes item 0) and 2 (user 1 takes item 1) match the target, weight 2
    assert res["ips"].estimate == pytest.approx((2 * 1 + 2 * 1) / 4)
    with pytest.raises(ConfigError, match="group"):
        estimate_policy_value(log, top_k_policy(scores, 1), "ips", n_bootstrap=0)


def test_model_policy_turns_an_aisle_model_into_a_policy() -> None:
    # item i2 is the most popular, then i0, then i1; "new" is unknown to the model
    matrix = sp.csr_array(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=np.float32))
    inter = Interactions(matrix, Vocabulary(["u0", "u1", "u2"]), Vocabulary(["i0", "i1", "i2"]))
    model = Popularity().fit(inter)
    items = ["i0", "i1", "i2", "new"]
    dist = model_policy(model, ["u0", "u1", "u0"], items, n_positions=2)
    assert dist.n_groups == 2 and list(dist.row_groups(3)) == [0, 1, 0]
    p = dist.probs[0]
    assert p[2, 0] == 1.0 and p[0, 1] == 1.0 and p[3].sum() == 0.0
    soft = model_policy(model, ["u0"], items, n_positions=1, kind="softmax", temperature=1.0)
    assert soft.probs[0, 3, 0] == 0.0 and soft.probs[0, 2, 0] > soft.probs[0, 0, 0]
    eps = model_policy(model, ["u0"], items, kind="epsilon-greedy", epsilon=0.4)
    assert eps.probs[0, 3, 0] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="kind"):
        model_policy(model, ["u0"], items, kind="greedy")  # type: ignore[arg-type]


def test_bts_monte_carlo_matches_numerical_integration() -> None:
    alpha, beta = np.array([2.0, 3.0, 4.0]), np.array([5.0, 4.0, 3.0])
    draws = 20_000
    p = bts_policy(alpha, beta, n_positions=3, n_draws=draws, seed=3)
    first = p.probs[0, :, 0]
    for a in range(3):
        others = [b for b in range(3) if b != a]
        exact = integrate.quad(
            lambda t, a=a, others=others: stats.beta.pdf(t, alpha[a], beta[a])
            * np.prod([stats.beta.cdf(t, alpha[b], beta[b]) for b in others]), 0, 1)[0]
        se = math.sqrt(exact * (1 - exact) / draws)
        assert abs(first[a] - exact) < 4 * se
    np.testing.assert_allclose(p.probs[0].sum(axis=0), 1.0)
    np.testing.assert_allclose(p.probs[0].sum(axis=1), 1.0)  # 3 items, 3 slots: every item shown
    assert p.meta["max_probability_se"] <= 0.5 / math.sqrt(draws)


def test_bts_rankings_are_seeded_and_follow_the_prior() -> None:
    alpha, beta = np.array([1.0, 1000.0, 10.0, 500.0]), np.array([1000.0, 1.0, 10.0, 500.0])
    r1 = simulate_bts_rankings(alpha, beta, 3, 500, seed=1)
    assert np.array_equal(r1, simulate_bts_rankings(alpha, beta, 3, 500, seed=1))
    assert not np.array_equal(r1, simulate_bts_rankings(alpha, beta, 3, 500, seed=2))
    # θ_1 ≈ 1 always first; θ_0 ≈ 0 never shown
    assert (r1[:, 0] == 1).all() and not (r1 == 0).any()
    m = rank_marginals(r1, 4)
    np.testing.assert_allclose(m.sum(axis=0), 1.0)
    assert m[0].sum() == 0.0


# ----------------------------------------------------------------------------- inputs and errors
def test_logged_feedback_validation() -> None:
    with pytest.raises(DataError, match="pscore"):
        LoggedFeedback.from_arrays([0, 1], [0, 1], [0.5, 0.0])
    with pytest.raises(DataError, match="action"):
        LoggedFeedback.from_arrays([0, 3], [0, 1], [0.5, 0.5], n_actions=2)
    with pytest.raises(DataError, match="as long as"):
        LoggedFeedback.from_arrays([0, 1], [0, 1, 1], [0.5, 0.5])
    log = LoggedFeedback.from_arrays([0, 1], [0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="read-only"):
        log.reward[0] = 5.0


def test_impression_log_input() -> None:
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2"], "item_id": ["b", "c", "a", "b"], "position": [1, 2, 1, 2],
        "propensity": [0.5, 0.5, 0.25, 0.25], "clicked": [True, False, False, True],
    })
    log = LoggedFeedback.from_impressions(frame, items=["a", "b", "c", "d"])
    assert list(log.action) == [1, 2, 0, 1] and list(log.position) == [0, 1, 0, 1]
    assert log.n_actions == 4 and log.n_positions == 2 and list(log.reward) == [1, 0, 0, 1]
    assert list(log.users) == ["u1", "u1", "u2", "u2"] and log.action_ids == ("a", "b", "c", "d")
    with pytest.raises(SchemaError, match="propensity"):
        LoggedFeedback.from_impressions(frame.drop(columns="propensity"))
    with pytest.raises(DataError, match="missing from 'items'"):
        LoggedFeedback.from_impressions(frame, items=["a", "b"])


def test_simulated_shop_impression_log_recovers_the_true_value() -> None:
    """Random lists logged in the simulator; the popularity policy's true click rate is known."""
    from aisle.simulate import PopularityPolicy, RandomPolicy, ShopSimulator, SimulatorConfig

    cfg = SimulatorConfig(seed=3, n_users=400, n_items=30, n_days=7, initial_stock_mean=1e7,
                          stock_sigma=0.0, new_item_fraction=0.0, consent_tracking_rate=1.0)
    sim = ShopSimulator(cfg)
    shop = sim.generate()
    logged = sim.simulate_policy(RandomPolicy(seed=1), n_days=14, k=3).impressions
    ranked = [str(i) for i in PopularityPolicy.from_events(shop.events).ranked_items]
    truth = float(sim.simulate_policy(PopularityPolicy(ranked), n_days=14, k=3).impressions["clicked"].mean())
    items = [str(i) for i in shop.truth.item_ids]
    log = LoggedFeedback.from_impressions(logged, items=items)
    assert log.n_positions == 3 and log.users is not None
    # the random policy's logged propensities are the uniform policy's
    np.testing.assert_allclose(uniform_policy(len(items), 3).probs[0, log.action, log.position], log.pscore)
    rank = {item: r for r, item in enumerate(ranked)}
    target = top_k_policy([-rank.get(i, math.inf) for i in items], 3)
    res = estimate_policy_value(log, target, n_bootstrap=300, seed=0)
    for name, e in res.estimates.items():
        assert e.ci_low <= truth <= e.ci_high, (name, e.estimate, truth)
    assert res.diagnostics.unsupported_mass == 0.0
    frame = res.to_frame()
    assert list(frame["estimator"]) == list(ESTIMATORS)


def test_target_must_fit_the_log(tiny: LoggedFeedback) -> None:
    with pytest.raises(ConfigError, match="sum to 1"):
        ActionDistribution.shared(np.array([0.5, 0.2]))
    with pytest.raises(ConfigError, match="actions"):
        estimate_policy_value(tiny, uniform_policy(3), "ips", n_bootstrap=0)
    two_slots = LoggedFeedback.from_arrays([0, 1], [1, 0], [0.5, 0.5], [0, 1], n_actions=2)
    with pytest.raises(ConfigError, match="slots"):
        estimate_policy_value(two_slots, uniform_policy(2, 1), "ips", n_bootstrap=0)


def test_estimator_names_and_settings() -> None:
    assert parse_estimators("DM, ips,snips,dr,ips") == ("dm", "ips", "snips", "dr")
    assert parse_estimators(["switch_dr"]) == ("switch-dr",)
    with pytest.raises(ConfigError, match="valid estimators: dm, ips, clipped-ips, snips, dr, switch-dr, dr-os"):
        parse_estimators("dm,snip")
    with pytest.raises(ConfigError, match="did you mean 'snips'"):
        parse_estimators("snip")
    with pytest.raises(ConfigError, match="n_bootstrap"):
        make_config(n_bootstrap=-1)
    with pytest.raises(ConfigError, match="clip"):
        make_config(clip=0)
    with pytest.raises(ConfigError, match="clip_weights: Extra inputs"):
        make_config(clip_weights=3)


def test_cli_rejects_a_typo_in_an_estimator_name() -> None:
    result = CliRunner().invoke(ope, ["--estimators", "dm,ipss", "--json"])
    assert isinstance(result.exception, ConfigError)
    assert "valid estimators: dm, ips, clipped-ips, snips, dr, switch-dr, dr-os" in str(result.exception)
    assert result.stdout == ""
    result = CliRunner().invoke(ope, ["--dataset", "movielens"])
    assert isinstance(result.exception, ConfigError) and "valid datasets: obd" in str(result.exception)
    result = CliRunner().invoke(ope, ["--behavior", "bts", "--evaluation", "bts", "--estimators", "ips"])
    assert isinstance(result.exception, ConfigError)


@pytest.mark.parametrize("module", [ope_pkg, _data, _diagnostics, _estimators, _policies, _reward])
def test_doctests(module: object) -> None:
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert failures == 0
    if module in (ope_pkg, _estimators):  # the examples in the package and estimator docstrings
        assert attempted > 0
