"""Statistical tests from per-arm sufficient statistics, vectorised with numpy.

Every test takes per-arm summaries (means, variances, counts) as scalars or arrays, so the
same function serves one analysis and thousands of simulated replicates. Results match
scipy's ``ttest_ind(equal_var=False)`` and statsmodels' ``proportions_ztest`` on the same
numbers (the tests check this). Multiple-testing control and power come from statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from aisle.errors import ConfigError, require

__all__ = [
    "ArmMoments",
    "CenteredMoments",
    "CupedMoments",
    "SRMResult",
    "TestStats",
    "adjust_pvalues",
    "cuped_from_moments",
    "cuped_moments",
    "delta_ratio_moments",
    "mde",
    "power",
    "quantile_moments",
    "relative_interval",
    "sample_size",
    "srm_check",
    "two_proportion_ztest",
    "welch_test",
    "z_test",
]

F = NDArray[np.float64]


@dataclass(frozen=True)
class TestStats:
    """The outcome of a two-arm test (arrays when the inputs were arrays).

    Attributes:
        estimate: treatment minus control.
        se: standard error of ``estimate``.
        statistic: the test statistic (t or z).
        p_value: two-sided p-value.
        ci_low, ci_high: the two-sided ``1 - alpha`` confidence interval of ``estimate``.
        df: degrees of freedom (``inf`` for z-tests).
    """

    estimate: Any
    se: Any
    statistic: Any
    p_value: Any
    ci_low: Any
    ci_high: Any
    df: Any


def _f(x: ArrayLike) -> F:
    return np.asarray(x, dtype=np.float64)


def _unwrap(x: F) -> Any:
    return float(x) if np.ndim(x) == 0 else x


def welch_test(
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    *,
    alpha: float = 0.05,
) -> TestStats:
    """Welch's unequal-variance t-test from per-arm means, sample variances and counts.

    Args:
        mean_t, var_t, n_t: treatment mean, sample variance (ddof 1) and count.
        mean_c, var_c, n_c: the same for control.
        alpha: the level of the confidence interval.

    Returns:
        The difference in means with its Welch–Satterthwaite t-test and interval.
    """
    mt, vt, nt, mc, vc, nc = map(_f, (mean_t, var_t, n_t, mean_c, var_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        st, sc = vt / nt, vc / nc
        se = np.sqrt(st + sc)
        est = mt - mc
        tstat = est / se
        df = (st + sc) ** 2 / (st**2 / (nt - 1) + sc**2 / (nc - 1))
        p = 2.0 * stats.t.sf(np.abs(tstat), df)
        q = stats.t.ppf(1.0 - alpha / 2.0, df)
    return TestStats(*(_unwrap(x) for x in (est, se, tstat, p, est - q * se, est + q * se, df)))


def z_test(estimate: ArrayLike, se: ArrayLike, *, alpha: float = 0.05) -> TestStats:
    """A two-sided z-test and Wald interval for an estimate with a standard error."""
    est, s = _f(estimate), _f(se)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / s
        p = 2.0 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(1.0 - alpha / 2.0)
    inf = np.full_like(est, np.inf)
    return TestStats(*(_unwrap(x) for x in (est, s, z, p, est - q * s, est + q * s, inf)))


def two_proportion_ztest(
    x_t: ArrayLike, n_t: ArrayLike, x_c: ArrayLike, n_c: ArrayLike, *, alpha: float = 0.05
) -> TestStats:
    """Two-proportion z-test: pooled variance for the p-value, unpooled for the interval.

    The p-value equals statsmodels' ``proportions_ztest([x_t, x_c], [n_t, n_c])``.

    Args:
        x_t, n_t: treatment successes and units.
        x_c, n_c: control successes and units.
        alpha: the level of the confidence interval.
    """
    xt, nt, xc, nc = map(_f, (x_t, n_t, x_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        pt, pc = xt / nt, xc / nc
        pool = (xt + xc) / (nt + nc)
        se0 = np.sqrt(pool * (1 - pool) * (1 / nt + 1 / nc))
        est = pt - pc
        z = est / se0
        p = 2.0 * stats.norm.sf(np.abs(z))
        se = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    q = stats.norm.ppf(1.0 - alpha / 2.0)
    inf = np.full_like(est, np.inf)
    return TestStats(*(_unwrap(x) for x in (est, se, z, p, est - q * se, est + q * se, inf)))


@dataclass(frozen=True)
class ArmMoments:
    """An arm's estimate of a metric and the variance of that estimate.

    Attributes:
        n: units in the arm.
        value: the arm's estimate (mean, proportion, ratio or quantile).
        var: the variance of ``value`` (already divided by ``n``).
        unit_var: the per-unit variance (``var × n``), for Welch degrees of freedom and power.
    """

    n: Any
    value: Any
    var: Any
    unit_var: Any


def delta_ratio_moments(num: ArrayLike, den: ArrayLike) -> ArmMoments:
    """The ratio ``sum(num) / sum(den)`` over units and its delta-method variance.

    With per-unit numerators ``Y`` and denominators ``X`` (i.i.d. units), ``R = Ȳ / X̄`` and::

        Var(R) ≈ (s²_Y − 2 R s_XY + R² s²_X) / (n X̄²)

    Args:
        num: per-unit numerators (1-d, or 2-d with units on the last axis).
        den: per-unit denominators, same shape.
    """
    y, x = _f(num), _f(den)
    n = y.shape[-1]
    if n == 0:
        nan = float("nan")
        return ArmMoments(n=0, value=nan, var=nan, unit_var=nan)
    my, mx = y.mean(axis=-1), x.mean(axis=-1)
    dy, dx = y - my[..., None], x - mx[..., None]
    ddof = max(n - 1, 1)
    syy = (dy * dy).sum(axis=-1) / ddof
    sxx = (dx * dx).sum(axis=-1) / ddof
    sxy = (dx * dy).sum(axis=-1) / ddof
    with np.errstate(divide="ignore", invalid="ignore"):
        r = my / mx
        unit_var = (syy - 2 * r * sxy + r * r * sxx) / (mx * mx)
    return ArmMoments(n=n, value=_unwrap(r), var=_unwrap(unit_var / n), unit_var=_unwrap(unit_var))


def quantile_moments(values: ArrayLike, q: float, *, alpha: float = 0.05) -> ArmMoments:
    """A sample quantile with a distribution-free standard error.

    The standard error comes from the order statistics that bound the ``1 - alpha`` binomial
    interval of the quantile's rank: ``se = (x_(hi) − x_(lo)) / (2 z)``. Requests are taken as
    independent (clustering within units is ignored).

    Args:
        values: the observations (e.g. latencies of one arm).
        q: the quantile (0.99 for p99).
        alpha: the level that sets the bounding ranks.
    """
    x = np.sort(_f(values).ravel())
    n = len(x)
    if n == 0:
        return ArmMoments(n=0, value=math.nan, var=math.nan, unit_var=math.nan)
    z = float(stats.norm.ppf(1 - alpha / 2))
    half = z * math.sqrt(n * q * (1 - q))
    lo = int(max(0, math.floor(n * q - half) - 1))
    hi = int(min(n - 1, math.ceil(n * q + half) - 1))
    value = float(np.quantile(x, q))
    se = (x[hi] - x[lo]) / (2 * z)
    return ArmMoments(n=n, value=value, var=se * se, unit_var=se * se * n)


@dataclass(frozen=True)
class CupedMoments:
    """CUPED-adjusted arm moments.

    Attributes:
        arms: adjusted moments per arm, in input order.
        raw: unadjusted moments per arm.
        theta: the regression coefficients on the covariates (pooled within arms).
    """

    arms: list[ArmMoments]
    raw: list[ArmMoments]
    theta: NDArray[np.float64]


@dataclass(frozen=True)
class CenteredMoments:
    """An arm's centered sums: what CUPED and Welch need, and what adds up over looks.

    Attributes:
        n: units.
        mean_y: mean outcome.
        mean_x: mean of each covariate, shape ``(k,)``.
        cyy: ``Σ (y − ȳ)²``.
        cxx: ``Σ (x − x̄)(x − x̄)ᵀ``, shape ``(k, k)``.
        cxy: ``Σ (x − x̄)(y − ȳ)``, shape ``(k,)``.
    """

    n: int
    mean_y: float
    mean_x: NDArray[np.float64]
    cyy: float
    cxx: NDArray[np.float64]
    cxy: NDArray[np.float64]

    @classmethod
    def of(cls, y: ArrayLike, x: ArrayLike) -> CenteredMoments:
        """The centered sums of outcomes ``y`` and covariates ``x`` (``(n, k)`` or ``(n,)``)."""
        yy = _f(y).ravel()
        xx = _f(x).reshape(len(yy), -1)
        my, mx = float(yy.mean()), xx.mean(axis=0)
        dy, dx = yy - my, xx - mx
        return cls(
            n=len(yy), mean_y=my, mean_x=mx, cyy=float(dy @ dy), cxx=dx.T @ dx, cxy=dx.T @ dy
        )


def cuped_moments(
    ys: Sequence[ArrayLike], xs: Sequence[ArrayLike], *, ridge: float = 1e-9
) -> CupedMoments:
    """CUPED: adjust each arm's mean with pre-period covariates.

    ``θ = S_XX⁻¹ S_XY`` with covariances pooled within arms; each arm's adjusted mean is
    ``Ȳ_a − θ·(X̄_a − X̄)`` (``X̄`` over all units) and its variance
    ``(s²_Y − 2 θ·s_XY + θᵀ S_XX θ) / n_a`` from the arm's own moments.

    Args:
        ys: per-unit outcomes of each arm.
        xs: per-unit covariates of each arm, shape ``(n_a, k)`` (or ``(n_a,)`` for one).
        ridge: a small ridge on ``S_XX`` (relative to its trace) for degenerate covariates.
    """
    return cuped_from_moments(
        [CenteredMoments.of(y, x) for y, x in zip(ys, xs, strict=True)], ridge=ridge
    )


def cuped_from_moments(arms_in: Sequence[CenteredMoments], *, ridge: float = 1e-9) -> CupedMoments:
    """CUPED from each arm's centered sums (see :func:`cuped_moments`)."""
    k = len(arms_in[0].mean_x)
    sxx = np.zeros((k, k))
    sxy = np.zeros(k)
    for m in arms_in:
        sxx += m.cxx
        sxy += m.cxy
    n_tot = sum(m.n for m in arms_in)
    xbar = sum(m.n * m.mean_x for m in arms_in) / n_tot if n_tot else np.zeros(k)
    reg = ridge * max(float(np.trace(sxx)) / max(k, 1), 1e-300)
    try:
        theta = np.linalg.solve(sxx + reg * np.eye(k), sxy)
    except np.linalg.LinAlgError:
        theta = np.zeros(k)
    arms, raw = [], []
    for m in arms_in:
        ddof = max(m.n - 1, 1)
        v_raw = m.cyy / ddof
        v_adj = max(float((m.cyy - 2 * theta @ m.cxy + theta @ m.cxx @ theta) / ddof), 0.0)
        adj = float(m.mean_y - theta @ (m.mean_x - xbar))
        arms.append(ArmMoments(n=m.n, value=adj, var=v_adj / m.n, unit_var=v_adj))
        raw.append(ArmMoments(n=m.n, value=float(m.mean_y), var=v_raw / m.n, unit_var=v_raw))
    return CupedMoments(arms=arms, raw=raw, theta=np.asarray(theta, dtype=np.float64))


def relative_interval(
    value_t: ArrayLike,
    var_t: ArrayLike,
    value_c: ArrayLike,
    var_c: ArrayLike,
    *,
    alpha: float = 0.05,
) -> tuple[Any, Any, Any, Any]:
    """The relative difference ``t / c − 1`` with its delta-method standard error and interval.

    Returns:
        ``(relative, se, ci_low, ci_high)``.
    """
    vt, st, vc, sc = map(_f, (value_t, var_t, value_c, var_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = vt / vc - 1.0
        se = np.sqrt(st / vc**2 + vt**2 * sc / vc**4)
    q = stats.norm.ppf(1 - alpha / 2)
    return _unwrap(rel), _unwrap(se), _unwrap(rel - q * se), _unwrap(rel + q * se)


def adjust_pvalues(
    p_values: ArrayLike, method: Literal["bh", "holm"] = "bh", *, alpha: float = 0.05
) -> tuple[NDArray[np.bool_], F]:
    """Multiple-testing correction via statsmodels (``fdr_bh`` or ``holm``).

    NaN p-values (tests that could not run) are left out and stay NaN / not rejected.

    Args:
        p_values: the family's p-values.
        method: ``bh`` (Benjamini–Hochberg, false discovery rate) or ``holm`` (family-wise).
        alpha: the target FDR or FWER.

    Returns:
        ``(rejected, adjusted p-values)``.
    """
    mt: Any = require("statsmodels.stats.multitest", "stats")
    p = _f(p_values).ravel()
    rejected = np.zeros(len(p), dtype=bool)
    adjusted = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        name = {"bh": "fdr_bh", "holm": "holm"}.get(method)
        if name is None:
            raise ConfigError(f"correction must be 'bh' or 'holm', got {method!r}")
        rej, adj, _, _ = mt.multipletests(p[ok], alpha=alpha, method=name)
        rejected[ok], adjusted[ok] = rej, adj
    return rejected, adjusted


@dataclass(frozen=True)
class SRMResult:
    """The sample-ratio-mismatch check: observed arm sizes against the planned split.

    Attributes:
        observed: units per arm.
        expected: units per arm under the planned weights.
        statistic: the chi-square statistic.
        p_value: its p-value.
        alpha: the level below which the check fails.
        passed: whether the split is consistent with the plan (``p_value >= alpha``).
    """

    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    alpha: float
    passed: bool


def srm_check(
    observed: Mapping[str, int], weights: Mapping[str, float], *, alpha: float = 0.001
) -> SRMResult:
    """Chi-square goodness-of-fit test of arm sizes against the planned weights.

    Args:
        observed: units per arm (arms missing here count as 0).
        weights: the planned relative weights per arm.
        alpha: the check fails when the p-value is below this (0.001 is customary).
    """
    names = list(weights)
    obs = np.array([int(observed.get(k, 0)) for k in names], dtype=np.float64)
    w = np.array([weights[k] for k in names], dtype=np.float64)
    total = obs.sum()
    exp = total * w / w.sum()
    if total == 0:
        return SRMResult(
            {k: 0 for k in names},
            dict(zip(names, exp.tolist(), strict=True)),
            0.0,
            1.0,
            alpha,
            True,
        )
    chi = stats.chisquare(obs, exp)
    p = float(chi.pvalue)
    return SRMResult(
        observed={k: int(v) for k, v in zip(names, obs, strict=True)},
        expected={k: float(v) for k, v in zip(names, exp, strict=True)},
        statistic=float(chi.statistic),
        p_value=p,
        alpha=alpha,
        passed=bool(p >= alpha),
    )


# -- power ------------------------------------------------------------------------------------
def _effective_sd(sd_t: float, sd_c: float, n_c: float, ratio: float) -> float:
    """The common sd that gives the same standard error as unequal sds (for statsmodels)."""
    n_t = n_c * ratio
    return math.sqrt((sd_t**2 / n_t + sd_c**2 / n_c) / (1 / n_t + 1 / n_c))


def power(
    effect: float,
    sd: float,
    n_control: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    sd_treatment: float | None = None,
) -> float:
    """The power of a two-sided two-sample test (normal approximation, statsmodels).

    Args:
        effect: the true difference in means (absolute units of the metric).
        sd: the per-unit standard deviation in control.
        n_control: units in control.
        ratio: treatment units per control unit.
        alpha: the significance level.
        sd_treatment: the treatment's per-unit sd (default: ``sd``).

    Returns:
        The probability of a significant result.
    """
    pw: Any = require("statsmodels.stats.power", "stats")
    s = _effective_sd(sd_treatment if sd_treatment is not None else sd, sd, n_control, ratio)
    if effect == 0:
        return alpha
    return float(
        pw.NormalIndPower().power(
            effect_size=abs(effect) / s, nobs1=n_control, alpha=alpha, ratio=ratio
        )
    )


def sample_size(
    effect: float, sd: float, *, power_target: float = 0.8, ratio: float = 1.0, alpha: float = 0.05
) -> int:
    """Units needed in control to detect ``effect`` with ``power_target`` (treatment: × ratio).

    Args:
        effect: the difference to detect (absolute).
        sd: the per-unit standard deviation.
        power_target: the wanted power.
        ratio: treatment units per control unit.
        alpha: the significance level.
    """
    if effect == 0 or sd <= 0:
        raise ConfigError("sample_size needs a non-zero effect and a positive sd")
    pw: Any = require("statsmodels.stats.power", "stats")
    n = pw.NormalIndPower().solve_power(
        effect_size=abs(effect) / sd, power=power_target, alpha=alpha, ratio=ratio
    )
    return math.ceil(float(n))


def mde(
    sd: float,
    n_control: float,
    *,
    power_target: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
) -> float:
    """The minimum detectable effect (absolute) at ``power_target`` with ``n_control`` units.

    Args:
        sd: the per-unit standard deviation.
        n_control: units in control.
        power_target: the wanted power.
        ratio: treatment units per control unit.
        alpha: the significance level.
    """
    pw: Any = require("statsmodels.stats.power", "stats")
    d = pw.NormalIndPower().solve_power(
        nobs1=n_control, power=power_target, alpha=alpha, ratio=ratio
    )
    return float(d) * sd
