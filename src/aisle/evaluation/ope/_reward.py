"""Reward models for the direct method and the doubly robust estimators.

The default, :class:`PositionBasedRewardModel`, is the position-based click model with
shrinkage: the expected reward of item ``a`` at slot ``k`` is ``μ_k · ρ_a``, where ``μ_k`` is the
mean reward at slot ``k`` (shrunk towards the overall mean) and ``ρ_a`` the item's attraction
relative to what its slots predict (shrunk towards 1)::

    μ   = Σ r / Σ 1
    μ_k = (Σ_{k_i = k} r + m_pos · μ) / (n_k + m_pos)
    E_a = Σ_{a_i = a} μ_{k_i}                  (rewards item a would get if it were average)
    ρ_a = (Σ_{a_i = a} r + m_item) / (E_a + m_item)
    q(a, k) = μ_k · ρ_a

With about 0.4 clicks per item in a 10,000-row OBD log, any richer model (context features,
per-slot item effects) is mostly noise; this one pools an item's clicks over its slots and
shrinks hard. It takes sample weights, so the bootstrap refits it on every replicate in
microseconds and the DM/DR intervals include the reward model's own uncertainty.

Any object with ``fit(feedback, sample_weight=None)`` and ``predict(feedback)`` returning
``(1 or n_rounds, n_actions, n_positions)`` expected rewards can take its place
(:class:`RewardModel`).
"""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable

import numpy as np

from aisle.errors import ConfigError, DataError, NotFittedError

from ._data import LoggedFeedback

__all__ = ["PositionBasedRewardModel", "RewardModel"]


@runtime_checkable
class RewardModel(Protocol):
    """The reward-model contract: weighted fit, then expected rewards for every action and slot."""

    def fit(self, feedback: LoggedFeedback, sample_weight: np.ndarray | None = None) -> Self:
        """Learn from the log (``sample_weight`` per row, e.g. bootstrap counts); returns ``self``."""
        ...

    def predict(self, feedback: LoggedFeedback) -> np.ndarray:
        """``(1 or n_rounds, n_actions, n_positions)`` expected rewards for the log's rows."""
        ...


class PositionBasedRewardModel:
    """Position-based reward model with shrinkage (see the module docstring for the formulas).

    Args:
        position_prior: ``m_pos``, pseudo-rows pulling each slot mean towards the overall mean.
        item_prior: ``m_item``, pseudo-rewards pulling each item's attraction towards 1 (one
            pseudo-click by default: an item needs about as many clicks as its slots predict
            before its own rate counts as much as the prior).

    Attributes:
        global_mean_: ``μ`` after ``fit``.
        position_means_: ``μ_k``, shape ``(n_positions,)``.
        attraction_: ``ρ_a``, shape ``(n_actions,)``.
        table_: ``q(a, k)``, shape ``(n_actions, n_positions)``.
    """

    def __init__(self, position_prior: float = 100.0, item_prior: float = 1.0) -> None:
        if not position_prior > 0 or not item_prior > 0:
            raise ConfigError(
                f"position_prior and item_prior must be > 0; got {position_prior} and {item_prior}"
            )
        self.position_prior = float(position_prior)
        self.item_prior = float(item_prior)
        self._fitted = False

    def fit(self, feedback: LoggedFeedback, sample_weight: np.ndarray | None = None) -> Self:
        """Estimate ``μ_k`` and ``ρ_a`` from (weighted) rows.

        Args:
            feedback: the log; rewards must be non-negative (clicks, purchases, revenue).
            sample_weight: a non-negative weight per row (default 1).

        Returns:
            ``self``.
        """
        r = feedback.reward
        if (r < 0).any():
            raise DataError(
                f"{feedback.name}: the position-based reward model needs non-negative rewards; "
                "pass another reward model for signed rewards"
            )
        w = np.ones(feedback.n_rounds) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (feedback.n_rounds,) or (w < 0).any():
            raise ConfigError(f"sample_weight must be {feedback.n_rounds} non-negative numbers")
        k, a = feedback.n_positions, feedback.n_actions
        total = w.sum()
        mu = float(w @ r / total) if total > 0 else 0.0
        n_k = np.bincount(feedback.position, weights=w, minlength=k)
        r_k = np.bincount(feedback.position, weights=w * r, minlength=k)
        mu_k = (r_k + self.position_prior * mu) / (n_k + self.position_prior)
        expected = np.bincount(feedback.action, weights=w * mu_k[feedback.position], minlength=a)
        clicks = np.bincount(feedback.action, weights=w * r, minlength=a)
        rho = (clicks + self.item_prior) / (expected + self.item_prior)
        table = np.clip(np.outer(rho, mu_k), 0.0, float(r.max()))
        self.global_mean_ = mu
        self.position_means_ = mu_k
        self.attraction_ = rho
        self.table_ = table
        self._fitted = True
        return self

    def predict(self, feedback: LoggedFeedback) -> np.ndarray:
        """Expected reward of every (action, slot), the same for every row: ``(1, A, K)``.

        Raises:
            NotFittedError: called before ``fit``.
        """
        if not self._fitted:
            raise NotFittedError("PositionBasedRewardModel is not fitted; call fit(feedback) first")
        if self.table_.shape != (feedback.n_actions, feedback.n_positions):
            raise ConfigError(
                f"the reward model was fitted on {self.table_.shape[0]} actions × {self.table_.shape[1]} "
                f"slots; this log has {feedback.n_actions} × {feedback.n_positions}"
            )
        return np.asarray(self.table_[None, :, :])

    def __repr__(self) -> str:
        return f"PositionBasedRewardModel(position_prior={self.position_prior}, item_prior={self.item_prior})"
