"""Benchmark: online feature reads (SQLite, Redis) against raw client floors; stream ingestion.

Reads: the built-in ``item_stats`` view (20 features of an item, with CTR and conversion
smoothed toward the item's category, so one read fetches the item's state and its category's
and all items' prior states). For 1 entity and for 100 entities, aisle's read
(``OnlineStore.read``: one round trip, then feature values computed from the tiles) alternates
call by call with the raw floor doing the same reads: for Redis the same ``MGET`` through a
plain redis-py pipeline and as a direct command (the faster of the two is the floor), for
SQLite the same ``SELECT ... WHERE key IN (...)``. Latencies are per call
(``perf_counter_ns``); p50 and p99 are taken per repetition and the median of ``--repeats``
repetitions is reported, after a warm-up. The numpy read path (no numba) is timed on its own,
for reference.

Ingestion: events per second into the windowed aggregates of the four built-in views:
(1) the aggregation engine alone (events already in memory), (2) the embedded stream (an
in-process queue into the SQLite store), (3) the Redis path end to end: entries already on a
Redis stream, read by a consumer group, deduplicated by event id, folded and committed to the
Redis online store, acknowledged. A transport floor (reading, decoding and acknowledging the
same entries with no processing) is shown beside it.

Usage::

    python benchmarks/bench_features.py [--events 200000] [--reads 2000] [--repeats 5]
        [--redis-url redis://127.0.0.1:6379/0] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from aisle.features import (
    EventBatch,
    FeatureView,
    MemorySource,
    OfflineStore,
    OnlineStore,
    RedisOnline,
    RedisStreamSource,
    SQLiteOnline,
    StreamProcessor,
    TileTable,
    compile_plan,
    default_repository,
    materialize,
    publish_events,
)
from aisle.features._aggregates import RowLayout
from aisle.features._fastread import available as numba_available
from aisle.simulate import simulate

GOAL_P99_MS = 1.0
GOAL_RATIO = 1.5
GOAL_EVENTS_PER_S = 50_000


def _pct(values: list[int]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64) / 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _interleaved(calls: dict[str, Callable[[int], Any]], n: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Run the calls in turn (rotating the order), n times each, after a warm-up; p50/p99 in us."""
    for i in range(warmup):
        for fn in calls.values():
            fn(i)
    samples: dict[str, list[int]] = {name: [] for name in calls}
    clock = time.perf_counter_ns
    order = list(calls.items())
    for i in range(n):
        shift = i % len(order)  # rotate who goes first: no reader always follows the same one
        for name, fn in order[shift:] + order[:shift]:
            t0 = clock()
            fn(i)
            samples[name].append(clock() - t0)
    return {name: _pct(v) for name, v in samples.items()}


def _median_runs(runs: list[dict[str, tuple[float, float]]]) -> dict[str, dict[str, float]]:
    out = {}
    for name in runs[0]:
        out[name] = {
            "p50_us": round(statistics.median(r[name][0] for r in runs), 1),
            "p99_us": round(statistics.median(r[name][1] for r in runs), 1),
        }
    return out


def _storage_keys(store: OnlineStore, view: FeatureView, items: list[str]) -> list[str]:
    plan = store.plan(view)
    layout = RowLayout.build(plan, items, store.catalog())
    prefix = f"f:{plan.namespace}:"
    return [prefix + "e:" + k for k in items] + [prefix + "g:" + g for g in layout.group_keys]


def bench_reads(
    offline: OfflineStore, view: FeatureView, redis_url: str, reads: int, repeats: int, workdir: Path
) -> dict[str, Any]:
    """Latency of aisle's reads and of the raw floors, SQLite and Redis, 1 and 100 entities."""
    sqlite_path = workdir / "online.sqlite"
    stores = {
        "sqlite": OnlineStore(SQLiteOnline(sqlite_path)),
        "redis": OnlineStore(RedisOnline(redis_url, prefix=f"aisle-bench-{uuid.uuid4().hex[:8]}")),
    }
    as_of = 0
    for store in stores.values():
        as_of = materialize(view, offline, store).as_of
    numpy_stores = {name: OnlineStore(s.backend, compiled=False) for name, s in stores.items()}
    items = sorted(offline.events()["item_id"].unique().tolist())
    singles = [[items[i % len(items)]] for i in range(len(items))]
    blocks = [items[j : j + 100] for j in range(0, len(items) - 99, 100)]
    redis_backend = stores["redis"].backend
    assert isinstance(redis_backend, RedisOnline)
    client = redis_backend.client
    prefix = redis_backend.prefix + ":"
    raw_sqlite = sqlite3.connect(sqlite_path)
    results: dict[str, Any] = {}
    for case, groups in (("1 entity x 20 features", singles), ("100 entities x 20 features", blocks)):
        n = reads if case.startswith("1 ") else max(reads // 5, 50)
        redis_keys = [[prefix + k for k in _storage_keys(stores["redis"], view, g)] for g in groups]
        sqlite_keys = [_storage_keys(stores["sqlite"], view, g) for g in groups]

        def pipe_mget(i: int, keys: list[list[str]] = redis_keys) -> Any:
            p = client.pipeline(transaction=False)
            p.execute_command("MGET", *keys[i % len(keys)])
            return p.execute()

        def select(i: int, keys: list[list[str]] = sqlite_keys) -> Any:
            k = keys[i % len(keys)]
            return raw_sqlite.execute(
                f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(k))}) AND (expires_at IS NULL OR expires_at > ?)",
                (*k, time.time()),
            ).fetchall()

        redis_calls: dict[str, Callable[[int], Any]] = {
            "aisle": lambda i, g=groups: stores["redis"].read(view, g[i % len(g)], as_of=as_of),
            "raw redis-py pipeline MGET": pipe_mget,
            "raw redis-py MGET": lambda i, k=redis_keys: client.execute_command("MGET", *k[i % len(k)]),
        }
        sqlite_calls: dict[str, Callable[[int], Any]] = {
            "aisle": lambda i, g=groups: stores["sqlite"].read(view, g[i % len(g)], as_of=as_of),
            "raw sqlite3 SELECT": select,
        }
        for backend, calls in (("redis", redis_calls), ("sqlite", sqlite_calls)):
            runs = [_interleaved(calls, n, warmup=max(n // 10, 20)) for _ in range(repeats)]
            # the numpy path (no numba), for reference, timed on its own
            alone: dict[str, Callable[[int], Any]] = {
                "aisle (numpy path, no numba)":
                    lambda i, g=groups, s=numpy_stores[backend]: s.read(view, g[i % len(g)], as_of=as_of),
            }
            for run, extra in zip(runs, [_interleaved(alone, n, warmup=20) for _ in range(repeats)], strict=True):
                run.update(extra)
            summary = _median_runs(runs)
            results[f"{backend}: {case}"] = {"reads_per_repetition": n, "repetitions": repeats, "latency": summary}
            print(f"  {backend:6s} {case:28s} " + "  ".join(
                f"{name}: p50 {v['p50_us']:.0f} us, p99 {v['p99_us']:.0f} us" for name, v in summary.items()
            ), flush=True)
    raw_sqlite.close()
    redis_backend.delete_prefix("")
    return results


def bench_ingest(offline: OfflineStore, views: list[FeatureView], redis_url: str, repeats: int,
                 per_entry: int, batch_entries: int, workdir: Path) -> dict[str, Any]:
    """Events per second into windowed aggregates: engine, embedded stream, Redis end to end."""
    events = offline.events()
    catalog = offline.catalog_map()
    n = len(events)
    batch = EventBatch.from_frame(events, catalog)
    out: dict[str, Any] = {"events": n, "views": [v.name for v in views]}

    def engine() -> float:
        tables = [TileTable(compile_plan(v)) for v in views]
        t0 = time.perf_counter()
        for start in range(0, n, 20_000):
            part = batch.take(np.arange(start, min(start + 20_000, n)))
            for t in tables:
                t.apply(part)
        return time.perf_counter() - t0

    def embedded() -> float:
        online = OnlineStore(SQLiteOnline(workdir / f"stream-{uuid.uuid4().hex[:6]}.sqlite"))
        online.put_catalog(catalog)
        source = MemorySource(batch_entries=batch_entries)
        for start in range(0, n, per_entry):
            source.put(events.iloc[start : start + per_entry])
        t0 = time.perf_counter()
        summary = StreamProcessor(views, online).run(source, max_events=n)
        assert summary.totals.applied == n
        return time.perf_counter() - t0

    client = redis.Redis.from_url(redis_url)

    def redis_end_to_end() -> tuple[float, float]:
        tag = uuid.uuid4().hex[:8]
        stream = f"aisle-bench-stream-{tag}"
        backend = RedisOnline(redis_url, prefix=f"aisle-bench-{tag}")
        try:
            publish_events(client, stream, events, per_entry=per_entry)
            # transport floor: read, decode and acknowledge every entry, no processing
            floor_src = RedisStreamSource(redis_url, stream, f"floor-{tag}", "c", batch_entries=batch_entries, block_ms=50)
            t0 = time.perf_counter()
            seen = 0
            while seen < n:
                entries = floor_src.read()
                seen += sum(len(e) for e in entries)
                floor_src.ack([e.id for e in entries])
            floor_s = time.perf_counter() - t0
            online = OnlineStore(backend)
            online.put_catalog(catalog)
            source = RedisStreamSource(redis_url, stream, f"bench-{tag}", "c", batch_entries=batch_entries, block_ms=50)
            t0 = time.perf_counter()
            summary = StreamProcessor(views, online, name=f"bench-{tag}").run(source, max_events=n)
            seconds = time.perf_counter() - t0
            assert summary.totals.applied == n and source.pending() == 0
            return seconds, floor_s
        finally:
            client.delete(stream)
            backend.delete_prefix("")

    engine()  # warm-up
    eng = [engine() for _ in range(repeats)]
    emb = [embedded() for _ in range(repeats)]
    red = [redis_end_to_end() for _ in range(repeats)]
    for name, secs in (
        ("aggregation engine (events in memory)", eng),
        ("embedded stream -> SQLite", emb),
        ("Redis stream -> consumer group -> Redis", [s for s, _ in red]),
        ("floor: Redis stream read + decode + ack only", [f for _, f in red]),
    ):
        med = statistics.median(secs)
        out[name] = {"seconds": [round(s, 3) for s in secs], "median_s": round(med, 3), "events_per_s": round(n / med)}
        print(f"  {name:45s} {n / med:>10,.0f} events/s (median of {repeats})", flush=True)
    out["config"] = {"events_per_stream_entry": per_entry, "entries_per_batch": batch_entries,
                     "events_per_batch": per_entry * batch_entries}
    return out


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "pandas", "pyarrow", "duckdb", "redis", "numba"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "not installed"
    return out


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _code_version() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/aisle/features"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" + uncommitted src/aisle/features" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="simulated events")
    parser.add_argument("--reads", type=int, default=2000, help="single-entity reads per repetition (100-entity: a fifth)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-entry", type=int, default=500, help="events per stream entry")
    parser.add_argument("--batch-entries", type=int, default=40, help="stream entries per micro-batch")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if not numba_available():
        print("note: numba is not installed; aisle reads use the numpy path (pip install 'aisle[fast]')")

    load_before = os.getloadavg()
    print(f"simulating {args.events:,} events ...", flush=True)
    shop = simulate(args.events, seed=args.seed)
    events = shop.events
    digest = hashlib.sha256(pd.util.hash_pandas_object(events[["event_id", "user_id", "item_id"]], index=False).to_numpy().tobytes()).hexdigest()[:16]
    views = [v for v in default_repository().views.values() if isinstance(v, FeatureView)]
    item_view = default_repository().view("item_stats")
    assert isinstance(item_view, FeatureView) and len(item_view.feature_names()) == 20
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        offline = OfflineStore(workdir / "offline")
        offline.ingest(shop.events, catalog=shop.dataset.items, validate=False)
        print("online reads (item_stats, 20 features):", flush=True)
        reads = bench_reads(offline, item_view, args.redis_url, args.reads, args.repeats, workdir)
        print("stream ingestion into the windowed aggregates of the 4 built-in views:", flush=True)
        ingest = bench_ingest(offline, views, args.redis_url, args.repeats, args.per_entry, args.batch_entries, workdir)
    load_after = os.getloadavg()

    goals = []
    for case in ("1 entity x 20 features", "100 entities x 20 features"):
        lat = reads[f"redis: {case}"]["latency"]
        floor = {q: min(lat["raw redis-py pipeline MGET"][q], lat["raw redis-py MGET"][q]) for q in ("p50_us", "p99_us")}
        if case.startswith("1 "):
            goals.append({"goal": f"Redis p99, {case} <= {GOAL_P99_MS:g} ms", "measured": f"{lat['aisle']['p99_us'] / 1e3:.3f} ms",
                          "verdict": _verdict(lat["aisle"]["p99_us"] <= GOAL_P99_MS * 1e3)})
        for q in ("p50_us", "p99_us"):
            ratio = lat["aisle"][q] / floor[q]
            goals.append({"goal": f"Redis {q[:3]} / raw floor, {case} <= {GOAL_RATIO}x", "measured": f"{ratio:.2f}x",
                          "verdict": _verdict(ratio <= GOAL_RATIO)})
    for name in ("aggregation engine (events in memory)", "embedded stream -> SQLite", "Redis stream -> consumer group -> Redis"):
        rate = ingest[name]["events_per_s"]
        goals.append({"goal": f"ingestion, {name} >= {GOAL_EVENTS_PER_S:,} events/s", "measured": f"{rate:,} events/s",
                      "verdict": _verdict(rate >= GOAL_EVENTS_PER_S)})

    result = {
        "benchmark": "features",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "data": {"simulated_events": len(events), "users": int(events["user_id"].nunique()),
                 "items": int(events["item_id"].nunique()), "seed": args.seed, "events_digest": digest},
        "reads": reads,
        "ingestion": ingest,
        "goals": goals,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "memory_gib": _memory_gib(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after],
                    "threads": "aisle and the peers run single-threaded in this process; Redis on the same machine",
                    "versions": _versions(), "redis_server": redis.Redis.from_url(args.redis_url).info("server")["redis_version"]},
    }
    print()
    width = max(len(g["goal"]) for g in goals)
    for g in goals:
        print(f"{g['goal']:<{width}}  {g['measured']:>18}  {g['verdict']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "features.md").write_text(_markdown(result))
    print(f"wrote {args.out / 'features.json'} and {args.out / 'features.md'}")
    return 0


def _markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    v = m["versions"]
    d = result["data"]
    lines = [
        "# Feature store benchmark",
        "",
        f"{result['when']}, code {result['code_version']}, `{result['command']}`. Python {v['python']}, numpy {v['numpy']}, "
        f"pandas {v['pandas']}, duckdb {v['duckdb']}, redis-py {v['redis']}, numba {v['numba']}, Redis server "
        f"{m['redis_server']}; {m['cpu_count']} cores, {m['memory_gib']} GiB; load average {m['load_average_before']} "
        f"before, {m['load_average_after']} after (the machine is shared). {m['threads']}.",
        "",
        f"Data: simulated shop, {d['simulated_events']:,} events, {d['users']:,} users, {d['items']:,} items, seed "
        f"{d['seed']} (digest {d['events_digest']}). Medians of the repetitions after a warm-up; every call timed.",
        "",
        "## Goals",
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
        *(f"| {g['goal']} | {g['measured']} | {g['verdict']} |" for g in result["goals"]),
        "",
        "## Online reads (`item_stats`, 20 features; each read also fetches the category and global prior states)",
        "",
        "Readers alternate call by call (rotating who goes first). On a shared machine the p99 mostly counts "
        "calls hit by a context switch to another process (a few ms): the longer a call, the more often it is "
        "hit, so p99 ratios swing from run to run while p50 ratios are stable.",
        "",
        "| store, case | reader | p50 (us) | p99 (us) |",
        "|---|---|---|---|",
    ]
    for case, data in result["reads"].items():
        for reader, lat in data["latency"].items():
            lines.append(f"| {case} | {reader} | {lat['p50_us']:,.0f} | {lat['p99_us']:,.0f} |")
    ing = result["ingestion"]
    cfg = ing["config"]
    lines += [
        "",
        f"## Stream ingestion ({ing['events']:,} events into the windowed aggregates of {len(ing['views'])} views: "
        f"{', '.join(ing['views'])}; {cfg['events_per_stream_entry']} events per entry, {cfg['entries_per_batch']} "
        "entries per micro-batch)",
        "",
        "| path | median (s) | events/s |",
        "|---|---|---|",
    ]
    for name, data in ing.items():
        if isinstance(data, dict) and "median_s" in data:
            lines.append(f"| {name} | {data['median_s']} | {data['events_per_s']:,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
