"""Benchmark: aisle's ANNIndex (exact, HNSW, IVF) against the brute-force floors, in one run.

Data: ``--items`` (default 200,000) synthetic item embeddings of dimension ``--dim`` (64), drawn
as Gaussian clusters around 1,000 random unit centres and L2-normalised (the shape trained item
towers produce: a few thousand tastes, items spread around each), and 1,000 queries drawn the
same way (fresh points). Cosine = inner product on these unit vectors. Optionally (``--real``)
the item and user vectors of a two-tower model fitted on MovieLens-100K (``AISLE_DATA_HOME``)
are checked for recall too (1,372 items: a sanity check, far too small for speed figures).

Sides (all single-threaded: faiss OpenMP at 1 thread, BLAS at 1 thread via threadpoolctl):

* floor ``numpy``: ``q @ X.T`` + ``argpartition`` + a sort of the k best (the textbook code);
* floor ``faiss-flat``: faiss ``IndexFlatIP`` (exact, faiss's own BLAS/SIMD kernels);
* ``aisle exact``: ``ANNIndex("exact")``: blocked matmul + aisle's numba top-k kernel;
* ``aisle hnsw``: ``ANNIndex("hnsw", hnsw_m, ef_construction, ef_search)``;
* ``aisle ivf``: ``ANNIndex("ivf", nlist=4·sqrt(n), nprobe)``.

Measured per side: build seconds, index bytes (the vectors, or faiss's serialized index) and the
process's resident-memory growth over the build, recall@10 against the exact top-10 (the
exact lists of the floor), batched throughput (all queries in one call) and single-query
throughput (``--single`` queries one at a time) in queries per second. One warm-up, then
``--repeats`` repetitions; medians are printed, and each repetition runs the sides back to back
in rotating order. Ratios against each floor are printed beside the goals (MET / MISSED):
HNSW and IVF recall@10 >= 0.95 at the chosen settings, and each ANN kind at least 10x the
queries per second of faiss's exact ``IndexFlatIP`` (batched and single). A sweep of HNSW
``ef_search`` and IVF ``nprobe`` gives the recall-throughput curve (``ann-curve.png``).

Usage::

    python benchmarks/bench_ann.py [--items 200000] [--dim 64] [--repeats 3] [--real]
        [--small] [--out benchmarks/results]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aisle.models._ann import ANNIndex, recall_against

K = 10
GOAL_RECALL = 0.95
GOAL_SPEEDUP = 10.0


def clustered(n: int, dim: int, centres: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around random centres (``spread``: noise norm relative to the centre)."""
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds and the result."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def cpu_timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds): every side runs on one thread, so on a
    shared machine the CPU time is the cost of the work and the wall time adds the waiting."""
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - t


def numpy_floor(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The textbook exact top-k: matmul, argpartition, sort the k best (query blocks of 256)."""
    out = np.empty((len(q), k), dtype=np.int64)
    for a in range(0, len(q), 256):
        s = q[a:a + 256] @ x.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        out[a:a + 256] = np.take_along_axis(part, order, axis=1)
    return out


class Side:
    """One contender: a build step and a search step over the same vectors."""

    def __init__(self, name: str, build: Callable[[], Any], search: Callable[[Any, np.ndarray], np.ndarray],
                 nbytes: Callable[[Any], int], params: str) -> None:
        self.name, self._build, self._search, self._nbytes, self.params = name, build, search, nbytes, params
        self.obj: Any = None
        self.build_s = 0.0
        self.build_wall_s = 0.0
        self.rss_mib = 0.0

    def build(self) -> None:
        before = rss_mib()
        c = time.process_time()
        self.build_wall_s, self.obj = timed(self._build)
        self.build_s = time.process_time() - c
        self.rss_mib = rss_mib() - before

    def search(self, q: np.ndarray) -> np.ndarray:
        return self._search(self.obj, q)

    @property
    def index_mib(self) -> float:
        return self._nbytes(self.obj) / 2**20


def make_sides(x: np.ndarray, args: argparse.Namespace) -> list[Side]:
    import faiss

    def flat_build() -> Any:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return index

    def ann(kind: str, **kw: Any) -> Callable[[], ANNIndex]:
        return lambda: ANNIndex(kind, metric="cosine", threads=1, **kw).build(x)

    return [
        Side("numpy (floor)", lambda: x, lambda obj, q: numpy_floor(obj, q, K), lambda obj: obj.nbytes,
             "matmul + argpartition"),
        Side("faiss-flat (floor)", flat_build, lambda obj, q: obj.search(q, K)[1],
             lambda obj: faiss.serialize_index(obj).size, "IndexFlatIP"),
        Side("aisle exact", ann("exact"), lambda obj, q: obj.search(q, K)[0], lambda obj: obj.memory_bytes(),
             "blocked matmul + numba top-k"),
        Side("aisle hnsw", ann("hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                               ef_search=args.ef_search),
             lambda obj, q: obj.search(q, K)[0], lambda obj: obj.memory_bytes(),
             f"M={args.hnsw_m}, efConstruction={args.ef_construction}, efSearch={args.ef_search}"),
        Side("aisle ivf", ann("ivf", nprobe=args.nprobe, seed=0), lambda obj, q: obj.search(q, K)[0],
             lambda obj: obj.memory_bytes(), f"nlist=4*sqrt(n), nprobe={args.nprobe}"),
    ]


def throughput(sides: list[Side], q: np.ndarray, single: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Median batched and single-query queries/second per side, by CPU time and by wall time
    (sides rotate within a repetition)."""
    runs: dict[str, dict[str, list[float]]] = {
        s.name: {"batched_qps": [], "single_qps": [], "batched_wall_qps": [], "single_wall_qps": []} for s in sides}
    qs = [q[i:i + 1] for i in range(single)]
    for s in sides:  # warm-up (numba compile, faiss first touch)
        s.search(q[:8])
        s.search(q[:1])
    for rep in range(repeats):
        order = sides[rep % len(sides):] + sides[:rep % len(sides)]
        for s in order:
            cpu, wall = cpu_timed(lambda s=s: s.search(q))
            runs[s.name]["batched_qps"].append(len(q) / cpu)
            runs[s.name]["batched_wall_qps"].append(len(q) / wall)
            cpu, wall = cpu_timed(lambda s=s: [s.search(x) for x in qs])
            runs[s.name]["single_qps"].append(single / cpu)
            runs[s.name]["single_wall_qps"].append(single / wall)
    return {name: {**{k: statistics.median(v) for k, v in r.items()}, "runs": r} for name, r in runs.items()}


def sweep(x: np.ndarray, q: np.ndarray, exact: np.ndarray, hnsw: ANNIndex, ivf: ANNIndex,
          repeats: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {"hnsw": [], "ivf": []}
    for ef in (10, 16, 24, 32, 48, 64, 96, 128, 256):
        hnsw.set_search_params(ef_search=ef)
        hnsw.search(q[:8], K)
        secs = [cpu_timed(lambda: hnsw.search(q, K))[0] for _ in range(repeats)]
        ids, _ = hnsw.search(q, K)
        out["hnsw"].append({"ef_search": ef, "recall": recall_against(ids, exact), "qps": len(q) / statistics.median(secs)})
    for nprobe in (4, 8, 16, 32, 64, 96, 128, 192, 256):
        ivf.set_search_params(nprobe=nprobe)
        secs = [cpu_timed(lambda: ivf.search(q, K))[0] for _ in range(repeats)]
        ids, _ = ivf.search(q, K)
        out["ivf"].append({"nprobe": nprobe, "recall": recall_against(ids, exact), "qps": len(q) / statistics.median(secs)})
    return out


def real_check(args: argparse.Namespace) -> dict[str, Any]:
    """Recall of HNSW/IVF on a two-tower model's own item and user vectors (MovieLens-100K)."""
    import torch

    from aisle.data._feedback import FeedbackConfig, build_interactions
    from aisle.datasets import load_dataset
    from aisle.evaluation._runner import make_split
    from aisle.models import TwoTower

    torch.set_num_threads(1)
    os.environ.setdefault("AISLE_PROGRESS", "0")
    ds = load_dataset("movielens-100k")
    split = make_split(ds, None, seed=0)
    train = build_interactions(split.train, FeedbackConfig())
    model = TwoTower(device="cpu", threads=1).fit(train, catalog=ds.items, events=split.train)
    items = model.item_embeddings()
    users = model.user_embeddings(list(model.users_.ids))
    exact, _ = ANNIndex("exact", metric="cosine").build(items).search(users, K)
    out: dict[str, Any] = {"dataset": "movielens-100k", "n_items": len(items), "n_queries": len(users),
                           "model": model.config.model_dump(mode="json")}
    for kind, kw in (("hnsw", {"hnsw_m": args.hnsw_m, "ef_search": args.ef_search}), ("ivf", {"nprobe": args.nprobe})):
        index = ANNIndex(kind, metric="cosine", threads=1, **kw).build(items)
        out[kind] = {"recall@10": index.recall_at_k(users, K, exact_ids=exact), "nlist": getattr(index._index, "nlist", None)}
    return out


def plot(curve: dict[str, list[dict[str, float]]], floors: dict[str, float], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind, key in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        pts = curve[kind]
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", label=f"aisle {kind} ({key})")
        for p in pts:
            ax.annotate(str(int(p[key])), (p["recall"], p["qps"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for name, qps in floors.items():
        ax.axhline(qps, linestyle="--", linewidth=1, color="grey")
        ax.text(0.01, qps * 1.05, f"{name} (exact)", fontsize=7, color="grey", transform=ax.get_yaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 vs exact")
    ax.set_ylabel("queries / CPU-second (batched, 1 thread)")
    ax.axvline(GOAL_RECALL, color="red", linewidth=0.8, linestyle=":")
    ax.set_title("ANN recall-throughput")
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def environment() -> dict[str, Any]:
    import faiss

    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "?")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = "?"
    return {"python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
            "machine": f"{os.cpu_count()} cores, {int(mem) // 1024} MiB RAM, {platform.machine()}",
            "commit": commit,
            "threads": "1 (faiss omp_set_num_threads(1), BLAS threadpool_limits(1), numba set_num_threads(1))"}


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--spread", type=float, default=1.2)
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--ef-search", type=int, default=48)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--real", action="store_true", help="also check recall on two-tower vectors (MovieLens-100K)")
    p.add_argument("--small", action="store_true", help="20,000 items, 300 queries (a quick check)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    if args.small:
        args.items, args.queries, args.single = 20_000, 300, 100
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    try:
        import numba

        numba.set_num_threads(1)  # aisle's top-k kernel on one thread, like everything else
    except ImportError:
        pass
    load_before = [round(v, 2) for v in os.getloadavg()]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.clusters, args.dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = clustered(args.items, args.dim, centres, args.spread, rng)
    q = clustered(args.queries, args.dim, centres, args.spread, rng)
    print(f"data: {args.items} x {args.dim} items, {args.queries} queries, {args.clusters} clusters "
          f"(spread {args.spread}); load {load_before}", flush=True)
    with threadpool_limits(1, user_api="blas"):
        sides = make_sides(x, args)
        for s in sides:
            s.build()
            print(f"  built {s.name}: {s.build_s:.2f}s, {s.index_mib:.1f} MiB", flush=True)
        exact = sides[1].search(q)  # faiss's exact lists are the reference
        recalls = {s.name: recall_against(s.search(q), exact) for s in sides}
        speed = throughput(sides, q, args.single, args.repeats)
        curve = sweep(x, q, exact, sides[3].obj, sides[4].obj, args.repeats)
        sides[3].obj.set_search_params(ef_search=args.ef_search)
        sides[4].obj.set_search_params(nprobe=args.nprobe)
    real = real_check(args) if args.real else None
    load_after = [round(v, 2) for v in os.getloadavg()]
    rows = []
    for s in sides:
        rows.append({"side": s.name, "params": s.params, "build_s": s.build_s, "build_wall_s": s.build_wall_s,
                     "index_mib": s.index_mib,
                     "rss_growth_mib": s.rss_mib, "recall@10": recalls[s.name], **speed[s.name]})
    by = {r["side"]: r for r in rows}
    flat = by["faiss-flat (floor)"]
    npf = by["numpy (floor)"]
    goals = []
    for kind in ("aisle hnsw", "aisle ivf"):
        r = by[kind]
        goals.append({"what": f"{kind} recall@10 vs exact", "value": r["recall@10"], "goal": f">= {GOAL_RECALL}",
                      "verdict": verdict(r["recall@10"] >= GOAL_RECALL)})
        for mode in ("batched_qps", "single_qps"):
            ratio = r[mode] / flat[mode]
            goals.append({"what": f"{kind} {mode.split('_')[0]} QPS / faiss-flat", "value": ratio,
                          "goal": f">= {GOAL_SPEEDUP:g}x", "verdict": verdict(ratio >= GOAL_SPEEDUP)})
    ratios = {f"{r['side']} / {floor['side']} ({mode.split('_')[0]})": r[mode] / floor[mode]
              for r in rows if r["side"].startswith("aisle") for floor in (npf, flat)
              for mode in ("batched_qps", "single_qps")}
    result = {"environment": environment(), "load_before": load_before, "load_after": load_after,
              "data": {"items": args.items, "dim": args.dim, "queries": args.queries, "single": args.single,
                       "clusters": args.clusters, "spread": args.spread, "k": K, "metric": "ip on unit vectors"},
              "repeats": args.repeats, "rows": rows, "goals": goals, "ratios": ratios, "curve": curve, "real": real,
              "command": " ".join(["python", "benchmarks/bench_ann.py", *(argv if argv is not None else sys.argv[1:])])}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "ann-small" if args.small else "ann"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    plotted = plot(curve, {"faiss-flat": flat["batched_qps"], "numpy": npf["batched_qps"]}, args.out / f"{stem}-curve.png")
    md = render(result, plotted, f"{stem}-curve.png")
    (args.out / f"{stem}.md").write_text(md)
    print(md)
    return 0


def render(r: dict[str, Any], plotted: bool, png: str) -> str:
    d, env = r["data"], r["environment"]
    lines = [
        "# ANN benchmark: aisle ANNIndex vs brute-force floors", "",
        f"`{r['command']}`", "",
        f"Data: {d['items']:,} synthetic item vectors x {d['dim']} (Gaussian clusters around {d['clusters']} unit "
        f"centres, spread {d['spread']}, L2-normalised), {d['queries']} queries from the same distribution; "
        f"top-{d['k']} by inner product. Reference lists: faiss IndexFlatIP.",
        f"Machine: {env['machine']}; Python {env['python']}, numpy {env['numpy']}, faiss {env['faiss']}; "
        f"commit {env['commit']}. Threads: {env['threads']}. Medians of {r['repeats']} repetitions after a warm-up "
        f"(sides rotate). Load average before {r['load_before']}, after {r['load_after']} (a shared machine: "
        "absolute figures are noisy, ratios within a repetition less so).", "",
        "QPS = queries per CPU-second of the process (every side is single-threaded, so this is the "
        "throughput of one core; wall-clock QPS, which adds waiting for the shared cores, in brackets). "
        "Build: CPU seconds (wall in brackets).", "",
        "| side | settings | build s | index MiB | RSS growth MiB | recall@10 | batched QPS | single-query QPS |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['side']} | {row['params']} | {row['build_s']:.2f} ({row['build_wall_s']:.2f}) | "
                     f"{row['index_mib']:.1f} | {row['rss_growth_mib']:.0f} | {row['recall@10']:.4f} | "
                     f"{row['batched_qps']:,.0f} ({row['batched_wall_qps']:,.0f}) | "
                     f"{row['single_qps']:,.0f} ({row['single_wall_qps']:,.0f}) |")
    lines += ["", "## Goals", "", "| what | value | goal | verdict |", "|---|---:|---|---|"]
    for g in r["goals"]:
        lines.append(f"| {g['what']} | {g['value']:.3f} | {g['goal']} | {g['verdict']} |")
    lines += ["", "## Ratios (queries per CPU-second, aisle / floor)", "", "| pair | ratio |", "|---|---:|"]
    for name, v in r["ratios"].items():
        lines.append(f"| {name} | {v:.2f}x |")
    lines += ["", "## Recall-throughput sweep (batched, queries per CPU-second)", "", "| kind | knob | recall@10 | QPS |",
              "|---|---:|---:|---:|"]
    for kind, key in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        for p in r["curve"][kind]:
            lines.append(f"| {kind} | {key}={p[key]} | {p['recall']:.4f} | {p['qps']:,.0f} |")
    for kind, key in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        ok = [p for p in r["curve"][kind] if p["recall"] >= GOAL_RECALL]
        if ok:
            best = max(ok, key=lambda p: p["qps"])
            lines.append(f"\nFastest {kind} point with recall@10 >= {GOAL_RECALL}: {key}={best[key]} "
                         f"(recall {best['recall']:.4f}, {best['qps']:,.0f} QPS).")
    if plotted:
        lines += ["", f"![recall vs QPS]({png})"]
    if r["real"]:
        real = r["real"]
        lines += ["", "## Two-tower vectors (sanity check)", "",
                  f"{real['dataset']}: {real['n_items']} item vectors, {real['n_queries']} user vectors of a "
                  "default two-tower model as queries.", "",
                  f"- hnsw recall@10: {real['hnsw']['recall@10']:.4f}",
                  f"- ivf recall@10: {real['ivf']['recall@10']:.4f} (nlist {real['ivf']['nlist']})"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
