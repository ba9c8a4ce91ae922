"""Monitoring that survives peeking: mSPRT always-valid p-values, or a fixed horizon.

The mixture sequential probability ratio test (Johari, Pekelis and Walsh, 2017) compares,
at every look ``n``, the likelihood of the observed difference ``θ̂_n`` (variance ``V_n``)
under H0: θ = 0 with its likelihood averaged over a normal mixture ``θ ~ N(0, τ²)``::

    Λ_n = sqrt(V_n / (V_n + τ²)) · exp(τ² θ̂_n² / (2 V_n (V_n + τ²)))

``Λ`` is a martingale under H0, so ``P(sup_n Λ_n ≥ 1/α) ≤ α`` (Ville's inequality): the
always-valid p-value ``p_n = min(p_{n-1}, 1/Λ_n)`` may be checked after every batch of data
without inflating the false-positive rate. The matching always-valid interval is
``θ̂_n ± sqrt(V_n (V_n + τ²) / τ² · (2 log(1/α) + log((V_n + τ²) / V_n)))``, intersected over
looks.

:class:`FixedHorizon` is the other rule: it refuses a verdict until the planned sample size
and duration are reached, because a fixed-horizon p-value is only valid at its horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from aisle.errors import ConfigError

__all__ = ["FixedHorizon", "always_valid", "msprt_lambda"]

F = NDArray[np.float64]


def msprt_lambda(estimate: ArrayLike, variance: ArrayLike, tau2: float) -> F:
    """The mSPRT likelihood ratio ``Λ`` of estimates with variances ``V`` (normal mixture).

    Args:
        estimate: the observed differences (any shape).
        variance: their variances (same shape).
        tau2: the variance ``τ²`` of the normal mixture over the effect.

    Returns:
        ``Λ`` with the shape of ``estimate``; ``1`` where the variance is not positive.
    """
    if not tau2 > 0:
        raise ConfigError(f"tau2 must be positive, got {tau2}")
    est = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(est)
    vv = np.where(ok, v, 1.0)
    log_l = 0.5 * np.log(vv / (vv + tau2)) + tau2 * est**2 / (2 * vv * (vv + tau2))
    return np.where(ok, np.exp(np.minimum(log_l, 700.0)), 1.0)


def always_valid(
    estimates: ArrayLike, variances: ArrayLike, tau2: float, *, alpha: float = 0.05
) -> tuple[F, F, F]:
    """Always-valid p-values and intervals along a sequence of looks (last axis = looks).

    Args:
        estimates: the difference at each look (cumulative data).
        variances: its variance at each look.
        tau2: the mixture variance.
        alpha: the level of the intervals.

    Returns:
        ``(p_values, ci_low, ci_high)``, running (non-increasing p, shrinking interval).
    """
    est = np.asarray(estimates, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    lam = msprt_lambda(est, v, tau2)
    p = np.minimum.accumulate(np.minimum(1.0, 1.0 / lam), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + tau2) / tau2 * (2 * np.log(1 / alpha) + np.log((v + tau2) / v)))
    half = np.where(np.isfinite(half), half, np.inf)
    lo = np.maximum.accumulate(np.where(np.isfinite(est), est - half, -np.inf), axis=-1)
    hi = np.minimum.accumulate(np.where(np.isfinite(est), est + half, np.inf), axis=-1)
    return p, lo, hi


@dataclass(frozen=True)
class FixedHorizon:
    """A fixed-horizon rule: no verdict before the planned units and duration are reached.

    Attributes:
        planned_units: mature exposed units needed (``None``: no unit target).
        end: the planned end (``None``: no duration target).
    """

    planned_units: int | None
    end: pd.Timestamp | None

    def check(self, mature_units: int, as_of: pd.Timestamp) -> tuple[bool, str]:
        """Whether a verdict may be given now, and why (not).

        Args:
            mature_units: mature exposed units so far (all arms).
            as_of: the instant the data describe.
        """
        missing: list[str] = []
        if self.planned_units is not None and mature_units < self.planned_units:
            missing.append(f"{mature_units:,} of {self.planned_units:,} planned mature units")
        if self.end is not None and as_of < self.end:
            missing.append(
                f"data up to {as_of:%Y-%m-%d %H:%M} of a horizon ending {self.end:%Y-%m-%d %H:%M}"
            )
        if missing:
            return False, (
                "fixed horizon not reached (" + "; ".join(missing) + "): a fixed-horizon "
                "p-value is only valid at its horizon, so no verdict is given yet "
                "(use monitoring='msprt' to look early)"
            )
        return True, "fixed horizon reached"
