"""Benchmark: how fast the shop simulator generates a million events, and at what memory.

Runs ``aisle.simulate.simulate(n_events)`` once to warm up, then ``--repeats`` more times, and
reports the median wall time (with the sizing pilot) and events per second; then times
``ShopSimulator(config).generate()`` alone at the sized config, measures the peak resident
memory of a fresh process that generates the same shop, and a floor: an i.i.d. random event
log of the same size and canonical columns built with numpy and Arrow (what any generator pays
to hand over such a table, with no behaviour model behind it). Writes ``simulator.json`` and ``simulator.md`` under the output folder.

Usage::

    python benchmarks/bench_simulator.py [--events 1000000] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from aisle.simulate import ShopSimulator, simulate

GOAL_SECONDS = 30.0
GOAL_EVENTS = 1_000_000


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _arrow_strings(codes: np.ndarray, vocabulary: list[str]) -> pd.Series:
    arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(vocabulary))
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(arr, pa.string())), dtype="str")


def _random_log(n: int, n_users: int, n_items: int) -> pd.DataFrame:
    """The floor: an i.i.d. random event log of the same size and columns (no behaviour)."""
    rng = np.random.default_rng(0)
    ms = np.sort(rng.integers(0, 60 * 86_400_000, n))
    users = [f"u{k:06d}" for k in range(n_users)]
    items = [f"i{k:05d}" for k in range(n_items)]
    numbers = pc.cast(pa.array(np.arange(n)), pa.string())
    event_id = pc.binary_join_element_wise("e", pc.utf8_lpad(numbers, 8, "0"), "")
    session = pc.binary_join_element_wise(
        "s", pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, n // 9, n)), pa.string()), 7, "0"), ""
    )
    return pd.DataFrame(
        {
            "event_id": pd.Series(pd.arrays.ArrowStringArray(event_id), dtype="str"),
            "user_id": _arrow_strings(rng.integers(0, n_users, n), users),
            "item_id": _arrow_strings(rng.integers(0, n_items, n), items),
            "event_type": _arrow_strings(
                rng.integers(0, 5, n), ["view", "click", "add_to_cart", "purchase", "return"]
            ),
            "timestamp": pd.Series(
                pd.DatetimeIndex((ms * 1_000_000).view("datetime64[ns]")).tz_localize("UTC")
            ),
            "session_id": pd.Series(pd.arrays.ArrowStringArray(session), dtype="str"),
            "quantity": rng.random(n),
            "price": rng.random(n),
            "value": np.full(n, np.nan),
            "device": _arrow_strings(rng.integers(0, 3, n), ["mobile", "desktop", "app"]),
            "page": _arrow_strings(
                rng.integers(0, 4, n), ["home", "category", "search", "product"]
            ),
            "position": rng.integers(1, 40, n).astype(np.float64),
        }
    )


def _peak_rss_mb(n_events: int, seed: int) -> float:
    """Peak resident memory (MiB) of a fresh process that imports aisle and runs simulate."""
    code = (
        "import resource, sys\n"
        "from aisle.simulate import simulate\n"
        f"shop = simulate({n_events}, seed={seed})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # Linux reports KiB


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed; the simulator then keeps the BLAS default)"
    infos = [f"{i.get('internal_api')}={i.get('num_threads')}" for i in threadpool_info()]
    return ", ".join(infos) + " (the simulator limits BLAS to 1 thread while it runs)"


def _memory_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no commit)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=GOAL_EVENTS, help="events to generate")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="output folder",
    )
    args = parser.parse_args(argv)

    print(f"warm-up: simulate({args.events:,}) ...", flush=True)
    warm_s, shop = _timed(lambda: simulate(args.events, seed=args.seed))
    config = shop.config
    n_events = len(shop.dataset.events)
    del shop

    runs: list[float] = []
    for r in range(args.repeats):
        seconds, shop = _timed(lambda: simulate(args.events, seed=args.seed))
        assert len(shop.dataset.events) == n_events  # seeded: the same shop every time
        runs.append(seconds)
        print(f"  run {r + 1}: {seconds:.2f} s", flush=True)
        del shop
    gen_runs: list[float] = []
    events: pd.DataFrame | None = None
    for _ in range(args.repeats):
        seconds, shop = _timed(lambda: ShopSimulator(config).generate())
        gen_runs.append(seconds)
        events = shop.dataset.events
        del shop
    assert events is not None

    n_floor = len(events)
    floor_runs = [
        _timed(lambda: _random_log(n_floor, config.n_users, config.n_items))[0]
        for _ in range(args.repeats)
    ]
    peak_mb = _peak_rss_mb(args.events, args.seed)

    median = statistics.median(runs)
    gen_median = statistics.median(gen_runs)
    floor_median = statistics.median(floor_runs)
    scaled = median * GOAL_EVENTS / n_events  # the goal is stated for one million events
    met = scaled < GOAL_SECONDS
    verdict = "MET" if met else "MISSED"
    result: dict[str, Any] = {
        "benchmark": "simulator",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(),
        "requested_events": args.events,
        "events": n_events,
        "config": {
            "seed": config.seed,
            "n_users": config.n_users,
            "n_items": config.n_items,
            "n_days": config.n_days,
            "steps_per_day": config.steps_per_day,
            "n_factors": config.n_factors,
        },
        "warmup_s": round(warm_s, 3),
        "simulate_s": [round(s, 3) for s in runs],
        "simulate_median_s": round(median, 3),
        "events_per_s": round(n_events / median),
        "generate_s": [round(s, 3) for s in gen_runs],
        "generate_median_s": round(gen_median, 3),
        "generate_events_per_s": round(n_events / gen_median),
        "floor_random_log_median_s": round(floor_median, 4),
        "ratio_generate_to_floor": round(gen_median / floor_median, 1),
        "peak_rss_mib_fresh_process": round(peak_mb, 1),
        "goal": f"{GOAL_EVENTS:,} events < {GOAL_SECONDS:.0f} s",
        "goal_verdict": verdict,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "memory_total_gib": _memory_total_gb(),
            "blas_threads": _blas_threads(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
        },
    }

    print()
    print(f"events generated        {n_events:,} (asked for {args.events:,})")
    print(
        f"simulate() median of {args.repeats}  {median:.2f} s  ({n_events / median:,.0f} events/s)"
    )
    print(
        f"generate() median of {args.repeats}  {gen_median:.2f} s  ({n_events / gen_median:,.0f} events/s)"
    )
    print(
        f"floor (random log)       {floor_median:.3f} s  -> generate is {gen_median / floor_median:.1f}x the floor"
    )
    print(f"peak RSS, fresh process {peak_mb:,.0f} MiB")
    print(f"goal: 1M events < 30 s   measured {scaled:.2f} s per 1M events   {verdict}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulator.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Simulator benchmark",
        "",
        f"{result['when']}, code {result['code_version']}, Python {result['machine']['python']}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}, "
        f"{os.cpu_count()} cores, {result['machine']['memory_total_gib']} GiB; BLAS: "
        f"{result['machine']['blas_threads']}.",
        "",
        f"Shop: {config.n_users:,} users, {config.n_items:,} items, {config.n_days} days, seed "
        f"{config.seed}; {n_events:,} events. Median of {args.repeats} after a warm-up.",
        "",
        "| measure | value | goal | verdict |",
        "|---|---|---|---|",
        f"| `simulate({args.events:,})` wall time (with sizing pilot) | {median:.2f} s "
        f"({n_events / median:,.0f} events/s) | 1M events < 30 s | {verdict} |",
        f"| `generate()` at the sized config | {gen_median:.2f} s "
        f"({n_events / gen_median:,.0f} events/s) | | |",
        f"| floor: i.i.d. random log, same size and columns | {floor_median:.3f} s | "
        f"| generate = {gen_median / floor_median:.1f}x floor |",
        f"| peak RSS of a fresh process running `simulate` | {peak_mb:,.0f} MiB | | |",
        "",
    ]
    (out / "simulator.md").write_text("\n".join(md))
    print(f"wrote {out / 'simulator.json'} and {out / 'simulator.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
