"""Turn any table into a canonical aisle table, row by row, without losing a row silently.

:func:`conform_events`, :func:`conform_catalog` and :func:`conform_users` take a pandas frame
(a polars frame or an Arrow table also works), rename columns by a mapping, parse every column
into its canonical dtype and check every row:

* ids present (``user_id``, ``item_id``, ``event_id`` when given);
* ``event_type`` one of :data:`~aisle.data._schema.EVENT_TYPES` (a few common spellings such as
  ``addtocart`` or ``transaction`` are accepted, see :data:`EVENT_TYPE_ALIASES`);
* timestamps parseable and possible (after 1970-01-01, and not more than a day in the future);
* numbers numeric and, for quantity and price, not negative;
* no duplicate ``event_id`` (or ``item_id`` in a catalog).

With ``on_error="raise"`` (the default) the first call that meets a bad row raises one
:class:`~aisle.errors.ValidationError` that names the source, every bad row (1-based data row, the
header not counted), the column, the value, the reason and the fix. With ``on_error="quarantine"``
the bad rows are written, as read and with the reason per row, to a quarantine CSV; the good rows
load, and the :class:`LoadReport` gives the counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from aisle.data._schema import (
    CATALOG_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    USER_COLUMNS,
    ColumnSpec,
    pandas_dtype,
)
from aisle.errors import ConfigError, DataWarning, RowProblem, SchemaError, ValidationError

__all__ = [
    "EVENT_TYPE_ALIASES",
    "LoadReport",
    "OnError",
    "conform_catalog",
    "conform_events",
    "conform_users",
    "to_pandas",
]

OnError = Literal["raise", "quarantine"]

#: Other spellings of event types found in public shop logs, mapped to aisle's names.
EVENT_TYPE_ALIASES: dict[str, str] = {
    "pageview": "view",
    "page_view": "view",
    "impression": "view",
    "detail": "view",
    "addtocart": "add_to_cart",
    "add-to-cart": "add_to_cart",
    "cart": "add_to_cart",
    "transaction": "purchase",
    "buy": "purchase",
    "order": "purchase",
    "refund": "return",
    "rate": "rating",
}

MIN_TIMESTAMP = pd.Timestamp("1970-01-01T00:00:01Z")
FUTURE_SLACK = pd.Timedelta(days=1)


@dataclass
class LoadReport:
    """What happened to the rows of one source.

    Attributes:
        source: the file or frame the rows came from.
        n_rows: rows read.
        n_loaded: rows that passed and were loaded.
        n_quarantined: rows set aside.
        quarantine_path: where the set-aside rows were written (``None`` if none were).
        problems: every problem found, one per bad cell.
        ignored_columns: source columns that are not part of the canonical table.
    """

    source: str
    n_rows: int
    n_loaded: int
    n_quarantined: int = 0
    quarantine_path: str | None = None
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_rows": self.n_rows,
            "n_loaded": self.n_loaded,
            "n_quarantined": self.n_quarantined,
            "quarantine_path": self.quarantine_path,
            "ignored_columns": self.ignored_columns,
        }


def to_pandas(frame: Any) -> pd.DataFrame:
    """Accept a pandas or polars DataFrame or an Arrow table and return a pandas DataFrame."""
    if isinstance(frame, pd.DataFrame):
        return frame
    module = type(frame).__module__
    if module.startswith("polars") and hasattr(frame, "to_pandas"):
        return frame.to_pandas()  # type: ignore[no-any-return]
    if module.startswith("pyarrow") and hasattr(frame, "to_pandas"):
        return frame.to_pandas()  # type: ignore[no-any-return]
    raise ConfigError(
        f"expected a pandas DataFrame, a polars DataFrame or an Arrow table, got {type(frame).__name__}"
    )


class _Checker:
    """Collects problems per row while columns are parsed."""

    def __init__(self, n: int, row_numbers: np.ndarray) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.row_numbers = row_numbers
        self.problems: list[RowProblem] = []

    def flag(
        self, mask: np.ndarray, column: str, raw: pd.Series, reason: str | list[str], fix: str
    ) -> None:
        """Mark the rows in ``mask`` bad; ``reason`` is one text or one per flagged row."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        self.bad[idx] = True
        values = raw.iloc[idx].astype(object).tolist()
        reasons = [reason] * idx.size if isinstance(reason, str) else reason
        for i, v, why in zip(idx.tolist(), values, reasons, strict=True):
            shown = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            self.problems.append(RowProblem(int(self.row_numbers[i]), column, shown, why, fix))


def _blank(raw: pd.Series) -> np.ndarray:
    """True where a cell is missing or only whitespace."""
    isna = raw.isna().to_numpy()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        text = raw.astype("str").str.strip()
        return isna | (text == "").fillna(True).to_numpy(dtype=bool)
    return isna


def _as_id(raw: pd.Series) -> pd.Series:
    """Ids as strings; integral floats (ints that went through NaN) lose their '.0'."""
    if pd.api.types.is_float_dtype(raw.dtype):
        vals = raw.to_numpy(dtype=float)
        finite = np.isfinite(vals)
        if finite.any() and np.all(np.mod(vals[finite], 1) == 0):
            out = pd.Series(pd.array(vals, dtype="Int64"), index=raw.index).astype("str")
            return out
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("str")
    return raw.astype("str").str.strip()


def _parse_timestamp(raw: pd.Series, unit: str) -> pd.Series:
    """Parse numbers (unix time; unit auto-detected from magnitude) and text (ISO 8601) to UTC."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(pandas_dtype("timestamp"))  # type: ignore[call-overload, no-any-return]
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC").astype(pandas_dtype("timestamp"))  # type: ignore[call-overload, no-any-return]
    numeric = raw if pd.api.types.is_numeric_dtype(raw.dtype) else pd.to_numeric(raw, errors="coerce")
    out = pd.Series(pd.NaT, index=raw.index, dtype=pandas_dtype("timestamp"))  # type: ignore[call-overload]
    num_mask = numeric.notna().to_numpy()
    if num_mask.any():
        vals = numeric.to_numpy(dtype=float)[num_mask]
        u = unit
        if unit == "auto":
            mag = float(np.nanmedian(np.abs(vals))) if vals.size else 0.0
            u = "ns" if mag > 1e17 else "us" if mag > 1e14 else "ms" if mag > 1e11 else "s"
        factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}.get(u)
        if factor is None:
            raise ConfigError(f"timestamp_unit must be one of auto, s, ms, us, ns; got {unit!r}")
        conv = np.full(vals.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isfinite(vals) & (np.abs(vals * factor) < 9.2e18)
            if pd.api.types.is_integer_dtype(numeric.dtype):  # exact, even for ns
                ns = numeric.to_numpy(dtype=np.int64)[num_mask][ok] * factor
            elif np.all(np.mod(vals[ok], 1) == 0):  # integral floats below 2**53: exact
                ns = vals[ok].astype(np.int64) * factor
            else:  # fractions: float64 cannot hold ns exactly; round to the microsecond
                ns = np.round(vals[ok] * (factor / 1000)).astype(np.int64) * 1000
        conv[ok] = ns.astype("datetime64[ns]")
        out.loc[num_mask] = pd.DatetimeIndex(conv).tz_localize("UTC")
    text_mask = ~num_mask & raw.notna().to_numpy()
    if text_mask.any():
        text = raw[text_mask].astype("str")
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        # Fall back to pandas' flexible parser for rows ISO 8601 rejects (e.g. "2019/11/24 10:00").
        retry = parsed.isna()
        if retry.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed.loc[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
        out.loc[text_mask] = parsed.astype(pandas_dtype("timestamp"))  # type: ignore[call-overload]
    result: pd.Series = out
    return result


def _check_columns(
    df: pd.DataFrame, specs: tuple[ColumnSpec, ...], source: str, mapping: Mapping[str, str] | None
) -> tuple[pd.DataFrame, list[str]]:
    """Rename by mapping (canonical -> source name), check required columns, list ignored ones."""
    names = {c.name for c in specs}
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(
            f"column mapping names {unknown} which are not canonical columns; "
            f"valid keys: {', '.join(c.name for c in specs)}"
        )
    missing_src = [s for s in mapping.values() if s not in df.columns]
    if missing_src:
        raise SchemaError(
            f"{source}: the mapping refers to columns {missing_src} that are not in the data; "
            f"columns present: {list(df.columns)}"
        )
    df = df.rename(columns={v: k for k, v in mapping.items()})
    return df, [str(c) for c in df.columns if c not in names]


def _conform(
    df: pd.DataFrame,
    specs: tuple[ColumnSpec, ...],
    *,
    source: str,
    defaults: Mapping[str, Any],
    timestamp_unit: str,
    checker: _Checker,
    required_fix: Mapping[str, str],
) -> pd.DataFrame:
    """Parse every canonical column, flagging bad cells; returns canonical columns (all rows)."""
    now = pd.Timestamp.now(tz="UTC")
    out: dict[str, pd.Series] = {}
    for spec in specs:
        if spec.name not in df.columns:
            if spec.name in defaults:
                df[spec.name] = defaults[spec.name]
            elif spec.required:
                raise SchemaError(
                    f"{source}: required column '{spec.name}' ({spec.doc}) is missing; columns present: "
                    f"{list(df.columns)}. {required_fix.get(spec.name, 'Rename the column or pass a mapping')}"
                )
            else:
                out[spec.name] = pd.Series(
                    pd.NA if spec.kind == "bool" else np.nan, index=df.index, dtype=pandas_dtype(spec.kind)  # type: ignore[call-overload]
                )
                continue
        raw = df[spec.name]
        blank = _blank(raw)
        col: pd.Series
        if spec.required and spec.kind in ("id", "str"):
            checker.flag(blank, spec.name, raw, f"{spec.name} is missing", f"give every row a value for {spec.name}")
        if spec.kind == "id":
            col = _as_id(raw).where(~blank, np.nan).astype("str")
        elif spec.kind == "str":
            col = raw.astype("str").str.strip().where(~blank, np.nan).astype("str")
        elif spec.kind == "float":
            col = pd.to_numeric(raw, errors="coerce").astype(float) if not pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype) else raw.astype(float)
            bad = col.isna().to_numpy() & ~blank
            checker.flag(bad, spec.name, raw, f"{spec.name} is not a number", f"write {spec.name} as a plain number, e.g. 2 or 19.99")
            if spec.name in ("quantity", "price", "stock"):
                checker.flag(
                    col.to_numpy(dtype=float) < 0, spec.name, raw, f"{spec.name} is negative", f"{spec.name} must be >= 0"
                )
        elif spec.kind == "timestamp":
            col = _parse_timestamp(raw, timestamp_unit)
            nat = col.isna().to_numpy()
            checker.flag(
                nat & ~blank, spec.name, raw, f"{spec.name} is not a timestamp",
                "use ISO 8601 (2024-05-01T12:00:00Z) or unix seconds",
            )
            if spec.required:  # event times: missing, before 1970 or in the future is impossible
                checker.flag(nat & blank, spec.name, raw, f"{spec.name} is missing", f"give every row a value for {spec.name}")
                ts_ns = col.to_numpy(dtype="datetime64[ns]")
                impossible = ~nat & ((ts_ns < MIN_TIMESTAMP.to_datetime64()) | (ts_ns > (now + FUTURE_SLACK).to_datetime64()))
                checker.flag(
                    impossible, spec.name, raw, f"{spec.name} is impossible (before 1970 or in the future)",
                    "check the unit (seconds vs milliseconds) and the time zone",
                )
        else:  # bool
            text = raw.astype("str").str.strip().str.lower()
            truth: pd.Series = raw if pd.api.types.is_bool_dtype(raw.dtype) else text.map(
                {"true": True, "1": True, "yes": True, "y": True, "t": True,
                 "false": False, "0": False, "no": False, "n": False, "f": False})
            bad = truth.isna().to_numpy() & ~blank
            checker.flag(bad, spec.name, raw, f"{spec.name} is not a boolean", "use true/false")
            col = truth.astype("boolean")
        out[spec.name] = col
    return pd.DataFrame(out, index=df.index)


def _finish(
    raw_df: pd.DataFrame,
    canon: pd.DataFrame,
    checker: _Checker,
    *,
    source: str,
    on_error: OnError,
    quarantine_path: str | Path | None,
    ignored: list[str],
) -> tuple[pd.DataFrame, LoadReport]:
    """Raise, or quarantine the bad rows and return the good ones with a report."""
    n = len(canon)
    n_bad = int(checker.bad.sum())
    report = LoadReport(source=source, n_rows=n, n_loaded=n - n_bad, problems=checker.problems, ignored_columns=ignored)
    if n_bad == 0:
        return canon.reset_index(drop=True), report
    if on_error == "raise":
        raise ValidationError(source, sorted(checker.problems, key=lambda p: (p.row, p.column)), n_rows=n)
    if on_error != "quarantine":
        raise ConfigError(f"on_error must be 'raise' or 'quarantine', got {on_error!r}")
    if quarantine_path is None:
        raise ConfigError("on_error='quarantine' needs a quarantine_path to write the bad rows to")
    qpath = Path(quarantine_path)
    qpath.parent.mkdir(parents=True, exist_ok=True)
    reasons: dict[int, list[str]] = {}
    for p in checker.problems:
        reasons.setdefault(p.row, []).append(f"{p.column}: {p.reason} (got {p.value!r}); fix: {p.fix}")
    bad_rows = raw_df.loc[checker.bad].copy()
    rows = checker.row_numbers[checker.bad]
    bad_rows.insert(0, "_row", rows)
    bad_rows.insert(1, "_reason", ["; ".join(reasons[int(r)]) for r in rows])
    bad_rows.insert(2, "_source", source)
    header = not qpath.exists()
    bad_rows.to_csv(qpath, mode="a", header=header, index=False)
    report.n_quarantined = n_bad
    report.quarantine_path = str(qpath)
    warnings.warn(
        f"{source}: {n_bad} of {n} rows were quarantined to {qpath}; {n - n_bad} rows loaded",
        DataWarning,
        stacklevel=3,
    )
    return canon.loc[~checker.bad].reset_index(drop=True), report


def _row_numbers(df: pd.DataFrame, row_offset: int) -> np.ndarray:
    return np.arange(1, len(df) + 1, dtype=np.int64) + row_offset


def _derive_event_ids(canon: pd.DataFrame) -> pd.Series:
    """Stable ids from row content: the same event read twice gets the same id (idempotent loads)."""
    key_cols = ["user_id", "item_id", "event_type", "timestamp", "session_id", "value", "quantity"]
    h = pd.util.hash_pandas_object(canon[key_cols], index=False).to_numpy()
    occurrence = pd.Series(h).groupby(h).cumcount().to_numpy()
    hexes = pd.Series(h).map("{:016x}".format).to_numpy(dtype=object)
    suffix = np.where(occurrence > 0, np.char.add("-", occurrence.astype(str)), "")
    return pd.Series(np.char.add(hexes.astype(str), suffix), index=canon.index, dtype="str")


def conform_events(
    frame: Any,
    *,
    source: str = "<dataframe>",
    mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    quarantine_path: str | Path | None = None,
    event_type: str | None = None,
    timestamp_unit: str = "auto",
    row_offset: int = 0,
) -> tuple[pd.DataFrame, LoadReport]:
    """Validate and convert a table of events into aisle's canonical event log.

    Args:
        frame: a pandas/polars DataFrame or Arrow table, one event per row.
        source: how to name the input in messages (a file path, say).
        mapping: canonical name -> source column name, e.g. ``{"user_id": "userId"}``.
        on_error: ``"raise"`` (one error listing every bad row) or ``"quarantine"``.
        quarantine_path: where bad rows go when quarantining (a CSV, appended to).
        event_type: the event type of every row when the source has no ``event_type`` column
            (e.g. ``"rating"`` for MovieLens, ``"click"`` for click logs).
        timestamp_unit: unit of numeric timestamps: ``auto`` (from their magnitude), s, ms, us, ns.
        row_offset: added to row numbers in messages (for inputs read in chunks).

    Returns:
        The canonical events sorted by timestamp (ties keep source order), and a load report.

    Raises:
        SchemaError: a required column is missing.
        ValidationError: rows are invalid and ``on_error="raise"``.
    """
    df = to_pandas(frame).reset_index(drop=True)
    df, ignored = _check_columns(df, EVENT_COLUMNS, source, mapping)
    raw_df = df.copy()
    checker = _Checker(len(df), _row_numbers(df, row_offset))
    defaults: dict[str, Any] = {}
    if event_type is not None:
        if event_type not in EVENT_TYPES:
            raise ConfigError(f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
        defaults["event_type"] = event_type
    canon = _conform(
        df, EVENT_COLUMNS, source=source, defaults=defaults, timestamp_unit=timestamp_unit, checker=checker,
        required_fix={"event_type": "Add the column, or pass event_type='view' (CLI: --event-type view) "
                      "to give every row one type"},
    )
    et = canon["event_type"].str.lower().str.replace(" ", "_")
    et = et.map(lambda v: EVENT_TYPE_ALIASES.get(v, v) if isinstance(v, str) else v).astype("str")
    unknown = ~et.isin(EVENT_TYPES).to_numpy() & canon["event_type"].notna().to_numpy()
    checker.flag(
        unknown, "event_type", df["event_type"], "unknown event type",
        f"use one of {', '.join(EVENT_TYPES)}",
    )
    canon["event_type"] = et
    if "event_id" in df.columns:
        blank = _blank(df["event_id"])
        checker.flag(blank, "event_id", df["event_id"], "event_id is missing",
                     "give every row an event_id, or drop the column to let aisle derive ids")
        dup = canon["event_id"].duplicated(keep="first").to_numpy() & ~blank
        if dup.any():
            positions = pd.Series(checker.row_numbers, index=canon.index)
            first_row = positions.groupby(canon["event_id"].to_numpy()).transform("min").to_numpy()
            checker.flag(
                dup, "event_id", df["event_id"],
                [f"duplicate event_id (first seen in data row {r})" for r in first_row[dup].tolist()],
                "event ids must be unique; remove the repeated event",
            )
    else:
        canon["event_id"] = _derive_event_ids(canon)
    events, report = _finish(
        raw_df, canon, checker, source=source, on_error=on_error, quarantine_path=quarantine_path, ignored=ignored
    )
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True), report


def _conform_table(
    frame: Any,
    specs: tuple[ColumnSpec, ...],
    key: str,
    *,
    source: str,
    mapping: Mapping[str, str] | None,
    on_error: OnError,
    quarantine_path: str | Path | None,
    keep_extra: bool,
) -> tuple[pd.DataFrame, LoadReport]:
    df = to_pandas(frame).reset_index(drop=True)
    df, ignored = _check_columns(df, specs, source, mapping)
    raw_df = df.copy()
    checker = _Checker(len(df), _row_numbers(df, 0))
    canon = _conform(df, specs, source=source, defaults={}, timestamp_unit="auto", checker=checker, required_fix={})
    dup = canon[key].duplicated(keep="first").to_numpy() & canon[key].notna().to_numpy()
    checker.flag(dup, key, df[key], f"duplicate {key}", f"each {key} must appear once; merge the rows")
    if keep_extra:
        for c in ignored:
            canon[c] = df[c]
        ignored = []
    return _finish(raw_df, canon, checker, source=source, on_error=on_error,
                   quarantine_path=quarantine_path, ignored=ignored)


def conform_catalog(
    frame: Any,
    *,
    source: str = "<catalog>",
    mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    quarantine_path: str | Path | None = None,
    keep_extra: bool = True,
) -> tuple[pd.DataFrame, LoadReport]:
    """Validate and convert a catalog (one row per item). Extra attribute columns are kept."""
    return _conform_table(frame, CATALOG_COLUMNS, "item_id", source=source, mapping=mapping,
                          on_error=on_error, quarantine_path=quarantine_path, keep_extra=keep_extra)


def conform_users(
    frame: Any,
    *,
    source: str = "<users>",
    mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    quarantine_path: str | Path | None = None,
    keep_extra: bool = True,
) -> tuple[pd.DataFrame, LoadReport]:
    """Validate and convert a users table (one row per user). Extra columns are kept."""
    return _conform_table(frame, USER_COLUMNS, "user_id", source=source, mapping=mapping,
                          on_error=on_error, quarantine_path=quarantine_path, keep_extra=keep_extra)
