"""The analysis of an experiment from its event log: checks, metrics, guardrails, verdict.

:func:`analyze` runs, in order: per-unit metrics through DuckDB (observation window, proxy,
pre-period, maturity), the sample-ratio-mismatch check, the tracking-consistency check, the
metric comparisons on mature units (CUPED, delta method, Welch, z) with BH and Holm across
metrics and arms, the guardrails with their non-inferiority margins, the early proxy, the
cumulative effect over time (the looks of the sequential monitor), and the verdict, which the
checks can block.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._compare import (
    GuardrailResult,
    MetricResult,
    analyze_units,
    check_guardrail,
    compare_metric,
    compare_moments,
)
from ._delayed import ProxyResult, maturity_table, proxy_report
from ._metrics import (
    TableLike,
    UnitTable,
    get_metric,
    request_latencies,
    tracking_counts,
    unit_metrics,
)
from ._sequential import FixedHorizon, always_valid
from ._spec import ExperimentSpec
from ._stats import CenteredMoments, SRMResult, srm_check
from ._tracking import TrackingResult, tracking_check

__all__ = ["AnalysisResult", "analyze", "analyze_table", "cumulative_effects"]

#: Verdicts, from worst to best.
VERDICTS = ("blocked", "not_ready", "no_ship", "inconclusive", "ship")


@dataclass(frozen=True)
class AnalysisResult:
    """Everything an analysis found, with how it was obtained.

    Attributes:
        experiment: the experiment's name.
        spec: the experiment's definition (as a dict).
        as_of: the instant the data describe (ISO).
        exposed: exposed units per arm (all, mature or not).
        mature: mature exposed units per arm (what the metrics use).
        n_crossovers: units exposed under more than one arm (dropped).
        srm: the sample-ratio-mismatch check (blocks the verdict when it fails).
        tracking: the tracking-consistency check (blocks the verdict when it fails).
        metrics: the primary and secondary metrics per arm.
        guardrails: the guardrails per arm.
        proxies: early proxies with their correlation to the final metric.
        maturity: exposure-day cohorts with their maturity.
        cumulative: the primary metric's effect at each daily look (with always-valid p-values
            and intervals under mSPRT).
        monitoring: the monitoring rule and whether a verdict may be given.
        verdict: ``ship``, ``no_ship``, ``inconclusive``, ``not_ready`` or ``blocked``.
        winner: the arm to ship (with ``ship``).
        reasons: why the verdict is what it is.
        provenance: data source, sizes, windows and code version.
    """

    experiment: str
    spec: dict[str, Any]
    as_of: str
    exposed: dict[str, int]
    mature: dict[str, int]
    n_crossovers: int
    srm: SRMResult
    tracking: TrackingResult
    metrics: list[MetricResult]
    guardrails: list[GuardrailResult]
    proxies: list[ProxyResult]
    maturity: list[dict[str, Any]]
    cumulative: list[dict[str, Any]]
    monitoring: dict[str, Any]
    verdict: str
    winner: str | None
    reasons: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become ``None``)."""
        return dict(_clean(asdict(self)))

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON text, written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def metric(self, name: str, variant: str | None = None) -> MetricResult:
        """The result of one metric (for the first treatment arm unless ``variant`` is given)."""
        for r in self.metrics:
            if r.metric == name and (variant is None or r.variant == variant):
                return r
        raise KeyError(
            f"no result for metric {name!r}" + (f" and arm {variant!r}" if variant else "")
        )


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return _clean(asdict(obj))
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def cumulative_effects(
    table: UnitTable,
    spec: ExperimentSpec,
    *,
    latencies: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """The primary metric's effect at each daily look, on the units mature at that look.

    A unit counts at look ``L`` once ``exposed_at + window <= L``; its window outcomes are
    then final, so every look uses the same per-unit values. The units are sorted by the time
    they mature and each arm's centered sums are accumulated block by block, so all looks cost
    one pass; the tests are the ones :func:`compare_metric` runs (CUPED-Welch, two-proportion z,
    Welch). Under ``msprt`` each look also gets the always-valid p-value and interval (running
    over looks).

    Returns:
        One dict per arm and look: ``variant``, ``at``, ``n_treatment``, ``n_control``,
        ``estimate``, ``ci_low``, ``ci_high``, ``relative``, ``p_value`` and, under mSPRT,
        ``always_valid_p``, ``av_ci_low``, ``av_ci_high``.
    """
    frame = table.frame
    if frame.empty:
        return []
    window = pd.Timedelta(days=table.window_days)
    ready = frame["exposed_at"] + window
    first = ready.min().ceil("D")
    looks = list(pd.date_range(first, table.as_of.floor("D"), freq="D"))
    if not looks or looks[-1] < table.as_of:
        looks.append(table.as_of)
    metric = get_metric(spec.primary_metric)
    out: list[dict[str, Any]] = []
    for arm in spec.treatments:
        if metric.kind in ("mean", "proportion"):
            rows = _looks_by_sums(frame, ready, looks, metric, spec, arm)
        else:
            rows = _looks_by_rows(frame, ready, looks, metric, spec, arm, latencies)
        if rows and spec.monitoring == "msprt":
            sd = float(rows[0]["unit_sd"])
            tau2 = (spec.msprt_tau * sd) ** 2 if sd > 0 else 1e-12
            est = np.array([r["estimate"] for r in rows])
            var = np.array([r["se"] ** 2 for r in rows])
            p, lo, hi = always_valid(est, var, tau2, alpha=spec.alpha)
            for row, pv, a, b in zip(rows, p, lo, hi, strict=True):
                row.update(
                    always_valid_p=float(pv),
                    av_ci_low=float(a),
                    av_ci_high=float(b),
                    tau=math.sqrt(tau2),
                )
        out.extend(rows)
    return out


def _row(arm: str, look: pd.Timestamp, r: MetricResult, unit_sd: float) -> dict[str, Any]:
    return {
        "variant": arm,
        "at": look.isoformat(),
        "n_treatment": r.n_treatment,
        "n_control": r.n_control,
        "estimate": r.estimate,
        "se": r.se,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "relative": r.relative,
        "p_value": r.p_value,
        "unit_sd": unit_sd,
    }


def _looks_by_rows(
    frame: pd.DataFrame,
    ready: pd.Series,
    looks: list[pd.Timestamp],
    metric: Any,
    spec: ExperimentSpec,
    arm: str,
    latencies: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    rows = []
    for look in looks:
        units = frame[(ready <= look).to_numpy()]
        counts = units["variant"].value_counts()
        if counts.get(arm, 0) < 2 or counts.get(spec.control_name, 0) < 2:
            continue
        r = compare_metric(
            units,
            metric,
            control=spec.control_name,
            treatment=arm,
            alpha=spec.alpha,
            cuped=spec.cuped,
            latencies=latencies,
        )
        rows.append(_row(arm, look, r, _unit_sd(units, metric.numerator, metric.kind)))
    return rows


def _prefix_moments(
    y: NDArray[np.float64], x: NDArray[np.float64], bounds: NDArray[np.intp]
) -> list[CenteredMoments]:
    """Centered sums of the prefixes ``[0, b)`` for each bound (rows already in look order)."""
    cy = float(y.mean()) if len(y) else 0.0
    cx = x.mean(axis=0) if len(y) else np.zeros(x.shape[1])
    yc, xc = y - cy, x - cx
    k = x.shape[1]
    n, sy, syy = 0, 0.0, 0.0
    sx, sxx, sxy = np.zeros(k), np.zeros((k, k)), np.zeros(k)
    out, lo = [], 0
    for hi in bounds:
        yb, xb = yc[lo:hi], xc[lo:hi]
        n += len(yb)
        sy += float(yb.sum())
        syy += float(yb @ yb)
        sx += xb.sum(axis=0)
        sxx += xb.T @ xb
        sxy += xb.T @ yb
        lo = int(hi)
        if n == 0:
            out.append(
                CenteredMoments(
                    0, float("nan"), np.full(k, np.nan), 0.0, np.zeros((k, k)), np.zeros(k)
                )
            )
            continue
        my, mx = sy / n, sx / n
        out.append(
            CenteredMoments(
                n=n,
                mean_y=my + cy,
                mean_x=mx + cx,
                cyy=syy - n * my * my,
                cxx=sxx - n * np.outer(mx, mx),
                cxy=sxy - n * mx * my,
            )
        )
    return out


def _looks_by_sums(
    frame: pd.DataFrame,
    ready: pd.Series,
    looks: list[pd.Timestamp],
    metric: Any,
    spec: ExperimentSpec,
    arm: str,
) -> list[dict[str, Any]]:
    order = np.argsort(ready.to_numpy(dtype="datetime64[ns]"), kind="stable")
    ready_sorted = ready.to_numpy(dtype="datetime64[ns]")[order]
    bounds = np.searchsorted(
        ready_sorted, np.array([lk.tz_convert(None).to_datetime64() for lk in looks]), side="right"
    )
    variant = frame["variant"]
    y = frame[metric.numerator].to_numpy(dtype=np.float64)[order]
    if metric.kind == "proportion":
        y = (y > 0).astype(np.float64)
    covs = [c for c in metric.covariates if c in frame.columns] if spec.cuped else []
    x = (
        np.column_stack([frame[c].to_numpy(dtype=np.float64)[order] for c in covs])
        if covs
        else np.zeros((len(y), 0))
    )
    moments = {}
    for a in (arm, spec.control_name):
        mask = (variant == a).to_numpy(dtype=bool, na_value=False)[order]
        ends = np.where(bounds > 0, np.cumsum(mask)[np.maximum(bounds - 1, 0)], 0).astype(np.intp)
        moments[a] = _prefix_moments(y[mask], x[mask], ends)
    rows = []
    for i, look in enumerate(looks):
        mt, mc = moments[arm][i], moments[spec.control_name][i]
        if mt.n < 2 or mc.n < 2:
            continue
        r = compare_moments(
            metric,
            mt,
            mc,
            control=spec.control_name,
            treatment=arm,
            alpha=spec.alpha,
            cuped=bool(covs),
        )
        n = mt.n + mc.n
        total = mt.cyy + mc.cyy + mt.n * mc.n / n * (mt.mean_y - mc.mean_y) ** 2
        rows.append(_row(arm, look, r, math.sqrt(total / (n - 1))))
    return rows


def _unit_sd(units: pd.DataFrame, column: str, kind: str) -> float:
    y = units[column].to_numpy(dtype=np.float64)
    if kind == "proportion":
        y = (y > 0).astype(np.float64)
    return float(y.std(ddof=1)) if len(y) > 1 else 0.0


def analyze(
    spec: ExperimentSpec,
    events: TableLike,
    exposures: TableLike,
    *,
    requests: TableLike | None = None,
    accounts: TableLike | None = None,
    as_of: pd.Timestamp | str | None = None,
    source: str | None = None,
) -> AnalysisResult:
    """Analyze an experiment from its event log and exposure table.

    Args:
        spec: the experiment.
        events: the event log (canonical schema): a frame, an Arrow table, or a Parquet file
            or saved dataset folder.
        exposures: ``unit_id``, ``variant``, ``exposed_at`` (e.g. from
            :meth:`ExperimentStore.load_exposures`).
        requests: an optional serving request log (``unit_id``, ``timestamp``,
            ``latency_ms``, ``error``, ``fallback``) for the serving guardrails.
        accounts: ``user_id``, ``account_id`` for account units.
        as_of: the instant the data describe (default: the last event).
        source: a label of the data source for the provenance (default: the path, if any).

    Returns:
        The analysis, with its verdict.
    """
    table = unit_metrics(
        events,
        exposures,
        unit=spec.unit,
        window_days=spec.window_days,
        proxy_window_days=spec.proxy_window_days,
        pre_period_days=spec.pre_period_days,
        as_of=as_of,
        accounts=accounts,
        requests=requests,
    )
    counts = tracking_counts(
        events, exposures, unit=spec.unit, as_of=table.as_of, accounts=accounts
    )
    latencies = request_latencies(requests, exposures) if requests is not None else None
    label = (
        source
        if source is not None
        else (str(events) if isinstance(events, str | Path) else "in-memory table")
    )
    return analyze_table(spec, table, counts, latencies=latencies, source=label)


def analyze_table(
    spec: ExperimentSpec,
    table: UnitTable,
    counts: pd.DataFrame | None = None,
    *,
    latencies: pd.DataFrame | None = None,
    source: str = "per-unit table",
) -> AnalysisResult:
    """Analyze a per-unit table (the part of :func:`analyze` after the DuckDB queries).

    Args:
        spec: the experiment.
        table: the per-unit table from :func:`unit_metrics`.
        counts: event counts per type and arm (:func:`tracking_counts`); ``None`` skips the
            tracking check (reported as not run).
        latencies: request-level latencies for the latency guardrail.
        source: a label of the data source.
    """
    frame = table.frame
    arms = [v.name for v in spec.variants]
    exposed = {a: int((frame["variant"] == a).sum()) for a in arms}
    mature_frame = table.mature
    mature = {a: int((mature_frame["variant"] == a).sum()) for a in arms}
    unknown = sorted(set(frame["variant"].unique()) - set(arms))
    reasons: list[str] = []

    srm = srm_check(exposed, spec.weights, alpha=spec.srm_alpha)
    if counts is not None:
        tracking = tracking_check(
            counts,
            exposed,
            control=spec.control_name,
            tolerance=spec.tracking_tolerance,
            duplicate_tolerance=spec.duplicate_tolerance,
        )
    else:
        tracking = TrackingResult(
            rows=[], passed=True, problems=["not run (no event counts given)"]
        )

    names = [spec.primary_metric, *[m for m in spec.metrics if m != spec.primary_metric]]
    roles: list[Any] = ["primary"] + [
        "proxy" if m == "add_to_cart_rate" else "secondary" for m in names[1:]
    ]
    metric_units = mature_frame
    enough = all(mature[a] >= 2 for a in arms)
    results: list[MetricResult] = []
    if enough:
        # proxies are measured on proxy-mature units, separately (they are reported, not decided on)
        decide = [(n, r) for n, r in zip(names, roles, strict=True) if r != "proxy"]
        results = analyze_units(
            metric_units,
            [n for n, _ in decide],
            control=spec.control_name,
            treatments=spec.treatments,
            alpha=spec.alpha,
            cuped=spec.cuped,
            correction=spec.correction,
            roles=[r for _, r in decide],
        )

    cumulative = cumulative_effects(table, spec) if enough else []
    if spec.monitoring == "msprt" and results:
        last = {}
        for row in cumulative:
            last[row["variant"]] = row.get("always_valid_p")
        from ._compare import adjust_family

        results = [
            replace(r, always_valid_p=last.get(r.variant)) if r.role == "primary" else r
            for r in results
        ]
        results = adjust_family(results, alpha=spec.alpha, correction=spec.correction)

    guardrails: list[GuardrailResult] = []
    for g in spec.guardrails:
        m = get_metric(g.metric)
        units = frame if m.source == "requests" else mature_frame
        for arm in spec.treatments:
            guardrails.append(
                check_guardrail(
                    units,
                    g,
                    control=spec.control_name,
                    treatment=arm,
                    alpha=spec.alpha,
                    latencies=latencies,
                )
            )

    proxies: list[ProxyResult] = []
    if "add_to_cart_rate" in names and enough:
        for arm in spec.treatments:
            proxies.append(
                proxy_report(frame, control=spec.control_name, treatment=arm, alpha=spec.alpha)
            )

    # monitoring
    first = (
        pd.Timestamp(spec.start)
        if spec.start is not None
        else (frame["exposed_at"].min() if not frame.empty else None)
    )
    if first is not None and first.tzinfo is None:
        first = first.tz_localize("UTC")
    if spec.monitoring == "fixed_horizon":
        end = (
            first + pd.Timedelta(days=spec.duration_days)
            if (first is not None and spec.duration_days)
            else None
        )
        rule = FixedHorizon(planned_units=spec.planned_units, end=end)
        ready, why = rule.check(sum(mature.values()), table.as_of)
        monitoring = {
            "method": "fixed_horizon",
            "ready": ready,
            "reason": why,
            "planned_units": spec.planned_units,
            "horizon_end": None if end is None else end.isoformat(),
            "mature_units": sum(mature.values()),
        }
    else:
        monitoring = {
            "method": "msprt",
            "ready": True,
            "reason": "mSPRT always-valid p-values: a verdict may be read at any look",
            "tau_standardized": spec.msprt_tau,
            "looks": len({r["at"] for r in cumulative}),
            "mature_units": sum(mature.values()),
        }

    verdict, winner = _verdict(
        spec, srm, tracking, results, guardrails, monitoring, enough, table, unknown, reasons
    )
    provenance = {
        "source": source,
        "as_of": table.as_of.isoformat(),
        "unit": spec.unit,
        "window_days": table.window_days,
        "proxy_window_days": table.proxy_window_days,
        "pre_period_days": table.pre_period_days,
        "exposed_units": len(frame),
        "mature_units": len(mature_frame),
        "immature_units": len(frame) - len(mature_frame),
        "immature_policy": "excluded from window metrics; flagged in the maturity table",
        "unknown_arms": unknown,
        "aisle_version": _version(),
    }
    return AnalysisResult(
        experiment=spec.name,
        spec=spec.model_dump(mode="json"),
        as_of=table.as_of.isoformat(),
        exposed=exposed,
        mature=mature,
        n_crossovers=table.n_crossovers,
        srm=srm,
        tracking=tracking,
        metrics=results,
        guardrails=guardrails,
        proxies=proxies,
        maturity=maturity_table(frame, window_days=table.window_days),
        cumulative=cumulative,
        monitoring=monitoring,
        verdict=verdict,
        winner=winner,
        reasons=reasons,
        provenance=provenance,
    )


def _version() -> str:
    from aisle import __version__

    return str(__version__)


def _verdict(
    spec: ExperimentSpec,
    srm: SRMResult,
    tracking: TrackingResult,
    results: list[MetricResult],
    guardrails: list[GuardrailResult],
    monitoring: dict[str, Any],
    enough: bool,
    table: UnitTable,
    unknown: list[str],
    reasons: list[str],
) -> tuple[str, str | None]:
    blocked = False
    if not srm.passed:
        blocked = True
        reasons.append(
            f"sample ratio mismatch: arms {srm.observed} vs expected "
            f"{ {k: round(v) for k, v in srm.expected.items()} } (chi-square p = {srm.p_value:.2g} < "
            f"{srm.alpha}); the assignment or exposure logging is broken, so no metric can be trusted"
        )
    if not tracking.passed:
        blocked = True
        reasons.extend(f"tracking mismatch: {p}" for p in tracking.problems)
    total = max(len(table.frame) + table.n_crossovers, 1)
    if table.n_crossovers / total > 0.005:
        blocked = True
        reasons.append(f"{table.n_crossovers:,} units were exposed under more than one arm")
    if unknown:
        blocked = True
        reasons.append(f"exposures name arms that are not in the experiment: {unknown}")
    if blocked:
        return "blocked", None
    if not enough:
        reasons.append("not enough mature exposed units in every arm to compare")
        return "not_ready", None
    if not monitoring["ready"]:
        reasons.append(monitoring["reason"])
        return "not_ready", None
    breaches = [g for g in guardrails if g.status == "breach"]
    for g in breaches:
        unit = "" if g.relative else " (absolute)"
        reasons.append(
            f"guardrail {g.metric} breached in {g.variant!r}: harm {g.harm:+.4g} > margin {g.margin:g}{unit}"
        )
    primary = [r for r in results if r.role == "primary"]
    good = [r for r in primary if r.significant and (r.estimate > 0) == (r.direction == "increase")]
    bad = [r for r in primary if r.significant and r not in good]
    for r in bad:
        reasons.append(f"{r.metric} is significantly worse in {r.variant!r} ({r.relative:+.2%})")
    if breaches or (bad and not good):
        return "no_ship", None
    if not good:
        for r in primary:
            reasons.append(
                f"{r.metric} in {r.variant!r}: {r.relative:+.2%} (p adjusted {_p(r, spec)}) is not significant"
            )
        return "inconclusive", None
    best = max(good, key=lambda r: r.relative if r.direction == "increase" else -r.relative)
    pending = [g for g in guardrails if g.variant == best.variant and g.status == "inconclusive"]
    if pending:
        for g in pending:
            reasons.append(
                f"guardrail {g.metric} is not shown non-inferior in {g.variant!r} (upper bound {g.harm_ci_high:+.4g} vs margin {g.margin:g})"
            )
        return "inconclusive", None
    skipped = [g.metric for g in guardrails if g.variant == best.variant and g.status == "no_data"]
    reasons.append(
        f"{best.metric} improves by {best.relative:+.2%} in {best.variant!r} (adjusted p {_p(best, spec)})"
    )
    if skipped:
        reasons.append(f"guardrails not checked for lack of data: {', '.join(skipped)}")
    return "ship", best.variant


def _p(r: MetricResult, spec: ExperimentSpec) -> str:
    p = r.p_bh if spec.correction == "bh" else r.p_holm
    return f"{p:.3g}"
