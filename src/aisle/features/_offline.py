"""The offline store: the event log as Parquet files, queried with DuckDB; point-in-time sets.

Layout under the store's folder::

    events/part-<n>-<id>.parquet   canonical event columns plus ``ts_ns`` (int64 epoch ns)
    catalog.parquet                the catalog (one row per item)
    embeddings/<view>/<fp>.parquet vectors of embedding views, one file per definition

Ingesting is idempotent: events whose ``event_id`` is already stored are skipped.

:meth:`OfflineStore.training_set` builds point-in-time training sets: for each label row
``(entity keys, timestamp)``, the features as they were at that moment, computed only from
events strictly before it. Window aggregates of the entity come from a range join of labels and
events in DuckDB; those of the prior groups (category, all entities) from cumulative sums
looked up with ``ASOF`` joins. Both then go through the same feature formulas as the online
store (:func:`aisle.features._aggregates.evaluate`), while the windowing itself is computed
independently of the online tiles, which is what lets the skew validator catch a tiling bug.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from aisle.data._conform import conform_catalog, conform_events
from aisle.data._dataset import Dataset
from aisle.data._schema import EVENT_COLUMNS, arrow_schema
from aisle.errors import DataError, SchemaError, require

from ._aggregates import NO_TIME, Basis, Plan, compile_plan, evaluate, to_ns
from ._definitions import EmbeddingView, FeatureView, decode_key, encode_key

__all__ = ["IngestReport", "OfflineStore"]

_EVENT_SCHEMA = arrow_schema(EVENT_COLUMNS).append(pa.field("ts_ns", pa.int64(), nullable=False))


@dataclass(frozen=True)
class IngestReport:
    """What :meth:`OfflineStore.ingest` stored.

    Attributes:
        n_new: events written.
        n_duplicates: events skipped because their ``event_id`` was already stored.
        n_catalog: catalog rows written (0 without a catalog).
        path: the part file written, if any.
    """

    n_new: int
    n_duplicates: int
    n_catalog: int
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"n_new": self.n_new, "n_duplicates": self.n_duplicates, "n_catalog": self.n_catalog, "path": self.path}


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class OfflineStore:
    """Parquet files plus DuckDB (``pip install 'aisle[tables]'``).

    Args:
        path: the store's folder (created on first ingest).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ files
    @property
    def events_dir(self) -> Path:
        """Folder of the event part files."""
        return self.path / "events"

    @property
    def catalog_path(self) -> Path:
        """The catalog file."""
        return self.path / "catalog.parquet"

    def _files(self) -> list[str]:
        return sorted(str(p) for p in self.events_dir.glob("*.parquet")) if self.events_dir.exists() else []

    def _connect(self) -> Any:
        duckdb: Any = require("duckdb", "tables")
        return duckdb.connect()

    def _events_sql(self) -> str:
        files = self._files()
        if not files:
            return (
                "(SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS user_id, NULL::VARCHAR AS item_id, "
                "NULL::VARCHAR AS event_type, NULL::VARCHAR AS session_id, NULL::DOUBLE AS quantity, "
                "NULL::DOUBLE AS price, NULL::DOUBLE AS value, NULL::VARCHAR AS device, NULL::VARCHAR AS page, "
                "NULL::DOUBLE AS position, NULL::BIGINT AS ts_ns WHERE FALSE)"
            )
        return "read_parquet([" + ", ".join(_sql_str(f) for f in files) + "])"

    # ------------------------------------------------------------------ ingest
    def ingest(self, events: pd.DataFrame, *, catalog: pd.DataFrame | None = None, validate: bool = True) -> IngestReport:
        """Append events (and merge a catalog), skipping events already stored.

        Args:
            events: events in (or convertible to) the canonical schema.
            catalog: items to add or replace (by ``item_id``).
            validate: run :func:`aisle.data.conform_events` first (raises on bad rows).

        Returns:
            What was written.
        """
        ev = conform_events(events, source="offline ingest")[0] if validate else events
        n_catalog = self._merge_catalog(catalog) if catalog is not None else 0
        if ev.empty:
            return IngestReport(0, 0, n_catalog, None)
        files = self._files()
        if files:
            con = self._connect()
            try:
                con.register("new_ids", pd.DataFrame({"event_id": ev["event_id"].astype(str).to_numpy()}))
                known = con.execute(
                    f"SELECT n.event_id FROM new_ids n SEMI JOIN {self._events_sql()} e ON e.event_id = n.event_id"
                ).fetchall()
            finally:
                con.close()
            dup = ev["event_id"].isin({k[0] for k in known}).to_numpy()
        else:
            dup = np.zeros(len(ev), dtype=bool)
        fresh = ev.loc[~dup].reset_index(drop=True)
        if fresh.empty:
            return IngestReport(0, int(dup.sum()), n_catalog, None)
        table = pa.Table.from_pandas(fresh[[c.name for c in EVENT_COLUMNS]], preserve_index=False)
        ts = fresh["timestamp"].dt.tz_convert("UTC").dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        table = table.append_column("ts_ns", pa.array(ts, type=pa.int64())).cast(_EVENT_SCHEMA)
        self.events_dir.mkdir(parents=True, exist_ok=True)
        path = self.events_dir / f"part-{len(files):06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.rename(path)
        return IngestReport(len(fresh), int(dup.sum()), n_catalog, str(path))

    def ingest_dataset(self, dataset: Dataset) -> IngestReport:
        """Ingest a :class:`~aisle.data.Dataset`'s events and catalog."""
        return self.ingest(dataset.events, catalog=dataset.items, validate=False)

    def _merge_catalog(self, catalog: pd.DataFrame) -> int:
        items = conform_catalog(catalog, source="offline catalog")[0]
        old = self.catalog()
        if old is not None:
            items = pd.concat([old[~old["item_id"].isin(items["item_id"])], items], ignore_index=True)
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.catalog_path.with_suffix(".tmp")
        items.to_parquet(tmp, index=False)
        tmp.rename(self.catalog_path)
        return len(catalog)

    # ------------------------------------------------------------------ reads
    def catalog(self) -> pd.DataFrame | None:
        """The catalog, or ``None`` if none was ingested."""
        return pd.read_parquet(self.catalog_path) if self.catalog_path.exists() else None

    def catalog_map(self) -> dict[str, str]:
        """Item id -> category (items without a category are left out)."""
        cat = self.catalog()
        if cat is None or "category" not in cat.columns:
            return {}
        cat = cat[cat["category"].notna()]
        return dict(zip(cat["item_id"].astype(str), cat["category"].astype(str), strict=True))

    def stats(self) -> dict[str, Any]:
        """Number of events and files, and the time range (epoch ns)."""
        files = self._files()
        if not files:
            return {"n_events": 0, "n_files": 0, "min_ts_ns": None, "max_ts_ns": None}
        con = self._connect()
        try:
            n, lo, hi = con.execute(f"SELECT count(*), min(ts_ns), max(ts_ns) FROM {self._events_sql()}").fetchone()
        finally:
            con.close()
        return {"n_events": int(n), "n_files": len(files), "min_ts_ns": lo, "max_ts_ns": hi}

    def events(self, *, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Events with ``start <= timestamp < end``, sorted by time then event id.

        Args:
            start: inclusive lower bound (any timestamp, or epoch ns); ``None`` for none.
            end: exclusive upper bound; ``None`` for none.
        """
        where = []
        if start is not None:
            where.append(f"ts_ns >= {to_ns(start)}")
        if end is not None:
            where.append(f"ts_ns < {to_ns(end)}")
        cols = ", ".join(c.name for c in EVENT_COLUMNS)
        sql = f"SELECT {cols} FROM {self._events_sql()}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts_ns, event_id"
        con = self._connect()
        try:
            table = con.sql(sql).to_arrow_table()
        finally:
            con.close()
        df = table.to_pandas()
        for c in EVENT_COLUMNS:
            if c.kind in ("id", "str"):
                df[c.name] = df[c.name].astype("str")
            elif c.kind == "timestamp":
                df[c.name] = pd.to_datetime(df[c.name], utc=True).dt.as_unit("ns")
        return cast(pd.DataFrame, df)

    # ------------------------------------------------------------------ point in time
    def _enriched(self, plan: Plan, lo: int, hi: int) -> str:
        """SQL of the view's events in [lo, hi), with the catalog category and usable keys."""
        view = plan.view
        cat = (
            f"LEFT JOIN read_parquet({_sql_str(str(self.catalog_path))}) c ON c.item_id = e.item_id"
            if self.catalog_path.exists() else ""
        )
        cat_col = "c.category" if cat else "NULL::VARCHAR"
        where = [f"e.ts_ns >= {lo}", f"e.ts_ns < {hi}"]
        if view.source.event_types:
            where.append("e.event_type IN (" + ", ".join(_sql_str(t) for t in view.source.event_types) + ")")
        for k in view.entity.keys:
            col = cat_col if k == "category" else f"e.{k}"
            where.append(f"{col} IS NOT NULL AND {col} <> ''")
        keys = ", ".join(f"{cat_col if k == 'category' else 'e.' + k} AS k_{k}" for k in view.entity.keys)
        return (
            f"SELECT {keys}, e.ts_ns AS _ts, e.event_type AS _type, e.price, e.quantity, e.value, "
            f"{cat_col} AS _cat FROM {self._events_sql()} e {cat} WHERE " + " AND ".join(where)
        )

    @staticmethod
    def _cond(types: tuple[str, ...], column: str | None) -> str:
        parts = []
        if types:
            parts.append("e._type IN (" + ", ".join(_sql_str(t) for t in types) + ")")
        if column is not None:
            parts.append(f"e.{column} IS NOT NULL")
        return " AND ".join(parts) or "TRUE"

    def training_set(
        self, view: FeatureView | EmbeddingView, labels: pd.DataFrame, *, utc_offset: timedelta | None = None
    ) -> pd.DataFrame:
        """Point-in-time features for label rows.

        Args:
            view: the view whose features to compute.
            labels: one row per example with the entity's key columns and ``timestamp`` (the
                moment of the label; only events strictly before it are used). Other columns
                (the label itself) are kept.
            utc_offset: tile alignment shift (leave ``None``: UTC, as the online store).

        Returns:
            ``labels`` (index reset) with one column per feature added.

        Raises:
            SchemaError: a key column or ``timestamp`` is missing from ``labels``.
        """
        keys = list(view.entity.keys)
        missing = [c for c in [*keys, "timestamp"] if c not in labels.columns]
        if missing:
            raise SchemaError(f"label rows lack the column(s) {missing}; view {view.name!r} needs {keys} and 'timestamp'")
        out = labels.reset_index(drop=True).copy()
        if isinstance(view, EmbeddingView):
            return self._join_embeddings(view, out)
        plan = compile_plan(view, utc_offset)
        values, _ = self._pit_values(plan, out)
        feats = pd.DataFrame(values, columns=plan.names, index=out.index)
        return pd.concat([out, feats], axis=1)

    def _pit_values(self, plan: Plan, labels: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        n = len(labels)
        keys = list(plan.view.entity.keys)
        ts = labels["timestamp"]
        t = np.array([to_ns(v) for v in ts], dtype=np.int64) if not isinstance(ts.dtype, pd.DatetimeTZDtype) else (
            ts.dt.tz_convert("UTC").dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        )
        starts = plan.window_starts(t)
        nw = starts.shape[1]
        frame = pd.DataFrame({"_row": np.arange(n, dtype=np.int64), "_t": t, "_lo": t - plan.lookback_ns})
        for k in keys:
            frame[f"k_{k}"] = labels[k].astype(str).to_numpy(dtype=object)
        for w in range(nw):
            frame[f"_s{w}"] = starts[:, w]
        ms, mn, mx = len(plan.sum_metrics), len(plan.min_metrics), len(plan.max_metrics)
        nr = len(plan.recency_types)
        sums = np.zeros((n, ms, nw))
        mins = np.full((n, mn, nw), np.inf)
        maxs = np.full((n, mx, nw), -np.inf)
        last = np.full((n, nr), NO_TIME, dtype=np.int64)
        lo = int(frame["_lo"].min()) if n else 0
        hi = int(t.max()) if n else 0
        con = self._connect()
        try:
            con.register("labels", frame)
            con.execute(f"CREATE TEMP VIEW ev AS {self._enriched(plan, lo, hi)}")
            aggs = []
            for j, m in enumerate(plan.sum_metrics):
                cond = self._cond(m.types, m.column)
                expr = "1.0" if m.column is None or m.presence else f"e.{m.column}"
                aggs += [f"SUM(CASE WHEN e._ts >= l._s{w} AND {cond} THEN {expr} END) AS s_{j}_{w}" for w in range(nw)]
            for j, m in enumerate(plan.min_metrics):
                cond = self._cond(m.types, m.column)
                aggs += [f"MIN(CASE WHEN e._ts >= l._s{w} AND {cond} THEN e.{m.column} END) AS n_{j}_{w}" for w in range(nw)]
            for j, m in enumerate(plan.max_metrics):
                cond = self._cond(m.types, m.column)
                aggs += [f"MAX(CASE WHEN e._ts >= l._s{w} AND {cond} THEN e.{m.column} END) AS x_{j}_{w}" for w in range(nw)]
            for j, types in enumerate(plan.recency_types):
                aggs.append(f"MAX(CASE WHEN {self._cond(types, None)} THEN e._ts END) AS r_{j}")
            join = " AND ".join(f"l.k_{k} = e.k_{k}" for k in keys)
            res = con.execute(
                f"SELECT l._row, {', '.join(aggs)} FROM labels l JOIN ev e ON {join} "
                "AND e._ts < l._t AND e._ts >= l._lo GROUP BY l._row"
            ).fetch_df()
            if len(res):
                rows = res["_row"].to_numpy(dtype=np.int64)
                for j in range(ms):
                    for w in range(nw):
                        sums[rows, j, w] = res[f"s_{j}_{w}"].to_numpy(dtype=float, na_value=0.0)
                for j in range(mn):
                    for w in range(nw):
                        mins[rows, j, w] = res[f"n_{j}_{w}"].to_numpy(dtype=float, na_value=np.inf)
                for j in range(mx):
                    for w in range(nw):
                        maxs[rows, j, w] = res[f"x_{j}_{w}"].to_numpy(dtype=float, na_value=-np.inf)
                for j in range(nr):
                    last[rows, j] = _int_or(res[f"r_{j}"], NO_TIME)
            entity = Basis(sums, mins, maxs, last, t)
            if plan.group_mode == "none":
                return evaluate(plan, entity)
            glob, cat, has_cat = self._group_basis(con, plan, labels, t, starts)
        finally:
            con.close()
        return evaluate(plan, entity, glob, cat, has_cat)

    def _group_basis(
        self, con: Any, plan: Plan, labels: pd.DataFrame, t: NDArray[np.int64], starts: NDArray[np.int64]
    ) -> tuple[Basis, Basis | None, NDArray[np.bool_] | None]:
        """Window sums of the prior groups via cumulative sums and ASOF lookups."""
        n, nw = starts.shape
        ms = len(plan.sum_metrics)
        keys = plan.view.entity.keys
        if plan.group_mode == "category":
            if "category" in keys:
                cats = labels["category"].astype(str).to_numpy(dtype=object)
            else:
                cmap = self.catalog_map()
                cats = np.array([cmap.get(str(i)) for i in labels[keys[0]]], dtype=object)
            has_cat = pd.Series(cats, dtype=object).notna().to_numpy(dtype=bool)
        else:
            cats = np.full(n, None, dtype=object)
            has_cat = np.zeros(n, dtype=bool)
        vals: list[str] = []
        for m in plan.sum_metrics:
            cond = self._cond(m.types, m.column)
            expr = "1.0" if m.column is None or m.presence else f"e.{m.column}"
            vals.append(f"CASE WHEN {cond} THEN {expr} ELSE 0.0 END AS v_{len(vals)}")
        parts = [f"SELECT '' AS _g, e._ts, {', '.join(vals)} FROM ev e"]
        if plan.group_mode == "category":
            parts.append(f"SELECT e._cat AS _g, e._ts, {', '.join(vals)} FROM ev e WHERE e._cat IS NOT NULL AND e._cat <> ''")
        cum_cols = ", ".join(f"SUM(v_{j}) OVER w AS c_{j}" for j in range(ms))
        rows_p: list[NDArray[np.int64]] = []
        w_p: list[NDArray[np.int64]] = []
        g_p: list[NDArray[np.object_]] = []
        x_p: list[NDArray[np.int64]] = []
        idx = np.arange(n, dtype=np.int64)
        for group, mask in (("", np.ones(n, dtype=bool)), (None, has_cat)):
            if group is None and plan.group_mode != "category":
                continue
            sel = idx[mask]
            g = np.full(sel.size, group, dtype=object) if group is not None else cats[mask]
            tag = 0 if group is not None else 1
            rows_p.append(sel)
            w_p.append(np.full(sel.size, -1 - 10 * tag))
            g_p.append(g)
            x_p.append(t[mask])
            for w in range(nw):
                rows_p.append(sel)
                w_p.append(np.full(sel.size, w + 10_000 * tag))
                g_p.append(g)
                x_p.append(starts[mask, w])
        points = pd.DataFrame({
            "_row": np.concatenate(rows_p), "_w": np.concatenate(w_p),
            "_g": np.concatenate(g_p), "_x": np.concatenate(x_p),
        })
        con.register("points", points)
        res = con.execute(
            f"WITH g AS ({' UNION ALL '.join(parts)}), "
            f"cum AS (SELECT _g, _ts, {cum_cols} FROM g WINDOW w AS (PARTITION BY _g ORDER BY _ts "
            "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) "
            f"SELECT p._row, p._w, {', '.join(f'c.c_{j}' for j in range(ms))} "
            "FROM points p ASOF LEFT JOIN cum c ON p._g = c._g AND p._x > c._ts"
        ).fetch_df()
        cum_g_t = np.zeros((n, ms))
        cum_c_t = np.zeros((n, ms))
        cum_g_s = np.zeros((n, ms, nw))
        cum_c_s = np.zeros((n, ms, nw))
        r = res["_row"].to_numpy(dtype=np.int64)
        w = res["_w"].to_numpy(dtype=np.int64)
        c = np.stack([res[f"c_{j}"].to_numpy(dtype=float, na_value=0.0) for j in range(ms)], axis=1) if ms else np.zeros((len(res), 0))
        sel = w == -1
        cum_g_t[r[sel]] = c[sel]
        sel = w == -11
        cum_c_t[r[sel]] = c[sel]
        sel = (w >= 0) & (w < 10_000)
        cum_g_s[r[sel], :, w[sel]] = c[sel]
        sel = w >= 10_000
        cum_c_s[r[sel], :, w[sel] - 10_000] = c[sel]
        empty = np.zeros((n, 0, nw))
        no_last = np.full((n, 1), NO_TIME, dtype=np.int64)
        glob = Basis(cum_g_t[:, :, None] - cum_g_s, empty, empty, no_last, t)
        if plan.group_mode != "category":
            return glob, None, None
        cat = Basis(cum_c_t[:, :, None] - cum_c_s, empty, empty, no_last, t)
        return glob, cat, has_cat

    # ------------------------------------------------------------------ sampling
    def entity_sample(self, view: FeatureView, as_of: Any, n: int, *, seed: int = 0) -> list[tuple[str, ...]]:
        """Up to ``n`` entities (key tuples) with an event within the view's TTL before ``as_of``."""
        plan = compile_plan(view)
        t = to_ns(as_of)
        con = self._connect()
        try:
            cols = ", ".join(f"k_{k}" for k in view.entity.keys)
            rows = con.execute(
                f"SELECT DISTINCT {cols} FROM ({self._enriched(plan, t - plan.ttl_ns, t)}) ORDER BY {cols}"
            ).fetchall()
        finally:
            con.close()
        if len(rows) > n:
            pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
            rows = [rows[i] for i in pick]
        return [tuple(str(v) for v in r) for r in rows]

    # ------------------------------------------------------------------ embeddings
    def _embedding_path(self, view: EmbeddingView) -> Path:
        return self.path / "embeddings" / view.name / f"{view.fingerprint[:12]}.parquet"

    def write_embeddings(self, view: EmbeddingView, keys: list[Any], vectors: NDArray[Any]) -> Path:
        """Store the vectors of an embedding view (replacing earlier ones of the same definition).

        Raises:
            DataError: the vectors are not (len(keys), view.dim).
        """
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.shape != (len(keys), view.dim):
            raise DataError(f"embedding view {view.name!r} needs vectors of shape ({len(keys)}, {view.dim}), got {arr.shape}")
        frame = pd.DataFrame(arr, columns=view.feature_names())
        frame.insert(0, "entity", [encode_key(k) for k in keys])
        path = self._embedding_path(view)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        return path

    def embeddings(self, view: EmbeddingView) -> tuple[list[tuple[str, ...]], NDArray[np.float32]]:
        """The stored keys and vectors of an embedding view.

        Raises:
            DataError: nothing was stored for this definition.
        """
        path = self._embedding_path(view)
        if not path.exists():
            raise DataError(f"no vectors stored for embedding view {view.name!r}; write them with write_embeddings")
        frame = pd.read_parquet(path)
        keys = [decode_key(k, len(view.entity.keys)) for k in frame["entity"].astype(str)]
        return keys, frame[view.feature_names()].to_numpy(dtype=np.float32)

    def _join_embeddings(self, view: EmbeddingView, labels: pd.DataFrame) -> pd.DataFrame:
        path = self._embedding_path(view)
        frame = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["entity", *view.feature_names()])
        ent = [encode_key(tuple(str(v) for v in row)) for row in labels[list(view.entity.keys)].itertuples(index=False)]
        vectors = frame.set_index("entity")[view.feature_names()].reindex(ent)
        vectors.index = labels.index
        return pd.concat([labels, vectors.astype(float)], axis=1)


def _int_or(series: pd.Series, default: int) -> NDArray[np.int64]:
    """An integer column with nulls replaced by ``default``, without a float round trip."""
    return np.asarray(series.astype("Int64").fillna(default).to_numpy(dtype=np.int64))
