"""Simulated traffic for an experiment: the shop's history, then each arm served its policy.

:func:`simulate_experiment` grows a shop with :mod:`aisle.simulate` (the pre-period), assigns
its users with the experiment's hash, and replays the experiment period with every visiting
user shown the lists of their arm's policy (units outside the experiment see the control
policy). Exposures are the first impressions of assigned users; a serving request log (one
request per visit, with latency, errors and fallbacks) feeds the serving guardrails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aisle.errors import ConfigError

from ._assignment import assign_variants
from ._exposure import first_exposures
from ._spec import ExperimentSpec, HoldoutSpec

__all__ = ["POLICIES", "SimulatedExperiment", "simulate_experiment"]

PolicyName = Literal["popularity", "oracle", "oracle-purchase", "random"]
#: Policies an arm can be served in a simulation: the shop's best sellers, the true click
#: relevance (``oracle``), the true purchase probability (``oracle-purchase``), or random items.
POLICIES: tuple[str, ...] = ("popularity", "oracle", "oracle-purchase", "random")


@dataclass(frozen=True, eq=False)
class SimulatedExperiment:
    """A simulated experiment.

    Attributes:
        events: the event log: the pre-period history followed by the experiment period.
        assignments: every user's assignment (``unit_id``, ``variant``, ``reason``, ``bucket``).
        exposures: first exposures of assigned users (``unit_id``, ``variant``,
            ``exposed_at``, ``n_exposures``).
        requests: the serving request log (``unit_id``, ``timestamp``, ``latency_ms``,
            ``error``, ``fallback``).
        start: when the experiment period starts.
        end: when it ends.
        summaries: the simulator's summary figures of the experiment period.
    """

    events: pd.DataFrame
    assignments: pd.DataFrame
    exposures: pd.DataFrame
    requests: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    summaries: dict[str, float]


def _make_policy(name: str, truth: Any, history: pd.DataFrame, seed: int) -> Any:
    from aisle.simulate import OraclePolicy, PopularityPolicy, RandomPolicy

    if name == "popularity":
        return PopularityPolicy.from_events(history)
    if name == "oracle":
        return OraclePolicy(truth)
    if name == "oracle-purchase":
        return OraclePolicy(truth, event="purchase")
    if name == "random":
        return RandomPolicy(seed=seed)
    raise ConfigError(f"unknown policy {name!r}; valid: {', '.join(POLICIES)}")


class _Router:
    """A policy that serves each user the lists of their arm's policy."""

    def __init__(
        self, arm_of: Mapping[str, str], policies: Mapping[str, Any], default: str
    ) -> None:
        self.arm_of = arm_of
        self.policies = policies
        self.default = default

    def __call__(
        self, user_ids: NDArray[np.str_], k: int, context: Mapping[str, Any]
    ) -> list[list[str]]:
        from aisle.simulate import RankedLists

        arms = np.array([self.arm_of.get(str(u), self.default) for u in user_ids], dtype=object)
        out: list[list[str]] = [[] for _ in range(len(user_ids))]
        for arm in pd.unique(arms):
            idx = np.flatnonzero(arms == arm)
            got = self.policies[str(arm)](np.asarray(user_ids)[idx], k, context)
            items = got.items if isinstance(got, RankedLists) else got
            for j, row in zip(idx, items, strict=True):
                out[j] = [str(x) for x in row]
        return out


def simulate_experiment(
    spec: ExperimentSpec,
    *,
    policies: Mapping[str, str] | None = None,
    n_users: int = 5_000,
    n_items: int = 500,
    pre_days: int = 28,
    days: int = 14,
    seed: int = 0,
    holdout: HoldoutSpec | None = None,
    latency_ms: float = 40.0,
    latency_factor: Mapping[str, float] | None = None,
    error_rate: float = 0.005,
    fallback_rate: float = 0.02,
) -> SimulatedExperiment:
    """Simulate an experiment on a synthetic shop with a known ground truth.

    Args:
        spec: the experiment (its unit must be ``user``: the simulator serves users).
        policies: the policy of each arm (see :data:`POLICIES`); by default the control gets
            ``popularity`` and every other arm ``oracle``.
        n_users: users of the shop.
        n_items: items of the shop.
        pre_days: days of history before the experiment (the CUPED pre-period).
        days: days of the experiment.
        seed: the seed of the shop and the traffic.
        holdout: the global holdout.
        latency_ms: median serving latency.
        latency_factor: per arm, a factor on latency (inject a latency regression).
        error_rate: serving error rate.
        fallback_rate: fallback rate.
    """
    from aisle.simulate import ShopSimulator, SimulatorConfig

    if spec.unit != "user":
        raise ConfigError(
            f"simulated traffic randomizes users; experiment {spec.name!r} has unit {spec.unit!r}"
        )
    arms = [v.name for v in spec.variants]
    chosen = dict(policies or {})
    for arm in arms:
        chosen.setdefault(arm, "popularity" if arm == spec.control_name else "oracle")
    unknown = sorted(set(chosen) - set(arms))
    if unknown:
        raise ConfigError(
            f"policies given for arms that are not in the experiment: {unknown}; arms: {arms}"
        )
    sim = ShopSimulator(
        SimulatorConfig(n_users=n_users, n_items=n_items, n_days=pre_days, seed=seed)
    )
    shop = sim.generate()
    history = shop.events
    truth = shop.truth
    assignments = assign_variants(spec, truth.user_ids, holdout=holdout)
    arm_of = {
        u: v
        for u, v in zip(
            assignments["unit_id"].tolist(), assignments["variant"].tolist(), strict=True
        )
        if isinstance(v, str)
    }
    built = {arm: _make_policy(name, truth, history, seed) for arm, name in chosen.items()}
    run = sim.simulate_policy(
        _Router(arm_of, built, spec.control_name), n_days=days, state=shop.state
    )
    exposures = first_exposures(run.impressions, assignments, unit_col="user_id")
    events = pd.concat([history, run.events], ignore_index=True)
    requests = _requests(
        run.impressions,
        arm_of,
        seed=seed,
        latency_ms=latency_ms,
        factor=dict(latency_factor or {}),
        error_rate=error_rate,
        fallback_rate=fallback_rate,
    )
    return SimulatedExperiment(
        events=events,
        assignments=assignments,
        exposures=exposures,
        requests=requests,
        start=run.start,
        end=run.start + pd.Timedelta(days=days),
        summaries=run.summary.as_dict(),
    )


def _requests(
    impressions: pd.DataFrame,
    arm_of: Mapping[str, str],
    *,
    seed: int,
    latency_ms: float,
    factor: Mapping[str, float],
    error_rate: float,
    fallback_rate: float,
) -> pd.DataFrame:
    """One request per visit (session) with its latency, error and fallback."""
    first = impressions.groupby("session_id", sort=False).agg(
        unit_id=("user_id", "first"), timestamp=("timestamp", "min")
    )
    first = first.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng([seed, 0x5E4E])
    n = len(first)
    arm = np.array([arm_of.get(str(u), "") for u in first["unit_id"]], dtype=object)
    mult = np.array([factor.get(a, 1.0) for a in arm], dtype=np.float64)
    lat = latency_ms * np.exp(0.5 * rng.standard_normal(n)) * mult
    return pd.DataFrame(
        {
            "unit_id": first["unit_id"].astype(str),
            "timestamp": first["timestamp"],
            "latency_ms": lat,
            "error": rng.random(n) < error_rate,
            "fallback": rng.random(n) < fallback_rate,
        }
    )
