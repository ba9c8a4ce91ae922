"""The Open Bandit Dataset protocol: estimate one logging policy's value from the other's logs.

The OBD sample logs the same traffic under two policies, uniform random and Bernoulli Thompson
Sampling (BTS). :func:`compare_on_obd` estimates the value of the ``evaluation`` policy from the
``behavior`` policy's log with each estimator and compares it with the evaluation policy's
on-policy value, the mean reward in its own log:

* ``random → bts``: the target is BTS's action distribution, reproduced by Monte Carlo from the
  published prior (:func:`~aisle.evaluation.ope.obd_bts_policy`);
* ``bts → random``: the target is the uniform policy (``1/n_items`` at every slot).

The relative error is ``|V̂ − V_on| / V_on``. Its interval comes from pairing the estimator's
bootstrap replicates with independent bootstrap replicates of the on-policy mean (the two logs
are independent samples): the percentile interval of the signed error ``(V̂ − V_on) / V_on`` is
mapped to ``|·|`` (``[0, max(|lo|, |hi|)]`` when it contains 0). For a BTS target, the Monte
Carlo error of the simulated distribution is reported separately (``mc_standard_error``: batch
means over 25 sub-simulations).

:func:`obd_relative_error_table` runs all three campaigns in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from aisle.errors import ConfigError

from ._data import LoggedFeedback
from ._diagnostics import Diagnostics
from ._estimators import (
    DEFAULT_ESTIMATORS,
    REWARD_MODEL_ESTIMATORS,
    OPEConfig,
    _count_matrix,
    _num,
    _point_estimates,
    estimate_policy_value,
    make_config,
    parse_estimators,
)
from ._policies import (
    DEFAULT_BTS_DRAWS,
    ActionDistribution,
    rank_marginals,
    simulate_bts_rankings,
    uniform_policy,
)
from ._reward import PositionBasedRewardModel

__all__ = [
    "DIRECTIONS",
    "ComparedEstimate",
    "OBDComparison",
    "compare_on_obd",
    "obd_relative_error_table",
    "relative_error_frame",
]

#: (behavior, evaluation) pairs of the protocol.
DIRECTIONS: Final[tuple[tuple[str, str], ...]] = (("random", "bts"), ("bts", "random"))
_MC_BATCHES: Final[int] = 25


@dataclass(frozen=True)
class ComparedEstimate:
    """One estimator's estimate next to the on-policy value it should match.

    Attributes:
        estimator: the estimator's name.
        estimate: the off-policy estimate (mean reward per impression).
        ci_low: lower end of its bootstrap interval.
        ci_high: upper end.
        std_error: its bootstrap standard deviation.
        ess: its effective sample size.
        on_policy_value: the evaluation policy's mean reward in its own log.
        relative_error: ``|estimate − on_policy_value| / on_policy_value``.
        relative_error_ci_low: lower end of the relative error's interval.
        relative_error_ci_high: upper end.
        signed_relative_error: ``(estimate − on_policy_value) / on_policy_value``.
        mc_standard_error: the Monte Carlo standard error of ``estimate`` from simulating the
            BTS distribution (``None`` for an exact target).
    """

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    ess: float
    on_policy_value: float
    relative_error: float
    relative_error_ci_low: float
    relative_error_ci_high: float
    signed_relative_error: float
    mc_standard_error: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` for undefined numbers)."""
        return {k: (_num(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class OBDComparison:
    """The result of one (campaign, behavior → evaluation) run of the protocol.

    Attributes:
        campaign: ``all``, ``men`` or ``women``.
        behavior: the logging policy whose log is used.
        evaluation: the policy whose value is estimated.
        on_policy_value: the evaluation policy's mean reward in its own log.
        on_policy_ci_low: the bootstrap interval of that mean.
        on_policy_ci_high: its upper end.
        n_rounds_behavior: rows in the behavior log.
        n_clicks_behavior: clicks in it.
        n_rounds_evaluation: rows in the evaluation log.
        n_clicks_evaluation: clicks in it.
        estimates: per estimator.
        diagnostics: support and weight diagnostics of the target on the behavior log.
        target: how the target distribution was made (policy, draws, seed ...).
        config: the settings.
        reward_model: the reward model used by DM/DR.
        sources: the files read, with sha256.
    """

    campaign: str
    behavior: str
    evaluation: str
    on_policy_value: float
    on_policy_ci_low: float
    on_policy_ci_high: float
    n_rounds_behavior: int
    n_clicks_behavior: int
    n_rounds_evaluation: int
    n_clicks_evaluation: int
    estimates: Mapping[str, ComparedEstimate]
    diagnostics: Diagnostics
    target: Mapping[str, Any]
    config: OPEConfig
    reward_model: str | None
    sources: tuple[Mapping[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` payload for one run)."""
        return {
            "dataset": "obd",
            "campaign": self.campaign,
            "behavior": self.behavior,
            "evaluation": self.evaluation,
            "on_policy_value": _num(self.on_policy_value),
            "on_policy_ci_low": _num(self.on_policy_ci_low),
            "on_policy_ci_high": _num(self.on_policy_ci_high),
            "n_rounds_behavior": self.n_rounds_behavior,
            "n_clicks_behavior": self.n_clicks_behavior,
            "n_rounds_evaluation": self.n_rounds_evaluation,
            "n_clicks_evaluation": self.n_clicks_evaluation,
            "estimators": {name: e.to_dict() for name, e in self.estimates.items()},
            "diagnostics": self.diagnostics.to_dict(),
            "target": dict(self.target),
            "reward_model": self.reward_model,
            "config": self.config.model_dump(),
            "sources": [dict(s) for s in self.sources],
        }


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the Monte Carlo, the estimator bootstrap and the on-policy bootstrap."""
    children = np.random.SeedSequence(seed).spawn(3)
    mc, est, on = (int(c.generate_state(1, dtype=np.uint32)[0]) for c in children)
    return mc, est, on


def _abs_interval(lo: float, hi: float) -> tuple[float, float]:
    """The interval of ``|x|`` implied by an interval ``[lo, hi]`` of ``x``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    if lo <= 0.0 <= hi:
        return 0.0, max(abs(lo), abs(hi))
    return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


def _bootstrap_mean(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = values.size
    out = np.empty(n_bootstrap)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        out[start:start + b] = _count_matrix(rng, b, n) @ values / n
    return out


LogLoader = Callable[[str, str], Any]


def compare_on_obd(
    campaign: str = "all",
    behavior: str = "random",
    evaluation: str = "bts",
    estimators: str | Sequence[str] = DEFAULT_ESTIMATORS,
    *,
    config: OPEConfig | None = None,
    bts_draws: int = DEFAULT_BTS_DRAWS,
    data_home: str | Path | None = None,
    load_log: LogLoader | None = None,
    **overrides: Any,
) -> OBDComparison:
    """Run the real-data protocol for one campaign and direction.

    Args:
        campaign: ``all``, ``men`` or ``women``.
        behavior: the policy whose log is used: ``random`` or ``bts``.
        evaluation: the policy whose value is estimated (the other one).
        estimators: estimator names.
        config: OPE settings; ``seed`` seeds the Monte Carlo and both bootstraps (through
            independent child seeds of ``numpy.random.SeedSequence(seed)``).
        bts_draws: Monte Carlo draws for the BTS distribution.
        data_home: the data home (default ``AISLE_DATA_HOME``).
        load_log: ``(campaign, policy) -> BanditLog`` (default ``aisle.datasets.load_bandit_log``);
            pass a cached loader to read each file once over several runs.
        **overrides: :class:`OPEConfig` fields.

    Returns:
        The comparison.

    Raises:
        ConfigError: an unknown campaign, policy or estimator, or ``behavior == evaluation``.
    """
    from aisle.datasets import CAMPAIGNS, POLICIES, load_bts_prior

    if campaign not in CAMPAIGNS:
        raise ConfigError(f"campaign must be one of {', '.join(CAMPAIGNS)}; got {campaign!r}")
    for role, policy in (("behavior", behavior), ("evaluation", evaluation)):
        if policy not in POLICIES:
            raise ConfigError(f"{role} policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if behavior == evaluation:
        raise ConfigError(
            f"behavior and evaluation are both {behavior!r}; off-policy evaluation estimates one "
            "policy from the other's log (random -> bts or bts -> random)"
        )
    if bts_draws < _MC_BATCHES:
        raise ConfigError(f"bts_draws must be >= {_MC_BATCHES}; got {bts_draws}")
    names = parse_estimators(estimators)
    cfg = make_config(config, **overrides)
    mc_seed, est_seed, on_seed = _seeds(cfg.seed)

    if load_log is None:
        from aisle.datasets import load_bandit_log

        def load_log(c: str, p: str) -> Any:
            return load_bandit_log(c, p, data_home)

    log_b = load_log(campaign, behavior)
    log_e = load_log(campaign, evaluation)
    feedback = LoggedFeedback.from_bandit_log(log_b)

    rankings: np.ndarray | None = None
    if evaluation == "bts":
        alpha, beta = load_bts_prior(campaign, data_home)
        rankings = simulate_bts_rankings(alpha, beta, log_b.n_positions, bts_draws, mc_seed)
        probs = rank_marginals(rankings, log_b.n_actions)
        target = ActionDistribution.shared(probs, {
            "policy": "bts", "source": "prior_bts.yaml", "campaign": campaign,
            "monte_carlo_draws": bts_draws, "monte_carlo_seed": mc_seed,
            "max_probability_se": float(np.sqrt(probs * (1 - probs) / bts_draws).max()),
        })
    else:
        target = ActionDistribution(
            uniform_policy(log_b.n_actions, log_b.n_positions).probs, None,
            {"policy": "uniform", "campaign": campaign},
        )

    result = estimate_policy_value(
        feedback, target, names, config=make_config(cfg, seed=est_seed)
    )

    reward_e = log_e.reward.astype(np.float64)
    on_value = float(reward_e.mean())
    on_reps = _bootstrap_mean(reward_e, cfg.n_bootstrap, on_seed)
    lo_q, hi_q = (1 - cfg.ci_level) / 2, 1 - (1 - cfg.ci_level) / 2
    on_lo, on_hi = (np.quantile(on_reps, [lo_q, hi_q]) if on_reps.size else (math.nan, math.nan))

    mc_se: dict[str, float] = {}
    if rankings is not None:
        q = None
        if any(n in REWARD_MODEL_ESTIMATORS for n in names):
            q = PositionBasedRewardModel().fit(feedback).predict(feedback)
        batches = [
            _point_estimates(feedback, ActionDistribution.shared(rank_marginals(part, log_b.n_actions)),
                             names, q, cfg)
            for part in np.array_split(rankings, _MC_BATCHES)
        ]
        for name in names:
            vals = np.array([b[name] for b in batches])
            mc_se[name] = float(vals.std(ddof=1) / math.sqrt(_MC_BATCHES))

    compared: dict[str, ComparedEstimate] = {}
    for name, est in result.estimates.items():
        signed = (est.estimate - on_value) / on_value if on_value > 0 else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            signed_reps = (est.replicates - on_reps) / on_reps
        ok = signed_reps[np.isfinite(signed_reps)]
        s_lo, s_hi = (np.quantile(ok, [lo_q, hi_q]) if ok.size else (math.nan, math.nan))
        r_lo, r_hi = _abs_interval(float(s_lo), float(s_hi))
        compared[name] = ComparedEstimate(
            estimator=name,
            estimate=est.estimate,
            ci_low=est.ci_low,
            ci_high=est.ci_high,
            std_error=est.std_error,
            ess=est.ess,
            on_policy_value=on_value,
            relative_error=abs(signed),
            relative_error_ci_low=r_lo,
            relative_error_ci_high=r_hi,
            signed_relative_error=signed,
            mc_standard_error=mc_se.get(name),
        )
    sources = tuple(
        {"path": s.path, "bytes": s.bytes, "sha256": s.sha256}
        for s in (*log_b.sources, *log_e.sources)
    )
    return OBDComparison(
        campaign=campaign,
        behavior=behavior,
        evaluation=evaluation,
        on_policy_value=on_value,
        on_policy_ci_low=float(on_lo),
        on_policy_ci_high=float(on_hi),
        n_rounds_behavior=int(log_b.n_rounds),
        n_clicks_behavior=int(log_b.n_clicks),
        n_rounds_evaluation=int(log_e.n_rounds),
        n_clicks_evaluation=int(log_e.n_clicks),
        estimates=compared,
        diagnostics=result.diagnostics,
        target=dict(target.meta),
        config=cfg,
        reward_model=result.reward_model,
        sources=sources,
    )


def obd_relative_error_table(
    campaigns: Sequence[str] | None = None,
    directions: Sequence[tuple[str, str]] = DIRECTIONS,
    estimators: str | Sequence[str] = DEFAULT_ESTIMATORS,
    *,
    config: OPEConfig | None = None,
    bts_draws: int = DEFAULT_BTS_DRAWS,
    data_home: str | Path | None = None,
    on_run: Callable[[str, str, str], None] | None = None,
    **overrides: Any,
) -> list[OBDComparison]:
    """The full relative-error table: every campaign in both directions (each file read once).

    Args:
        campaigns: default ``("all", "men", "women")``.
        directions: ``(behavior, evaluation)`` pairs; default both.
        estimators: estimator names.
        config: OPE settings (the same seed for every run).
        bts_draws: Monte Carlo draws for the BTS distribution.
        data_home: the data home.
        on_run: called with ``(campaign, behavior, evaluation)`` before each run (progress).
        **overrides: :class:`OPEConfig` fields.

    Returns:
        One :class:`OBDComparison` per campaign and direction.
    """
    from aisle.datasets import CAMPAIGNS, load_bandit_log

    cache: dict[tuple[str, str], Any] = {}

    def load(c: str, p: str) -> Any:
        if (c, p) not in cache:
            cache[(c, p)] = load_bandit_log(c, p, data_home)
        return cache[(c, p)]

    out = []
    for campaign in campaigns if campaigns is not None else CAMPAIGNS:
        for behavior, evaluation in directions:
            if on_run is not None:
                on_run(campaign, behavior, evaluation)
            out.append(compare_on_obd(
                campaign, behavior, evaluation, estimators, config=config, bts_draws=bts_draws,
                data_home=data_home, load_log=load, **overrides,
            ))
    return out


def relative_error_frame(comparisons: Sequence[OBDComparison]) -> pd.DataFrame:
    """One row per (campaign, direction, estimator) with estimates, intervals and relative errors.

    Args:
        comparisons: results of :func:`compare_on_obd` / :func:`obd_relative_error_table`.

    Returns:
        A long table.
    """
    rows = []
    for c in comparisons:
        for e in c.estimates.values():
            rows.append({
                "campaign": c.campaign, "behavior": c.behavior, "evaluation": c.evaluation,
                **{k: v for k, v in asdict(e).items()},
            })
    return pd.DataFrame(rows)
