"""Diagnostics of an off-policy evaluation: support coverage and the importance weights.

The importance weight of a logged row is ``w_i = π(a_i, k_i | x_i) / pscore_i``, the target
policy's probability of the logged item at the logged slot over the logging policy's.
:func:`diagnose` reports

* **propensity coverage**: the range of the logged propensities, how many (item, slot) pairs
  the log shows, and the share of the target policy's mass on pairs the log never shows
  (``unsupported_mass``). Importance-weighted estimators cannot see that mass: they are biased
  low by the reward it would earn, and the direct method covers it only through its model;
* **the weight distribution**: mean (≈ 1 when the target stays inside the logging support: it
  estimates the share of the target's mass that the logging policy can show), quantiles,
  maximum, the share of the total weight carried by the top 1% of rows, and Kish's effective
  sample size ``(Σ w)² / Σ w²``.

When the target puts mass on pairs the log never shows, :func:`diagnose` issues an
:class:`UnsupportedActionWarning` (a :class:`~aisle.errors.DataWarning`) *and* records the
message in ``Diagnostics.warnings``, so reports and JSON output carry it too.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aisle.errors import ConfigError, DataWarning

from ._data import LoggedFeedback
from ._policies import ActionDistribution

__all__ = [
    "Diagnostics",
    "UnsupportedActionWarning",
    "WeightSummary",
    "check_compatible",
    "diagnose",
    "importance_weights",
    "kish_ess",
]


class UnsupportedActionWarning(DataWarning):
    """The target policy puts mass on (item, slot) pairs that the logging policy never showed."""


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(Σ w)² / Σ w²`` (0 when every weight is 0).

    Args:
        weights: non-negative weights.

    Returns:
        A number between 0 and ``len(weights)``: ``n`` for equal weights, 1 when a single row
        carries all the weight.
    """
    w = np.asarray(weights, dtype=np.float64)
    sq = float(w @ w)
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


@dataclass(frozen=True)
class WeightSummary:
    """The distribution of the importance weights ``w_i = π(a_i, k_i | x_i) / pscore_i``.

    Attributes:
        mean: the mean weight; it estimates the share of the target's mass inside the logging
            support (1.0 when the logging policy can show everything the target shows).
        std: the standard deviation.
        min: the smallest weight.
        p50: the median.
        p90: the 90th percentile.
        p99: the 99th percentile.
        max: the largest weight.
        share_zero: the share of rows with weight 0 (logged items the target never shows there).
        top1pct_share: the share of the total weight carried by the top 1% of rows.
        ess: Kish's effective sample size.
        ess_ratio: ``ess / n_rounds``.
    """

    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    share_zero: float
    top1pct_share: float
    ess: float
    ess_ratio: float

    @classmethod
    def of(cls, weights: np.ndarray) -> WeightSummary:
        """Summarise an array of weights."""
        w = np.asarray(weights, dtype=np.float64)
        q50, q90, q99 = np.quantile(w, [0.5, 0.9, 0.99])
        total = w.sum()
        top = max(1, int(np.ceil(0.01 * w.size)))
        top_share = float(np.sort(w)[-top:].sum() / total) if total > 0 else 0.0
        ess = kish_ess(w)
        return cls(
            mean=float(w.mean()), std=float(w.std()), min=float(w.min()), p50=float(q50),
            p90=float(q90), p99=float(q99), max=float(w.max()), share_zero=float(np.mean(w == 0)),
            top1pct_share=top_share, ess=ess, ess_ratio=ess / w.size,
        )


@dataclass(frozen=True)
class Diagnostics:
    """Support and weight diagnostics of one target policy on one log.

    Attributes:
        n_rounds: logged rows.
        n_actions: the size of the action set.
        n_positions: slots.
        pscore_min: the smallest logged propensity.
        pscore_max: the largest logged propensity.
        logged_pairs: distinct (item, slot) pairs in the log.
        total_pairs: ``n_actions × n_positions``.
        target_coverage: the share of the target's mass (averaged over the logged rows) on
            pairs that the log shows: ``1 - unsupported_mass``.
        unsupported_mass: the share of the target's mass on pairs that the log never shows.
        unsupported_actions: the items carrying that mass, largest first (at most 20), as
            external ids when the log has them.
        n_unsupported_actions: how many items carry unsupported mass.
        weights: the importance-weight distribution.
        warnings: messages for the reader (also issued as warnings).
    """

    n_rounds: int
    n_actions: int
    n_positions: int
    pscore_min: float
    pscore_max: float
    logged_pairs: int
    total_pairs: int
    target_coverage: float
    unsupported_mass: float
    unsupported_actions: tuple[str, ...]
    n_unsupported_actions: int
    weights: WeightSummary
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["unsupported_actions"] = list(self.unsupported_actions)
        out["warnings"] = list(self.warnings)
        return out


def check_compatible(feedback: LoggedFeedback, target: ActionDistribution) -> np.ndarray:
    """Check that a target policy fits a log; returns the group of every logged row.

    Raises:
        ConfigError: different action sets, too few slots, or a group index of the wrong length.
    """
    if target.n_actions != feedback.n_actions:
        raise ConfigError(
            f"the target policy covers {target.n_actions} actions, the log {feedback.name!r} has "
            f"{feedback.n_actions}; build the policy over the log's action set"
        )
    if target.n_positions < feedback.n_positions:
        raise ConfigError(
            f"the target policy fills {target.n_positions} slots, the log {feedback.name!r} has "
            f"{feedback.n_positions}"
        )
    return target.row_groups(feedback.n_rounds)


def importance_weights(feedback: LoggedFeedback, target: ActionDistribution) -> np.ndarray:
    """``w_i = π(a_i, k_i | x_i) / pscore_i`` for every logged row.

    Args:
        feedback: the log.
        target: the target policy.

    Returns:
        The weights, shape ``(n_rounds,)``.
    """
    groups = check_compatible(feedback, target)
    weights: np.ndarray = target.probs[groups, feedback.action, feedback.position] / feedback.pscore
    return weights


def diagnose(
    feedback: LoggedFeedback,
    target: ActionDistribution,
    *,
    tolerance: float = 1e-9,
    stacklevel: int = 2,
) -> Diagnostics:
    """Support coverage and weight diagnostics; warns about unsupported target mass.

    Args:
        feedback: the log.
        target: the target policy (matching the log's actions and slots).
        tolerance: unsupported mass at or below this is not reported as a warning.
        stacklevel: passed to :func:`warnings.warn`.

    Returns:
        The diagnostics.

    Warns:
        UnsupportedActionWarning: the target puts more than ``tolerance`` of its mass on
            (item, slot) pairs that the log never shows.
    """
    n, a_n, k_n = feedback.n_rounds, feedback.n_actions, feedback.n_positions
    groups = check_compatible(feedback, target)
    probs = target.probs[:, :, :k_n]
    logged = np.zeros((a_n, k_n), dtype=bool)
    logged[feedback.action, feedback.position] = True
    # rows per (group, slot): the target mass of row i at its slot is probs[g_i, :, k_i]
    n_gk = np.bincount(groups * k_n + feedback.position, minlength=target.n_groups * k_n)
    n_gk = n_gk.reshape(target.n_groups, k_n).astype(np.float64)
    unsupported_ak = np.einsum("gk,gak->ak", n_gk, probs * ~logged[None, :, :]) / n
    per_action = unsupported_ak.sum(axis=1)
    unsupported = float(per_action.sum())
    order = np.argsort(-per_action, kind="stable")
    carriers = order[per_action[order] > 0]
    labels = tuple(feedback.action_label(int(i)) for i in carriers[:20])
    weights = WeightSummary.of(importance_weights(feedback, target))
    notes: list[str] = []
    if unsupported > tolerance:
        msg = (
            f"{feedback.name}: the target policy puts {unsupported:.1%} of its mass on (item, slot) "
            f"pairs the logging policy never showed ({carriers.size} items, e.g. {', '.join(labels[:5])}); "
            "importance-weighted estimates miss the reward of that mass and DM/DR cover it only "
            "through the reward model"
        )
        notes.append(msg)
        warnings.warn(msg, UnsupportedActionWarning, stacklevel=stacklevel)
    return Diagnostics(
        n_rounds=n,
        n_actions=a_n,
        n_positions=k_n,
        pscore_min=float(feedback.pscore.min()),
        pscore_max=float(feedback.pscore.max()),
        logged_pairs=int(logged.sum()),
        total_pairs=a_n * k_n,
        target_coverage=1.0 - unsupported,
        unsupported_mass=unsupported,
        unsupported_actions=labels,
        n_unsupported_actions=int(carriers.size),
        weights=weights,
        warnings=tuple(notes),
    )
