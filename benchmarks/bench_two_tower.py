"""Benchmark: two-tower quality against popularity and iALS, and what the logQ correction does.

Datasets: MovieLens-100K (``AISLE_DATA_HOME``; aisle's default temporal split, ratings >= 4 are
relevant, the CLI's protocol) and a simulated shop with a catalog (``aisle.simulate.simulate``:
category tree, brand, price; views, clicks, carts, purchases; ``--users`` x ``--items``, 60
days, seed 1; same temporal split). Every model is fitted on the same training matrix and
events, ranks the full set of training items for every test user (seen items removed; users
new after the cutoff are folded in from half of their test-period events) and is scored by
``aisle.evaluation.evaluate``: NDCG@10, Recall@20, ARP@10 (average training popularity of the
recommended items: the popularity bias) and catalog coverage@10.

Models: ``pop``; ``ials`` (defaults); ``two-tower`` with its defaults (logQ-corrected in-batch
softmax) and five variants: ``logq=False`` (the plain in-batch softmax), ``context="previous"`` /
``"all"`` (the history of each training target: the items before it / the whole recent
profile; the default mixes both per batch), ``negatives="mixed"``
(in-batch + 256 uniform negatives) and ``features=False`` (item ids only: no category / brand /
price embeddings). iALS is at its defaults here, not tuned (``bench_models.py`` tunes it), so
this is a sanity check of the two-tower, not a tuned-vs-tuned comparison. Torch and BLAS run on
one thread. Fit seconds are wall time on a shared machine.

Usage::

    python benchmarks/bench_two_tower.py [--datasets movielens-100k,shop] [--users 3000] [--items 2000]
        [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@20", "arp@10", "coverage@10")
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("pop", "pop", {}),
    ("ials", "ials", {}),
    ("two-tower", "two-tower", {}),
    ("two-tower logq=False", "two-tower", {"logq": False}),
    ("two-tower context=previous", "two-tower", {"context": "previous"}),
    ("two-tower context=all", "two-tower", {"context": "all"}),
    ("two-tower mixed negatives", "two-tower", {"negatives": "mixed"}),
    ("two-tower features=False", "two-tower", {"features": False}),
]


def load(name: str, args: argparse.Namespace) -> Any:
    if name == "shop":
        from aisle.simulate import simulate

        return simulate(n_users=args.users, n_items=args.items, n_days=60, seed=1).dataset
    from aisle.datasets import load_dataset

    return load_dataset(name)


def run(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from aisle.data._feedback import FeedbackConfig, build_interactions
    from aisle.evaluation import evaluate
    from aisle.evaluation._runner import make_split
    from aisle.models import make_model

    ds = load(name, args)
    split = make_split(ds, None, seed=0)
    train = build_interactions(split.train, FeedbackConfig())
    rows = []
    for label, model_name, cfg in VARIANTS:
        extra = {"device": "cpu", "threads": 1} if model_name == "two-tower" else {}
        model = make_model(model_name, **cfg, **extra)
        t = time.perf_counter()
        model.fit(train, catalog=ds.items, users=ds.users, events=split.train)
        fit_s = time.perf_counter() - t
        ev = evaluate(model, split.test, ks=(10, 20), history=split.fold_in)
        row = {"dataset": ds.name if name != "shop" else "simulated shop", "model": label, "config": cfg,
               **{m: ev.metrics[m] for m in METRICS}, "fit_s": fit_s,
               "users": ev.counts["users_evaluated"], "n_items": len(train.items)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="movielens-100k,shop")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    os.environ.setdefault("AISLE_PROGRESS", "0")
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    with threadpool_limits(1, user_api="blas"):
        for name in args.datasets.split(","):
            rows += run(name, args)
    result = {
        "command": " ".join(["python", "benchmarks/bench_two_tower.py", *(argv if argv is not None else sys.argv[1:])]),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                        "machine": f"{os.cpu_count()} cores", "threads": "torch 1, BLAS 1"},
        "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
        "shop": {"users": args.users, "items": args.items, "days": 60, "seed": 1}, "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "two-tower.json").write_text(json.dumps(result, indent=2))
    lines = ["# Two-tower quality: against pop and iALS, logQ on / off", "", f"`{result['command']}`", "",
             f"Python {result['environment']['python']}, numpy {result['environment']['numpy']}, torch "
             f"{result['environment']['torch']}; {result['environment']['machine']}, torch and BLAS at 1 thread; "
             f"load average {load_before} -> {result['load_after']} (shared machine: fit times are noisy). "
             "Temporal split, full ranking of the training items, seen items removed. iALS at its defaults "
             "(not tuned here).", "",
             "| dataset | model | NDCG@10 | Recall@20 | ARP@10 | coverage@10 | fit s | users |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['ndcg@10']:.4f} | {r['recall@20']:.4f} | "
                     f"{r['arp@10']:.1f} | {r['coverage@10']:.3f} | {r['fit_s']:.1f} | {r['users']} |")
    md = "\n".join(lines) + "\n"
    (args.out / "two-tower.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
