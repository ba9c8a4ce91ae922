"""Metric definitions, and per-unit metrics computed from the event log through DuckDB.

A metric is a :class:`MetricSpec`: a kind (``proportion``, ``mean``, ``ratio`` or
``quantile``), the per-unit column(s) it reads and, for guardrails, the direction that counts
as harm. :data:`METRICS` holds the built-in metrics by name; experiments refer to them by name
and a typo fails with the list of valid names.

:func:`unit_metrics` turns an event log (canonical schema) and an exposure table into one row
per exposed unit: the unit's counts and revenue in the observation window after its first
exposure, an early proxy (add-to-cart within a short window), the same figures over a
pre-period before exposure (CUPED covariates), whether the unit's window has matured, and,
when a serving request log is given, its requests, errors and fallbacks. The work runs in one
DuckDB query, so it scales to tens of millions of rows on one machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aisle.data._schema import EVENT_TYPES
from aisle.errors import ConfigError, SchemaError, require

__all__ = [
    "METRICS",
    "MetricSpec",
    "UnitTable",
    "get_metric",
    "request_latencies",
    "tracking_counts",
    "unit_metrics",
]

MetricKind = Literal["proportion", "mean", "ratio", "quantile"]
Unit = Literal["user", "session", "account"]
TableLike = Any  # a pandas/polars frame, an Arrow table, or a path to Parquet

_US = 1_000_000  # microseconds per second
DAY_US = 86_400 * _US


class MetricSpec(BaseModel):
    """One metric computed from the per-unit table.

    Attributes:
        name: the metric's name in reports.
        kind: ``proportion`` (share of units with ``numerator`` > 0; two-proportion z-test),
            ``mean`` (mean of ``numerator`` per unit; Welch t-test), ``ratio`` (sum of
            ``numerator`` over sum of ``denominator``; delta method) or ``quantile`` (a quantile
            of a request-level column, e.g. latency p99).
        numerator: the per-unit column (for ``quantile``: the request-level column).
        denominator: the per-unit denominator column of a ``ratio``.
        quantile: the quantile of a ``quantile`` metric (0.99 for p99).
        covariates: pre-period columns for CUPED (``mean`` and ``proportion`` metrics).
        direction: ``increase`` when higher is better, ``decrease`` when lower is better.
        source: ``events`` (computed from the event log) or ``requests`` (from the serving
            request log: latency, errors, fallbacks).
        description: one line for reports.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: MetricKind
    numerator: str
    denominator: str | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)
    covariates: tuple[str, ...] = ()
    direction: Literal["increase", "decrease"] = "increase"
    source: Literal["events", "requests"] = "events"
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> MetricSpec:
        if self.kind == "ratio" and not self.denominator:
            raise ValueError(f"metric {self.name!r}: a ratio metric needs a denominator column")
        if self.kind == "quantile" and self.quantile is None:
            raise ValueError(f"metric {self.name!r}: a quantile metric needs quantile (e.g. 0.99)")
        if self.covariates and self.kind not in ("mean", "proportion"):
            raise ValueError(
                f"metric {self.name!r}: CUPED covariates apply to mean and proportion metrics"
            )
        return self


#: Pre-period covariates of the funnel metrics (CUPED with several covariates: θ = S_XX⁻¹ S_XY).
_PRE = ("pre_views", "pre_clicks", "pre_carts", "pre_purchases", "pre_revenue")

#: The built-in metrics by name.
METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            name="conversion_rate",
            kind="proportion",
            numerator="purchases",
            covariates=("pre_converted", *_PRE),
            description="share of exposed units with a purchase in the observation window",
        ),
        MetricSpec(
            name="revenue_per_user",
            kind="mean",
            numerator="revenue",
            covariates=("pre_converted", *_PRE),
            description="revenue per exposed unit in the observation window",
        ),
        MetricSpec(
            name="purchases_per_user",
            kind="mean",
            numerator="purchases",
            covariates=("pre_converted", *_PRE),
            description="orders per exposed unit in the observation window",
        ),
        MetricSpec(
            name="ctr",
            kind="ratio",
            numerator="clicks",
            denominator="views",
            description="clicks per impression (delta method)",
        ),
        MetricSpec(
            name="aov",
            kind="ratio",
            numerator="revenue",
            denominator="purchases",
            description="average order value: revenue per order (delta method)",
        ),
        MetricSpec(
            name="add_to_cart_rate",
            kind="proportion",
            numerator="early_carts",
            description="early proxy: share of units adding to cart within the proxy window",
        ),
        MetricSpec(
            name="return_rate",
            kind="ratio",
            numerator="returns",
            denominator="purchases",
            direction="decrease",
            description="returns per order (guardrail)",
        ),
        MetricSpec(
            name="latency_p99",
            kind="quantile",
            numerator="latency_ms",
            quantile=0.99,
            direction="decrease",
            source="requests",
            description="99th percentile of recommendation latency (guardrail)",
        ),
        MetricSpec(
            name="error_rate",
            kind="ratio",
            numerator="errors",
            denominator="requests",
            direction="decrease",
            source="requests",
            description="failed requests per request (guardrail)",
        ),
        MetricSpec(
            name="fallback_rate",
            kind="ratio",
            numerator="fallbacks",
            denominator="requests",
            direction="decrease",
            source="requests",
            description="requests served by the fallback chain per request (guardrail)",
        ),
    )
}


def get_metric(name: str | MetricSpec) -> MetricSpec:
    """A built-in metric by name (a :class:`MetricSpec` is returned as is).

    Raises:
        ConfigError: if the name is unknown; the message lists the valid names.
    """
    if isinstance(name, MetricSpec):
        return name
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric {name!r}; valid metrics: {', '.join(sorted(METRICS))}"
        ) from None


@dataclass(frozen=True, eq=False)
class UnitTable:
    """One row per exposed unit, with its window metrics, proxy, pre-period and maturity.

    Attributes:
        frame: columns ``unit_id``, ``variant``, ``exposed_at`` (UTC), ``mature`` (the
            observation window has closed by ``as_of``), ``proxy_mature``, the window counts
            ``views``, ``clicks``, ``carts``, ``purchases``, ``returns``, ``revenue``, the proxy
            ``early_carts``, the pre-period ``pre_views``, ``pre_clicks``, ``pre_carts``, ``pre_purchases``,
            ``pre_revenue``, ``pre_converted``, and (with a request log) ``requests``,
            ``errors``, ``fallbacks``.
        as_of: the instant the data describe (the last event, unless given).
        window_days: the observation window after exposure.
        proxy_window_days: the window of the early proxy.
        pre_period_days: the pre-period before exposure.
        n_crossovers: units exposed under more than one variant (dropped from ``frame``; a
            sign of broken assignment or logging).
        event_volumes: events per event type and variant after exposure (``event_type``,
            ``variant``, ``n_events``), exact, for the tracking check.
    """

    frame: pd.DataFrame
    as_of: pd.Timestamp
    window_days: float
    proxy_window_days: float
    pre_period_days: float
    n_crossovers: int = 0
    event_volumes: pd.DataFrame | None = None

    @property
    def mature(self) -> pd.DataFrame:
        """The units whose observation window has closed."""
        return self.frame[self.frame["mature"].to_numpy(dtype=bool)]


def _connect() -> Any:
    duckdb: Any = require("duckdb", "tables")
    return duckdb.connect()


def _relation(con: Any, name: str, table: TableLike) -> None:
    """Register ``table`` (frame, Arrow table or Parquet path/folder) as view ``name``."""
    if isinstance(table, str | Path):
        path = Path(table)
        if path.is_dir():
            if (path / "events.parquet").exists():
                path = path / "events.parquet"
            else:
                path = path / "*.parquet"
        elif not path.exists():
            from aisle.errors import DatasetNotFoundError

            raise DatasetNotFoundError(
                f"{path} does not exist; give a Parquet file or a saved dataset folder"
            )
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{path.as_posix()}')"
        )
    else:
        con.register(name, table)


def _columns(con: Any, name: str) -> list[str]:
    return [str(r[0]) for r in con.execute(f"DESCRIBE {name}").fetchall()]


def _need(columns: list[str], required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise SchemaError(
            f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(columns)}"
        )


def _unit_expr(unit: Unit, events_cols: list[str], has_accounts: bool) -> tuple[str, str]:
    """The SQL giving each event its unit id, and the FROM clause."""
    if unit == "user":
        return "CAST(ev.user_id AS VARCHAR)", "events ev"
    if unit == "session":
        if "session_id" not in events_cols:
            raise SchemaError("unit 'session' needs a session_id column in the events")
        return "CAST(ev.session_id AS VARCHAR)", "events ev"
    if not has_accounts and "account_id" not in events_cols:
        raise ConfigError(
            "unit 'account' needs an account for each event: an account_id column in the "
            "events, or an accounts table (user_id, account_id)"
        )
    if "account_id" in events_cols:
        return "CAST(ev.account_id AS VARCHAR)", "events ev"
    return (
        "CAST(acc.account_id AS VARCHAR)",
        "events ev JOIN accounts acc ON CAST(acc.user_id AS VARCHAR) = CAST(ev.user_id AS VARCHAR)",
    )


def _ts_us(col: str) -> str:
    return f"epoch_us(CAST({col} AS TIMESTAMPTZ))"


def _exposures_sql() -> str:
    return (
        "SELECT CAST(unit_id AS VARCHAR) AS unit_id, CAST(variant AS VARCHAR) AS variant, "
        f"min({_ts_us('exposed_at')}) AS x_us FROM exposures GROUP BY ALL"
    )


# (column, event type, class bit) of the per-unit count columns
_PIVOT: tuple[tuple[str, str, int], ...] = (
    ("views", "view", 1),
    ("clicks", "click", 1),
    ("carts", "add_to_cart", 1),
    ("purchases", "purchase", 1),
    ("returns", "return", 1),
    ("early_carts", "add_to_cart", 2),
    ("pre_views", "view", 4),
    ("pre_clicks", "click", 4),
    ("pre_carts", "add_to_cart", 4),
    ("pre_purchases", "purchase", 4),
)
_UNIT_COLUMNS = (
    *(c for c, _, _ in _PIVOT[:5]),
    "revenue",
    "early_carts",
    *(c for c, _, _ in _PIVOT[6:]),
    "pre_revenue",
)


def unit_metrics(
    events: TableLike,
    exposures: TableLike,
    *,
    unit: Unit = "user",
    window_days: float = 7.0,
    proxy_window_days: float = 1.0,
    pre_period_days: float = 28.0,
    as_of: pd.Timestamp | str | None = None,
    accounts: TableLike | None = None,
    requests: TableLike | None = None,
) -> UnitTable:
    """Per-unit metrics of the exposed units, attributed to an observation window.

    An event counts for a unit when it happens in ``[exposed_at, exposed_at + window)``;
    the proxy (``early_carts``) counts add-to-carts in ``[exposed_at, exposed_at +
    proxy_window)``; pre-period columns count ``[exposed_at - pre_period, exposed_at)``,
    which the treatment cannot have touched. A unit is ``mature`` when ``exposed_at + window
    <= as_of``; immature units keep partial counts and are excluded by the analysis.

    Args:
        events: the event log in the canonical schema (``user_id``, ``event_type``,
            ``timestamp``, ``price``, ``quantity``; ``session_id`` for session units); a frame,
            an Arrow table, or a Parquet file or saved dataset folder.
        exposures: ``unit_id``, ``variant``, ``exposed_at`` (the first exposure; repeated
            rows keep the earliest).
        unit: the randomization unit: ``user``, ``session`` or ``account``.
        window_days: the observation window after exposure.
        proxy_window_days: the window of the early proxy (add-to-cart).
        pre_period_days: the pre-period before exposure (CUPED covariates).
        as_of: the instant the data describe; by default the last event's timestamp.
        accounts: for account units without an ``account_id`` column: ``user_id``,
            ``account_id``.
        requests: an optional serving request log: ``unit_id``, ``timestamp``,
            ``latency_ms``, ``error``, ``fallback`` (guardrails).

    Returns:
        The per-unit table.

    Raises:
        SchemaError: if a needed column is missing.
        ConfigError: if a window is not positive.
    """
    for label, value in (
        ("window_days", window_days),
        ("proxy_window_days", proxy_window_days),
        ("pre_period_days", pre_period_days),
    ):
        if not value > 0:
            raise ConfigError(f"{label} must be positive, got {value}")
    con = _connect()
    try:
        _relation(con, "events", events)
        _relation(con, "exposures", exposures)
        ev_cols = _columns(con, "events")
        _need(ev_cols, ("user_id", "event_type", "timestamp"), "the event log")
        _need(
            _columns(con, "exposures"), ("unit_id", "variant", "exposed_at"), "the exposure table"
        )
        if accounts is not None:
            _relation(con, "accounts", accounts)
        unit_sql, from_sql = _unit_expr(unit, ev_cols, accounts is not None)
        price = "COALESCE(CAST(ev.price AS DOUBLE), 0)" if "price" in ev_cols else "0.0"
        qty = "COALESCE(CAST(ev.quantity AS DOUBLE), 1)" if "quantity" in ev_cols else "1.0"
        if as_of is None:
            rows = con.execute(f"SELECT max({_ts_us('timestamp')}) FROM events").fetchall()
            row = rows[0] if rows else None
            as_of_us = int(row[0]) if row and row[0] is not None else 0
        else:
            as_of_us = int(_utc(as_of).value // 1_000)
        w, pw, pre = (round(d * DAY_US) for d in (window_days, proxy_window_days, pre_period_days))
        # 1. the exposed units, in exposure order; a unit's row number is its index (uid)
        xt = con.sql(_exposures_sql() + " ORDER BY x_us, unit_id").to_arrow_table()
        con.register("xt", xt)
        # 2. events of exposed units, counted per (unit, event type, window class); the class
        #    bits are 1 window, 2 proxy window, 4 pre-period, 8 any time after exposure. Small
        #    integer keys keep the aggregation cheap; the pivot to columns is a numpy bincount.
        codes = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
        after = f"e.t >= x.x_us AND e.t <= {as_of_us}"
        cls = (
            f"((e.t < x.x_us + {w} AND {after})::TINYINT"
            f" + 2 * (e.t < x.x_us + {pw} AND {after})::TINYINT"
            f" + 4 * (e.t < x.x_us AND e.t >= x.x_us - {pre})::TINYINT"
            f" + 8 * ({after})::TINYINT)"
        )
        agg = con.sql(f"""
            WITH x AS (SELECT (row_number() OVER ()) - 1 AS uid, unit_id, x_us FROM xt),
            e AS (
                SELECT {unit_sql} AS unit_id,
                       (CASE CAST(ev.event_type AS VARCHAR) {codes} ELSE -1 END)::TINYINT AS ec,
                       {_ts_us("ev.timestamp")} AS t, {price} * {qty} AS amount
                FROM {from_sql}
            )
            SELECT x.uid::BIGINT AS uid, e.ec, {cls}::TINYINT AS cls, count(*)::DOUBLE AS n,
                   sum(e.amount)::DOUBLE AS s
            FROM x JOIN e ON e.unit_id = x.unit_id
            GROUP BY ALL
        """).fetchnumpy()
        n_units = xt.num_rows
        frame = pd.DataFrame(
            {
                "unit_id": xt.column("unit_id").to_pandas(),
                "variant": xt.column("variant").to_pandas(),
                "x_us": xt.column("x_us").to_numpy(),
            }
        )
        uid = np.asarray(agg["uid"], dtype=np.int64)
        ec = np.asarray(agg["ec"], dtype=np.int64)
        bits = np.asarray(agg["cls"], dtype=np.int64)
        n = np.asarray(agg["n"], dtype=np.float64)
        amount = np.nan_to_num(np.asarray(agg["s"], dtype=np.float64))

        by_type = {e: np.flatnonzero(ec == i) for i, e in enumerate(EVENT_TYPES)}

        def pivot(event: str, bit: int, values: NDArray[np.float64]) -> NDArray[np.float64]:
            rows = by_type[event]
            rows = rows[(bits[rows] & bit) > 0]
            return np.asarray(
                np.bincount(uid[rows], weights=values[rows], minlength=n_units), dtype=np.float64
            )

        for name, event, bit in _PIVOT:
            frame[name] = pivot(event, bit, n)
        frame["revenue"] = pivot("purchase", 1, amount)
        frame["pre_revenue"] = pivot("purchase", 4, amount)
        frame = frame[["unit_id", "variant", "x_us", *_UNIT_COLUMNS]]
        # exact event volumes per event type and arm after exposure (for the tracking check)
        arm_code, arm_names = pd.factorize(frame["variant"])
        after_rows = ((bits & 8) > 0) & (ec >= 0)
        n_types = len(EVENT_TYPES)
        key = arm_code[uid[after_rows]] * n_types + ec[after_rows]
        totals = np.bincount(key, weights=n[after_rows], minlength=len(arm_names) * n_types)
        present = np.flatnonzero(totals > 0)
        event_volumes = pd.DataFrame(
            {
                "event_type": [EVENT_TYPES[int(k) % n_types] for k in present],
                "variant": [str(arm_names[int(k) // n_types]) for k in present],
                "n_events": totals[present].astype(np.int64),
            }
        ).sort_values(["event_type", "variant"], ignore_index=True)
        if requests is not None:
            _relation(con, "requests", requests)
            rcols = _columns(con, "requests")
            _need(rcols, ("unit_id", "timestamp", "latency_ms"), "the request log")
            err = "CAST(rq.error AS DOUBLE)" if "error" in rcols else "0.0"
            fb = "CAST(rq.fallback AS DOUBLE)" if "fallback" in rcols else "0.0"
            got = con.sql(f"""
                WITH x AS (SELECT (row_number() OVER ()) - 1 AS uid, unit_id, x_us FROM xt)
                SELECT x.uid::BIGINT AS uid, count(*)::DOUBLE AS requests,
                       COALESCE(sum({err}), 0)::DOUBLE AS errors,
                       COALESCE(sum({fb}), 0)::DOUBLE AS fallbacks
                FROM x JOIN requests rq ON CAST(rq.unit_id AS VARCHAR) = x.unit_id
                 AND {_ts_us("rq.timestamp")} >= x.x_us AND {_ts_us("rq.timestamp")} <= {as_of_us}
                GROUP BY ALL
            """).fetchnumpy()
            ru = np.asarray(got["uid"], dtype=np.int64)
            for col in ("requests", "errors", "fallbacks"):
                frame[col] = np.bincount(
                    ru, weights=np.asarray(got[col], dtype=np.float64), minlength=n_units
                )
    finally:
        con.close()
    table = _finish(frame, as_of_us, window_days, proxy_window_days, pre_period_days)
    return replace(table, event_volumes=event_volumes)


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _finish(
    frame: pd.DataFrame, as_of_us: int, window_days: float, proxy_days: float, pre_days: float
) -> UnitTable:
    x_us = frame.pop("x_us").to_numpy(dtype=np.int64)
    frame.insert(2, "exposed_at", pd.to_datetime(x_us, unit="us", utc=True))
    frame.insert(3, "mature", x_us + round(window_days * DAY_US) <= as_of_us)
    frame.insert(4, "proxy_mature", x_us + round(proxy_days * DAY_US) <= as_of_us)
    frame["pre_converted"] = (frame["pre_purchases"] > 0).astype(np.float64)
    frame["unit_id"] = frame["unit_id"].astype(str)
    frame["variant"] = frame["variant"].astype(str)
    crossed = frame["unit_id"].duplicated(keep=False).to_numpy()
    n_cross = int(frame.loc[crossed, "unit_id"].nunique()) if crossed.any() else 0
    if crossed.any():
        frame = frame[~crossed]
    return UnitTable(
        frame=frame.reset_index(drop=True),
        as_of=pd.Timestamp(as_of_us * 1_000, tz="UTC"),
        window_days=window_days,
        proxy_window_days=proxy_days,
        pre_period_days=pre_days,
        n_crossovers=n_cross,
    )


def tracking_counts(
    events: TableLike,
    exposures: TableLike,
    *,
    unit: Unit = "user",
    as_of: pd.Timestamp | str | None = None,
    accounts: TableLike | None = None,
    max_events: int | None = 2_000_000,
    volumes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Event volumes per event type and variant after exposure, with duplicates.

    A duplicate is a second event with the same unit, item, event type and second
    (``floor(timestamp)``): what a double-fired tracking call leaves behind.

    On a large log the counts come from a deterministic sample of units (DuckDB's
    ``hash(unit) % k = 0`` with ``k = ceil(rows / max_events)``): a missing or double-fired
    event shows up in a sample of a hundred thousand units as clearly as in all of them, at a
    fraction of the cost. ``n_units`` is the exposed units of the sample, so events per unit
    stay comparable across arms.

    Args:
        events: the event log.
        exposures: ``unit_id``, ``variant``, ``exposed_at``.
        unit: the randomization unit.
        as_of: ignore events after this instant.
        accounts: ``user_id``, ``account_id`` for account units.
        max_events: sample units when the log has more rows than this (``None``: never).
        volumes: exact ``event_type``, ``variant``, ``n_events`` already counted (e.g.
            :attr:`UnitTable.event_volumes`); then only the duplicate shares are measured (on
            the sample) and applied to these volumes.

    Returns:
        Columns ``event_type``, ``variant``, ``n_units``, ``n_events``, ``n_duplicates``,
        ``sample_fraction``.
    """
    con = _connect()
    try:
        _relation(con, "events", events)
        _relation(con, "exposures", exposures)
        ev_cols = _columns(con, "events")
        if accounts is not None:
            _relation(con, "accounts", accounts)
        unit_sql, from_sql = _unit_expr(unit, ev_cols, accounts is not None)
        rows = con.execute("SELECT count(*) FROM events").fetchall()
        n_rows = int(rows[0][0]) if rows else 0
        k = max(1, math.ceil(n_rows / max_events)) if max_events else 1
        sample_e = f"WHERE hash({unit_sql}) % {k} = 0" if k > 1 else ""
        sample_x = f"WHERE hash(unit_id) % {k} = 0" if k > 1 else ""
        item = "CAST(ev.item_id AS VARCHAR)" if "item_id" in ev_cols else "''"
        cap = "" if as_of is None else f"AND e.t <= {int(_utc(as_of).value // 1_000)}"
        sql = f"""
        WITH x AS ({_exposures_sql()}),
        xs AS (SELECT * FROM x {sample_x}),
        e AS (
            SELECT {unit_sql} AS unit_id, {item} AS item_id, CAST(ev.event_type AS VARCHAR) AS et,
                   {_ts_us("ev.timestamp")} AS t
            FROM {from_sql} {sample_e}
        ),
        k AS (
            SELECT xs.variant, e.et, count(*) AS n
            FROM e JOIN xs ON e.unit_id = xs.unit_id AND e.t >= xs.x_us {cap}
            GROUP BY xs.variant, e.et, e.unit_id, e.item_id, e.t // {_US}
        ),
        c AS (
            SELECT et AS event_type, variant, sum(n)::BIGINT AS n_events, sum(n - 1)::BIGINT AS n_duplicates
            FROM k GROUP BY ALL
        ),
        u AS (SELECT variant, count(*)::BIGINT AS n_units FROM xs GROUP BY variant)
        SELECT c.event_type, c.variant, u.n_units, c.n_events, c.n_duplicates
        FROM c JOIN u USING (variant) ORDER BY c.event_type, c.variant
        """
        out: pd.DataFrame = con.sql(sql).to_arrow_table().to_pandas()
    finally:
        con.close()
    out["event_type"] = out["event_type"].astype(str)
    out["variant"] = out["variant"].astype(str)
    out["sample_fraction"] = 1.0 / k
    if volumes is None:
        return out
    share = out.assign(share=out["n_duplicates"] / out["n_events"].clip(lower=1))[
        ["event_type", "variant", "share"]
    ]
    merged = volumes.merge(share, on=["event_type", "variant"], how="left").fillna({"share": 0.0})
    merged["n_duplicates"] = np.round(merged["n_events"] * merged["share"]).astype(np.int64)
    merged["sample_fraction"] = 1.0 / k
    return (
        merged.drop(columns=["share"]).sort_values(["event_type", "variant"]).reset_index(drop=True)
    )


def request_latencies(requests: TableLike, exposures: TableLike) -> pd.DataFrame:
    """Request-level latencies of exposed units, with their variant (for quantile guardrails).

    Returns:
        Columns ``variant`` and ``latency_ms``, one row per request made at or after the
        unit's exposure.
    """
    con = _connect()
    try:
        _relation(con, "requests", requests)
        _relation(con, "exposures", exposures)
        out: pd.DataFrame = (
            con.sql(
                f"""
            WITH x AS ({_exposures_sql()})
            SELECT x.variant, CAST(r.latency_ms AS DOUBLE) AS latency_ms
            FROM requests r JOIN x ON CAST(r.unit_id AS VARCHAR) = x.unit_id
             AND {_ts_us("r.timestamp")} >= x.x_us
            """
            )
            .to_arrow_table()
            .to_pandas()
        )
    finally:
        con.close()
    out["variant"] = out["variant"].astype(str)
    return out


def describe_metrics(names: Mapping[str, MetricSpec] | None = None) -> list[dict[str, Any]]:
    """The metric registry as plain dicts (for docs and ``--json`` output)."""
    reg = METRICS if names is None else names
    return [m.model_dump() for m in reg.values()]
