"""Benchmark: aisle iALS epoch time against implicit's CPU conjugate-gradient ALS.

Both sides get the same confidence matrix (``c = 1 + alpha · r`` on stored entries, 1 elsewhere:
aisle with ``unobserved_weight=1``, ``confidence="linear"``; implicit with ``alpha=1`` on the
matrix ``1 + alpha · r``), the same factors, constant regularization
(aisle ``reg_scaling="none"``), 3 CG steps, float32 and the same number of solver threads. BLAS
is held at one thread (``threadpoolctl.threadpool_limits(1, "blas")``), as implicit asks; aisle
does the same itself while fitting.

Per factor size: one warm-up fit per side (numba compilation or cache loading, page faults),
then ``--repeats`` repetitions that alternate which side goes first; each fits ``--epochs``
iterations. An epoch is both half-steps (implicit's per-iteration callback time; aisle's
``epoch_seconds_``). aisle solves its last user half-step exactly (so stored user factors equal
fold-in), so its last epoch is reported separately and the epoch comparison uses the others.
The ratio aisle/implicit is taken per repetition and the median printed, against the goal
(<= 1.0). Also: whole-fit wall time, the loss both reach (aisle's objective), peak resident
memory of a fresh process per side, and a physical floor: the CG flops of an epoch at the speed
of a bare float32 GEMM on the same threads.

Data: a synthetic implicit-feedback matrix (power-law item popularity, log-normal user activity,
repeated events summed into counts) and, when ``AISLE_DATA_HOME`` holds
``movielens-latest-small/ratings.csv``, MovieLens-latest-small (aisle's default feedback rules).

Usage::

    python benchmarks/bench_ials.py [--small] [--factors 64 128] [--epochs 4] [--repeats 3]
        [--threads 0] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

GOAL_RATIO = 1.0
REGULARIZATION = 0.1
ALPHA = 10.0
FULL = {"users": 100_000, "items": 20_000, "events": 5_000_000}
SMALL = {"users": 20_000, "items": 5_000, "events": 600_000}


# ---------------------------------------------------------------------------------- data


def synthetic(users: int, items: int, events: int, seed: int = 0) -> sp.csr_matrix:
    """Counts of ``events`` draws: power-law item popularity, log-normal user activity."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / (np.arange(items) + 20.0) ** 0.9
    rng.shuffle(pop)
    act = rng.lognormal(0.0, 1.0, users)
    u = rng.choice(users, events, p=act / act.sum())
    i = rng.choice(items, events, p=pop / pop.sum())
    m = sp.csr_matrix((np.ones(events, np.float32), (u, i)), shape=(users, items))
    m.sum_duplicates()
    m.sort_indices()
    return m


def movielens() -> tuple[sp.csr_matrix, str] | None:
    """MovieLens-latest-small ratings through aisle's default feedback rules, if present."""
    home = os.environ.get("AISLE_DATA_HOME")
    if not home:
        return None
    path = Path(home) / "movielens-latest-small" / "ratings.csv"
    if not path.exists():
        return None
    from aisle.data import file_checksum, load_data
    from aisle.data._feedback import FeedbackConfig, build_interactions

    mapping = {
        "user_id": "userId",
        "item_id": "movieId",
        "value": "rating",
        "timestamp": "timestamp",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_data(path, mapping=mapping, event_type="rating")
        inter = build_interactions(ds.events, FeedbackConfig())
    return sp.csr_matrix(inter.matrix, dtype=np.float32), file_checksum(path).sha256


# ---------------------------------------------------------------------------------- sides


def aisle_model(factors: int, epochs: int, threads: int) -> Any:
    from aisle.models._ials import IALS

    return IALS(
        factors=factors,
        iterations=epochs,
        regularization=REGULARIZATION,
        reg_scaling="none",
        alpha=ALPHA,
        confidence="linear",
        unobserved_weight=1.0,
        solver="cg",
        cg_steps=3,
        num_threads=threads,
        dtype="float32",
        seed=0,
    )


def implicit_model(factors: int, epochs: int, threads: int) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=factors,
        regularization=REGULARIZATION,
        alpha=1.0,
        iterations=epochs,
        use_cg=True,
        use_native=True,
        calculate_training_loss=False,
        num_threads=threads,
        random_state=0,
        dtype=np.float32,
    )


def implicit_confidence(m: sp.csr_matrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data = (1.0 + ALPHA * out.data.astype(np.float64)).astype(np.float32)
    return out


@dataclass
class Run:
    epochs: list[float]
    fit_s: float
    model: Any


def run_aisle(m: sp.csr_matrix, factors: int, epochs: int, threads: int) -> Run:
    model = aisle_model(factors, epochs, threads)
    start = time.perf_counter()
    model._fit(m)  # the model's learning step alone (fit() adds vocabulary bookkeeping)
    fit_s = time.perf_counter() - start
    return Run([float(s) for s in model.epoch_seconds_], fit_s, model)


def run_implicit(conf: sp.csr_matrix, factors: int, epochs: int, threads: int) -> Run:
    model = implicit_model(factors, epochs, threads)
    times: list[float] = []
    start = time.perf_counter()
    model.fit(conf, show_progress=False, callback=lambda _it, elapsed, _loss: times.append(elapsed))
    fit_s = time.perf_counter() - start
    return Run(times, fit_s, model)


def cg_flops(m: sp.csr_matrix, factors: int, steps: int = 3) -> float:
    """Floating-point operations of one CG epoch (both sides, Gramians included)."""
    f = factors
    total = 0.0
    for counts in (np.diff(m.indptr), np.diff(m.tocsc().indptr)):
        nonempty = counts > 0
        total += (steps + 1) * float(np.sum((2 * f * f + 4 * f * counts)[nonempty]))
        total += 2.0 * len(counts) * f * f  # the Gramian of this side's factors
    return total


def sgemm_gflops(threads: int) -> float:
    """Speed of a bare 2048² float32 GEMM with ``threads`` BLAS threads (a physical floor)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    with threadpool_limits(threads, "blas"):
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(3))
    return 2 * 2048**3 / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child_peak(side: str, data: str, factors: int, threads: int, small: bool) -> dict[str, float]:
    """Peak RSS (MiB) of a fresh process that builds the data and fits 2 epochs on one side."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        side,
        "--child-data",
        data,
        "--factors",
        str(factors),
        "--threads",
        str(threads),
    ] + (["--small"] if small else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def child_main(side: str, data: str, factors: int, threads: int, small: bool) -> int:
    from threadpoolctl import threadpool_limits

    m = load_matrix(data, small)
    conf = implicit_confidence(m) if side == "implicit" else m
    # load the compiled code (numba's cache, implicit's extension) before the baseline
    tiny = synthetic(300, 200, 3000, seed=1)
    with threadpool_limits(1, "blas"):
        if side == "aisle":
            run_aisle(tiny, factors, 2, threads)
        else:
            run_implicit(implicit_confidence(tiny), factors, 2, threads)
    base = _status_mib("VmRSS")
    try:  # reset the high-water mark so the data generation does not count (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    with threadpool_limits(1, "blas"):
        if side == "aisle":
            run_aisle(m, factors, 2, threads)
        else:
            run_implicit(conf, factors, 2, threads)
    peak = (
        _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {
                "base_mib": round(base, 1),
                "peak_mib": round(peak, 1),
                "fit_extra_mib": round(peak - base, 1),
            }
        )
    )
    return 0


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def load_matrix(data: str, small: bool) -> sp.csr_matrix:
    if data == "movielens":
        got = movielens()
        assert got is not None
        return got[0]
    size = SMALL if small else FULL
    return synthetic(size["users"], size["items"], size["events"])


# ---------------------------------------------------------------------------------- one data set


def bench(
    name: str,
    m: sp.csr_matrix,
    factors_list: list[int],
    epochs: int,
    repeats: int,
    threads: int,
    small: bool,
    peaks: bool,
) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from aisle.models._ials import confidence_weights, objective

    conf = implicit_confidence(m)
    rows_out = []
    for factors in factors_list:
        print(f"\n[{name}] factors={factors}: warm-up ...", flush=True)
        with threadpool_limits(1, "blas"):
            run_aisle(m, factors, 1, threads)
            run_implicit(conf, factors, 1, threads)
            reps: list[dict[str, Any]] = []
            last: tuple[Run, Run] | None = None
            for rep in range(repeats):
                if rep % 2 == 0:
                    a = run_aisle(m, factors, epochs, threads)
                    b = run_implicit(conf, factors, epochs, threads)
                else:
                    b = run_implicit(conf, factors, epochs, threads)
                    a = run_aisle(m, factors, epochs, threads)
                a_epoch = statistics.median(a.epochs[:-1])
                b_epoch = statistics.median(b.epochs)
                reps.append(
                    {
                        "aisle_epoch_s": a_epoch,
                        "aisle_last_epoch_s": a.epochs[-1],
                        "implicit_epoch_s": b_epoch,
                        "ratio": a_epoch / b_epoch,
                        "aisle_fit_s": a.fit_s,
                        "implicit_fit_s": b.fit_s,
                    }
                )
                print(
                    f"  rep {rep + 1}: aisle {a_epoch:.3f} s/epoch (last, exact users: "
                    f"{a.epochs[-1]:.3f} s), implicit {b_epoch:.3f} s/epoch, ratio "
                    f"{a_epoch / b_epoch:.2f}; fits {a.fit_s:.2f} s vs {b.fit_s:.2f} s",
                    flush=True,
                )
                last = (a, b)
        assert last is not None
        a_model, b_model = last[0].model, last[1].model
        cfg = a_model.config
        rows = confidence_weights(m, cfg)
        loss_a = objective(rows, a_model.user_factors_, a_model.item_factors_, cfg)
        loss_b = objective(
            rows,
            np.ascontiguousarray(b_model.user_factors),
            np.ascontiguousarray(b_model.item_factors),
            cfg,
        )

        def med(key: str, reps: list[dict[str, Any]] = reps) -> float:
            return float(statistics.median(r[key] for r in reps))

        ratio = med("ratio")
        flops = cg_flops(m, factors)
        row: dict[str, Any] = {
            "data": name,
            "factors": factors,
            "users": m.shape[0],
            "items": m.shape[1],
            "nnz": int(m.nnz),
            "epochs_per_fit": epochs,
            "repeats": reps,
            "aisle_epoch_s": round(med("aisle_epoch_s"), 4),
            "implicit_epoch_s": round(med("implicit_epoch_s"), 4),
            "ratio_aisle_over_implicit": round(ratio, 3),
            "goal": f"epoch ratio <= {GOAL_RATIO}",
            "verdict": "MET" if ratio <= GOAL_RATIO else "MISSED",
            "aisle_last_epoch_exact_users_s": round(med("aisle_last_epoch_s"), 4),
            "aisle_fit_s": round(med("aisle_fit_s"), 3),
            "implicit_fit_s": round(med("implicit_fit_s"), 3),
            "fit_ratio": round(med("aisle_fit_s") / med("implicit_fit_s"), 3),
            "loss_after_fit_aisle": loss_a,
            "loss_after_fit_implicit": loss_b,
            "cg_gflop_per_epoch": round(flops / 1e9, 3),
            "aisle_gflops": round(flops / med("aisle_epoch_s") / 1e9, 2),
            "implicit_gflops": round(flops / med("implicit_epoch_s") / 1e9, 2),
        }
        if peaks:
            data = "movielens" if name.startswith("movielens") else "synthetic"
            pa = child_peak("aisle", data, factors, threads, small)
            pb = child_peak("implicit", data, factors, threads, small)
            row["peak_rss_mib"] = {"aisle": pa, "implicit": pb}
        print(
            f"  median epoch: aisle {row['aisle_epoch_s']:.3f} s, implicit "
            f"{row['implicit_epoch_s']:.3f} s -> ratio {ratio:.2f} (goal <= {GOAL_RATIO}) "
            f"{row['verdict']}; loss {loss_a:.6g} vs {loss_b:.6g}",
            flush=True,
        )
        rows_out.append(row)
    return rows_out


def versions(threads: int) -> dict[str, Any]:
    import implicit
    import numba
    import threadpoolctl

    from aisle.models._ials import _kernels

    _kernels()
    n = numba.config.NUMBA_NUM_THREADS if threads == 0 else threads
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} threads by default)"
        for i in threadpoolctl.threadpool_info()
        if i.get("user_api") == "blas"
    ]
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not yet chosen"
    mem = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threading_layer": layer,
        "implicit": implicit.__version__,
        "threadpoolctl": threadpoolctl.__version__,
        "blas": blas,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "threads": {
            "aisle_numba": n,
            "implicit_openmp": n,
            "blas_during_fit": 1,
        },
        "env": {
            k: os.environ.get(k)
            for k in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE",
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
            )
        },
    }


def markdown(result: dict[str, Any]) -> str:
    v = result["machine"]
    lines = [
        "# iALS benchmark: aisle vs implicit (CPU, conjugate gradient)",
        "",
        f"{result['when']}, code {result['code_version']}. {v['cpu']}, {v['cores']} cores, "
        f"{v['memory_gib']} GiB. Python {v['python']}, numpy {v['numpy']}, scipy {v['scipy']}, "
        f"numba {v['numba']} ({v['numba_threading_layer']}), implicit {v['implicit']}, "
        f"threadpoolctl {v['threadpoolctl']}. BLAS: {'; '.join(v['blas'])}.",
        "",
        f"Threads: aisle {v['threads']['aisle_numba']} (numba), implicit "
        f"{v['threads']['implicit_openmp']} (OpenMP), BLAS 1 on both sides. Same confidence "
        f"matrix (c = 1 + {ALPHA:g}·r), regularization {REGULARIZATION:g} (constant), 3 CG steps, "
        f"float32. Epoch = both half-steps; median over {result['repeats']} alternating "
        f"repetitions of {result['epochs']}-epoch fits after a warm-up; aisle's last epoch "
        "(exact user solve) is shown apart. Floor: the epoch's CG flops at bare-SGEMM speed "
        f"({result['sgemm_gflops']:.0f} GFLOP/s on {v['threads']['aisle_numba']} threads). Fit "
        "memory: peak resident memory of a fresh process while it fits 2 epochs, above its "
        "resident memory once the data is built.",
        "",
        "| data | users × items (nnz) | f | aisle s/epoch | implicit s/epoch | ratio | goal | "
        "verdict | aisle last epoch | fit s aisle / implicit | GFLOP/s aisle / implicit / floor "
        "| fit memory MiB aisle / implicit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        peak = r.get("peak_rss_mib")
        peak_s = (
            f"{peak['aisle']['fit_extra_mib']:.0f} / {peak['implicit']['fit_extra_mib']:.0f}"
            if peak
            else "-"
        )
        lines.append(
            f"| {r['data']} | {r['users']:,} × {r['items']:,} ({r['nnz']:,}) | {r['factors']} | "
            f"{r['aisle_epoch_s']:.3f} | {r['implicit_epoch_s']:.3f} | "
            f"{r['ratio_aisle_over_implicit']:.2f} | <= {GOAL_RATIO} | {r['verdict']} | "
            f"{r['aisle_last_epoch_exact_users_s']:.3f} | {r['aisle_fit_s']:.2f} / "
            f"{r['implicit_fit_s']:.2f} | {r['aisle_gflops']:.1f} / {r['implicit_gflops']:.1f} / "
            f"{result['sgemm_gflops']:.0f} | {peak_s} |"
        )
    lines += [
        "",
        "Loss after the fit (aisle's objective, both models' factors): "
        + "; ".join(
            f"{r['data']} f={r['factors']}: aisle {r['loss_after_fit_aisle']:.6g}, implicit "
            f"{r['loss_after_fit_implicit']:.6g}"
            for r in result["results"]
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help=f"quick run: {SMALL}")
    parser.add_argument("--factors", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--epochs", type=int, default=4, help="iterations per timed fit (>= 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="solver threads, 0 = all cores")
    parser.add_argument("--no-movielens", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--child", choices=["aisle", "implicit"], help=argparse.SUPPRESS)
    parser.add_argument("--child-data", default="synthetic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_data, args.factors[0], args.threads, args.small)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (aisle's last epoch is reported apart)")

    machine = versions(args.threads)
    threads = machine["threads"]["aisle_numba"]
    size = SMALL if args.small else FULL
    print(f"synthetic data {size} ...", flush=True)
    m = synthetic(size["users"], size["items"], size["events"])
    results = bench(
        "synthetic",
        m,
        args.factors,
        args.epochs,
        args.repeats,
        threads,
        args.small,
        not args.no_memory,
    )
    checksums: dict[str, str] = {}
    if not args.no_movielens:
        got = movielens()
        if got is None:
            print("\nMovieLens-latest-small not found under AISLE_DATA_HOME; skipped")
        else:
            ml, checksums["movielens-latest-small/ratings.csv"] = got
            results += bench(
                "movielens-latest-small",
                ml,
                args.factors,
                args.epochs,
                args.repeats,
                threads,
                args.small,
                False,
            )
    import numba

    machine["numba_threading_layer"] = numba.threading_layer()
    result = {
        "benchmark": "ials",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "small": args.small,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "sgemm_gflops": round(sgemm_gflops(threads), 1),
        "dataset_checksums": checksums,
        "synthetic": {**size, "seed": 0},
        "machine": machine,
        "results": results,
    }
    stem = "ials-small" if args.small else "ials"
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    print("\n" + markdown(result))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
