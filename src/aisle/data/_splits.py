"""Train / validation / test splits of an event log, without look-ahead unless asked for.

An offline score is only worth something if the model never saw the future it is scored on.
Each function here takes canonical events and returns a :class:`Split`; every part keeps the
input's columns, dtypes and index labels (so ``pd.concat(split.parts().values()).sort_index()``
gives the input back), rows keep their input order, and the same inputs and ``seed`` give the
same split.

=================  ==========================================================================
name               what it guarantees
=================  ==========================================================================
``temporal``       one global cutoff T: every train event is before T, every test event at or
                   after it. Validation takes a second, earlier cutoff inside the train period.
``leave-last``     per user, the last ``k`` events (by time, ties by input order; or by input
                   order alone) are test and the ``validation_k`` before them validation.
                   Per-user only: another user's train events may be later than your test.
``user-holdout``   "strong generalisation": held-out users are absent from train; each one's
                   earliest events are given at inference (``fold_in``), the rest are test.
``random``         events drawn at random. It lets the model see the future and exists only to
                   reproduce papers that used it.
``fixed``          a published train/test pair taken as is; validation by time from train.
=================  ==========================================================================

Validation is always carved out of the training part so that it never sees test-period data and
the data a validation model trains on never sees validation-period data (except for ``random``).
Bad parameters raise :class:`~aisle.errors.ConfigError` naming the parameter; a split that would
leave a part empty raises :class:`~aisle.errors.DataError`.

These functions work on the timestamps they are given. When a dataset's timestamps only encode
order (``Dataset.has_timestamps`` is false) a global temporal cutoff means nothing; refusing it is
the caller's job.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from aisle.data._time import TimeLike, timestamps_ns, to_utc_timestamp
from aisle.errors import ConfigError, DataError, SchemaError

__all__ = [
    "SPLITS",
    "Split",
    "fixed_split",
    "leave_last_k",
    "random_split",
    "split_by_name",
    "temporal_split",
    "user_holdout",
]


_PART_ORDER = ("train", "validation_fold_in", "validation", "fold_in", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """The parts of one split of an event log, and how it was made.

    Attributes:
        train: events a model is fitted on (when validation exists: fitted on for tuning).
        test: events held out for the final evaluation.
        validation: events held out for tuning, carved from the training side, or ``None``.
        fold_in: events of test users given to the model at inference (``user-holdout``), or
            ``None``.
        validation_fold_in: the same for validation users, or ``None``.
        name: the split's registry name (``"temporal"``, ``"leave-last"`` ...).
        params: the parameters used, resolved (chosen cutoffs as ISO strings, seed ...).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    validation: pd.DataFrame | None = None
    fold_in: pd.DataFrame | None = None
    validation_fold_in: pd.DataFrame | None = None
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, pd.DataFrame]:
        """The parts that exist, in time order: train, validation fold-in, validation, fold-in,
        test."""
        out: dict[str, pd.DataFrame] = {}
        for name in _PART_ORDER:
            part = getattr(self, name)
            if part is not None:
                out[name] = part
        return out

    def train_with_validation(self) -> pd.DataFrame:
        """Train plus the validation parts, in input order: what the final model is fitted on
        once tuning is done."""
        pieces = [self.train]
        pieces += [p for p in (self.validation_fold_in, self.validation) if p is not None]
        if len(pieces) == 1:
            return self.train
        return pd.concat(pieces).sort_index(kind="stable")

    def describe(self) -> pd.DataFrame:
        """Counts and time range of each part.

        Returns:
            One row per part (index: part name) with ``events``, ``users``, ``items`` (distinct
            counts, when the columns exist), ``share`` (of all events) and ``first``/``last``
            timestamps.
        """
        parts = self.parts()
        total = sum(len(p) for p in parts.values()) or 1
        rows = []
        for name, part in parts.items():
            ts = part["timestamp"] if "timestamp" in part.columns else None
            rows.append(
                {
                    "part": name,
                    "events": len(part),
                    "users": int(part["user_id"].nunique()) if "user_id" in part else None,
                    "items": int(part["item_id"].nunique()) if "item_id" in part else None,
                    "share": len(part) / total,
                    "first": ts.min() if ts is not None and len(part) else pd.NaT,
                    "last": ts.max() if ts is not None and len(part) else pd.NaT,
                }
            )
        return pd.DataFrame(rows).set_index("part")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.parts().items())
        return f"Split(name={self.name!r}, {sizes})"


# --------------------------------------------------------------------------------------------
# checks and small helpers
# --------------------------------------------------------------------------------------------


def _check_events(events: pd.DataFrame, columns: tuple[str, ...], what: str = "events") -> None:
    if not isinstance(events, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in columns if c not in events.columns]
    if missing:
        raise SchemaError(
            f"{what} lack the column(s) {', '.join(missing)} needed for this split "
            "(canonical events come from aisle.data.conform_events)"
        )
    if len(events) == 0:
        raise DataError(f"{what} are empty: there is nothing to split")


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 0.0 < v < 1.0):
        raise ConfigError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return v


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _ns_of(ts: pd.Timestamp) -> int:
    return int(ts.as_unit("ns").value)


def _pick_cutoff(ts: npt.NDArray[np.int64], fraction: float, what: str) -> int:
    """The timestamp T (one of ``ts``) for which the share of events at or after T is closest
    to ``fraction`` while both sides keep at least one event."""
    values, counts = np.unique(ts, return_counts=True)
    if len(values) < 2:
        raise DataError(
            f"cannot cut {what} in time: all {len(ts)} events share one timestamp "
            f"({_iso(int(values[0])) if len(values) else 'none'})"
        )
    at_or_after = np.cumsum(counts[::-1])[::-1] / len(ts)
    best = 1 + int(np.argmin(np.abs(at_or_after[1:] - fraction)))
    return int(values[best])


def _pieces(
    events: pd.DataFrame, labels: npt.NDArray[np.int8], names: tuple[str, ...]
) -> list[pd.DataFrame]:
    return [events.iloc[np.flatnonzero(labels == k)] for k in range(len(names))]


def _nonempty(parts: Mapping[str, pd.DataFrame | None], hint: str) -> None:
    for name, part in parts.items():
        if part is not None and len(part) == 0:
            raise DataError(f"the split leaves the {name} part empty; {hint}")


def _rank_in_user(
    user_codes: npt.NDArray[np.int64], order: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Position of each event within its user (0 = first in ``order``) and its user's size."""
    n = len(user_codes)
    sizes = np.bincount(user_codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    sorted_users = user_codes[order]
    rank[order] = np.arange(n, dtype=np.int64) - starts[sorted_users]
    return rank, sizes[user_codes]


def _user_order(
    events: pd.DataFrame, *, by_time: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """User codes, the order that sorts events by user, then time, then input position, and
    the user ids (by code)."""
    codes, uniques = pd.factorize(events["user_id"])
    codes = np.asarray(codes, dtype=np.int64)
    if (codes < 0).any():
        raise DataError(
            f"column 'user_id' has {int((codes < 0).sum())} missing value(s); every event needs a user"
        )
    position = np.arange(len(events))
    if by_time:
        order = np.lexsort((position, timestamps_ns(events), codes))
    else:
        order = np.lexsort((position, codes))
    return codes, np.asarray(order, dtype=np.int64), np.asarray(uniques, dtype=object)


# --------------------------------------------------------------------------------------------
# the splits
# --------------------------------------------------------------------------------------------


def _split_new_users(
    part: pd.DataFrame, known: npt.NDArray[Any], fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fold-in history, rest): the earliest ``fraction`` of each unknown user's events in ``part``."""
    is_new = ~np.isin(part["user_id"].to_numpy(dtype=object), np.asarray(known, dtype=object))
    order = np.argsort(timestamps_ns(part), kind="stable")
    ordered = part.iloc[order]
    rank = ordered.groupby("user_id", sort=False).cumcount().to_numpy()
    size = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    history = is_new[order] & (rank < np.floor(size * fraction))
    return ordered[history].sort_index(kind="stable"), ordered[~history].sort_index(kind="stable")


def temporal_split(
    events: pd.DataFrame,
    *,
    cutoff: TimeLike | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float | None = None,
    validation_cutoff: TimeLike | None = None,
    new_user_fold_in: float | None = None,
) -> Split:
    """One global time cutoff: train strictly before it, test at or after it.

    Users first seen after the cutoff have no training history. By default they stay in test
    (and evaluation skips them); with ``new_user_fold_in=f`` the earliest share ``f`` of each
    such user's test-period events becomes that user's ``fold_in`` history (given to the model
    at inference, as a live system would see it) and the rest stays in test. Validation gets the
    same treatment (``validation_fold_in``) for users first seen in the validation period.
    Nothing after a cutoff reaches the part before it either way.

    Args:
        events: canonical events (``timestamp`` needed).
        cutoff: the cutoff T (a naive time is read as UTC). By default the event timestamp that
            puts the share of events closest to ``test_fraction`` at or after it.
        test_fraction: the share of events wanted in test when ``cutoff`` is not given.
        validation_fraction: carve validation out of the train period: the share of the train
            events at or after a second cutoff ``T_v < T``; ``None`` for no validation.
        validation_cutoff: give ``T_v`` directly instead (must be before T).
        new_user_fold_in: the share of a new user's test-period events used as fold-in history
            (strictly between 0 and 1), or ``None`` to leave new users wholly in test.

    Returns:
        A :class:`Split` with ``train`` (< T_v, or < T), ``validation`` ([T_v, T)), ``test``
        (>= T) and, with ``new_user_fold_in``, ``fold_in``.

    Raises:
        ConfigError: a fraction is not strictly between 0 and 1, or a cutoff is not a time or
            lies outside the data.
        DataError: a part would be empty (all events on one side of a cutoff).
    """
    _check_events(events, ("timestamp",))
    test_fraction = _fraction("test_fraction", test_fraction)
    if validation_fraction is not None:
        validation_fraction = _fraction("validation_fraction", validation_fraction)
    ts = timestamps_ns(events)
    if cutoff is None:
        t = _pick_cutoff(ts, test_fraction, "the events")
    else:
        t = _ns_of(to_utc_timestamp(cutoff, "cutoff"))
    train_side = ts < t
    if not train_side.any() or train_side.all():
        raise DataError(
            f"cutoff {_iso(t)} leaves {'no' if not train_side.any() else 'all'} events in train; "
            f"the events run from {_iso(int(ts.min()))} to {_iso(int(ts.max()))}"
        )
    labels = np.where(train_side, 0, 2).astype(np.int8)
    t_v: int | None = None
    if validation_cutoff is not None:
        t_v = _ns_of(to_utc_timestamp(validation_cutoff, "validation_cutoff"))
        if t_v >= t:
            raise ConfigError(
                f"validation_cutoff {_iso(t_v)} must be before the test cutoff {_iso(t)}"
            )
    elif validation_fraction is not None:
        t_v = _pick_cutoff(ts[train_side], validation_fraction, "the training period")
    if t_v is not None:
        labels[train_side & (ts >= t_v)] = 1
    train, validation, test = _pieces(events, labels, ("train", "validation", "test"))
    _nonempty(
        {"train": train, "validation": validation if t_v is not None else None, "test": test},
        "move the cutoff(s) or change the fractions",
    )
    fold_in = validation_fold_in = None
    if new_user_fold_in is not None:
        f = _fraction("new_user_fold_in", new_user_fold_in)
        user_ids = events["user_id"].to_numpy(dtype=object)
        fold_in, test = _split_new_users(test, pd.unique(user_ids[labels < 2]), f)
        if t_v is not None:
            validation_fold_in, validation = _split_new_users(validation, pd.unique(user_ids[labels == 0]), f)
    return Split(
        train=train,
        test=test,
        validation=validation if t_v is not None else None,
        fold_in=fold_in,
        validation_fold_in=validation_fold_in,
        name="temporal",
        params={
            "cutoff": _iso(t),
            "test_fraction": test_fraction if cutoff is None else None,
            "validation_cutoff": _iso(t_v) if t_v is not None else None,
            "validation_fraction": validation_fraction,
            "new_user_fold_in": new_user_fold_in,
        },
    )


def leave_last_k(
    events: pd.DataFrame,
    k: int = 1,
    *,
    by: Literal["time", "sequence"] = "time",
    validation_k: int = 0,
    min_train: int = 1,
) -> Split:
    """Per user, the last ``k`` events are test and the ``validation_k`` before them validation.

    A user's events are ordered by timestamp with ties kept in input order (``by="time"``), or by
    input order alone (``by="sequence"``, for session and sequence data). A user gets test events
    only with at least ``min_train + k`` events, and validation events only with at least
    ``min_train + k + validation_k``; everyone else stays wholly in train. Counts are events
    (rows): filter the frame first (to purchases, say) to leave out something else.

    The guarantee is per user only: one user's test events may precede another user's train
    events, which lets models learn from the global future (use ``temporal`` to rule it out).

    Args:
        events: canonical events (``user_id``; ``timestamp`` for ``by="time"``).
        k: events per user held out for test (>= 1).
        by: ``"time"`` or ``"sequence"``.
        validation_k: events per user held out for validation, just before the test ones.
        min_train: events per user that must stay in train (>= 0).

    Returns:
        A :class:`Split` with ``train``, ``validation`` (``None`` when ``validation_k`` is 0) and
        ``test``.

    Raises:
        ConfigError: ``k < 1``, ``validation_k < 0``, ``min_train < 0`` or an unknown ``by``.
        DataError: no user has enough events for a test event.
    """
    k = _count("k", k, 1)
    validation_k = _count("validation_k", validation_k, 0)
    min_train = _count("min_train", min_train, 0)
    if by not in ("time", "sequence"):
        raise ConfigError(f"by must be 'time' or 'sequence', got {by!r}")
    _check_events(events, ("user_id", "timestamp") if by == "time" else ("user_id",))
    codes, order, _ = _user_order(events, by_time=by == "time")
    rank, size = _rank_in_user(codes, order)
    from_end = size - 1 - rank  # 0 = the user's last event
    labels = np.zeros(len(events), dtype=np.int8)
    labels[(size >= min_train + k) & (from_end < k)] = 2
    if validation_k:
        has_val = size >= min_train + k + validation_k
        labels[has_val & (from_end >= k) & (from_end < k + validation_k)] = 1
    train, validation, test = _pieces(events, labels, ("train", "validation", "test"))
    _nonempty(
        {"test": test, "validation": validation if validation_k else None},
        f"no user has enough events (min_train + k{' + validation_k' if validation_k else ''})",
    )
    return Split(
        train=train,
        test=test,
        validation=validation if validation_k else None,
        name="leave-last",
        params={"k": k, "by": by, "validation_k": validation_k, "min_train": min_train},
    )


def user_holdout(
    events: pd.DataFrame,
    *,
    test_user_fraction: float = 0.2,
    fold_in_fraction: float = 0.8,
    seed: int = 0,
    validation_user_fraction: float | None = None,
) -> Split:
    """Strong generalisation: held-out users are absent from train.

    A share of the users, drawn with ``seed`` (from the sorted user ids, so input order does not
    matter), is held out. Each held-out user's events, ordered by time (ties in input order), are
    split: the earliest ``floor(fold_in_fraction * n)`` go to ``fold_in`` (the history a model
    gets at inference) and the rest, at least one, to ``test``. Validation users, drawn the same
    way and disjoint from test users, are split into ``validation_fold_in`` and ``validation``.

    The guarantee is per user; train users' events may be later than a test user's.

    Args:
        events: canonical events (``user_id``, ``timestamp``).
        test_user_fraction: share of users held out for test.
        fold_in_fraction: share of each held-out user's events given as history.
        seed: the random seed of the user draw.
        validation_user_fraction: share of users held out for validation, or ``None``.

    Returns:
        A :class:`Split` with ``train``, ``fold_in``, ``test`` and, with validation users,
        ``validation_fold_in`` and ``validation``.

    Raises:
        ConfigError: a fraction is not strictly between 0 and 1, or the held-out shares add up
            to 1 or more.
        DataError: there are too few users to hold any out and keep one in train.
    """
    test_user_fraction = _fraction("test_user_fraction", test_user_fraction)
    fold_in_fraction = _fraction("fold_in_fraction", fold_in_fraction)
    if validation_user_fraction is not None:
        validation_user_fraction = _fraction("validation_user_fraction", validation_user_fraction)
        if test_user_fraction + validation_user_fraction >= 1.0:
            raise ConfigError(
                "test_user_fraction + validation_user_fraction must be below 1, got "
                f"{test_user_fraction} + {validation_user_fraction}"
            )
    seed = _count("seed", seed, 0)
    _check_events(events, ("user_id", "timestamp"))
    codes, order, names = _user_order(events, by_time=True)
    n_users = len(names)

    def n_of(fraction: float) -> int:
        return max(1, math.floor(fraction * n_users + 0.5))

    n_test = n_of(test_user_fraction)
    n_val = n_of(validation_user_fraction) if validation_user_fraction is not None else 0
    if n_test + n_val > n_users - 1:
        raise DataError(
            f"{n_users} user(s) are too few to hold out {n_test} test and {n_val} validation "
            "user(s) and keep at least one in train"
        )
    # draw over the sorted ids so that the input order does not change the draw
    by_name = np.argsort(names.astype(str), kind="stable")
    drawn = by_name[np.random.default_rng(seed).permutation(n_users)]
    role = np.zeros(n_users, dtype=np.int8)  # 0 train, 1 validation, 2 test
    role[drawn[:n_test]] = 2
    role[drawn[n_test : n_test + n_val]] = 1

    rank, size = _rank_in_user(codes, order)
    n_fold = np.minimum(np.floor(fold_in_fraction * size).astype(np.int64), size - 1)
    history = rank < n_fold
    user_role = role[codes]
    # labels: 0 train, 1 validation fold-in, 2 validation, 3 fold-in, 4 test
    labels = np.zeros(len(events), dtype=np.int8)
    labels[(user_role == 1) & history] = 1
    labels[(user_role == 1) & ~history] = 2
    labels[(user_role == 2) & history] = 3
    labels[(user_role == 2) & ~history] = 4
    train, val_fold, validation, fold, test = _pieces(events, labels, _PART_ORDER)
    has_val = validation_user_fraction is not None
    return Split(
        train=train,
        test=test,
        validation=validation if has_val else None,
        fold_in=fold,
        validation_fold_in=val_fold if has_val else None,
        name="user-holdout",
        params={
            "test_user_fraction": test_user_fraction,
            "fold_in_fraction": fold_in_fraction,
            "seed": seed,
            "validation_user_fraction": validation_user_fraction,
            "n_test_users": n_test,
            "n_validation_users": n_val,
        },
    )


def random_split(
    events: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    validation_fraction: float | None = None,
) -> Split:
    """Events drawn at random into test (and validation). **This split allows look-ahead.**

    Train holds events later than test events, so a model learns from the future it is scored
    on; scores are optimistic and do not predict what a shop will see. Use it only to compare
    with published results that used it; prefer ``temporal``, ``leave-last`` or
    ``user-holdout``.

    Args:
        events: canonical events.
        test_fraction: share of the events drawn into test.
        seed: the random seed.
        validation_fraction: share of the remaining (train) events drawn into validation.

    Returns:
        A :class:`Split` (``params["look_ahead"]`` is ``True``).

    Raises:
        ConfigError: a fraction is not strictly between 0 and 1.
        DataError: fewer events than parts.
    """
    test_fraction = _fraction("test_fraction", test_fraction)
    if validation_fraction is not None:
        validation_fraction = _fraction("validation_fraction", validation_fraction)
    seed = _count("seed", seed, 0)
    _check_events(events, ())
    n = len(events)
    n_parts = 3 if validation_fraction is not None else 2
    if n < n_parts:
        raise DataError(f"{n} event(s) are too few for {n_parts} non-empty parts")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = min(max(1, math.floor(test_fraction * n + 0.5)), n - n_parts + 1)
    labels = np.zeros(n, dtype=np.int8)
    labels[perm[:n_test]] = 2
    if validation_fraction is not None:
        rest = perm[n_test:]
        n_val = min(max(1, math.floor(validation_fraction * len(rest) + 0.5)), len(rest) - 1)
        labels[rest[:n_val]] = 1
    train, validation, test = _pieces(events, labels, ("train", "validation", "test"))
    return Split(
        train=train,
        test=test,
        validation=validation if validation_fraction is not None else None,
        name="random",
        params={
            "test_fraction": test_fraction,
            "seed": seed,
            "validation_fraction": validation_fraction,
            "look_ahead": True,
        },
    )


def fixed_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    validation_fraction: float | None = None,
) -> Split:
    """A published train/test pair, taken as is; validation optionally carved from train by
    time.

    Args:
        train: the published training events.
        test: the published test events.
        validation_fraction: share of the train events at or after a cutoff in the train period
            that go to validation (so the validation model never sees validation-period data).

    Returns:
        A :class:`Split`; ``params["look_ahead"]`` tells whether some train event is at or after
        the first test event (many published splits are random).

    Raises:
        ConfigError: ``validation_fraction`` is not strictly between 0 and 1.
        SchemaError: the two tables have different columns.
        DataError: a table is empty.
    """
    if validation_fraction is not None:
        validation_fraction = _fraction("validation_fraction", validation_fraction)
    _check_events(train, (), "train")
    _check_events(test, (), "test")
    if list(train.columns) != list(test.columns):
        raise SchemaError(
            "train and test have different columns: "
            f"{sorted(set(train.columns) ^ set(test.columns)) or 'same names, other order'}"
        )
    look_ahead: bool | None = None
    validation: pd.DataFrame | None = None
    t_v: int | None = None
    if "timestamp" in train.columns:
        ts_train = timestamps_ns(train, "train")
        ts_test = timestamps_ns(test, "test")
        look_ahead = bool(ts_train.max() >= ts_test.min())
        if validation_fraction is not None:
            t_v = _pick_cutoff(ts_train, validation_fraction, "the train events")
            later = ts_train >= t_v
            validation = train.iloc[np.flatnonzero(later)]
            train = train.iloc[np.flatnonzero(~later)]
    elif validation_fraction is not None:
        raise SchemaError("train lacks 'timestamp': validation cannot be carved out by time")
    return Split(
        train=train,
        test=test,
        validation=validation,
        name="fixed",
        params={
            "validation_fraction": validation_fraction,
            "validation_cutoff": _iso(t_v) if t_v is not None else None,
            "look_ahead": look_ahead,
        },
    )


#: The splits by name, for configs and the command line.
SPLITS: Mapping[str, Callable[..., Split]] = {
    "temporal": temporal_split,
    "leave-last": leave_last_k,
    "user-holdout": user_holdout,
    "random": random_split,
    "fixed": fixed_split,
}


def split_by_name(name: str, events: pd.DataFrame, **params: Any) -> Split:
    """Run the split registered under ``name``.

    Args:
        name: one of ``temporal``, ``leave-last``, ``user-holdout``, ``random``, ``fixed``.
        events: the events to split (for ``fixed``: the published train table, with the test
            table passed as ``test=``).
        **params: the keyword parameters of that split.

    Returns:
        The :class:`Split`.

    Raises:
        ConfigError: the name is unknown (the message lists the valid names and the closest
            match) or a parameter does not belong to that split.
    """
    try:
        func = SPLITS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(SPLITS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown split {name!r}{hint}; valid names: {', '.join(SPLITS)}"
        ) from None
    accepted = [p for p in inspect.signature(func).parameters if p not in ("events", "train")]
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise ConfigError(
            f"split {name!r} takes no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(accepted)}"
        )
    if name == "fixed":
        if "test" not in params:
            raise ConfigError("split 'fixed' needs the published test table as test=")
        return fixed_split(events, **params)
    return func(events, **params)
