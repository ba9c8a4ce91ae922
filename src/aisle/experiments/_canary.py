"""The canary controller: ramp a candidate model through traffic steps behind guardrails.

At each step the candidate serves a share of the units (hash-based, so a unit that saw the
candidate at 1 % keeps seeing it at 5 %), the guardrails are checked against the control
traffic of the same step with :func:`aisle.experiments.check_guardrail` (the code the
experiment analysis uses), and the controller decides:

* ``rollback`` when a guardrail is breached (the lower confidence bound of its harm is above
  the margin: the candidate is shown to be worse than tolerated), or when, from ``prove_non_inferiority_from`` on, non-inferiority is still not
  shown after ``max_extensions`` extensions;
* ``extend`` (stay at the step for another batch) when non-inferiority must be shown and is
  not yet;
* ``advance`` to the next step, and ``promote`` when the next step is 100 %.

Every decision is recorded with its numbers (in the store when one is given).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._assignment import bucket_of, unit_hashes
from ._compare import GuardrailResult, check_guardrail
from ._spec import DEFAULT_GUARDRAILS, N_BUCKETS, GuardrailSpec
from ._store import ExperimentStore

__all__ = [
    "CanaryConfig",
    "CanaryController",
    "CanaryDecision",
    "CanaryObservation",
    "CanaryResult",
    "SimulatedTraffic",
    "TrafficSource",
    "canary_route",
]

CONTROL, CANDIDATE = "control", "candidate"


class CanaryConfig(BaseModel):
    """How a canary ramps and what stops it.

    Attributes:
        steps: the candidate's traffic shares, increasing, ending at 1.0.
        guardrails: the guardrails checked at every step.
        alpha: one-sided level of the breach and non-inferiority tests.
        min_units: fewer units (requests for latency) per arm at a step leaves a guardrail
            unchecked (``no_data``).
        prove_non_inferiority_from: from this share on, every guardrail must be shown
            non-inferior to advance (below it, advancing only needs no breach).
        max_extensions: how often a step may be extended before the canary is rolled back.
        salt: the salt of the canary hash.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 1.0)
    guardrails: tuple[GuardrailSpec, ...] = DEFAULT_GUARDRAILS
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_units: int = Field(default=200, ge=2)
    prove_non_inferiority_from: float = Field(default=0.25, gt=0, le=1)
    max_extensions: int = Field(default=2, ge=0)
    salt: str = "canary"

    @field_validator("steps")
    @classmethod
    def _ramp(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if (
            not steps
            or any(not 0 < s <= 1 for s in steps)
            or list(steps) != sorted(set(steps))
            or steps[-1] != 1.0
        ):
            raise ValueError(
                f"steps must be increasing shares in (0, 1] ending at 1.0, got {steps}"
            )
        return steps


def canary_route(
    unit_ids: ArrayLike | None,
    fraction: float,
    *,
    salt: str = "canary",
    hashes: NDArray[np.uint64] | None = None,
) -> NDArray[np.object_]:
    """``candidate`` for units whose canary bucket is below ``fraction``, else ``control``.

    The ramp is monotone: a unit on the candidate at one share stays there at larger shares.
    """
    b = bucket_of(f"canary/{salt}", unit_ids, hashes=hashes)
    return np.where(b < round(fraction * N_BUCKETS), CANDIDATE, CONTROL).astype(object)


@dataclass(frozen=True)
class CanaryObservation:
    """What one step of traffic showed.

    Attributes:
        units: one row per unit: ``variant`` (``control`` / ``candidate``) and the guardrail
            columns (``requests``, ``errors``, ``fallbacks``, ``purchases``, ``returns``).
        latencies: one row per request: ``variant``, ``latency_ms``.
    """

    units: pd.DataFrame
    latencies: pd.DataFrame


class TrafficSource(Protocol):
    """Gives the traffic of a canary step: ``(fraction, step, attempt) -> CanaryObservation``."""

    def __call__(self, fraction: float, step: int, attempt: int) -> CanaryObservation: ...


@dataclass(frozen=True)
class CanaryDecision:
    """One decision of the controller, with the numbers behind it.

    Attributes:
        run_id: the canary run.
        step: 1-based index of the step.
        fraction: the candidate's share at the step.
        attempt: 0 for the first batch of the step, then 1, 2 ... for extensions.
        action: ``advance``, ``extend``, ``rollback`` or ``promote``.
        reason: why.
        guardrails: each guardrail's check (values, harm, interval, margin, status).
        n_candidate, n_control: units per arm at the step.
        at: when the decision was taken (UTC, ISO).
    """

    run_id: str
    step: int
    fraction: float
    attempt: int
    action: str
    reason: str
    guardrails: list[dict[str, Any]]
    n_candidate: int
    n_control: int
    at: str


@dataclass(frozen=True)
class CanaryResult:
    """The outcome of a canary run.

    Attributes:
        run_id: the run's id (decisions are stored under it).
        status: ``promoted`` or ``rolled_back``.
        final_fraction: the candidate's share at the end (1.0 when promoted, 0.0 after a
            rollback).
        rolled_back_at_step: the 1-based step of the rollback, if any.
        first_checked_step: the first step where every guardrail had data to be checked.
        decisions: every decision, in order.
    """

    run_id: str
    status: str
    final_fraction: float
    rolled_back_at_step: int | None
    first_checked_step: int | None
    decisions: list[CanaryDecision] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        from ._analyze import _clean

        return dict(_clean(asdict(self)))


class CanaryController:
    """Ramps a candidate through the configured steps, checking guardrails at each.

    Args:
        config: the ramp and its guardrails.
        store: where to record decisions (optional).
    """

    def __init__(
        self, config: CanaryConfig | None = None, *, store: ExperimentStore | None = None
    ) -> None:
        self.config = config if config is not None else CanaryConfig()
        self.store = store

    def route(self, unit_ids: ArrayLike, fraction: float) -> NDArray[np.object_]:
        """The arm of each unit at a share (see :func:`canary_route`)."""
        return canary_route(unit_ids, fraction, salt=self.config.salt)

    def check(self, observation: CanaryObservation) -> list[GuardrailResult]:
        """Every guardrail of the config on one step's traffic."""
        cfg = self.config
        return [
            check_guardrail(
                observation.units,
                g,
                control=CONTROL,
                treatment=CANDIDATE,
                alpha=cfg.alpha,
                latencies=observation.latencies,
                min_units=cfg.min_units,
            )
            for g in cfg.guardrails
        ]

    def run(self, source: TrafficSource, *, run_id: str | None = None) -> CanaryResult:
        """Run the ramp to promotion or rollback.

        Args:
            source: gives each step's traffic.
            run_id: the id to record decisions under (default: a new UUID).

        Returns:
            The outcome with every decision.
        """
        cfg = self.config
        rid = run_id or f"canary-{uuid.uuid4().hex[:12]}"
        decisions: list[CanaryDecision] = []
        first_checked: int | None = None
        checked_steps = [s for s in cfg.steps if s < 1.0]
        for i, fraction in enumerate(checked_steps, start=1):
            attempt = 0
            while True:
                obs = source(fraction, i, attempt)
                results = self.check(obs)
                if first_checked is None and all(r.status != "no_data" for r in results):
                    first_checked = i
                action, reason = self._decide(fraction, attempt, results)
                nxt = cfg.steps[i] if i < len(cfg.steps) else 1.0
                if action == "advance" and nxt >= 1.0:
                    action, reason = "promote", reason + "; next step is 100 %: candidate promoted"
                decision = self._record(rid, i, fraction, attempt, action, reason, results, obs)
                decisions.append(decision)
                if action == "rollback":
                    return CanaryResult(rid, "rolled_back", 0.0, i, first_checked, decisions)
                if action == "promote":
                    return CanaryResult(rid, "promoted", 1.0, None, first_checked, decisions)
                if action == "advance":
                    break
                attempt += 1
        # steps == (1.0,): nothing to check
        decision = self._record(
            rid, len(cfg.steps), 1.0, 0, "promote", "no checked steps configured", [], None
        )
        return CanaryResult(rid, "promoted", 1.0, None, first_checked, [*decisions, decision])

    def _decide(
        self, fraction: float, attempt: int, results: Sequence[GuardrailResult]
    ) -> tuple[str, str]:
        cfg = self.config
        breached = [r for r in results if r.status == "breach"]
        if breached:
            text = "; ".join(_describe(r) for r in breached)
            return "rollback", f"guardrail breached: {text}"
        if fraction >= cfg.prove_non_inferiority_from:
            open_ = [r for r in results if r.status != "pass"]
            if open_:
                text = "; ".join(_describe(r) for r in open_)
                if attempt < cfg.max_extensions:
                    return (
                        "extend",
                        f"non-inferiority not shown yet ({text}); collecting another batch",
                    )
                return "rollback", f"non-inferiority not shown after {attempt + 1} batches: {text}"
            return "advance", "every guardrail shown non-inferior"
        unchecked = [r.metric for r in results if r.status == "no_data"]
        note = f" ({', '.join(unchecked)} without enough data)" if unchecked else ""
        return "advance", f"no guardrail breached{note}"

    def _record(
        self,
        rid: str,
        step: int,
        fraction: float,
        attempt: int,
        action: str,
        reason: str,
        results: Sequence[GuardrailResult],
        obs: CanaryObservation | None,
    ) -> CanaryDecision:
        n_c = n_k = 0
        if obs is not None and "variant" in obs.units.columns:
            v = obs.units["variant"].to_numpy(dtype=object)
            n_k, n_c = int((v == CANDIDATE).sum()), int((v == CONTROL).sum())
        decision = CanaryDecision(
            run_id=rid,
            step=step,
            fraction=fraction,
            attempt=attempt,
            action=action,
            reason=reason,
            guardrails=[asdict(r) for r in results],
            n_candidate=n_k,
            n_control=n_c,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if self.store is not None:
            from ._analyze import _clean

            self.store.record_decision(rid, _clean(asdict(decision)))
        return decision


def _describe(r: GuardrailResult) -> str:
    if r.status == "no_data":
        return f"{r.metric}: no data ({r.n_treatment} candidate / {r.n_control} control units)"
    fmt = "{:+.1%}" if r.relative else "{:+.4f}"
    return (
        f"{r.metric}: candidate {r.treatment_value:.4g} vs control {r.control_value:.4g}, harm "
        f"{fmt.format(r.harm)} (interval {fmt.format(r.harm_ci_low)} to {fmt.format(r.harm_ci_high)}), "
        f"margin {fmt.format(r.margin)}, {r.status}"
    )


class SimulatedTraffic:
    """Synthetic serving traffic for canary runs, with injectable regressions.

    Each step draws ``requests_per_step`` requests from a pool of users (heavy-tailed
    activity), routes them with :func:`canary_route`, and draws a latency (lognormal), an
    error, a fallback and a purchase per request, and a return per purchase. The candidate
    can be made slower or more error-prone.

    Args:
        requests_per_step: requests per step batch (both arms).
        n_users: the user pool.
        latency_median_ms: control's median latency.
        latency_sigma: the lognormal sigma of latency.
        error_rate, fallback_rate, purchase_rate, return_rate: control's rates.
        candidate_latency_factor: candidate latency = control latency × this.
        candidate_error_rate, candidate_fallback_rate, candidate_return_rate: the candidate's
            rates (default: control's).
        salt: the canary salt (must match the controller's).
        seed: the seed.
    """

    def __init__(
        self,
        *,
        requests_per_step: int = 200_000,
        n_users: int = 50_000,
        latency_median_ms: float = 40.0,
        latency_sigma: float = 0.5,
        error_rate: float = 0.005,
        fallback_rate: float = 0.02,
        purchase_rate: float = 0.05,
        return_rate: float = 0.1,
        candidate_latency_factor: float = 1.0,
        candidate_error_rate: float | None = None,
        candidate_fallback_rate: float | None = None,
        candidate_return_rate: float | None = None,
        salt: str = "canary",
        seed: int = 0,
    ) -> None:
        self.requests_per_step = requests_per_step
        self.latency_median_ms = latency_median_ms
        self.latency_sigma = latency_sigma
        self.rates = {
            CONTROL: (error_rate, fallback_rate, return_rate),
            CANDIDATE: (
                candidate_error_rate if candidate_error_rate is not None else error_rate,
                candidate_fallback_rate if candidate_fallback_rate is not None else fallback_rate,
                candidate_return_rate if candidate_return_rate is not None else return_rate,
            ),
        }
        self.purchase_rate = purchase_rate
        self.candidate_latency_factor = candidate_latency_factor
        self.salt = salt
        self.seed = seed
        self.user_ids = np.array([f"c{k:07d}" for k in range(n_users)], dtype=object)
        self._hashes = unit_hashes(self.user_ids)
        rng = np.random.default_rng([seed, 0xCA9A])
        activity = rng.lognormal(0.0, 1.0, n_users)
        self._p = activity / activity.sum()

    def __call__(self, fraction: float, step: int, attempt: int) -> CanaryObservation:
        """The traffic of one batch at ``fraction``."""
        rng = np.random.default_rng([self.seed, step, attempt, round(fraction * 1e6)])
        n = self.requests_per_step
        users = rng.choice(len(self.user_ids), size=n, p=self._p)
        arm_of_user = canary_route(None, fraction, salt=self.salt, hashes=self._hashes)
        arm = arm_of_user[users]
        cand = arm == CANDIDATE
        lat = self.latency_median_ms * np.exp(self.latency_sigma * rng.standard_normal(n))
        lat = np.where(cand, lat * self.candidate_latency_factor, lat)
        err_p = np.where(cand, self.rates[CANDIDATE][0], self.rates[CONTROL][0])
        fb_p = np.where(cand, self.rates[CANDIDATE][1], self.rates[CONTROL][1])
        ret_p = np.where(cand, self.rates[CANDIDATE][2], self.rates[CONTROL][2])
        err = rng.random(n) < err_p
        fb = rng.random(n) < fb_p
        buy = (rng.random(n) < self.purchase_rate) & ~err
        ret = buy & (rng.random(n) < ret_p)
        req = pd.DataFrame(
            {
                "unit": users,
                "requests": 1.0,
                "errors": err.astype(np.float64),
                "fallbacks": fb.astype(np.float64),
                "purchases": buy.astype(np.float64),
                "returns": ret.astype(np.float64),
            }
        )
        per_unit = req.groupby("unit", sort=True).sum()
        per_unit.insert(0, "variant", arm_of_user[per_unit.index.to_numpy()])
        per_unit.insert(0, "unit_id", self.user_ids[per_unit.index.to_numpy()])
        latencies = pd.DataFrame({"variant": arm, "latency_ms": lat})
        return CanaryObservation(units=per_unit.reset_index(drop=True), latencies=latencies)
