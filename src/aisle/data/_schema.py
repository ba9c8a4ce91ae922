"""The canonical tables of aisle: the event log, the catalog and the users table.

Every loader, the simulator and the validator produce these columns with these dtypes, so the
rest of the package can rely on them:

events (sorted by ``timestamp``; ties keep source order)
    ``event_id`` str, ``user_id`` str, ``item_id`` str, ``event_type`` str (one of
    :data:`EVENT_TYPES`), ``timestamp`` datetime64[ns, UTC], and the optional ``session_id`` str,
    ``quantity`` float64, ``price`` float64, ``value`` float64 (a rating, say), ``device`` str,
    ``page`` str, ``position`` float64 (the context of the event). Optional columns are always
    present, filled with nulls when the source lacks them.

catalog (one row per item)
    ``item_id`` str and the optional ``title``, ``category`` (a path such as
    ``"Women/Shoes/Sneakers"``, levels separated by ``/``), ``brand``, ``text`` str, ``price``,
    ``margin`` (a fraction of price), ``stock`` float64, ``created_at`` datetime64[ns, UTC].
    Loaders may add extra attribute columns (``genres``, ``attributes`` ...).

users (one row per user, optional)
    ``user_id`` str and the optional ``segment`` str, ``signup_at`` datetime64[ns, UTC],
    ``consent_personalization`` and ``consent_tracking`` (nullable booleans).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "CATALOG_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "USER_COLUMNS",
    "ColumnSpec",
    "EventType",
    "arrow_schema",
    "empty_events",
]

EventType = Literal["view", "click", "add_to_cart", "purchase", "return", "search", "rating"]

#: The event types aisle understands, in funnel order.
EVENT_TYPES: Final[tuple[str, ...]] = (
    "view",
    "click",
    "add_to_cart",
    "purchase",
    "return",
    "search",
    "rating",
)

Kind = Literal["id", "str", "float", "timestamp", "bool"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a canonical table."""

    name: str
    kind: Kind
    required: bool
    doc: str


EVENT_COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec("event_id", "id", False, "unique id of the event; derived from the row if absent"),
    ColumnSpec("user_id", "id", True, "who acted"),
    ColumnSpec("item_id", "id", True, "on which item"),
    ColumnSpec("event_type", "str", True, f"one of {', '.join(EVENT_TYPES)}"),
    ColumnSpec("timestamp", "timestamp", True, "when, in UTC"),
    ColumnSpec("session_id", "id", False, "the session the event belongs to"),
    ColumnSpec("quantity", "float", False, "units (carts, purchases, returns)"),
    ColumnSpec("price", "float", False, "unit price paid or shown"),
    ColumnSpec("value", "float", False, "a numeric value such as a rating"),
    ColumnSpec("device", "str", False, "context: device"),
    ColumnSpec("page", "str", False, "context: page or placement"),
    ColumnSpec("position", "float", False, "context: rank at which the item was shown"),
)

CATALOG_COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec("item_id", "id", True, "the item"),
    ColumnSpec("title", "str", False, "display title"),
    ColumnSpec("category", "str", False, "category path, levels separated by '/'"),
    ColumnSpec("brand", "str", False, "brand"),
    ColumnSpec("text", "str", False, "free text (description) for content models"),
    ColumnSpec("price", "float", False, "list price"),
    ColumnSpec("margin", "float", False, "margin as a fraction of price"),
    ColumnSpec("stock", "float", False, "units in stock"),
    ColumnSpec("created_at", "timestamp", False, "when the item was listed, in UTC"),
)

USER_COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec("user_id", "id", True, "the user"),
    ColumnSpec("segment", "str", False, "a segment label"),
    ColumnSpec("signup_at", "timestamp", False, "sign-up time, in UTC"),
    ColumnSpec("consent_personalization", "bool", False, "may aisle personalize for this user"),
    ColumnSpec("consent_tracking", "bool", False, "may aisle record this user's events"),
)

_ARROW = {
    "id": pa.string(),
    "str": pa.string(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
    "bool": pa.bool_(),
}


def arrow_schema(columns: tuple[ColumnSpec, ...]) -> pa.Schema:
    """The Arrow schema of a canonical table (what Parquet files hold)."""
    return pa.schema([pa.field(c.name, _ARROW[c.kind], nullable=not c.required) for c in columns])


def pandas_dtype(kind: Kind) -> object:
    """The pandas dtype used in memory for a column kind."""
    if kind in ("id", "str"):
        return "str"  # pandas 3 default string dtype (Arrow-backed, NaN for missing)
    if kind == "float":
        return np.dtype("float64")
    if kind == "timestamp":
        return pd.DatetimeTZDtype("ns", "UTC")
    return pd.BooleanDtype()


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the canonical columns and dtypes."""
    return pd.DataFrame(
        {c.name: pd.Series([], dtype=pandas_dtype(c.kind)) for c in EVENT_COLUMNS}  # type: ignore[call-overload]
    )
