"""Off-policy estimators with bootstrap confidence intervals and effective sample sizes.

Every estimator is a ratio of per-row sums, ``V̂ = Σ_i num_i / Σ_i den_i``, over the logged rows
``i`` (one item ``a_i`` at slot ``k_i``), with ``w_i = π(a_i, k_i | x_i) / pscore_i``,
``q̂`` the reward model and ``dm_i = Σ_a π(a, k_i | x_i) · q̂(x_i, a, k_i)``:

==============  =============================================================  ==========
name            ``num_i``                                                      ``den_i``
==============  =============================================================  ==========
``dm``          ``dm_i``                                                       1
``ips``         ``w_i r_i``                                                    1
``clipped-ips`` ``min(w_i, clip) r_i``                                         1
``snips``       ``w_i r_i``                                                    ``w_i``
``dr``          ``dm_i + w_i (r_i − q̂_i)``                                     1
``switch-dr``   ``dm_i + 1{w_i ≤ τ} w_i (r_i − q̂_i)``                          1
``dr-os``       ``dm_i + w̃_i (r_i − q̂_i)``, ``w̃ = λ w / (w² + λ)``             1
==============  =============================================================  ==========

Ranked lists are handled slot by slot (independent IPS under the position-based model): each
row's weight uses the propensities *of its own slot*, which is unbiased when the reward at a
slot depends only on the item and the slot (examination × attraction), not on the rest of the
list. The value is the mean reward per impression; ``by_position`` holds the value of each slot,
and their sum is the expected reward of a whole list.

The confidence interval is a seeded percentile bootstrap over logged rows; the reward model is
refitted on every replicate (it takes the replicate's row counts as sample weights), so the
DM/DR intervals include the reward model's uncertainty.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from aisle.errors import ConfigError

from ._data import LoggedFeedback, as_feedback
from ._diagnostics import Diagnostics, check_compatible, diagnose, kish_ess
from ._policies import ActionDistribution
from ._reward import PositionBasedRewardModel, RewardModel

__all__ = [
    "DEFAULT_ESTIMATORS",
    "ESTIMATORS",
    "REWARD_MODEL_ESTIMATORS",
    "OPEConfig",
    "OPEResult",
    "PolicyEstimate",
    "estimate_policy_value",
    "make_config",
    "parse_estimators",
]

#: Every estimator by name, with a one-line description.
ESTIMATORS: Final[Mapping[str, str]] = {
    "dm": "direct method: the reward model's expected reward under the target policy",
    "ips": "inverse propensity scoring: mean of w·r",
    "clipped-ips": "IPS with weights capped at `clip`",
    "snips": "self-normalised IPS: Σ w·r / Σ w",
    "dr": "doubly robust: DM plus the IPS-weighted reward-model residual",
    "switch-dr": "switch-DR: the DR correction only where w ≤ `switch_tau`, DM elsewhere",
    "dr-os": "DR with optimistic shrinkage of the weights: λ·w / (w² + λ)",
}
#: The estimators that use a reward model.
REWARD_MODEL_ESTIMATORS: Final[frozenset[str]] = frozenset({"dm", "dr", "switch-dr", "dr-os"})
#: All estimators, in the order above.
DEFAULT_ESTIMATORS: Final[tuple[str, ...]] = tuple(ESTIMATORS)


class OPEConfig(BaseModel):
    """Settings of an off-policy evaluation (frozen; unknown keys are rejected).

    Attributes:
        n_bootstrap: bootstrap replicates for the interval (0: no interval).
        ci_level: the interval's coverage.
        seed: the bootstrap seed.
        clip: the weight cap of ``clipped-ips``. With ``n`` rows a weight of 100 lets one row
            count as much as 100 rows of the logging policy's own value; capping there keeps a
            single click from moving the estimate by more than ``100 / n``.
        switch_tau: the weight above which ``switch-dr`` drops the DR correction (uses DM alone).
        shrinkage: ``λ`` of ``dr-os``; weights well below ``sqrt(λ)`` are kept, larger ones
            shrunk (the default ``100²`` matches ``clip``).
        support_tolerance: unsupported target mass above this triggers the support warning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_bootstrap: int = Field(1000, ge=0)
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = 0
    clip: float = Field(100.0, gt=0.0)
    switch_tau: float = Field(100.0, gt=0.0)
    shrinkage: float = Field(10_000.0, gt=0.0)
    support_tolerance: float = Field(1e-9, ge=0.0)


def make_config(config: OPEConfig | None = None, **overrides: Any) -> OPEConfig:
    """An :class:`OPEConfig` from a base config and keyword overrides.

    Raises:
        ConfigError: an unknown key or a value out of range (the message names the field).
    """
    try:
        if config is None:
            return OPEConfig(**overrides)
        return OPEConfig(**{**config.model_dump(), **overrides}) if overrides else config
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid off-policy evaluation settings: {problems}") from exc


def parse_estimators(names: str | Sequence[str]) -> tuple[str, ...]:
    """Validate estimator names (comma-separated text or a sequence), keeping their order.

    Args:
        names: e.g. ``"dm,ips,snips,dr"``; case and ``_``/``-`` do not matter.

    Returns:
        The canonical names, duplicates dropped.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    raw = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in raw:
        name = str(item).strip().lower().replace("_", "-")
        if not name:
            continue
        if name not in ESTIMATORS:
            close = difflib.get_close_matches(name, list(ESTIMATORS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown estimator '{item}'{hint}; valid estimators: {', '.join(ESTIMATORS)}"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"no estimator given; valid estimators: {', '.join(ESTIMATORS)}")
    return tuple(out)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class PolicyEstimate:
    """One estimator's estimate of the target policy's value.

    Attributes:
        estimator: the estimator's name.
        estimate: the estimated mean reward per logged impression.
        ci_low: lower end of the percentile bootstrap interval (``nan`` without bootstrap).
        ci_high: upper end.
        std_error: the bootstrap standard deviation.
        ess: the effective sample size: Kish's ``(Σ v)² / Σ v²`` over the weights ``v`` this
            estimator applies to the observed rewards (capped, switched or shrunk weights for
            those estimators); ``n_rounds`` for ``dm``, which weights no row.
        n_rounds: logged rows used.
        by_position: the estimate restricted to each slot's rows (their sum: the value of a list).
        replicates: the bootstrap replicates (not serialised).
    """

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    ess: float
    n_rounds: int
    by_position: tuple[float, ...]
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` for undefined numbers)."""
        return {
            "estimator": self.estimator,
            "estimate": _num(self.estimate),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "std_error": _num(self.std_error),
            "ess": _num(self.ess),
            "n_rounds": self.n_rounds,
            "by_position": [_num(v) for v in self.by_position],
        }


@dataclass(frozen=True)
class OPEResult:
    """Estimates of one target policy's value on one log, with diagnostics.

    Attributes:
        estimates: per estimator name, in the requested order.
        diagnostics: support coverage and importance weights.
        config: the settings used.
        target: the target policy's ``meta`` (how it was made).
        reward_model: a description of the reward model (``None`` if no estimator used one).
    """

    estimates: Mapping[str, PolicyEstimate]
    diagnostics: Diagnostics
    config: OPEConfig
    target: Mapping[str, Any]
    reward_model: str | None

    def __getitem__(self, name: str) -> PolicyEstimate:
        return self.estimates[name]

    def to_frame(self) -> pd.DataFrame:
        """One row per estimator: estimate, interval, standard error, ESS."""
        return pd.DataFrame([
            {k: v for k, v in e.to_dict().items() if k != "by_position"} for e in self.estimates.values()
        ])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "estimates": {name: e.to_dict() for name, e in self.estimates.items()},
            "diagnostics": self.diagnostics.to_dict(),
            "config": self.config.model_dump(),
            "target": dict(self.target),
            "reward_model": self.reward_model,
        }


# ------------------------------------------------------------------------------ computation
@dataclass(frozen=True)
class _Rows:
    """Per-row quantities shared by the estimators."""

    reward: np.ndarray
    weight: np.ndarray
    position: np.ndarray
    n_positions: int


def _reward_terms(
    feedback: LoggedFeedback, target: ActionDistribution, groups: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dm_i = Σ_a π(a, k_i | x_i) q̂(x_i, a, k_i)`` and ``q̂(x_i, a_i, k_i)`` for every row."""
    k_n, n = feedback.n_positions, feedback.n_rounds
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != (feedback.n_actions, k_n) or q.shape[0] not in (1, n):
        raise ConfigError(
            f"reward predictions must be (1 or n_rounds={n}, n_actions={feedback.n_actions}, "
            f"n_positions={k_n}); got {q.shape}"
        )
    probs = target.probs[:, :, :k_n]
    pos, act = feedback.position, feedback.action
    if q.shape[0] == 1:
        value = np.einsum("gak,ak->gk", probs, q[0])
        return value[groups, pos], q[0, act, pos]
    dm = np.empty(n)
    step = max(1, 2_000_000 // feedback.n_actions)
    for s in range(0, n, step):
        rows = np.arange(s, min(n, s + step))
        dm[rows] = np.einsum("ia,ia->i", probs[groups[rows], :, pos[rows]], q[rows, :, pos[rows]])
    return dm, q[np.arange(n), act, pos]


def _terms(
    name: str, rows: _Rows, cfg: OPEConfig, dm: np.ndarray | None, qf: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(num, den or None for 1, the weights applied to observed rewards or None)``."""
    w, r = rows.weight, rows.reward
    if name == "ips":
        return w * r, None, w
    if name == "clipped-ips":
        wc = np.minimum(w, cfg.clip)
        return wc * r, None, wc
    if name == "snips":
        return w * r, w, w
    assert dm is not None and qf is not None
    if name == "dm":
        return dm, None, None
    if name == "dr":
        return dm + w * (r - qf), None, w
    if name == "switch-dr":
        ws = np.where(w <= cfg.switch_tau, w, 0.0)
        return dm + ws * (r - qf), None, ws
    if name == "dr-os":
        lam = cfg.shrinkage
        wo = lam * w / (w * w + lam)
        return dm + wo * (r - qf), None, wo
    raise ConfigError(f"unknown estimator '{name}'")  # pragma: no cover - parse_estimators guards


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else math.nan


def _by_position(num: np.ndarray, den: np.ndarray | None, rows: _Rows) -> tuple[float, ...]:
    k = rows.n_positions
    top = np.bincount(rows.position, weights=num, minlength=k)
    bottom = np.bincount(rows.position, weights=den, minlength=k) if den is not None else np.bincount(
        rows.position, minlength=k).astype(np.float64)
    return tuple(_ratio(float(t), float(b)) for t, b in zip(top, bottom, strict=True))


def _count_matrix(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """``(b, n)`` bootstrap counts: how often each row is drawn in each replicate."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _bootstrap(
    names: Sequence[str],
    fixed: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    refit: Callable[[np.ndarray], Mapping[str, tuple[np.ndarray, np.ndarray | None]]] | None,
    n: int,
    cfg: OPEConfig,
) -> np.ndarray:
    """``(n_bootstrap, len(names))`` replicates; ``refit(counts)`` recomputes model-based terms."""
    reps = np.full((cfg.n_bootstrap, len(names)), np.nan)
    if cfg.n_bootstrap == 0:
        return reps
    rng = np.random.default_rng(cfg.seed)
    fixed_cols = [j for j, name in enumerate(names) if name in fixed]
    num = np.column_stack([fixed[names[j]][0] for j in fixed_cols]) if fixed_cols else None
    den = np.column_stack([
        d if (d := fixed[names[j]][1]) is not None else np.ones(n) for j in fixed_cols
    ]) if fixed_cols else None
    refit_cols = [j for j, name in enumerate(names) if name not in fixed]
    chunk = max(1, 2_000_000 // n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, cfg.n_bootstrap, chunk):
            b = min(chunk, cfg.n_bootstrap - start)
            counts = _count_matrix(rng, b, n)
            if num is not None and den is not None:
                reps[start:start + b, fixed_cols] = (counts @ num) / (counts @ den)
            if refit is not None and refit_cols:
                for j in range(b):
                    terms = refit(counts[j])
                    for col in refit_cols:
                        t_num, t_den = terms[names[col]]
                        bottom = counts[j].sum() if t_den is None else counts[j] @ t_den
                        reps[start + j, col] = _ratio(float(counts[j] @ t_num), float(bottom))
    return reps


def _point_estimates(
    feedback: LoggedFeedback,
    target: ActionDistribution,
    names: Sequence[str],
    q: np.ndarray | None,
    cfg: OPEConfig,
) -> dict[str, float]:
    """Point estimates only (no bootstrap, no diagnostics) for fixed reward predictions."""
    groups = check_compatible(feedback, target)
    w = target.probs[groups, feedback.action, feedback.position] / feedback.pscore
    rows = _Rows(feedback.reward, w, feedback.position, feedback.n_positions)
    dm, qf = _reward_terms(feedback, target, groups, q) if q is not None else (None, None)
    out = {}
    for name in names:
        num, den, _ = _terms(name, rows, cfg, dm, qf)
        out[name] = _ratio(float(num.sum()), float(den.sum()) if den is not None else float(num.size))
    return out


def estimate_policy_value(
    feedback: LoggedFeedback | Any,
    target: ActionDistribution,
    estimators: str | Sequence[str] = DEFAULT_ESTIMATORS,
    *,
    reward_model: RewardModel | np.ndarray | None = None,
    config: OPEConfig | None = None,
    **overrides: Any,
) -> OPEResult:
    """Estimate a target policy's mean reward per impression from a log of another policy.

    Args:
        feedback: the log (:class:`LoggedFeedback` or an OBD ``BanditLog``).
        target: the target policy over the log's action set and slots.
        estimators: names (see :data:`ESTIMATORS`), as a sequence or ``"dm,ips,snips,dr"``.
        reward_model: for ``dm``/``dr``/``switch-dr``/``dr-os``: a :class:`RewardModel` (default
            :class:`PositionBasedRewardModel`), fitted here on the whole log and refitted on
            every bootstrap replicate; or fixed predictions ``(1 or n_rounds, n_actions,
            n_positions)`` (obp's ``estimated_rewards_by_reg_model``), which the bootstrap then
            treats as known.
        config: the settings (:class:`OPEConfig`); keyword ``overrides`` replace fields.
        **overrides: e.g. ``n_bootstrap=200, seed=1``.

    Returns:
        Estimates with intervals and ESS, and the diagnostics.

    Raises:
        ConfigError: an unknown estimator or setting, or a target that does not fit the log.

    Warns:
        UnsupportedActionWarning: the target puts mass on (item, slot) pairs the log never shows.

    Example:
        >>> from aisle.evaluation.ope import LoggedFeedback, estimate_policy_value, uniform_policy
        >>> log = LoggedFeedback.from_arrays([0, 1, 1, 0], [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
        >>> result = estimate_policy_value(log, uniform_policy(2), "ips,snips", n_bootstrap=0)
        >>> result["ips"].estimate
        0.5
    """
    fb = as_feedback(feedback)
    names = parse_estimators(estimators)
    cfg = make_config(config, **overrides)
    groups = check_compatible(fb, target)
    diagnostics = diagnose(fb, target, tolerance=cfg.support_tolerance, stacklevel=3)
    w = target.probs[groups, fb.action, fb.position] / fb.pscore
    rows = _Rows(fb.reward, w, fb.position, fb.n_positions)
    uses_model = any(name in REWARD_MODEL_ESTIMATORS for name in names)

    dm = qf = None
    refit: Callable[[np.ndarray], Mapping[str, tuple[np.ndarray, np.ndarray | None]]] | None = None
    model_label: str | None = None
    if uses_model:
        if isinstance(reward_model, np.ndarray):
            dm, qf = _reward_terms(fb, target, groups, reward_model)
            model_label = "fixed predictions"
        else:
            model: RewardModel = reward_model if reward_model is not None else PositionBasedRewardModel()
            model_label = repr(model)
            model.fit(fb)
            dm, qf = _reward_terms(fb, target, groups, model.predict(fb))
            worker = copy.deepcopy(model)

            def _refit(counts: np.ndarray) -> Mapping[str, tuple[np.ndarray, np.ndarray | None]]:
                worker.fit(fb, sample_weight=counts)
                b_dm, b_qf = _reward_terms(fb, target, groups, worker.predict(fb))
                return {
                    name: _terms(name, rows, cfg, b_dm, b_qf)[:2]
                    for name in names if name in REWARD_MODEL_ESTIMATORS
                }

            refit = _refit

    point: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {
        name: _terms(name, rows, cfg, dm, qf) for name in names
    }
    fixed = {
        name: (t[0], t[1]) for name, t in point.items()
        if refit is None or name not in REWARD_MODEL_ESTIMATORS
    }
    reps = _bootstrap(names, fixed, refit, fb.n_rounds, cfg)
    lo_q, hi_q = (1 - cfg.ci_level) / 2, 1 - (1 - cfg.ci_level) / 2
    estimates: dict[str, PolicyEstimate] = {}
    for j, name in enumerate(names):
        num, den, eff = point[name]
        value = _ratio(float(num.sum()), float(den.sum()) if den is not None else float(fb.n_rounds))
        col = reps[:, j]
        ok = col[np.isfinite(col)]
        lo, hi = (np.quantile(ok, [lo_q, hi_q]) if ok.size else (math.nan, math.nan))
        estimates[name] = PolicyEstimate(
            estimator=name,
            estimate=value,
            ci_low=float(lo),
            ci_high=float(hi),
            std_error=float(ok.std(ddof=1)) if ok.size > 1 else math.nan,
            ess=float(fb.n_rounds) if eff is None else kish_ess(eff),
            n_rounds=fb.n_rounds,
            by_position=_by_position(num, den, rows),
            replicates=col,
        )
    return OPEResult(estimates, diagnostics, cfg, dict(target.meta), model_label)
