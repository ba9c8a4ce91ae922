"""The Open Bandit Dataset as logged bandit feedback, for off-policy evaluation.

:func:`load_bandit_log` reads one ``{policy}/{campaign}`` log of the OBD sample into a
:class:`BanditLog` (actions, 0-based positions, clicks, the logged propensities, user context and
item features), the layout ``obp.dataset.OpenBanditDataset.obtain_batch_bandit_feedback``
returns. :func:`load_bts_prior` reads the Beta prior of the production Thompson Sampling policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import yaml

from aisle.data import SourceFile
from aisle.datasets._registry import checked_source, dataset_folder, get_dataset_info
from aisle.errors import ConfigError, DataError

__all__ = ["CAMPAIGNS", "POLICIES", "BanditLog", "load_bandit_log", "load_bts_prior"]

#: The campaigns (pages) of the OBD logs.
CAMPAIGNS: Final[tuple[str, ...]] = ("all", "men", "women")
#: The logging policies: uniform random and Bernoulli Thompson Sampling.
POLICIES: Final[tuple[str, ...]] = ("random", "bts")
#: The number of items (arms) per campaign.
N_ACTIONS: Final[dict[str, int]] = {"all": 80, "men": 34, "women": 46}
#: Every impression shows 3 items; ``position`` is 1..3 in the files.
N_POSITIONS: Final[int] = 3

USER_FEATURES: Final[tuple[str, ...]] = tuple(f"user_feature_{i}" for i in range(4))


def _check(campaign: str, policy: str | None = None) -> None:
    if campaign not in CAMPAIGNS:
        raise ConfigError(f"OBD campaign must be one of {', '.join(CAMPAIGNS)}; got {campaign!r}")
    if policy is not None and policy not in POLICIES:
        raise ConfigError(f"OBD policy must be one of {', '.join(POLICIES)}; got {policy!r}")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class BanditLog:
    """One logged bandit-feedback table of the Open Bandit Dataset (arrays are read-only).

    Attributes:
        n_rounds: the number of logged impressions (rows).
        n_actions: the number of items the policy chose from.
        n_positions: the number of slots (3).
        action: the item shown, as an int index ``0..n_actions-1`` (shape ``(n_rounds,)``).
        position: the slot it was shown at, 0-based (the files say 1..3).
        reward: the click, 0 or 1.
        pscore: the logging policy's propensity of showing that item at that position.
        context: the user context, float: a one-hot encoding of the 4 hashed user features
            followed by the ``n_actions`` user-item affinity columns (``context_names``).
        action_context: the item features, float, shape ``(n_actions, 4)``: the 3 hashed
            categorical features as integer codes (sorted by hash) then the numeric
            ``item_feature_0``, as obp lays them out (``action_context_names``).
        timestamp: when each impression was logged, ``datetime64[ns]`` in UTC.
        campaign: ``all``, ``men`` or ``women``.
        policy: ``random`` or ``bts``.
        context_names: the column names of ``context``.
        action_context_names: the column names of ``action_context``.
        sources: the files read, with sizes and sha256.
    """

    n_rounds: int
    n_actions: int
    n_positions: int
    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    context: np.ndarray
    action_context: np.ndarray
    timestamp: np.ndarray
    campaign: str
    policy: str
    context_names: tuple[str, ...] = ()
    action_context_names: tuple[str, ...] = ()
    sources: tuple[SourceFile, ...] = field(default_factory=tuple)

    @property
    def n_clicks(self) -> int:
        """The number of clicks in the log."""
        return int(self.reward.sum())

    def as_bandit_feedback(self) -> dict[str, Any]:
        """The log as obp's ``bandit_feedback`` dict (``n_rounds``, ``action``, ``pscore`` ...).

        Returns:
            A dict with the keys obp's off-policy estimators read.
        """
        return {
            "n_rounds": self.n_rounds,
            "n_actions": self.n_actions,
            "action": self.action,
            "position": self.position,
            "reward": self.reward,
            "pscore": self.pscore,
            "context": self.context,
            "action_context": self.action_context,
        }

    def __repr__(self) -> str:
        return (
            f"BanditLog(policy={self.policy!r}, campaign={self.campaign!r}, n_rounds={self.n_rounds}, "
            f"n_actions={self.n_actions}, n_positions={self.n_positions}, n_clicks={self.n_clicks})"
        )


def read_log_frame(
    campaign: str, policy: str, data_home: str | Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[SourceFile]]:
    """Read one OBD log and its item table as frames, sorted by time.

    Args:
        campaign: ``all``, ``men`` or ``women``.
        policy: ``random`` or ``bts``.
        data_home: the data home (default: the settings).

    Returns:
        ``(log, item_context, sources)``: the log with a parsed UTC ``timestamp``, its row index
        in the file as ``row``; the item table indexed 0..n_actions-1.
    """
    _check(campaign, policy)
    info = get_dataset_info("obd")
    log_path = f"{policy}/{campaign}/{campaign}.csv"
    items_path = f"{policy}/{campaign}/item_context.csv"
    folder = dataset_folder(info, data_home, require=(log_path, items_path))
    log = pd.read_csv(folder / log_path, index_col=0)
    log.index.name = "row"
    log = log.reset_index()
    log["timestamp"] = pd.to_datetime(log["timestamp"], format="ISO8601", utc=True)
    log = log.sort_values("timestamp", kind="stable").reset_index(drop=True)
    items = pd.read_csv(folder / items_path, index_col=0)
    if not np.array_equal(items["item_id"].to_numpy(), np.arange(len(items))):
        raise DataError(f"{folder / items_path}: item_id must run 0..n-1 in order")
    expected = N_ACTIONS[campaign]
    if len(items) != expected:
        raise DataError(f"{folder / items_path}: {len(items)} items, expected {expected} for {campaign!r}")
    bad = (log["item_id"] < 0) | (log["item_id"] >= expected)
    if bad.any():
        raise DataError(f"{folder / log_path}: item_id outside 0..{expected - 1} in {int(bad.sum())} rows")
    sources = [checked_source(info, folder, log_path), checked_source(info, folder, items_path)]
    return log, items, sources


def load_bandit_log(
    campaign: str = "all", policy: str = "random", data_home: str | Path | None = None
) -> BanditLog:
    """Read one OBD log as bandit feedback.

    Args:
        campaign: ``all`` (80 items), ``men`` (34) or ``women`` (46).
        policy: the logging policy: ``random`` (uniform) or ``bts`` (Bernoulli Thompson Sampling).
        data_home: the data home (default: ``AISLE_DATA_HOME``).

    Returns:
        The :class:`BanditLog`, sorted by time.

    Raises:
        ConfigError: an unknown campaign or policy.
        DatasetNotFoundError: the files are not under the data home.

    Example:
        >>> log = load_bandit_log("men", "random")  # doctest: +SKIP
        >>> log.n_rounds, log.n_actions, float(log.pscore[0]) == 1 / 34  # doctest: +SKIP
        (10000, 34, True)
    """
    log, items, sources = read_log_frame(campaign, policy, data_home)
    position = np.unique(log["position"].to_numpy(), return_inverse=True)[1].astype(np.int64)
    user = log[list(USER_FEATURES)].astype("str")
    onehot = pd.get_dummies(user, prefix=list(USER_FEATURES), prefix_sep="=", dtype=float)
    affinity_cols = [c for c in log.columns if c.startswith("user-item_affinity_")]
    context = np.hstack([onehot.to_numpy(dtype=float), log[affinity_cols].to_numpy(dtype=float)])
    cat_cols = [c for c in items.columns if c.startswith("item_feature_") and c != "item_feature_0"]
    codes = np.column_stack([pd.factorize(items[c], sort=True)[0] for c in cat_cols]).astype(float)
    action_context = np.hstack([codes, items[["item_feature_0"]].to_numpy(dtype=float)])
    ts = log["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return BanditLog(
        n_rounds=len(log),
        n_actions=len(items),
        n_positions=N_POSITIONS,
        action=_readonly(log["item_id"].to_numpy(dtype=np.int64)),
        position=_readonly(position),
        reward=_readonly(log["click"].to_numpy(dtype=np.int64)),
        pscore=_readonly(log["propensity_score"].to_numpy(dtype=float)),
        context=_readonly(context),
        action_context=_readonly(action_context),
        timestamp=_readonly(ts),
        campaign=campaign,
        policy=policy,
        context_names=(*map(str, onehot.columns), *affinity_cols),
        action_context_names=(*cat_cols, "item_feature_0"),
        sources=tuple(sources),
    )


def load_bts_prior(
    campaign: str = "all", data_home: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The Beta prior of ZOZOTOWN's production Bernoulli Thompson Sampling policy.

    Args:
        campaign: ``all``, ``men`` or ``women``.
        data_home: the data home (default: ``AISLE_DATA_HOME``).

    Returns:
        ``(alpha, beta)``: float arrays with one value per item (``n_actions`` long).

    Raises:
        ConfigError: an unknown campaign.
        DataError: ``prior_bts.yaml`` lacks the campaign or has the wrong number of items.
    """
    _check(campaign)
    info = get_dataset_info("obd")
    folder = dataset_folder(info, data_home, require=("prior_bts.yaml",))
    path = folder / "prior_bts.yaml"
    with path.open("r", encoding="utf-8") as fh:
        prior = yaml.safe_load(fh)
    try:
        alpha = np.asarray(prior[campaign]["alpha"], dtype=float)
        beta = np.asarray(prior[campaign]["beta"], dtype=float)
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: no alpha/beta for campaign {campaign!r}") from exc
    n = N_ACTIONS[campaign]
    if alpha.shape != (n,) or beta.shape != (n,):
        raise DataError(f"{path}: {campaign!r} needs {n} alpha and beta values; got {alpha.size}/{beta.size}")
    return alpha, beta
