"""Time helpers shared by the feedback builder and the splits."""

from __future__ import annotations

from datetime import date, datetime
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from aisle.errors import ConfigError, DataError, SchemaError

__all__ = ["TimeLike", "timestamps_ns", "to_utc_timestamp"]

TimeLike: TypeAlias = str | datetime | date | pd.Timestamp | np.datetime64


def timestamps_ns(events: pd.DataFrame, what: str = "events") -> npt.NDArray[np.int64]:
    """The ``timestamp`` column as int64 nanoseconds since the epoch, UTC (naive read as UTC).

    Raises:
        SchemaError: the column does not hold datetimes.
        DataError: some timestamps are missing.
    """
    col = events["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        raise SchemaError(
            f"{what}: column 'timestamp' must hold datetimes (datetime64[ns, UTC]), got {col.dtype}"
        )
    idx = pd.DatetimeIndex(col)
    if idx.hasnans:
        raise DataError(
            f"{what}: column 'timestamp' has {int(np.sum(idx.isna()))} missing value(s); "
            "every event needs a time"
        )
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def to_utc_timestamp(value: TimeLike, name: str) -> pd.Timestamp:
    """A parameter given as a time (ISO string, datetime ...) as a UTC timestamp; naive is UTC."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a time (ISO string or datetime), got {value!r}") from exc
    if pd.isna(ts):
        raise ConfigError(f"{name} must be a time, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
