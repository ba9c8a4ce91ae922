"""Helpers for the data tests: canonical event frames from short row lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aisle.data._schema import EVENT_COLUMNS, pandas_dtype

BASE_TIME = pd.Timestamp("2024-01-01", tz="UTC")

Row = Sequence[Any]  # (user, item, event_type, hours after BASE_TIME[, value])


def events_frame(rows: Sequence[Row], *, unit: str = "h") -> pd.DataFrame:
    """A canonical event frame (every column, canonical dtypes) in the given row order.

    Each row is ``(user_id, item_id, event_type, t)`` or ``(..., t, value)``; ``t`` is a number
    of ``unit`` after 2024-01-01 UTC. ``event_id`` is ``e0, e1, ...`` in row order.
    """
    n = len(rows)
    data: dict[str, Any] = {
        "event_id": [f"e{k}" for k in range(n)],
        "user_id": [str(r[0]) for r in rows],
        "item_id": [str(r[1]) for r in rows],
        "event_type": [str(r[2]) for r in rows],
        "timestamp": [BASE_TIME + pd.Timedelta(float(r[3]), unit=unit) for r in rows],
        "value": [float(r[4]) if len(r) > 4 and r[4] is not None else np.nan for r in rows],
    }
    columns = {}
    for spec in EVENT_COLUMNS:
        dtype = pandas_dtype(spec.kind)
        values = data[spec.name] if spec.name in data else [None] * n
        if spec.kind == "timestamp":
            columns[spec.name] = pd.Series(
                pd.DatetimeIndex(values, tz="UTC") if n else [], dtype=dtype
            )
        else:
            columns[spec.name] = pd.Series(values, dtype=dtype)  # type: ignore[call-overload]
    return pd.DataFrame(columns)


@pytest.fixture(scope="session")
def make_events() -> Callable[..., pd.DataFrame]:
    """The :func:`events_frame` helper, as a fixture (session scope: safe with hypothesis)."""
    return events_frame
