"""Delayed feedback: cohort maturity, and early proxies with their measured correlation.

Conversions arrive days after exposure. :func:`aisle.experiments.unit_metrics` attributes
them to an observation window after each unit's first exposure; a unit whose window has not
closed by ``as_of`` is immature. :func:`maturity_table` shows each exposure-day cohort with
its maturity (the analysis excludes immature units from window metrics, and flags them), and
:func:`proxy_report` reports an early proxy (add-to-cart within a short window) next to the
final metric, with the per-unit correlation between the two measured on mature units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._compare import MetricResult, compare_metric

__all__ = ["ProxyResult", "maturity_table", "proxy_report"]


def maturity_table(units: pd.DataFrame, *, window_days: float) -> list[dict[str, Any]]:
    """Exposure-day cohorts with their size per arm and maturity.

    Args:
        units: the per-unit table (``exposed_at``, ``variant``, ``mature``, ``purchases``).
        window_days: the observation window.

    Returns:
        One dict per cohort day: ``cohort`` (date), ``units`` per arm, ``mature`` (whether
        every unit's window has closed), ``matures_at``, ``conversions_so_far``.
    """
    if units.empty:
        return []
    day = units["exposed_at"].dt.floor("D")
    out = []
    for d, grp in units.groupby(day, sort=True):
        ts = pd.Timestamp(d)  # type: ignore[arg-type]
        last = grp["exposed_at"].max()
        matures_at = last + pd.Timedelta(days=window_days)
        out.append(
            {
                "cohort": ts.date().isoformat(),
                "units": {
                    str(k): int(v) for k, v in grp["variant"].value_counts().sort_index().items()
                },
                "mature": bool(grp["mature"].all()),
                "mature_share": float(grp["mature"].mean()),
                "matures_at": matures_at.isoformat(),
                "conversions_so_far": int((grp["purchases"] > 0).sum()),
                "status": "mature"
                if bool(grp["mature"].all())
                else f"immature (excluded until {matures_at:%Y-%m-%d %H:%M})",
            }
        )
    return out


@dataclass(frozen=True)
class ProxyResult:
    """An early proxy reported next to the final metric.

    Attributes:
        proxy: the proxy metric (e.g. ``add_to_cart_rate`` within the proxy window).
        final: the final metric (e.g. ``conversion_rate`` within the observation window).
        variant: the treatment arm.
        correlation: Pearson correlation between the per-unit proxy and final outcome over
            mature units (both arms).
        n_correlation: mature units behind the correlation.
        proxy_result: the proxy compared over proxy-mature units (available earlier).
        final_result: the final metric compared over mature units.
        agree: whether the proxy and final effects point the same way.
    """

    proxy: str
    final: str
    variant: str
    correlation: float
    n_correlation: int
    proxy_result: MetricResult
    final_result: MetricResult
    agree: bool


def proxy_report(
    units: pd.DataFrame,
    *,
    control: str,
    treatment: str,
    proxy: str = "add_to_cart_rate",
    final: str = "conversion_rate",
    alpha: float = 0.05,
) -> ProxyResult:
    """The early proxy's effect, the final metric's effect, and their per-unit correlation.

    Args:
        units: the per-unit table (with ``proxy_mature`` and ``mature``).
        control: the control arm.
        treatment: the treatment arm.
        proxy: the proxy metric name.
        final: the final metric name.
        alpha: the level of the intervals.
    """
    early = units[units["proxy_mature"].to_numpy(dtype=bool)]
    mature = units[units["mature"].to_numpy(dtype=bool)]
    pr = compare_metric(
        early, proxy, control=control, treatment=treatment, alpha=alpha, cuped=False, role="proxy"
    )
    fr = compare_metric(
        mature,
        final,
        control=control,
        treatment=treatment,
        alpha=alpha,
        cuped=False,
        role="secondary",
    )
    from ._metrics import get_metric

    pm, fm = get_metric(proxy), get_metric(final)
    x = mature[pm.numerator].to_numpy(dtype=np.float64)
    y = mature[fm.numerator].to_numpy(dtype=np.float64)
    if pm.kind == "proportion":
        x = (x > 0).astype(np.float64)
    if fm.kind == "proportion":
        y = (y > 0).astype(np.float64)
    corr = (
        float(np.corrcoef(x, y)[0, 1])
        if len(x) > 2 and x.std() > 0 and y.std() > 0
        else float("nan")
    )
    return ProxyResult(
        proxy=proxy,
        final=final,
        variant=treatment,
        correlation=corr,
        n_correlation=len(x),
        proxy_result=pr,
        final_result=fr,
        agree=bool(np.sign(pr.estimate) == np.sign(fr.estimate)),
    )
