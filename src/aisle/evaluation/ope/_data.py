"""Logged bandit feedback in the one shape every off-policy estimator reads.

A :class:`LoggedFeedback` holds, per logged row (one item shown at one slot): the action
(item index), its 0-based position, the reward, and the logging policy's propensity of showing
that item at that position. It is built from the Open Bandit Dataset
(:meth:`LoggedFeedback.from_bandit_log`), from aisle's own impression log
(:meth:`LoggedFeedback.from_impressions`, the frame the simulator and the serving layer write) or
from plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aisle.errors import ConfigError, DataError, SchemaError

if TYPE_CHECKING:
    from aisle.datasets import BanditLog

__all__ = ["LoggedFeedback", "as_feedback"]


def _rows(mask: np.ndarray, shown: int = 5) -> str:
    idx = np.flatnonzero(mask)
    more = ", ..." if idx.size > shown else ""
    return f"{idx.size} rows (0-based rows {', '.join(map(str, idx[:shown]))}{more})"


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """A log of (context, action, position, reward, propensity) rows; arrays are read-only.

    Attributes:
        action: the item shown, an index ``0..n_actions-1`` (shape ``(n_rounds,)``).
        position: the slot it was shown at, 0-based ``0..n_positions-1``.
        reward: the observed reward (a click, a purchase, revenue ...), float.
        pscore: the logging policy's probability of showing that item at that position,
            in ``(0, 1]``.
        n_actions: the size of the action set (items the policy chose from).
        n_positions: the number of slots of a list (1 for a single-slot log).
        context: optional ``(n_rounds, d)`` user context (unused by the default reward model).
        action_ids: optional external item id per action index (for model policies and for
            readable diagnostics).
        users: optional user id per row (for model policies).
        name: a label for reports.
    """

    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    n_positions: int = 1
    context: np.ndarray | None = None
    action_ids: tuple[str, ...] | None = None
    users: np.ndarray | None = None
    name: str = "log"

    def __post_init__(self) -> None:
        n = self.action.shape[0] if self.action.ndim == 1 else -1
        for label, arr in (("action", self.action), ("position", self.position),
                           ("reward", self.reward), ("pscore", self.pscore)):
            if arr.ndim != 1 or arr.shape[0] != n:
                raise DataError(
                    f"{self.name}: '{label}' must be a 1-d array as long as 'action' ({n} rows); "
                    f"got shape {arr.shape}"
                )
        if n == 0:
            raise DataError(f"{self.name}: the log is empty; off-policy evaluation needs logged rows")
        if self.n_actions < 1 or self.n_positions < 1:
            raise DataError(f"{self.name}: n_actions and n_positions must be >= 1")
        bad = (self.action < 0) | (self.action >= self.n_actions)
        if bad.any():
            raise DataError(f"{self.name}: 'action' outside 0..{self.n_actions - 1} in {_rows(bad)}")
        bad = (self.position < 0) | (self.position >= self.n_positions)
        if bad.any():
            raise DataError(
                f"{self.name}: 'position' outside 0..{self.n_positions - 1} (0-based) in {_rows(bad)}"
            )
        bad = ~np.isfinite(self.pscore) | (self.pscore <= 0) | (self.pscore > 1)
        if bad.any():
            raise DataError(
                f"{self.name}: 'pscore' must lie in (0, 1] (the logging propensity of the shown item "
                f"at its position); broken in {_rows(bad)}. Rows with propensity 0 cannot have been logged: "
                "check the propensity column"
            )
        bad = ~np.isfinite(self.reward)
        if bad.any():
            raise DataError(f"{self.name}: 'reward' is not finite in {_rows(bad)}")
        if self.context is not None and (self.context.ndim != 2 or self.context.shape[0] != n):
            raise DataError(f"{self.name}: 'context' must be (n_rounds={n}, d); got {self.context.shape}")
        if self.action_ids is not None and len(self.action_ids) != self.n_actions:
            raise DataError(
                f"{self.name}: {len(self.action_ids)} action_ids for n_actions={self.n_actions}"
            )
        if self.users is not None and self.users.shape != (n,):
            raise DataError(f"{self.name}: 'users' must hold one user id per row ({n})")

    @property
    def n_rounds(self) -> int:
        """The number of logged rows."""
        return int(self.action.shape[0])

    def action_label(self, action: int) -> str:
        """The external id of an action index (the index itself when no ids are known)."""
        return self.action_ids[action] if self.action_ids is not None else str(action)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        action: Sequence[int] | np.ndarray,
        reward: Sequence[float] | np.ndarray,
        pscore: Sequence[float] | np.ndarray,
        position: Sequence[int] | np.ndarray | None = None,
        *,
        n_actions: int | None = None,
        n_positions: int | None = None,
        context: np.ndarray | None = None,
        action_ids: Sequence[str] | None = None,
        users: Sequence[str] | np.ndarray | None = None,
        name: str = "log",
    ) -> LoggedFeedback:
        """Build a log from plain arrays.

        Args:
            action: item index per row.
            reward: reward per row.
            pscore: logging propensity per row.
            position: 0-based slot per row (default: all 0, a single-slot log).
            n_actions: size of the action set (default: the largest logged action + 1).
            n_positions: number of slots (default: the largest logged position + 1).
            context: optional user context, one row per logged row.
            action_ids: optional external id per action index.
            users: optional user id per row.
            name: a label for reports and error messages.

        Returns:
            The validated, read-only log.

        Raises:
            DataError: arrays of different lengths, actions or positions out of range,
                propensities outside ``(0, 1]`` or rewards that are not finite.
        """
        a = np.asarray(action)
        if a.size and not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
            raise DataError(f"{name}: 'action' must hold integer item indices")
        a = a.astype(np.int64)
        pos = np.zeros_like(a) if position is None else np.asarray(position).astype(np.int64)
        return cls(
            action=_readonly(a),
            position=_readonly(pos),
            reward=_readonly(np.asarray(reward, dtype=np.float64)),
            pscore=_readonly(np.asarray(pscore, dtype=np.float64)),
            n_actions=int(n_actions if n_actions is not None else (a.max() + 1 if a.size else 0)),
            n_positions=int(n_positions if n_positions is not None else (pos.max() + 1 if pos.size else 1)),
            context=None if context is None else _readonly(np.asarray(context, dtype=np.float64)),
            action_ids=None if action_ids is None else tuple(str(i) for i in action_ids),
            users=None if users is None else _readonly(np.asarray(users, dtype=object)),
            name=name,
        )

    @classmethod
    def from_bandit_log(cls, log: BanditLog) -> LoggedFeedback:
        """The Open Bandit Dataset log (``aisle.datasets.load_bandit_log``) as feedback.

        Item ids are the OBD item indices as text; there are no user ids (OBD users are hashed
        feature vectors), so model policies need scores passed in directly.

        Args:
            log: a :class:`aisle.datasets.BanditLog`.

        Returns:
            The log, sharing its (read-only) arrays.
        """
        return cls(
            action=log.action,
            position=log.position,
            reward=_readonly(log.reward.astype(np.float64)),
            pscore=log.pscore,
            n_actions=log.n_actions,
            n_positions=log.n_positions,
            context=log.context,
            action_ids=tuple(str(i) for i in range(log.n_actions)),
            users=None,
            name=f"obd/{log.policy}/{log.campaign}",
        )

    @classmethod
    def from_impressions(
        cls,
        impressions: pd.DataFrame,
        *,
        reward: str = "clicked",
        propensity: str = "propensity",
        items: Sequence[str] | None = None,
        position_base: int = 1,
        n_positions: int | None = None,
        name: str = "impressions",
    ) -> LoggedFeedback:
        """aisle's own impression log as feedback (one row per shown item).

        The frame has ``user_id``, ``item_id``, ``position`` and the logging ``propensity`` of
        the item at that position, plus the outcome column named by ``reward`` (the simulator's
        ``PolicyRun.impressions`` has ``clicked`` and ``purchased``).

        Args:
            impressions: the impression frame.
            reward: the outcome column (bool or numeric).
            propensity: the propensity column.
            items: the action set, in action-index order (default: the shown item ids, sorted).
                Pass the full candidate set when the target policy may pick items never shown.
            position_base: the number of the first slot in ``position`` (1 for aisle's logs).
            n_positions: the list length (default: the largest logged position).
            name: a label for reports.

        Returns:
            The log with ``users`` and ``action_ids`` set.

        Raises:
            SchemaError: a required column is missing.
            DataError: a shown item is not in ``items``, or the values are out of range.
        """
        needed = ["user_id", "item_id", "position", propensity, reward]
        missing = [c for c in needed if c not in impressions.columns]
        if missing:
            raise SchemaError(
                f"{name}: the impression log lacks column(s) {missing}; it needs {needed} "
                "(set reward=/propensity= to the names your log uses)"
            )
        shown = impressions["item_id"].astype(str).to_numpy(dtype=object)
        vocab = np.asarray(sorted(set(shown)) if items is None else [str(i) for i in items], dtype=object)
        index = {item: i for i, item in enumerate(vocab)}
        if len(index) != len(vocab):
            raise ConfigError(f"{name}: 'items' holds duplicate ids")
        action = np.fromiter((index.get(i, -1) for i in shown), dtype=np.int64, count=len(shown))
        if (action < 0).any():
            unknown = sorted({str(i) for i in shown[action < 0]})[:5]
            raise DataError(f"{name}: shown items missing from 'items', e.g. {unknown}")
        pos = impressions["position"].to_numpy(dtype=np.int64) - position_base
        return cls.from_arrays(
            action,
            impressions[reward].to_numpy(dtype=np.float64),
            impressions[propensity].to_numpy(dtype=np.float64),
            pos,
            n_actions=len(vocab),
            n_positions=n_positions if n_positions is not None else (int(pos.max()) + 1 if pos.size else 1),
            action_ids=[str(i) for i in vocab],
            users=impressions["user_id"].astype(str).to_numpy(dtype=object),
            name=name,
        )


def as_feedback(log: Any) -> LoggedFeedback:
    """Accept a :class:`LoggedFeedback` or an OBD :class:`~aisle.datasets.BanditLog`.

    Args:
        log: the logged data.

    Returns:
        The log as :class:`LoggedFeedback`.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(log, LoggedFeedback):
        return log
    from aisle.datasets import BanditLog

    if isinstance(log, BanditLog):
        return LoggedFeedback.from_bandit_log(log)
    raise ConfigError(
        f"expected LoggedFeedback or BanditLog, got {type(log).__name__}; build one with "
        "LoggedFeedback.from_arrays / from_impressions / from_bandit_log"
    )
