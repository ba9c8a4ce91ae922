"""The tests against scipy/statsmodels, the delta method against a bootstrap, CUPED, power,
SRM, quantiles and sequential monitoring under peeking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest

from aisle.errors import ConfigError
from aisle.experiments import (
    FixedHorizon,
    adjust_pvalues,
    always_valid,
    analyze_units,
    compare_metric,
    cuped_moments,
    delta_ratio_moments,
    mde,
    msprt_lambda,
    power,
    quantile_moments,
    sample_size,
    srm_check,
    two_proportion_ztest,
    welch_test,
)

RNG = np.random.default_rng(20240601)
X = RNG.lognormal(1.0, 1.0, 400)
Y = RNG.lognormal(1.1, 0.8, 350)


def test_welch_equals_scipy() -> None:
    ours = welch_test(Y.mean(), Y.var(ddof=1), len(Y), X.mean(), X.var(ddof=1), len(X), alpha=0.05)
    ref = stats.ttest_ind(Y, X, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_welch_through_compare_metric_equals_scipy() -> None:
    units = pd.DataFrame({"variant": ["t"] * len(Y) + ["c"] * len(X), "revenue": np.r_[Y, X]})
    r = compare_metric(units, "revenue_per_user", control="c", treatment="t", cuped=False)
    assert r.method == "welch"
    assert r.p_value == pytest.approx(stats.ttest_ind(Y, X, equal_var=False).pvalue, rel=1e-10)


@pytest.mark.parametrize(
    ("x", "n"), [((120, 100), (1000, 1000)), ((5, 17), (80, 95)), ((3000, 2900), (50_000, 49_000))]
)
def test_two_proportion_z_equals_statsmodels(x: tuple[int, int], n: tuple[int, int]) -> None:
    ours = two_proportion_ztest(x[0], n[0], x[1], n[1])
    z, p = proportions_ztest(list(x), list(n))
    assert ours.statistic == pytest.approx(z, rel=1e-12)
    assert ours.p_value == pytest.approx(p, rel=1e-10)
    # the interval is the unpooled Wald interval
    p1, p2 = x[0] / n[0], x[1] / n[1]
    half = 1.959963984540054 * math.sqrt(p1 * (1 - p1) / n[0] + p2 * (1 - p2) / n[1])
    assert (ours.ci_low, ours.ci_high) == pytest.approx((p1 - p2 - half, p1 - p2 + half), rel=1e-9)


def test_bh_and_holm_equal_statsmodels_and_scipy() -> None:
    p = np.r_[RNG.uniform(size=18), 1e-4, 3e-3]
    for ours_m, ref_m in (("bh", "fdr_bh"), ("holm", "holm")):
        rej, adj = adjust_pvalues(p, ours_m, alpha=0.05)
        ref_rej, ref_adj, _, _ = multipletests(p, alpha=0.05, method=ref_m)
        assert (rej == ref_rej).all()
        assert adj == pytest.approx(ref_adj, rel=1e-12)
    assert adjust_pvalues(p, "bh")[1] == pytest.approx(
        stats.false_discovery_control(p, method="bh"), rel=1e-12
    )
    rej, adj = adjust_pvalues(np.r_[p, np.nan], "holm")
    assert np.isnan(adj[-1]) and not rej[-1]
    with pytest.raises(ConfigError):
        adjust_pvalues(p, "bonferroni")  # type: ignore[arg-type]


def test_analyze_units_adjusts_the_family_like_statsmodels() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    units = pd.DataFrame(
        {
            "variant": np.where(rng.random(n) < 0.5, "t", "c"),
            **{f"m{j}": rng.normal(size=n) for j in range(6)},
        }
    )
    from aisle.experiments import MetricSpec

    metrics = [MetricSpec(name=f"m{j}", kind="mean", numerator=f"m{j}") for j in range(6)]
    res = analyze_units(units, metrics, control="c", cuped=False, correction="holm")
    raw = [r.p_value for r in res]
    assert [r.p_holm for r in res] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert [r.p_bh for r in res] == pytest.approx(list(multipletests(raw, method="fdr_bh")[1]))
    assert [r.significant for r in res] == list(multipletests(raw, method="holm")[0])


def test_delta_method_variance_matches_a_bootstrap() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    views = rng.poisson(8, n) + 1.0
    clicks = rng.binomial(views.astype(int), rng.beta(2, 30, n)).astype(float)
    m = delta_ratio_moments(clicks, views)
    assert m.value == pytest.approx(clicks.sum() / views.sum())
    idx = rng.integers(0, n, (2000, n))
    boot = clicks[idx].sum(axis=1) / views[idx].sum(axis=1)
    assert math.sqrt(m.var) == pytest.approx(boot.std(ddof=1), rel=0.08)
    # vectorised over replicates, same numbers
    many = delta_ratio_moments(np.vstack([clicks, clicks]), np.vstack([views, views]))
    assert many.var == pytest.approx([m.var, m.var])


def test_cuped_reduces_variance_on_correlated_pre_period_data() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    pre = rng.gamma(2.0, 5.0, n)
    post = 0.8 * pre + rng.normal(0, 4, n)
    arm = rng.random(n) < 0.5
    cm = cuped_moments([post[arm], post[~arm]], [pre[arm], pre[~arm]])
    raw_var = cm.raw[0].var + cm.raw[1].var
    adj_var = cm.arms[0].var + cm.arms[1].var
    rho = np.corrcoef(pre, post)[0, 1]
    assert adj_var / raw_var == pytest.approx(1 - rho**2, abs=0.03)
    assert adj_var < 0.5 * raw_var
    # theta is the pooled within-arm OLS slope
    assert cm.theta[0] == pytest.approx(0.8, abs=0.05)
    units = pd.DataFrame(
        {"variant": np.where(arm, "t", "c"), "revenue": post, "pre_converted": pre}
    )
    r = compare_metric(units, "revenue_per_user", control="c", treatment="t")
    assert (
        r.method == "cuped_welch"
        and r.cuped_variance_ratio is not None
        and r.cuped_variance_ratio < 0.5
    )


def test_cuped_is_unbiased_across_a_a_splits() -> None:
    rng = np.random.default_rng(8)
    n = 1000
    pre = rng.gamma(2.0, 5.0, n)
    post = 0.8 * pre + rng.normal(0, 4, n)
    est = []
    for _ in range(300):
        arm = rng.random(n) < 0.5
        cm = cuped_moments([post[arm], post[~arm]], [pre[arm], pre[~arm]])
        est.append(cm.arms[0].value - cm.arms[1].value)
    assert abs(np.mean(est)) < 3 * np.std(est) / math.sqrt(len(est))


def test_power_mde_and_sample_size_agree_with_statsmodels() -> None:
    sd, n = 0.3, 5000
    effect = mde(sd, n, power_target=0.8)
    assert power(effect, sd, n) == pytest.approx(0.8, abs=1e-4)
    ref = NormalIndPower().solve_power(effect_size=effect / sd, nobs1=None, power=0.8, alpha=0.05)
    assert sample_size(effect, sd) == math.ceil(ref)
    assert power(0.0, sd, n) == pytest.approx(0.05)
    # unequal sds: the standard error sqrt(sd_t²/n + sd_c²/n) drives the power
    p = power(0.02, 0.3, 4000, sd_treatment=0.4)
    se = math.sqrt(0.3**2 / 4000 + 0.4**2 / 4000)
    z = stats.norm.ppf(0.975)
    assert p == pytest.approx(
        stats.norm.sf(z - 0.02 / se) + stats.norm.cdf(-z - 0.02 / se), rel=1e-6
    )


def test_srm_check() -> None:
    ok = srm_check({"control": 50_100, "treatment": 49_900}, {"control": 1, "treatment": 1})
    assert ok.passed and ok.p_value > 0.001
    bad = srm_check({"control": 50_900, "treatment": 49_100}, {"control": 1, "treatment": 1})
    assert not bad.passed
    assert bad.p_value == pytest.approx(stats.chisquare([50_900, 49_100]).pvalue)
    weighted = srm_check({"a": 2500, "b": 7500}, {"a": 1, "b": 3})
    assert weighted.passed and weighted.expected == {"a": 2500.0, "b": 7500.0}


def test_quantile_standard_error_is_calibrated() -> None:
    rng = np.random.default_rng(2)
    draws = rng.lognormal(3.0, 0.5, (400, 4000))
    p99 = np.quantile(draws, 0.99, axis=1)
    ses = [math.sqrt(quantile_moments(d, 0.99).var) for d in draws[:50]]
    assert np.mean(ses) == pytest.approx(p99.std(ddof=1), rel=0.25)


def _peeking_rates(
    effect: float, sims: int = 2000, looks: int = 20, batch: int = 200
) -> tuple[float, float]:
    """mSPRT and naive rejection rates with a look after every batch (normal outcomes)."""
    rng = np.random.default_rng(99)
    t = rng.normal(effect, 1.0, (sims, looks, batch)).sum(axis=2).cumsum(axis=1)
    c = rng.normal(0.0, 1.0, (sims, looks, batch)).sum(axis=2).cumsum(axis=1)
    n = batch * np.arange(1, looks + 1)
    est = t / n - c / n
    var = 2.0 / n * np.ones_like(est)
    p, lo, hi = always_valid(est, var, tau2=0.1**2, alpha=0.05)
    msprt = float((p[:, -1] < 0.05).mean())
    naive = float((np.abs(est / np.sqrt(var)) > 1.96).any(axis=1).mean())
    assert np.all(np.diff(p, axis=1) <= 0) and np.all(lo <= hi)
    return msprt, naive


def test_msprt_stays_valid_under_peeking() -> None:
    msprt, naive = _peeking_rates(0.0)
    assert msprt <= 0.05 + 0.01
    assert naive > 0.15  # what peeking at a fixed-horizon test does
    power_msprt, _ = _peeking_rates(0.15)
    assert power_msprt > 0.8


def test_msprt_lambda_basics() -> None:
    assert msprt_lambda(0.0, 1.0, 1.0) == pytest.approx(math.sqrt(0.5))
    assert msprt_lambda(1.0, 0.0, 1.0) == 1.0  # no information yet
    with pytest.raises(ConfigError):
        msprt_lambda(1.0, 1.0, 0.0)


def test_fixed_horizon_refuses_early_verdicts() -> None:
    end = pd.Timestamp("2024-01-15", tz="UTC")
    rule = FixedHorizon(planned_units=10_000, end=end)
    ok, why = rule.check(4_000, pd.Timestamp("2024-01-08", tz="UTC"))
    assert not ok and "4,000 of 10,000" in why and "horizon" in why
    assert rule.check(10_000, end)[0]
