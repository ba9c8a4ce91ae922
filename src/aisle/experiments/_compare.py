"""Two-arm comparisons of one metric on the per-unit table, and guardrail checks.

:func:`analyze_units` is the one path every analysis takes, whether the per-unit table came
from a real event log through DuckDB (:func:`aisle.experiments.analyze`) or from the
simulation that validates the statistics (:func:`aisle.experiments.run_validation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from aisle.errors import ConfigError, SchemaError

from ._metrics import MetricSpec, get_metric
from ._spec import GuardrailSpec
from ._stats import (
    ArmMoments,
    CenteredMoments,
    adjust_pvalues,
    cuped_from_moments,
    cuped_moments,
    delta_ratio_moments,
    quantile_moments,
    relative_interval,
    two_proportion_ztest,
    welch_test,
    z_test,
)

__all__ = [
    "GuardrailResult",
    "MetricResult",
    "analyze_units",
    "check_guardrail",
    "compare_metric",
    "compare_moments",
]

Role = Literal["primary", "secondary", "proxy", "guardrail"]


@dataclass(frozen=True)
class MetricResult:
    """One metric compared between a treatment arm and control.

    Attributes:
        metric: the metric's name.
        variant: the treatment arm.
        control: the control arm.
        role: ``primary``, ``secondary`` or ``proxy``.
        kind: the metric kind.
        method: the test: ``welch``, ``cuped_welch``, ``two_proportion_z``,
            ``delta_method_z`` or ``quantile_z``.
        n_treatment, n_control: units (requests for quantiles) per arm.
        treatment_value, control_value: the arms' estimates (CUPED-adjusted when applied).
        estimate: treatment minus control.
        se: its standard error.
        ci_low, ci_high: the ``1 - alpha`` interval of ``estimate``.
        relative, relative_ci_low, relative_ci_high: ``treatment / control − 1`` and interval.
        p_value: two-sided p-value (unadjusted).
        p_bh, p_holm: p-values adjusted over the family (metrics × arms) by
            Benjamini–Hochberg and Holm.
        significant: rejected under the experiment's correction at ``alpha``.
        direction: ``increase`` when higher is better.
        cuped_variance_ratio: variance of the CUPED estimate over the raw one (``None`` when
            CUPED was not applied).
        always_valid_p: the mSPRT always-valid p-value (sequential monitoring only).
    """

    metric: str
    variant: str
    control: str
    role: str
    kind: str
    method: str
    n_treatment: int
    n_control: int
    treatment_value: float
    control_value: float
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    relative: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    p_bh: float = float("nan")
    p_holm: float = float("nan")
    significant: bool = False
    direction: str = "increase"
    cuped_variance_ratio: float | None = None
    always_valid_p: float | None = None


def _col(frame: pd.DataFrame, name: str) -> NDArray[np.float64]:
    if name not in frame.columns:
        raise SchemaError(
            f"the per-unit table has no column {name!r}; it has {', '.join(map(str, frame.columns))}"
        )
    return frame[name].to_numpy(dtype=np.float64)


class _Arms:
    """Arm masks and column arrays of a per-unit table, computed once and reused."""

    def __init__(self, units: pd.DataFrame, variant_col: str) -> None:
        if variant_col not in units.columns:
            raise SchemaError(f"the table has no {variant_col!r} column")
        self.units = units
        self.series = units[variant_col]
        self._masks: dict[str, NDArray[np.bool_]] = {}
        self._cols: dict[str, NDArray[np.float64]] = {}

    def arms(self) -> list[str]:
        return [str(v) for v in pd.unique(self.series.dropna())]

    def mask(self, arm: str) -> NDArray[np.bool_]:
        if arm not in self._masks:
            self._masks[arm] = np.asarray((self.series == arm).to_numpy(dtype=bool, na_value=False))
        return self._masks[arm]

    def col(self, name: str) -> NDArray[np.float64]:
        if name not in self._cols:
            self._cols[name] = _col(self.units, name)
        return self._cols[name]

    def get(self, arm: str, name: str) -> NDArray[np.float64]:
        return self.col(name)[self.mask(arm)]


def compare_metric(
    units: pd.DataFrame,
    metric: MetricSpec | str,
    *,
    control: str,
    treatment: str,
    variant_col: str = "variant",
    alpha: float = 0.05,
    cuped: bool = True,
    latencies: pd.DataFrame | None = None,
    role: Role = "secondary",
    _arms: _Arms | None = None,
) -> MetricResult:
    """Compare one metric between ``treatment`` and ``control`` on the per-unit table.

    Args:
        units: one row per unit with ``variant_col`` and the metric's columns.
        metric: a :class:`MetricSpec` or a built-in metric name.
        control: the control arm.
        treatment: the treatment arm.
        variant_col: the column holding the arm.
        alpha: the level of the intervals.
        cuped: apply CUPED when the metric has covariates present in ``units``.
        latencies: request-level ``variant``, ``latency_ms`` (quantile metrics).
        role: how the metric is used (reported).

    Returns:
        The comparison (p-value unadjusted; :func:`analyze_units` adjusts families).
    """
    m = get_metric(metric)
    if m.kind == "quantile":
        if latencies is None or m.numerator not in latencies.columns:
            raise SchemaError(
                f"metric {m.name!r} needs request-level {m.numerator!r} (a request log)"
            )
        q = float(m.quantile or 0.5)
        lat = _Arms(latencies, variant_col)
        lt = quantile_moments(lat.get(treatment, m.numerator), q, alpha=alpha)
        lc = quantile_moments(lat.get(control, m.numerator), q, alpha=alpha)
        return _result(
            m,
            treatment,
            control,
            role,
            "quantile_z",
            lt,
            lc,
            z_test(lt.value - lc.value, np.sqrt(lt.var + lc.var), alpha=alpha),
            alpha,
        )
    arms = _arms if _arms is not None else _Arms(units, variant_col)
    if m.kind == "ratio":
        assert m.denominator is not None
        mt = delta_ratio_moments(
            arms.get(treatment, m.numerator), arms.get(treatment, m.denominator)
        )
        mc = delta_ratio_moments(arms.get(control, m.numerator), arms.get(control, m.denominator))
        test = z_test(mt.value - mc.value, np.sqrt(mt.var + mc.var), alpha=alpha)
        return _result(m, treatment, control, role, "delta_method_z", mt, mc, test, alpha)
    yt, yc = arms.get(treatment, m.numerator), arms.get(control, m.numerator)
    if m.kind == "proportion":
        yt, yc = (yt > 0).astype(np.float64), (yc > 0).astype(np.float64)
    covs = [x for x in m.covariates if x in units.columns] if cuped else []
    if covs and len(yt) > 1 and len(yc) > 1:
        xt = np.column_stack([arms.get(treatment, x) for x in covs])
        xc = np.column_stack([arms.get(control, x) for x in covs])
        cm = cuped_moments([yt, yc], [xt, xc])
        at, ac = cm.arms
        test = welch_test(at.value, at.unit_var, at.n, ac.value, ac.unit_var, ac.n, alpha=alpha)
        rt, rc = cm.raw
        raw_var = rt.var + rc.var
        ratio = float((at.var + ac.var) / raw_var) if raw_var > 0 else 1.0
        return _result(
            m, treatment, control, role, "cuped_welch", at, ac, test, alpha, cuped_ratio=ratio
        )
    mt, mc = _plain(yt), _plain(yc)
    if m.kind == "proportion":
        test = two_proportion_ztest(yt.sum(), len(yt), yc.sum(), len(yc), alpha=alpha)
        return _result(m, treatment, control, role, "two_proportion_z", mt, mc, test, alpha)
    test = welch_test(mt.value, mt.unit_var, mt.n, mc.value, mc.unit_var, mc.n, alpha=alpha)
    return _result(m, treatment, control, role, "welch", mt, mc, test, alpha)


def compare_moments(
    metric: MetricSpec | str,
    treatment_moments: CenteredMoments,
    control_moments: CenteredMoments,
    *,
    control: str,
    treatment: str,
    alpha: float = 0.05,
    cuped: bool = True,
    role: Role = "primary",
) -> MetricResult:
    """:func:`compare_metric` for a mean or proportion metric from each arm's centered sums.

    The sums may come from anywhere (e.g. accumulated over the looks of a sequential
    monitor); the tests are the same: CUPED-Welch when ``cuped`` and covariates are present,
    else the two-proportion z-test or Welch's t-test.
    """
    m = get_metric(metric)
    if m.kind not in ("mean", "proportion"):
        raise ConfigError(
            f"compare_moments handles mean and proportion metrics, not {m.kind} ({m.name})"
        )
    mt, mc = treatment_moments, control_moments
    if cuped and len(mt.mean_x) > 0:
        cm = cuped_from_moments([mt, mc])
        at, ac = cm.arms
        test = welch_test(at.value, at.unit_var, at.n, ac.value, ac.unit_var, ac.n, alpha=alpha)
        rt, rc = cm.raw
        raw_var = rt.var + rc.var
        ratio = float((at.var + ac.var) / raw_var) if raw_var > 0 else 1.0
        return _result(
            m, treatment, control, role, "cuped_welch", at, ac, test, alpha, cuped_ratio=ratio
        )
    pt, pc = _from_moments(mt), _from_moments(mc)
    if m.kind == "proportion":
        test = two_proportion_ztest(mt.mean_y * mt.n, mt.n, mc.mean_y * mc.n, mc.n, alpha=alpha)
        return _result(m, treatment, control, role, "two_proportion_z", pt, pc, test, alpha)
    test = welch_test(pt.value, pt.unit_var, pt.n, pc.value, pc.unit_var, pc.n, alpha=alpha)
    return _result(m, treatment, control, role, "welch", pt, pc, test, alpha)


def _from_moments(m: CenteredMoments) -> ArmMoments:
    v = m.cyy / (m.n - 1) if m.n > 1 else float("nan")
    return ArmMoments(n=m.n, value=m.mean_y, var=v / m.n, unit_var=v)


def _plain(y: NDArray[np.float64]) -> ArmMoments:
    n = len(y)
    if n == 0:
        return ArmMoments(0, float("nan"), float("nan"), float("nan"))
    v = float(y.var(ddof=1)) if n > 1 else float("nan")
    return ArmMoments(n=n, value=float(y.mean()), var=v / n, unit_var=v)


def _result(
    m: MetricSpec,
    treatment: str,
    control: str,
    role: str,
    method: str,
    at: ArmMoments,
    ac: ArmMoments,
    test: Any,
    alpha: float,
    *,
    cuped_ratio: float | None = None,
) -> MetricResult:
    rel, _, rlo, rhi = relative_interval(at.value, at.var, ac.value, ac.var, alpha=alpha)
    return MetricResult(
        metric=m.name,
        variant=treatment,
        control=control,
        role=role,
        kind=m.kind,
        method=method,
        n_treatment=int(at.n),
        n_control=int(ac.n),
        treatment_value=float(at.value),
        control_value=float(ac.value),
        estimate=float(test.estimate),
        se=float(test.se),
        ci_low=float(test.ci_low),
        ci_high=float(test.ci_high),
        relative=float(rel),
        relative_ci_low=float(rlo),
        relative_ci_high=float(rhi),
        p_value=float(test.p_value),
        direction=m.direction,
        cuped_variance_ratio=cuped_ratio,
    )


def analyze_units(
    units: pd.DataFrame,
    metrics: Sequence[MetricSpec | str],
    *,
    control: str,
    treatments: Sequence[str] | None = None,
    variant_col: str = "variant",
    alpha: float = 0.05,
    cuped: bool = True,
    correction: Literal["bh", "holm"] = "bh",
    latencies: pd.DataFrame | None = None,
    roles: Sequence[Role] | None = None,
) -> list[MetricResult]:
    """Compare every metric for every treatment arm and correct for multiple testing.

    The family is every (metric, treatment arm) pair given; both Benjamini–Hochberg and Holm
    adjusted p-values are reported, and ``significant`` follows ``correction``.

    Args:
        units: one row per unit (see :class:`aisle.experiments.UnitTable`).
        metrics: metric specs or built-in names.
        control: the control arm.
        treatments: the arms to compare (default: every other arm present).
        variant_col: the column holding the arm.
        alpha: the significance level and target FDR / FWER.
        cuped: apply CUPED where the metric has covariates.
        correction: ``bh`` or ``holm`` for the ``significant`` flags.
        latencies: request-level latencies for quantile metrics.
        roles: the role of each metric (default: the first is ``primary``).

    Returns:
        One :class:`MetricResult` per metric and arm (metric-major order).
    """
    arms = _Arms(units, variant_col)
    if treatments is None:
        treatments = [v for v in arms.arms() if v != control]
    if roles is None:
        roles = ["primary", *(["secondary"] * (len(metrics) - 1))]  # type: ignore[list-item]
    if len(roles) != len(metrics):
        raise ConfigError(f"{len(roles)} roles for {len(metrics)} metrics")
    results = [
        compare_metric(
            units,
            m,
            control=control,
            treatment=t,
            variant_col=variant_col,
            alpha=alpha,
            cuped=cuped,
            latencies=latencies,
            role=r,
            _arms=arms,
        )
        for m, r in zip(metrics, roles, strict=True)
        for t in treatments
    ]
    return adjust_family(results, alpha=alpha, correction=correction)


def adjust_family(
    results: Sequence[MetricResult], *, alpha: float, correction: Literal["bh", "holm"]
) -> list[MetricResult]:
    """Add BH and Holm adjusted p-values (and ``significant``) to a family of results."""
    from dataclasses import replace

    if not results:
        return []
    p = np.array([r.always_valid_p if r.always_valid_p is not None else r.p_value for r in results])
    rej_bh, adj_bh = adjust_pvalues(p, "bh", alpha=alpha)
    rej_holm, adj_holm = adjust_pvalues(p, "holm", alpha=alpha)
    rej = rej_bh if correction == "bh" else rej_holm
    return [
        replace(r, p_bh=float(b), p_holm=float(h), significant=bool(s))
        for r, b, h, s in zip(results, adj_bh, adj_holm, rej, strict=True)
    ]


@dataclass(frozen=True)
class GuardrailResult:
    """A guardrail checked against its non-inferiority margin.

    ``harm`` is the change in the harmful direction (positive = worse), relative to control
    when the margin is relative.

    Attributes:
        metric: the metric.
        variant: the treatment arm (or canary candidate).
        control_value, treatment_value: the arms' values.
        harm: the estimated harm (absolute or relative, like the margin).
        harm_ci_low, harm_ci_high: its two-sided ``1 - 2·alpha`` interval (the upper bound is
            the one-sided ``1 - alpha`` bound of the non-inferiority test).
        margin: the tolerated harm.
        relative: whether harm and margin are relative.
        p_noninferiority: one-sided p-value of H0 "harm ≥ margin".
        p_harm: one-sided p-value of H0 "harm ≤ 0" (is there any harm at all).
        status: ``pass`` (non-inferiority shown: the one-sided ``1 - alpha`` upper bound of the
            harm is below the margin), ``breach`` (inferiority shown: the lower bound is above
            the margin), ``inconclusive`` (the interval contains the margin), or ``no_data``.
        n_treatment, n_control: units (requests for quantiles) per arm.
    """

    metric: str
    variant: str
    control_value: float
    treatment_value: float
    harm: float
    harm_ci_low: float
    harm_ci_high: float
    margin: float
    relative: bool
    p_noninferiority: float
    p_harm: float
    status: str
    n_treatment: int
    n_control: int


def check_guardrail(
    units: pd.DataFrame | None,
    guardrail: GuardrailSpec,
    *,
    control: str,
    treatment: str,
    variant_col: str = "variant",
    alpha: float = 0.05,
    latencies: pd.DataFrame | None = None,
    min_units: int = 30,
) -> GuardrailResult:
    """Check one guardrail: is the treatment no worse than control by more than the margin?

    Args:
        units: the per-unit table (ratio and mean guardrails).
        guardrail: the metric and its margin.
        control: the control arm.
        treatment: the treatment arm.
        variant_col: the column holding the arm.
        alpha: one-sided level of the non-inferiority and harm tests.
        latencies: request-level latencies (quantile guardrails).
        min_units: fewer units (or requests) than this in an arm gives ``no_data``.
    """
    m = get_metric(guardrail.metric)
    needed = [m.numerator] + ([m.denominator] if m.denominator else [])
    have = latencies if m.kind == "quantile" else units
    nan = float("nan")

    def no_data(n_t: int, n_c: int) -> GuardrailResult:
        return GuardrailResult(m.name, treatment, nan, nan, nan, nan, nan, guardrail.margin,
                               guardrail.relative, nan, nan, "no_data", n_t, n_c)

    if have is None or any(c not in have.columns for c in needed):
        return no_data(0, 0)
    sizes = _Arms(have, variant_col)
    n_t, n_c = int(sizes.mask(treatment).sum()), int(sizes.mask(control).sum())
    if n_t < min_units or n_c < min_units:
        return no_data(n_t, n_c)
    r = compare_metric(
        units if units is not None else pd.DataFrame({variant_col: []}),
        m,
        control=control,
        treatment=treatment,
        variant_col=variant_col,
        alpha=2 * alpha,
        cuped=False,
        latencies=latencies,
        role="guardrail",
    )
    sign = 1.0 if m.direction == "decrease" else -1.0
    if guardrail.relative:
        harm = sign * r.relative
        lo, hi = sorted((sign * r.relative_ci_low, sign * r.relative_ci_high))
    else:
        harm = sign * r.estimate
        lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
    z = float(stats.norm.ppf(1 - alpha))
    se = (hi - lo) / (2 * z) if np.isfinite(hi - lo) else nan
    if r.n_treatment < min_units or r.n_control < min_units or not np.isfinite(harm) or not se > 0:
        status = (
            "no_data" if (r.n_treatment < min_units or r.n_control < min_units) else "inconclusive"
        )
        p_ni = p_harm = nan
    else:
        p_ni = float(stats.norm.cdf((harm - guardrail.margin) / se))
        p_harm = float(stats.norm.sf(harm / se))
        if p_ni < alpha:
            status = "pass"
        elif float(stats.norm.sf((harm - guardrail.margin) / se)) < alpha:
            status = "breach"
        else:
            status = "inconclusive"
    return GuardrailResult(
        metric=m.name,
        variant=treatment,
        control_value=r.control_value,
        treatment_value=r.treatment_value,
        harm=float(harm),
        harm_ci_low=float(lo),
        harm_ci_high=float(hi),
        margin=guardrail.margin,
        relative=guardrail.relative,
        p_noninferiority=p_ni,
        p_harm=p_harm,
        status=status,
        n_treatment=r.n_treatment,
        n_control=r.n_control,
    )
