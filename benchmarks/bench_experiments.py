"""Benchmark: analysis of 10 million exposure rows through DuckDB, against polars.

The data: ``--units`` exposed users (default 1,000,000, split 50/50 by the real salted hash)
and an event log in aisle's canonical columns holding exactly ``--exposures`` exposure rows
(impressions, ``event_type = 'view'``, default 10,000,000) plus the funnel events they lead to
(clicks, add-to-carts, purchases, returns) and a pre-period of history for CUPED. Both tables
are Parquet files; every timed run starts from the files.

Measured, median of ``--repeats`` after a warm-up:

* **aisle** — :func:`aisle.experiments.analyze` end to end: per-unit metrics (observation
  window, proxy, pre-period, maturity) and exact event volumes in one DuckDB pass, duplicate
  shares on a 1/k sample of units (k = rows / 2 M), then SRM, tracking check,
  Welch / z / delta method / CUPED, BH and Holm, guardrails, proxy, daily cumulative looks and
  the verdict. The goal: under 10 s.
* **peer: polars** — the same two aggregations (per-unit window metrics with exact event
  volumes, and duplicate shares on the same 1/k sample of units) with polars' lazy API and its
  streaming engine (the faster of its two engines here) from the same Parquet files, then the same statistics code on its
  per-unit table (so the ratio isolates the aggregation engine). Both sides use every core
  (DuckDB and polars default to one thread per core).
* **floor** — one DuckDB scan of the event file (count and sum): what reading the data costs.

Writes ``experiments.json`` and ``experiments.md`` under ``--out``.

Usage::

    python benchmarks/bench_experiments.py [--exposures 10000000] [--units 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aisle.experiments import (
    ExperimentSpec,
    UnitTable,
    analyze,
    analyze_table,
    unit_hashes,
)
from aisle.experiments._assignment import variant_index

GOAL_SECONDS = 10.0
#: polars' engine for the peer: its streaming engine was the faster of the two on this data
ENGINE = "streaming"
DAY_US = 86_400 * 1_000_000
START = pd.Timestamp("2024-03-01", tz="UTC")


def _strings(codes: np.ndarray, prefix: str, width: int) -> pa.Array:
    numbers = pa.array(codes.astype(np.int64)).cast(pa.string())
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def make_data(folder: Path, n_exposures: int, n_units: int, seed: int) -> dict[str, Any]:
    """Write events.parquet and exposures.parquet; returns their sizes."""
    rng = np.random.default_rng(seed)
    unit_ids = _strings(np.arange(n_units), "u", 7)
    arm, _, _ = variant_index(ExperimentSpec(name="bench"), unit_hashes(unit_ids.to_pylist()))
    exposed_us = rng.integers(0, 14 * DAY_US, n_units)
    # exactly n_exposures views, at least one per unit (the first is the exposure itself)
    extra = rng.multinomial(n_exposures - n_units, rng.dirichlet(np.full(n_units, 2.0)))
    views = 1 + extra
    unit = np.repeat(np.arange(n_units), views)
    first = np.zeros(n_exposures, dtype=bool)
    first[np.concatenate([[0], np.cumsum(views)[:-1]])] = True
    offset = np.where(first, 0, rng.exponential(2 * DAY_US, n_exposures).astype(np.int64))
    t_view = exposed_us[unit] + offset
    item = rng.zipf(1.3, n_exposures) % 50_000
    treat = arm[unit] == 1
    click = rng.random(n_exposures) < np.where(treat, 0.055, 0.05)
    cart = click & (rng.random(n_exposures) < 0.3)
    buy = cart & (rng.random(n_exposures) < 0.5)
    ret = buy & (rng.random(n_exposures) < 0.1)
    price = np.round(rng.lognormal(3.5, 0.6, n_exposures), 2)
    parts = {
        "view": (unit, item, t_view),
        "click": (unit[click], item[click], t_view[click] + 5_000_000),
        "add_to_cart": (unit[cart], item[cart], t_view[cart] + 60_000_000),
        "purchase": (
            unit[buy],
            item[buy],
            t_view[buy] + rng.integers(1, 3 * DAY_US, int(buy.sum())),
        ),
        "return": (unit[ret], item[ret], t_view[ret] + 7 * DAY_US),
    }
    # the pre-period: history before exposure (about one event per unit)
    n_pre = n_units
    pre_unit = rng.integers(0, n_units, n_pre)
    pre_t = exposed_us[pre_unit] - rng.integers(1, 28 * DAY_US, n_pre)
    pre_type = rng.choice(["view", "click", "purchase"], n_pre, p=[0.8, 0.15, 0.05])
    tables = []
    for et, (u, i, t) in parts.items():
        tables.append((u, i, t, np.full(len(u), et)))
    tables.append((pre_unit, rng.integers(0, 50_000, n_pre), pre_t, pre_type))
    u = np.concatenate([x[0] for x in tables])
    i = np.concatenate([x[1] for x in tables])
    t = np.concatenate([x[2] for x in tables])
    et = np.concatenate([x[3] for x in tables])
    p = np.round(rng.lognormal(3.5, 0.6, len(u)), 2)
    order = np.argsort(t, kind="stable")
    start_us = START.value // 1_000
    events = pa.table(
        {
            "user_id": pa.array(unit_ids.take(pa.array(u[order]))),
            "item_id": _strings(i[order], "i", 5),
            "event_type": pa.array(et[order]),
            "timestamp": pa.array(start_us + t[order], type=pa.timestamp("us", tz="UTC")),
            "price": pa.array(p[order]),
            "quantity": pa.array(np.ones(len(u))),
        }
    )
    del price
    exposures = pa.table(
        {
            "unit_id": unit_ids,
            "variant": pa.array(np.where(arm == 1, "treatment", "control")),
            "exposed_at": pa.array(start_us + exposed_us, type=pa.timestamp("us", tz="UTC")),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(events, folder / "events.parquet", row_group_size=1_000_000)
    pq.write_table(exposures, folder / "exposures.parquet")
    return {
        "events_rows": events.num_rows,
        "exposure_rows": n_exposures,
        "pre_period_rows": n_pre,
        "units": n_units,
        "events_mb": round((folder / "events.parquet").stat().st_size / 1e6, 1),
        "by_type": {
            str(k): int(v) for k, v in zip(*np.unique(et, return_counts=True), strict=True)
        },
    }


SPEC = ExperimentSpec(name="bench", duration_days=14.0)
AS_OF = START + pd.Timedelta(days=21)


def run_aisle(folder: Path) -> dict[str, Any]:
    res = analyze(
        SPEC, str(folder / "events.parquet"), str(folder / "exposures.parquet"), as_of=AS_OF
    )
    return {
        "verdict": res.verdict,
        "ctr_relative": res.metric("ctr").relative,
        "mature": sum(res.mature.values()),
    }


def polars_unit_table(folder: Path) -> tuple[UnitTable, pd.DataFrame]:
    """The per-unit window metrics and tracking counts with polars (the peer)."""
    w, pw, pre = 7 * DAY_US, 1 * DAY_US, 28 * DAY_US
    as_of_us = AS_OF.value // 1_000
    n_rows = pl.scan_parquet(folder / "events.parquet").select(pl.len()).collect().item()
    ev = pl.scan_parquet(folder / "events.parquet").select(
        pl.col("user_id").alias("unit_id"),
        pl.col("item_id"),
        pl.col("event_type").alias("et"),
        pl.col("timestamp").dt.epoch("us").alias("t"),
        (pl.col("price").fill_null(0) * pl.col("quantity").fill_null(1)).alias("amount"),
    )
    x = (
        pl.scan_parquet(folder / "exposures.parquet")
        .group_by("unit_id", "variant")
        .agg(pl.col("exposed_at").dt.epoch("us").min().alias("x_us"))
    )
    j = x.join(ev, on="unit_id", how="left").with_columns(
        (
            (pl.col("t") >= pl.col("x_us"))
            & (pl.col("t") < pl.col("x_us") + w)
            & (pl.col("t") <= as_of_us)
        ).alias("w"),
        (
            (pl.col("t") >= pl.col("x_us"))
            & (pl.col("t") < pl.col("x_us") + pw)
            & (pl.col("t") <= as_of_us)
        ).alias("pw"),
        ((pl.col("t") < pl.col("x_us")) & (pl.col("t") >= pl.col("x_us") - pre)).alias("pre"),
    )

    # row-level flag columns first, then plain column sums (polars' fast group-by path)
    et, win, prx, pr = (
        pl.col("et"),
        pl.col("w").fill_null(False),
        pl.col("pw").fill_null(False),
        pl.col("pre").fill_null(False),
    )
    flags = {
        "views": win & (et == "view"),
        "clicks": win & (et == "click"),
        "carts": win & (et == "add_to_cart"),
        "purchases": win & (et == "purchase"),
        "returns": win & (et == "return"),
        "early_carts": prx & (et == "add_to_cart"),
        "pre_views": pr & (et == "view"),
        "pre_clicks": pr & (et == "click"),
        "pre_carts": pr & (et == "add_to_cart"),
        "pre_purchases": pr & (et == "purchase"),
    }
    amounts = {"revenue": win & (et == "purchase"), "pre_revenue": pr & (et == "purchase")}
    after = (pl.col("t") >= pl.col("x_us")) & (pl.col("t") <= as_of_us)
    types = ("view", "click", "add_to_cart", "purchase", "return")
    flags |= {f"after_{t}": after.fill_null(False) & (et == t) for t in types}  # exact volumes
    units = (
        j.select(
            "unit_id",
            "variant",
            "x_us",
            *[c.cast(pl.Float64).alias(k) for k, c in flags.items()],
            *[
                pl.when(c).then(pl.col("amount")).otherwise(0.0).alias(k)
                for k, c in amounts.items()
            ],
        )
        .group_by("unit_id", "variant", "x_us")
        .agg(pl.all().sum())
        .sort("x_us", "unit_id")
        .collect(engine=ENGINE)
        .to_pandas()
    )
    volumes = (
        units.groupby("variant")[[f"after_{t}" for t in types]]
        .sum()
        .rename(columns=lambda c: c.removeprefix("after_"))
        .stack()
        .rename("n_events")
        .reset_index()
        .rename(columns={"level_1": "event_type"})
    )
    volumes["n_events"] = volumes["n_events"].astype(np.int64)
    units = units.drop(columns=[f"after_{t}" for t in types])
    # duplicate shares on a 1/k sample of units, like aisle's tracking counts
    k = max(1, math.ceil(n_rows / 2_000_000))
    xs = x.filter(pl.col("unit_id").hash() % k == 0)
    sample = (
        ev.join(xs, on="unit_id", how="inner")
        .filter((pl.col("t") >= pl.col("x_us")) & (pl.col("t") <= as_of_us))
        .group_by("variant", "et", "unit_id", "item_id", pl.col("t") // 1_000_000)
        .agg(pl.len().alias("n"))
        .group_by(pl.col("et").alias("event_type"), "variant")
        .agg(((pl.col("n") - 1).sum() / pl.col("n").sum()).alias("share"))
        .collect(engine=ENGINE)
        .to_pandas()
    )
    counts = volumes.merge(sample, on=["event_type", "variant"], how="left").fillna({"share": 0.0})
    counts["n_duplicates"] = np.round(counts["n_events"] * counts.pop("share")).astype(np.int64)
    counts["sample_fraction"] = 1.0 / k
    from aisle.experiments._metrics import _finish

    return _finish(units, as_of_us, 7.0, 1.0, 28.0), counts


def run_polars(folder: Path) -> dict[str, Any]:
    table, counts = polars_unit_table(folder)
    res = analyze_table(SPEC, table, counts, source="polars peer")
    return {
        "verdict": res.verdict,
        "ctr_relative": res.metric("ctr").relative,
        "mature": sum(res.mature.values()),
    }


def run_floor(folder: Path) -> dict[str, Any]:
    con = duckdb.connect()
    row = con.execute(
        f"SELECT count(*), sum(price) FROM read_parquet('{(folder / 'events.parquet').as_posix()}')"
    ).fetchall()
    con.close()
    return {"rows": int(row[0][0])}


def _duckdb_threads() -> int:
    con = duckdb.connect()
    n = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    con.close()
    return n


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads of this process) of one call."""
    c, t = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t, _cpu() - c


def _version() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    global ENGINE
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--exposures", type=int, default=10_000_000, help="exposure (view) rows")
    parser.add_argument("--units", type=int, default=1_000_000, help="exposed units")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--polars-engine",
        choices=["streaming", "in-memory"],
        default="streaming",
        help="the peer's polars engine",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder for the Parquet files (default: a temporary one)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    ENGINE = args.polars_engine

    tmp = None
    folder = args.data
    if folder is None:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
    print(f"generating {args.exposures:,} exposure rows for {args.units:,} units ...", flush=True)
    gen_s, sizes = _timed(lambda: make_data(folder, args.exposures, args.units, args.seed))
    print(
        f"  {sizes['events_rows']:,} event rows ({sizes['events_mb']} MB Parquet) in {gen_s:.1f} s",
        flush=True,
    )

    load_before = tuple(round(x, 2) for x in os.getloadavg())
    sides: dict[str, Callable[[], Any]] = {
        "aisle (DuckDB)": lambda: run_aisle(folder),
        "polars peer": lambda: run_polars(folder),
        "floor (DuckDB scan)": lambda: run_floor(folder),
    }
    runs: dict[str, list[float]] = {k: [] for k in sides}
    cpu_runs: dict[str, list[float]] = {k: [] for k in sides}
    outputs: dict[str, Any] = {}
    for name, fn in sides.items():  # warm-up
        _, outputs[name] = _timed(fn)
    for r in range(args.repeats):  # alternate the sides within each repetition
        for name, fn in sides.items():
            seconds, cpu_s = _timed_cpu(fn)
            runs[name].append(seconds)
            cpu_runs[name].append(cpu_s)
            print(f"  rep {r + 1} {name:<22} {seconds:6.2f} s wall, {cpu_s:6.2f} s CPU", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_runs.items()}
    aisle_s, peer_s, floor_s = med["aisle (DuckDB)"], med["polars peer"], med["floor (DuckDB scan)"]
    verdict = "MET" if aisle_s < GOAL_SECONDS else "MISSED"
    same = outputs["aisle (DuckDB)"] == outputs["polars peer"] or (
        outputs["aisle (DuckDB)"]["mature"] == outputs["polars peer"]["mature"]
        and abs(outputs["aisle (DuckDB)"]["ctr_relative"] - outputs["polars peer"]["ctr_relative"])
        < 1e-9
    )
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "duckdb": duckdb.__version__,
        "polars": pl.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "load_average_1_5_15_min_before_after": [
            list(load_before),
            [round(x, 2) for x in os.getloadavg()],
        ],
        "threads": f"DuckDB default ({_duckdb_threads()}), polars default ({pl.thread_pool_size()}), polars engine {ENGINE}",
    }
    result = {
        "benchmark": "experiments",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": _version(),
        "data": {**sizes, "seed": args.seed, "generate_s": round(gen_s, 2)},
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "median_cpu_s": {k: round(v, 3) for k, v in cpu_med.items()},
        "ratio_aisle_to_polars": round(aisle_s / peer_s, 2),
        "ratio_aisle_to_floor": round(aisle_s / floor_s, 1),
        "same_results": bool(same),
        "outputs": outputs,
        "goal": f"analysis of {args.exposures:,} exposure rows < {GOAL_SECONDS:.0f} s",
        "goal_verdict": verdict,
        "machine": machine,
    }
    print()
    print(
        f"aisle analyze (DuckDB) median of {args.repeats}: {aisle_s:.2f} s "
        f"({cpu_med['aisle (DuckDB)']:.1f} CPU-s)   goal < {GOAL_SECONDS:.0f} s   {verdict}"
    )
    print(
        f"polars peer (same aggregations + same statistics): {peer_s:.2f} s "
        f"({cpu_med['polars peer']:.1f} CPU-s)   aisle/polars = {aisle_s / peer_s:.2f}"
    )
    print(
        f"floor (one DuckDB scan of the events): {floor_s:.2f} s   aisle/floor = {aisle_s / floor_s:.1f}"
    )
    print(f"same verdict and figures on both sides: {same}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiments.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = [
        "# Experiment analysis benchmark",
        "",
        f"{result['when']}, code {result['code_version']}, Python {machine['python']}, DuckDB {machine['duckdb']}, "
        f"polars {machine['polars']}, numpy {machine['numpy']}, pandas {machine['pandas']}, pyarrow {machine['pyarrow']}, "
        f"{machine['cpu_count']} cores; threads: {machine['threads']}. Load average (1/5/15 min) "
        f"before and after the timed runs: {machine['load_average_1_5_15_min_before_after']} "
        "(the machine is shared; other work inflates the wall times of both sides alike).",
        "",
        f"Data (seed {args.seed}): {sizes['units']:,} exposed units, {sizes['exposure_rows']:,} exposure rows, "
        f"{sizes['events_rows']:,} event rows in all ({sizes['events_mb']} MB Parquet): {sizes['by_type']}. "
        f"Median of {args.repeats} after a warm-up; the sides alternate within each repetition.",
        "",
        "| measure | median | goal | verdict |",
        "|---|---|---|---|",
        f"| aisle `analyze()` end to end from Parquet (DuckDB aggregations + statistics + verdict) | {aisle_s:.2f} s ({cpu_med['aisle (DuckDB)']:.1f} CPU-s) | < {GOAL_SECONDS:.0f} s | {verdict} |",
        f"| peer: polars lazy (streaming engine), same aggregations, same statistics code | {peer_s:.2f} s ({cpu_med['polars peer']:.1f} CPU-s) | | aisle/polars = {aisle_s / peer_s:.2f} |",
        f"| floor: one DuckDB scan of the event file | {floor_s:.2f} s | | aisle/floor = {aisle_s / floor_s:.1f} |",
        "",
        f"Both sides give the same verdict and figures: {same} ({outputs['aisle (DuckDB)']}). "
        f"The counts by type include the {sizes['pre_period_rows']:,} pre-period rows. CPU-s are "
        "the process's CPU seconds over all threads: on an idle 2-core machine the wall time lies "
        "between half of them (both cores busy) and all of them (one core busy); on a shared "
        "machine it is longer.",
        "",
    ]
    (out / "experiments.md").write_text("\n".join(md))
    print(f"wrote {out / 'experiments.json'} and {out / 'experiments.md'}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
