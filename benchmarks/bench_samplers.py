"""Benchmark: what each negative sampler does to accuracy and to popularity bias.

One dot-product MF (aisle ``mf``) is trained with every sampler of
:mod:`aisle.models._samplers`, everything else held fixed, on MovieLens-100K's published ``ua``
split (10 ratings per user held out) with aisle's default feedback rules (ratings >= 4 are the
positives and the relevant test items). Rows:

* pointwise BCE with ``n`` negatives per positive: uniform; popularity ``Q ∝ (count+1)^α`` with
  α = 0.5 and 1.0; hard (the ``n`` best-scored of a uniform pool of 20, Rendle & Freudenthaler
  2014);
* sampled softmax with ``n`` negatives per positive: uniform; popularity α = 1 with and without
  the logQ correction (Yi et al. 2019);
* in-batch softmax (the batch's other positives are the negatives, ``Q`` = the item's share of
  training pairs) with and without logQ; mixed (in-batch plus ``n`` uniform items shared by the
  batch, Yang et al. 2020) with logQ;
* NeuMF (``ncf``, BCE) with uniform and popularity α = 1 negatives; references: ``pop`` and
  aisle's ``bpr`` (uniform sampling, its defaults).

Reported per row: NDCG@10, Recall@20 (full ranking, seen items removed), catalog coverage@10,
ARP@10 (mean training count of the recommended items, aisle's ``arp@k``), the sampler's
**declared** expected negative popularity (``NegativeSampler.expected_popularity``: the mean
training count of a negative under its ``Q``) and the **measured** one (the mean count of the
negatives the training loop actually used in its last epoch; positives are redrawn, hard negatives
depend on the model), and fit time. A sampler whose negatives are more popular pushes popular
items down harder, and its ARP@10 drops; the table shows how much accuracy that costs.

Not tuned per sampler: every MF row uses the same config (``MF_CONFIG``), so the table isolates
the sampler, not each sampler at its best. One seed. The machine has 2 shared cores (load average
recorded); times are inflated by contention.

Usage::

    python benchmarks/bench_samplers.py [--epochs 20] [--no-ncf] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ncf import _load, environment

MF_CONFIG: dict[str, Any] = {"factors": 64, "learning_rate": 0.005, "regularization": 1e-5, "n_negatives": 8,
                             "batch_size": 1024, "device": "cpu", "seed": 0, "threads": 1}
NCF_CONFIG: dict[str, Any] = {"factors": 16, "learning_rate": 0.005, "regularization": 1e-5, "n_negatives": 8,
                              "batch_size": 1024, "device": "cpu", "seed": 0, "threads": 1}
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("mf", "BCE, uniform", {"loss": "bce", "sampler": "uniform"}),
    ("mf", "BCE, popularity α=0.5", {"loss": "bce", "sampler": "popularity", "sampler_alpha": 0.5}),
    ("mf", "BCE, popularity α=1.0", {"loss": "bce", "sampler": "popularity", "sampler_alpha": 1.0}),
    ("mf", "BCE, hard (uniform pool of 20)", {"loss": "bce", "sampler": "hard", "sampler_alpha": 0.0, "hard_pool": 20}),
    ("mf", "softmax, uniform", {"loss": "softmax", "sampler": "uniform"}),
    ("mf", "softmax, popularity α=1.0, logQ", {"loss": "softmax", "sampler": "popularity", "sampler_alpha": 1.0}),
    ("mf", "softmax, popularity α=1.0, no logQ",
     {"loss": "softmax", "sampler": "popularity", "sampler_alpha": 1.0, "logq_correction": False}),
    ("mf", "softmax, in-batch, logQ", {"loss": "softmax", "sampler": "in-batch"}),
    ("mf", "softmax, in-batch, no logQ", {"loss": "softmax", "sampler": "in-batch", "logq_correction": False}),
    ("mf", "softmax, mixed (in-batch + 8 uniform), logQ", {"loss": "softmax", "sampler": "mixed"}),
    ("ncf", "NeuMF BCE, uniform", {"sampler": "uniform"}),
    ("ncf", "NeuMF BCE, popularity α=1.0", {"sampler": "popularity", "sampler_alpha": 1.0}),
    ("bpr", "aisle bpr (reference, its defaults)", {}),
    ("pop", "popularity (reference)", {}),
]


def declared_popularity(name: str, cfg: dict[str, Any], counts: np.ndarray) -> float | None:
    """``expected_popularity`` of the sampler the config builds (mixed: both parts, by share)."""
    from aisle.models._samplers import InBatchSampler, UniformSampler, sampler_by_name

    if name not in ("mf", "ncf"):
        return None
    kind = cfg.get("sampler", "uniform")
    alpha = cfg.get("sampler_alpha", 0.75)
    if kind == "hard":  # the pool's distribution; the chosen ones are measured, not declared
        return sampler_by_name("popularity", counts, alpha=alpha).expected_popularity(counts)
    if kind == "mixed":
        b, n = cfg["batch_size"] - 1, cfg["n_negatives"]
        return float((b * InBatchSampler(counts).expected_popularity(counts)
                      + n * UniformSampler(counts.size).expected_popularity(counts)) / (b + n))
    return sampler_by_name(kind, counts, alpha=alpha).expected_popularity(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-ncf", action="store_true", help="skip the two NeuMF rows")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("AISLE_PROGRESS", "0")
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    load_start = _load()

    from aisle.data._feedback import FeedbackConfig, build_interactions
    from aisle.datasets import load_dataset
    from aisle.evaluation._evaluate import evaluate
    from aisle.evaluation._runner import dataset_checksum, make_split
    from aisle.models import make_model

    ds = load_dataset("movielens-100k", split="ua")
    split = make_split(ds, "fixed")
    feedback = FeedbackConfig()
    train = build_interactions(split.train, feedback)
    counts = np.asarray((train.matrix > 0).sum(axis=0)).ravel().astype(np.float64)
    rows: list[dict[str, Any]] = []
    for name, label, extra in ROWS:
        if args.no_ncf and name == "ncf":
            continue
        base = MF_CONFIG if name == "mf" else NCF_CONFIG if name == "ncf" else {}
        cfg = {**base, **extra, **({"epochs": args.epochs} if name in ("mf", "ncf") else {})}
        t0 = time.perf_counter()
        model = make_model(name, **cfg).fit(train)
        fit_s = time.perf_counter() - t0
        ev = evaluate(model, split.test, ks=(10, 20), history=split.fold_in)
        measured = getattr(model, "negative_popularity_", None)
        row = {
            "model": name, "label": label, "config": model.config.model_dump(mode="json"),
            "ndcg@10": ev.metrics["ndcg@10"], "recall@20": ev.metrics["recall@20"],
            "coverage@10": ev.metrics["coverage@10"], "arp@10": ev.metrics["arp@10"],
            "declared_negative_popularity": declared_popularity(name, cfg, counts),
            "measured_negative_popularity": None if measured is None else float(measured[-1]),
            "fit_s": fit_s, "users": ev.counts["users_evaluated"],
            "load": _load(),
        }
        rows.append(row)
        print(f"{label}: ndcg@10 {row['ndcg@10']:.4f} recall@20 {row['recall@20']:.4f} coverage@10 "
              f"{row['coverage@10']:.3f} arp@10 {row['arp@10']:.1f} neg pop declared "
              f"{row['declared_negative_popularity']} measured {row['measured_negative_popularity']} "
              f"fit {fit_s:.1f} s", flush=True)
    report = {
        "benchmark": "samplers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_samplers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": {"start": load_start, "end": _load()},
        "environment": environment(),
        "dataset": {"name": ds.name, "split": "ua (fixed)", "sha256": dataset_checksum(ds),
                    "train_users": train.matrix.shape[0], "train_items": train.matrix.shape[1],
                    "train_positives": int(train.nnz), "mean_item_count": float(counts.mean()),
                    "mean_count_of_a_training_pair": float(counts @ counts / counts.sum())},
        "mf_config": MF_CONFIG, "ncf_config": NCF_CONFIG, "epochs": args.epochs,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samplers.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "samplers.md").write_text(markdown(report))
    print(f"wrote {out / 'samplers.md'} and {out / 'samplers.json'} in {report['seconds']:.0f} s", flush=True)
    return 0


def markdown(r: dict[str, Any]) -> str:
    env, d = r["environment"], r["dataset"]
    base = next((row for row in r["rows"] if row["label"] == "BCE, uniform"), None)

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = [
        "# Negative samplers: accuracy against popularity bias (MF, MovieLens-100K ua)",
        "",
        f"{r['date']}, code {env['commit']}, command `{r['command'].strip()}`, {r['seconds']:.0f} s. {env['cpu']}, "
        f"{env['cores']} cores, {env['memory']}; load average {r['load_average']['start']} at the start, "
        f"{r['load_average']['end']} at the end (shared cores: fit times are inflated by contention). "
        f"Python {env['python']}, numpy {env['numpy']}, torch {env['torch']} (CPU; mf and ncf with threads=1; bpr at "
        "its defaults).",
        "",
        f"{d['name']} ({d['sha256']}), split {d['split']}, aisle's default feedback (ratings >= 4 are positives "
        f"and the relevant test items): {d['train_users']} users × {d['train_items']} items, {d['train_positives']:,} "
        f"training positives; an item's mean training count is {d['mean_item_count']:.1f}, the mean count of the "
        f"item of a training pair {d['mean_count_of_a_training_pair']:.1f}. Full ranking, seen items removed. "
        f"MF: {r['mf_config']}, {r['epochs']} epochs, for every MF row (not tuned per sampler); NeuMF: "
        f"{r['ncf_config']}, {r['epochs']} epochs. One seed.",
        "",
        "| model / loss / sampler | NDCG@10 | Recall@20 | coverage@10 | ARP@10 | negative popularity declared | measured (last epoch) | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['label']} | {row['ndcg@10']:.4f} | {row['recall@20']:.4f} | {row['coverage@10']:.3f} | "
            f"{row['arp@10']:.1f} | {fmt(row['declared_negative_popularity'], '.1f')} | "
            f"{fmt(row['measured_negative_popularity'], '.1f')} | {row['fit_s']:.1f} |")
    lines += [
        "",
        "Declared: the mean training count of a negative under the sampler's Q "
        "(`NegativeSampler.expected_popularity`; hard: its pool's Q; mixed: both parts by their share of a "
        "row's negatives). Measured: the mean count of the negatives the training loop used (positives are "
        "redrawn, so it is lower than declared for popular-item samplers; hard negatives depend on the model; "
        "in-batch: every other positive of the batch).",
    ]
    if base is not None:
        lines += ["", "Relative to BCE + uniform (NDCG@10 ratio, ARP@10 ratio): " + "; ".join(
            f"{row['label']} {row['ndcg@10'] / base['ndcg@10']:.2f}, {row['arp@10'] / base['arp@10']:.2f}"
            for row in r["rows"] if row is not base)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
