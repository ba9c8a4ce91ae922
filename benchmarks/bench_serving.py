"""Load benchmark of the recommendation service, against the framework floors.

A uvicorn server (httptools + uvloop when installed, the settings ``aisle serve`` uses, see
``aisle.serving._server``) runs in its own process on loopback; ``wrk`` (a separate process)
drives it at fixed target rates (200, 500, 1000, 2000 req/s, paced with wrk's per-connection
``delay()``: an approximately open-loop rate; wrk does not correct coordinated omission, so tails
at saturation are understated). Traffic: cache-hit (a few users repeated), cache-miss (every
request a new context, so the full pipeline and the model run) and two floors with the same
server settings: ``floor``, the bare FastAPI endpoint returning a fixed list the issue asks for,
and ``asgi-floor``, a bare ASGI callable returning the same bytes (the HTTP server alone; the
service's hot GET bypasses FastAPI's routing, so this is its honest floor).

Beside latency, each run reports the server process's CPU time per request (user + system, all
threads, from ``/proc/<pid>/stat``): on a busy machine latency is disturbed by other processes,
CPU per request much less. The 1-minute load average is recorded before every run. Also:
payload bytes and encode/decode time of JSON vs Protobuf for k = 10, 50, 100.

    python benchmarks/bench_serving.py [--duration 8] [--items 10000] [--out benchmarks/results]
    python benchmarks/bench_serving.py --cpu-only      # in-process CPU per request, no HTTP, no wrk

Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``) unless ``--cpu-only``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RATES = (200, 500, 1000, 2000)
GOAL_P99_MS = 10.0
FLOOR_BODY: dict[str, Any] = {"items": [{"item_id": f"i{n:05d}", "score": 1.0 / (n + 1), "source": "model"} for n in range(10)]}

LUA = r"""
local counter = 0
local users = {}
for u in string.gmatch(os.getenv("BENCH_USERS"), "[^,]+") do users[#users + 1] = u end
local mode = os.getenv("BENCH_MODE")
local interval = tonumber(os.getenv("BENCH_DELAY_MS"))
math.randomseed(tonumber(os.getenv("BENCH_SEED")))
function delay() return interval end
function request()
  counter = counter + 1
  if mode == "floor" or mode == "asgi-floor" then return wrk.format("GET", "/floor") end
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


def floor_app() -> Any:
    """The framework floor: a bare FastAPI endpoint returning a fixed list."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/floor")
    async def floor() -> dict[str, object]:
        return FLOOR_BODY

    return app


def asgi_floor_app() -> Any:
    """The HTTP server floor: a bare ASGI callable returning the same fixed bytes."""
    body = json.dumps(FLOOR_BODY, separators=(",", ":")).encode()
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


def aisle_app(workspace: str) -> Any:
    from aisle.serving import ServingSettings, create_app

    return create_app(ServingSettings(workspace=Path(workspace), poll_interval_s=0, impression_log=True))


def serve(kind: str, workspace: str, port: int) -> None:
    """The server process: one uvicorn worker with ``aisle serve``'s settings."""
    import uvicorn

    from aisle.serving._server import uvicorn_options

    app = {"floor": floor_app, "asgi-floor": asgi_floor_app}[kind]() if kind != "aisle" else aisle_app(workspace)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", **uvicorn_options())


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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, mode: str, rate: int, duration: int, users: list[str], script: Path,
            server_pid: int | None = None) -> dict[str, float]:
    """One wrk run at a target rate; latencies in ms, server CPU in microseconds per request."""
    conns = max(4, min(64, rate // 25))
    env = {**os.environ, "BENCH_USERS": ",".join(users), "BENCH_MODE": mode,
           "BENCH_DELAY_MS": str(1000.0 * conns / rate), "BENCH_SEED": str(random.randrange(1 << 30))}
    load1 = os.getloadavg()[0]
    cpu0 = _cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{duration}s", "--timeout", "2s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=duration + 30)
    cpu1 = _cpu_seconds(server_pid) if server_pid else 0.0
    line = next(x for x in out.stderr.splitlines() if x.startswith("BENCH "))
    d = json.loads(line[6:])
    return {"target_rps": rate, "achieved_rps": round(d["requests"] / (d["duration_us"] / 1e6), 1),
            "p50_ms": d["p50"] / 1000, "p99_ms": d["p99"] / 1000, "p999_ms": d["p999"] / 1000,
            "errors": d["errors"], "non2xx": d["non2xx"], "connections": conns,
            "server_cpu_us_per_req": round((cpu1 - cpu0) / max(d["requests"], 1) * 1e6, 1), "load1_before": load1}


# ---------------------------------------------------------------------------------- in-process CPU
async def _asgi_get(app: Any, path: str, qs: bytes) -> bytes:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": qs, "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{path}?{qs.decode()} -> {sent[0]['status']}: {sent[1].get('body', b'')[:200]!r}")
    return bytes(sent[1]["body"])


async def _lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, str]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put))
    msg = await outbox.get()
    if msg["type"] != "lifespan.startup.complete":
        raise RuntimeError(msg)
    return inbox, task


async def _cpu_per_request(kind: str, workspace: Path, n: int, reps: int) -> dict[str, float]:
    if kind in ("floor", "asgi-floor"):
        app = floor_app() if kind == "floor" else asgi_floor_app()
        inbox, task = await _lifespan(app)
        reqs: list[tuple[str, bytes]] = [("/floor", b"")] * n
    else:
        app = aisle_app(str(workspace))
        inbox, task = await _lifespan(app)
        users = sorted(app.state.engine.model.known_users)[:2000]
        if kind == "hit":
            reqs = [(f"/v1/recommendations/{users[i % 50]}", b"k=10") for i in range(n)]
        else:
            reqs = [(f"/v1/recommendations/{users[i % len(users)]}", f"k=10&page=p{i}".encode()) for i in range(n)]
    for path, qs in reqs[:300]:  # warm-up (and the hit traffic's cache)
        await _asgi_get(app, path, qs + b"&w" if kind == "miss" else qs)
    best: dict[str, float] = {}
    for rep in range(reps):
        batch = [(p, q + f"-{rep}".encode()) for p, q in reqs] if kind == "miss" else reqs
        c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
        for path, qs in batch:
            await _asgi_get(app, path, qs)
        c1, t1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
        row = {"cpu_us": (c1 - c0) / n * 1e6, "loop_thread_us": (t1 - t0) / n * 1e6, "wall_us": (w1 - w0) / n * 1e6}
        if not best or row["cpu_us"] < best["cpu_us"]:
            best = row
    await inbox.put({"type": "lifespan.shutdown"})
    await task
    return {k: round(v, 1) for k, v in best.items()}


def cpu_per_request(workspace: Path, n: int = 3000, reps: int = 3) -> list[dict[str, Any]]:
    """In-process CPU per request (ASGI app driven directly: no HTTP, no network), best of ``reps``;
    ``cpu_us`` counts every thread of the process (model pool, impression writer)."""
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    rows = []
    for kind in ("asgi-floor", "floor", "hit", "miss"):
        # each kind in a fresh process would be cleaner; caches and the model are per app anyway
        rows.append({"traffic": kind, **run(_cpu_per_request(kind, workspace, n, reps)), "load1": os.getloadavg()[0]})
        print(f"in-process {rows[-1]}", file=sys.stderr)
    return rows


def wire_formats() -> list[dict[str, float]]:
    """Payload bytes and encode/decode microseconds for JSON and Protobuf at k = 10, 50, 100."""
    import timeit

    import orjson

    from aisle.serving._deps import to_pb
    from aisle.serving._pipeline import RecItem, RecResult
    from aisle.serving._proto import RecommendationsPB

    rows = []
    for k in (10, 50, 100):
        r = RecResult("0" * 32, "u000123", "default:1", [RecItem(f"i{n:05d}", 0.123456 / (n + 1), "model") for n in range(k)])
        js = r.to_json()
        pb = to_pb(r).SerializeToString()  # type: ignore[attr-defined]
        def per_call(fn: Any, n: int = 2000) -> float:
            return timeit.timeit(fn, number=n) / n * 1e6

        rows.append({
            "k": k, "json_bytes": len(js), "protobuf_bytes": len(pb),
            "json_encode_us": per_call(r.to_json),
            "json_decode_us": per_call(lambda js=js: orjson.loads(js)),
            "protobuf_encode_us": per_call(lambda r=r: to_pb(r).SerializeToString()),  # type: ignore[attr-defined]
            "protobuf_decode_us": per_call(lambda pb=pb: RecommendationsPB.FromString(pb)),
        })
    return rows


def _env(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from aisle.serving._server import uvicorn_options

    opts = uvicorn_options()
    return {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine(), "items": args.items, "duration_s": args.duration,
            "server": f"uvicorn, 1 worker, loopback, {opts['http']} + {opts['loop']}",
            "load generator": "wrk -t1, paced with delay()", "load1_at_start": os.getloadavg()[0]}


def _cpu_table(rows: list[dict[str, Any]]) -> list[str]:
    floor = next(r for r in rows if r["traffic"] == "floor")["cpu_us"]
    lines = ["| traffic | CPU us/request (all threads) | event-loop thread us | / FastAPI floor | load1 |", "|---|---|---|---|---|"]
    lines += [f"| {r['traffic']} | {r['cpu_us']} | {r['loop_thread_us']} | {r['cpu_us'] / floor:.2f} | {r['load1']:.2f} |"
              for r in rows]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8, help="seconds per (traffic, rate) pair")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--workspace", default=None, help="reuse a workspace built by an earlier run (kept)")
    ap.add_argument("--cpu-only", action="store_true", help="only the in-process CPU per request (no wrk)")
    ap.add_argument("--serve", nargs=3, metavar=("KIND", "WORKSPACE", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    if not args.cpu_only and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    env = _env(args)
    rates = [int(x) for x in args.rates.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="aisle-bench-"))
    if args.workspace and (Path(args.workspace) / "registry.db").exists():
        ws = Path(args.workspace)
    else:
        t = time.perf_counter()
        ws = build_workspace(Path(args.workspace) if args.workspace else tmp / "ws", args.items)
        print(f"workspace built in {time.perf_counter() - t:.1f} s ({args.items:,} items)", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu_rows = cpu_per_request(ws)
    if args.cpu_only:
        lines = ["# Serving: in-process CPU per request", "", json.dumps(env), "", *_cpu_table(cpu_rows)]
        (out / "serving_cpu.json").write_text(json.dumps({"env": env, "cpu": cpu_rows}, indent=2))
        (out / "serving_cpu.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        shutil.rmtree(tmp, ignore_errors=True)
        return
    script = tmp / "bench.lua"
    script.write_text(LUA)
    from aisle.models import Recommender
    from aisle.registry import open_registry

    version = open_registry(None, workspace=ws).production("default")
    assert version is not None
    users = [str(u) for u in Recommender.load(version.artifact).users_.ids[:2000]]
    results: dict[str, list[dict[str, float]]] = {}
    for kind, modes in (("asgi-floor", ("asgi-floor",)), ("floor", ("floor",)), ("aisle", ("hit", "miss"))):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(ws), str(port)])
        try:
            _wait(port, "/floor" if kind != "aisle" else "/readyz")
            for mode in modes:
                pool = users[:50] if mode == "hit" else users
                run_wrk(port, mode, 200, 2, pool, script)  # warm-up
                results[mode] = []
                for rate in rates:
                    row = run_wrk(port, mode, rate, args.duration, pool, script, proc.pid)
                    print(f"{mode:10s} {rate:5d} req/s: {row}", file=sys.stderr)
                    results[mode].append(row)
        finally:
            proc.terminate()
            proc.wait(10)
    wire = wire_formats()
    floor = {r["target_rps"]: r for r in results["floor"]}
    raw = {r["target_rps"]: r for r in results["asgi-floor"]}
    lines = ["| traffic | target req/s | achieved | p50 ms | p99 ms | p99.9 ms | server CPU us/req | p99 / floor p99 | "
             "p99 / ASGI-floor p99 | errors | load1 before |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode in ("asgi-floor", "floor", "hit", "miss"):
        for r in results[mode]:
            ratio = r["p99_ms"] / max(floor[r["target_rps"]]["p99_ms"], 1e-9)
            ratio_raw = r["p99_ms"] / max(raw[r["target_rps"]]["p99_ms"], 1e-9)
            lines.append(f"| {mode} | {r['target_rps']} | {r['achieved_rps']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['p999_ms']:.2f} | {r['server_cpu_us_per_req']} | {ratio:.2f} | {ratio_raw:.2f} | "
                         f"{int(r['errors'] + r['non2xx'])} | {r['load1_before']:.2f} |")
    miss1000 = next((r for r in results["miss"] if r["target_rps"] == 1000), None)
    if miss1000:
        verdict = "MET" if miss1000["p99_ms"] <= GOAL_P99_MS else "MISSED"
        ratio = miss1000["p99_ms"] / max(floor[1000]["p99_ms"], 1e-9)
        lines.append(f"\nGoal: cache-miss p99 <= {GOAL_P99_MS} ms at 1,000 req/s: {miss1000['p99_ms']:.2f} ms "
                     f"({ratio:.2f} x the FastAPI floor's p99), {verdict}")
    lines += ["", "In-process CPU per request (ASGI app driven directly, best of 3 x 3,000 requests):", "",
              *_cpu_table(cpu_rows)]
    lines += ["", "| k | JSON bytes | Protobuf bytes | JSON enc us | JSON dec us | PB enc us | PB dec us |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {w['k']} | {w['json_bytes']} | {w['protobuf_bytes']} | {w['json_encode_us']:.1f} | {w['json_decode_us']:.1f} | "
              f"{w['protobuf_encode_us']:.1f} | {w['protobuf_decode_us']:.1f} |" for w in wire]
    env["load1_at_end"] = os.getloadavg()[0]
    (out / "serving.json").write_text(json.dumps({"env": env, "load": results, "cpu": cpu_rows, "wire": wire}, indent=2))
    (out / "serving.md").write_text("# Serving benchmark\n\n" + json.dumps(env) + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
