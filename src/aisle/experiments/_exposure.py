"""Exposure logging: which assigned units actually saw the experiment, and when first.

Analysis uses exposed units, not merely assigned ones: a user assigned to the new ranker who
never opened a page with recommendations carries no signal and only dilutes the effect.
:func:`first_exposures` turns exposure events (impressions, page views of the experiment's
surface) into one row per unit with its first exposure; :class:`ExposureLogger` buffers
exposures from a running service into the store.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from aisle.errors import SchemaError

from ._assignment import Assigner
from ._store import ExperimentStore

__all__ = ["ExposureLogger", "exposures_from_events", "first_exposures"]


def first_exposures(
    exposure_events: pd.DataFrame,
    assignments: pd.DataFrame,
    *,
    unit_col: str = "unit_id",
    time_col: str = "timestamp",
) -> pd.DataFrame:
    """One row per assigned unit that was exposed: its arm and first exposure.

    Args:
        exposure_events: one row per exposure, with ``unit_col`` and ``time_col``.
        assignments: ``unit_id`` and ``variant`` (from :func:`assign_variants`); units
            without a variant (holdout, not allocated) are left out.
        unit_col: the unit column of ``exposure_events``.
        time_col: the time column of ``exposure_events``.

    Returns:
        ``unit_id``, ``variant``, ``exposed_at`` (UTC), ``n_exposures``, sorted by time.
    """
    for col in (unit_col, time_col):
        if col not in exposure_events.columns:
            raise SchemaError(
                f"exposure events lack column {col!r}; they have {list(exposure_events.columns)}"
            )
    ev = pd.DataFrame(
        {
            "unit_id": exposure_events[unit_col].astype(str).to_numpy(),
            "t": pd.to_datetime(exposure_events[time_col], utc=True).to_numpy(),
        }
    )
    agg = (
        ev.groupby("unit_id", sort=False)
        .agg(exposed_at=("t", "min"), n_exposures=("t", "size"))
        .reset_index()
    )
    arms = assignments.loc[assignments["variant"].notna(), ["unit_id", "variant"]].astype(str)
    out = arms.merge(agg, on="unit_id", how="inner")
    out["exposed_at"] = pd.to_datetime(out["exposed_at"], utc=True)
    out["n_exposures"] = out["n_exposures"].astype("int64")
    return out.sort_values(["exposed_at", "unit_id"], kind="stable").reset_index(drop=True)


def exposures_from_events(
    events: pd.DataFrame,
    assignments: pd.DataFrame,
    *,
    unit: str = "user",
    page: str | None = "recommendations",
    event_type: str = "view",
) -> pd.DataFrame:
    """First exposures from an event log: impressions on the experiment's surface.

    Args:
        events: the canonical event log.
        assignments: ``unit_id``, ``variant``.
        unit: ``user`` or ``session`` (the column that holds the unit id).
        page: the page of the experiment's surface (``None``: any page).
        event_type: the event type that is an exposure (an impression: ``view``).
    """
    col = {"user": "user_id", "session": "session_id"}.get(unit)
    if col is None:
        raise SchemaError(f"exposures_from_events handles user and session units, got {unit!r}")
    mask = events["event_type"].astype(str) == event_type
    if page is not None and "page" in events.columns:
        mask &= events["page"].astype(str) == page
    return first_exposures(events.loc[mask], assignments, unit_col=col)


class ExposureLogger:
    """Buffers exposures from a running service and writes them to the store.

    Args:
        store: the experiment store.
        experiment: the experiment's name.
        assigner: resolves a unit's arm when :meth:`log` is not told it.
        buffer_size: rows kept before an automatic flush.
    """

    def __init__(
        self,
        store: ExperimentStore,
        experiment: str,
        *,
        assigner: Assigner | None = None,
        buffer_size: int = 10_000,
    ) -> None:
        self.store = store
        self.experiment = experiment
        self.assigner = assigner
        self.buffer_size = buffer_size
        self._rows: list[tuple[str, str, datetime]] = []

    def log(
        self, unit_id: str, *, at: datetime | None = None, variant: str | None = None
    ) -> str | None:
        """Record that ``unit_id`` was exposed; returns its arm (``None``: not in the experiment)."""
        if variant is None:
            if self.assigner is None:
                self.assigner = Assigner(
                    [self.store.get_experiment(self.experiment)], self.store.get_holdout()
                )
            variant = self.assigner.variant_for(unit_id, self.experiment).variant
        if variant is None:
            return None
        self._rows.append((str(unit_id), variant, at or datetime.now(UTC)))
        if len(self._rows) >= self.buffer_size:
            self.flush()
        return variant

    def flush(self) -> int:
        """Write the buffered exposures; returns how many."""
        if not self._rows:
            return 0
        frame = pd.DataFrame(self._rows, columns=["unit_id", "variant", "exposed_at"])
        self._rows = []
        agg = frame.groupby(["unit_id", "variant"], as_index=False).agg(
            exposed_at=("exposed_at", "min"), n_exposures=("exposed_at", "size")
        )
        return self.store.log_exposures(self.experiment, agg)

    def __enter__(self) -> ExposureLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
