"""Load benchmark of the recommendation service, against the framework floor.

A uvicorn server runs in its own process on loopback; ``wrk`` (a separate process) drives it at
fixed target rates (200, 500, 1000, 2000 req/s, paced with wrk's per-connection ``delay()``: an
approximately open-loop rate; wrk does not correct coordinated omission, so tails at saturation
are understated). Traffic: cache-hit (a few users repeated), cache-miss (every request a new
context, so the full pipeline and the model run) and the floor (a bare FastAPI endpoint that
returns a fixed list, same server settings). Also: payload bytes and encode/decode time of JSON
vs Protobuf for k = 10, 50, 100.

    python benchmarks/bench_serving.py [--duration 8] [--items 10000] [--out benchmarks/results]

Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = (200, 500, 1000, 2000)
GOAL_P99_MS = 10.0

LUA = r"""
local counter = 0
local users = {}
for u in string.gmatch(os.getenv("BENCH_USERS"), "[^,]+") do users[#users + 1] = u end
local mode = os.getenv("BENCH_MODE")
local interval = tonumber(os.getenv("BENCH_DELAY_MS"))
function delay() return interval end
function request()
  counter = counter + 1
  if mode == "floor" then return wrk.format("GET", "/floor") end
  local u = users[(counter % #users) + 1]
  if mode == "hit" then return wrk.format("GET", "/v1/recommendations/" .. u .. "?k=10") end
  return wrk.format("GET", "/v1/recommendations/" .. u .. "?k=10&page=p" .. counter .. "-" .. math.random(1e9))
end
function done(summary, latency, requests)
  io.stderr:write(string.format('BENCH {"requests": %d, "errors": %d, "non2xx": %d, "duration_us": %d, "p50": %f, "p99": %f, "p999": %f}\n',
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_workspace(root: Path, n_items: int) -> Path:
    """Simulate a shop with ``n_items`` items, fit iALS and promote it."""
    from aisle.data._feedback import FeedbackConfig, build_interactions
    from aisle.models import make_model
    from aisle.registry import register_run
    from aisle.simulate import simulate

    ds = simulate(300_000, seed=0, n_items=n_items).dataset
    train = build_interactions(ds.events, FeedbackConfig())
    model = make_model("ials", factors=64, iterations=5).fit(train)
    run = root / "runs" / "bench"
    model.save(run / "models" / "ials")
    register_run(root, run, "ials", train_events=ds.events, catalog=ds.items, users=ds.users,
                 params=model.config.model_dump(), metrics={})
    return root


def serve(kind: str, workspace: str, port: int) -> None:
    """The server process: the aisle app or the floor app, one uvicorn worker, no access log."""
    import uvicorn
    from fastapi import FastAPI

    if kind == "floor":
        app = FastAPI()
        fixed = {"items": [{"item_id": f"i{n:05d}", "score": 1.0 / (n + 1), "source": "model"} for n in range(10)]}

        @app.get("/floor")
        async def floor() -> dict[str, object]:
            return fixed
    else:
        from aisle.serving import ServingSettings, create_app

        app = create_app(ServingSettings(workspace=Path(workspace), poll_interval_s=0, impression_log=True))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _wait(port: int, path: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not come up")


def run_wrk(port: int, mode: str, rate: int, duration: int, users: list[str], script: Path) -> dict[str, float]:
    """One wrk run at a target rate; latencies in ms."""
    conns = max(4, min(64, rate // 25))
    env = {**os.environ, "BENCH_USERS": ",".join(users), "BENCH_MODE": mode, "BENCH_DELAY_MS": str(1000.0 * conns / rate)}
    out = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{duration}s", "--timeout", "2s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=duration + 30)
    line = next(x for x in out.stderr.splitlines() if x.startswith("BENCH "))
    d = json.loads(line[6:])
    return {"target_rps": rate, "achieved_rps": round(d["requests"] / (d["duration_us"] / 1e6), 1),
            "p50_ms": d["p50"] / 1000, "p99_ms": d["p99"] / 1000, "p999_ms": d["p999"] / 1000,
            "errors": d["errors"], "non2xx": d["non2xx"], "connections": conns}


def wire_formats() -> list[dict[str, float]]:
    """Payload bytes and encode/decode microseconds for JSON and Protobuf at k = 10, 50, 100."""
    import timeit

    from aisle.serving._deps import to_pb
    from aisle.serving._pipeline import RecItem, RecResult
    from aisle.serving._proto import RecommendationsPB

    rows = []
    for k in (10, 50, 100):
        r = RecResult("0" * 32, "u000123", "default:1", [RecItem(f"i{n:05d}", 0.123456 / (n + 1), "model") for n in range(k)])
        js = json.dumps(r.to_dict()).encode()
        pb = to_pb(r).SerializeToString()  # type: ignore[attr-defined]
        n = 2000
        rows.append({
            "k": k, "json_bytes": len(js), "protobuf_bytes": len(pb),
            "json_encode_us": timeit.timeit(lambda r=r: json.dumps(r.to_dict()).encode(), number=n) / n * 1e6,
            "json_decode_us": timeit.timeit(lambda js=js: json.loads(js), number=n) / n * 1e6,
            "protobuf_encode_us": timeit.timeit(lambda r=r: to_pb(r).SerializeToString(), number=n) / n * 1e6,  # type: ignore[attr-defined]
            "protobuf_decode_us": timeit.timeit(lambda pb=pb: RecommendationsPB.FromString(pb), number=n) / n * 1e6,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=8, help="seconds per (traffic, rate) pair")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--serve", nargs=3, metavar=("KIND", "WORKSPACE", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    rates = [int(x) for x in args.rates.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="aisle-bench-"))
    t = time.perf_counter()
    ws = build_workspace(tmp / "ws", args.items)
    print(f"workspace built in {time.perf_counter() - t:.1f} s ({args.items:,} items)", file=sys.stderr)
    script = tmp / "bench.lua"
    script.write_text(LUA)
    from aisle.models import Recommender
    from aisle.registry import open_registry

    version = open_registry(None, workspace=ws).production("default")
    assert version is not None
    users = [str(u) for u in Recommender.load(version.artifact).users_.ids[:2000]]
    results: dict[str, list[dict[str, float]]] = {}
    for kind, modes in (("floor", ("floor",)), ("aisle", ("hit", "miss"))):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(ws), str(port)])
        try:
            _wait(port, "/floor" if kind == "floor" else "/readyz")
            for mode in modes:
                pool = users[:50] if mode == "hit" else users
                run_wrk(port, mode, 200, 2, pool, script)  # warm-up
                results[mode] = []
                for rate in rates:
                    row = run_wrk(port, mode, rate, args.duration, pool, script)
                    print(f"{mode:5s} {rate:5d} req/s: {row}", file=sys.stderr)
                    results[mode].append(row)
        finally:
            proc.terminate()
            proc.wait(10)
    wire = wire_formats()
    floor = {r["target_rps"]: r for r in results["floor"]}
    lines = ["| traffic | target req/s | achieved | p50 ms | p99 ms | p99.9 ms | p99 / floor p99 | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for mode in ("floor", "hit", "miss"):
        for r in results[mode]:
            ratio = r["p99_ms"] / max(floor[r["target_rps"]]["p99_ms"], 1e-9)
            lines.append(f"| {mode} | {r['target_rps']} | {r['achieved_rps']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['p999_ms']:.2f} | {ratio:.2f} | {int(r['errors'] + r['non2xx'])} |")
    miss1000 = next((r for r in results["miss"] if r["target_rps"] == 1000), None)
    if miss1000:
        verdict = "MET" if miss1000["p99_ms"] <= GOAL_P99_MS else "MISSED"
        lines.append(f"\nGoal: cache-miss p99 <= {GOAL_P99_MS} ms at 1,000 req/s: {miss1000['p99_ms']:.2f} ms, {verdict}")
    lines += ["", "| k | JSON bytes | Protobuf bytes | JSON enc us | JSON dec us | PB enc us | PB dec us |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {w['k']} | {w['json_bytes']} | {w['protobuf_bytes']} | {w['json_encode_us']:.1f} | {w['json_decode_us']:.1f} | "
              f"{w['protobuf_encode_us']:.1f} | {w['protobuf_decode_us']:.1f} |" for w in wire]
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "items": args.items, "duration_s": args.duration, "server": "uvicorn, 1 worker, loopback",
           "load generator": "wrk -t1, paced with delay()"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps({"env": env, "load": results, "wire": wire}, indent=2))
    (out / "serving.md").write_text("# Serving benchmark\n\n" + json.dumps(env) + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
