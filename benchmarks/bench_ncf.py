"""Benchmark: NeuMF against a dot-product MF trained the same way, both tuned with the same budget.

The question of Rendle, Krichene, Zhang & Anderson ("Neural Collaborative Filtering vs. Matrix
Factorization Revisited", RecSys 2020): does NeuMF's learned interaction function beat a plain dot
product once both are trained with the same loss and negatives and tuned with the same effort?

Protocol (He et al.'s NCF paper, on MovieLens-100K instead of 1M):

* Every rating is a positive (``FeedbackConfig(rating_threshold=None)``, binary).
* ``make_split(ds, "leave-last")``: each user's last rating (by time) is the test item, the rest
  is training. Tuning (``aisle.evaluation._tune.tune``) carves the validation part from the
  training side the same way (each user's second-to-last rating), so the test item is never
  seen while tuning.
* HR@10 and NDCG@10 under two candidate sets: **full ranking** of every training item (the
  user's training items removed), and the paper's **sampled** protocol (the test item among 100
  seeded random items the user has not rated, ``protocol="sampled"``). Sampled metrics are known
  to disagree with full ranking (Krichene & Rendle, KDD 2020); both are printed.

Models: aisle ``ncf`` (NeuMF, GMF+MLP fused, BCE with ``n_negatives`` uniform negatives, Adam)
and ``mf`` (``p_u · q_i + b_i``, the same loss, sampler and optimiser), each tuned on its own
declared ``search_space`` (embedding size, learning rate, L2, negatives, epochs) with the same
budget: its defaults as trial 0 plus ``--trials`` Optuna TPE trials (seed 0), metric NDCG@10 on the
validation part. References, tuned the same way: aisle ``ials``, ``ease``, ``bpr``; and ``pop``.

Reported: each model's figures on the test part (``mf`` and ``ncf`` refitted with ``--seeds``
seeds and averaged per user), the paired difference MF − NeuMF per user with a bootstrap 95% CI
(``aisle.evaluation._stats.paired_comparison``; users are the resampled unit; seed noise is
averaged out per user first and also shown per seed), the ratio MF / NeuMF, and the time to tune,
train (epochs, then the fold-in solve that re-derives every training user) and score.

Timing caveat: the machine has 2 cores shared with other jobs; the load average is recorded.

Usage::

    python benchmarks/bench_ncf.py [--trials 12] [--seeds 3] [--skip-tuning] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

MAIN = ("mf", "ncf")
REFERENCES = ("ials", "ease", "bpr")
METRICS = ("hr@10", "ndcg@10")
EXTRA = ("recall@20", "coverage@10", "arp@10")
#: Held fixed while tuning (not searched). Both torch models: CPU, one torch thread (2 shared cores).
FIXED: dict[str, dict[str, Any]] = {"mf": {"device": "cpu", "threads": 1}, "ncf": {"device": "cpu", "threads": 1}}
GOAL = "MF / NeuMF >= 1.0 (Rendle et al. 2020: a tuned dot product matches or beats NeuMF)"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _commit() -> str:
    """HEAD, marked when the measured code differs from it (uncommitted or untracked changes)."""
    here = Path(__file__).parent
    measured = ["src/aisle/models/_ncf.py", "src/aisle/models/_samplers.py", "src/aisle/models/_torch.py",
                "benchmarks/bench_ncf.py", "benchmarks/bench_samplers.py"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *measured], capture_output=True, text=True,
                               cwd=here.parent, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head} + uncommitted changes to the measured code" if dirty else head


def environment() -> dict[str, Any]:
    import numpy
    import optuna
    import scipy
    import torch

    import aisle

    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "optuna": optuna.__version__,
        "aisle": aisle.__version__, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "memory": mem, "commit": _commit(),
    }


def _changes(cfg: dict[str, Any], defaults: dict[str, Any]) -> str:
    diff = {k: v for k, v in cfg.items() if defaults.get(k) != v and k not in ("device",)}
    if not diff:
        return "defaults"
    return ", ".join(f"{k}={round(v, 6) if isinstance(v, float) else v}" for k, v in diff.items())


def tune_all(ds: Any, feedback: Any, models: list[str], trials: int) -> dict[str, dict[str, Any]]:
    from aisle.evaluation._tune import tune

    out: dict[str, dict[str, Any]] = {}
    for name in models:
        load_before = _load()
        print(f"tuning {name}: defaults + {trials} trials", flush=True)

        def on_trial(number: int, value: float, params: dict[str, Any], name: str = name) -> None:
            print(f"  {name} trial {number}: ndcg@10 {value:.4f} {params or 'defaults'}", flush=True)

        res = tune(ds, name, metric="ndcg@10", n_trials=trials, split_name="leave-last", seed=0,
                   fixed=FIXED.get(name), feedback=feedback, on_trial=on_trial)
        out[name] = {**res.to_dict(), "trials": res.trials.to_dict(orient="records"),
                     "load_before": load_before, "load_after": _load()}
        print(f"  {name}: validation ndcg@10 {res.default_value:.4f} -> {res.best_value:.4f} in {res.seconds:.0f} s",
              flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials after the defaults, per model")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the final mf and ncf fits")
    parser.add_argument("--skip-tuning", action="store_true", help="use every model's defaults")
    parser.add_argument("--configs", default=None, help="read tuned configs from this JSON (a previous ncf.json)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("AISLE_PROGRESS", "0")
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    load_start = _load()

    from aisle.data import FeedbackConfig
    from aisle.datasets import load_dataset
    from aisle.evaluation._evaluate import evaluate
    from aisle.evaluation._runner import dataset_checksum, make_split, run_evaluation
    from aisle.evaluation._stats import paired_comparison
    from aisle.models import get_model_class

    ds = load_dataset("movielens-100k")
    feedback = FeedbackConfig(rating_threshold=None)
    names = [*MAIN, *REFERENCES]
    tuning: dict[str, dict[str, Any]] = {}
    if args.configs:
        tuning = json.loads(Path(args.configs).read_text())["tuning"]
    elif not args.skip_tuning:
        tuning = tune_all(ds, feedback, names, args.trials)
    configs = {n: dict(tuning[n]["config"]) if n in tuning else dict(FIXED.get(n, {})) for n in names}

    split = make_split(ds, "leave-last")
    metric_names = [*METRICS, *EXTRA]
    print("final fits on the test split", flush=True)
    run = run_evaluation(ds, [*names, "pop"], metric_names, split=split, configs=configs, feedback=feedback)
    results: dict[str, dict[str, Any]] = {}
    per_user: dict[str, dict[str, dict[str, Any]]] = {}
    for r in run.results:
        assert r.fitted is not None and r.evaluation is not None
        sampled = evaluate(r.fitted, split.test, ks=(10,), history=split.fold_in, protocol="sampled",
                           n_negatives=100, seed=0)
        timing = {"fit_s": r.fit_seconds, "predict_s": r.predict_seconds}
        for attr in ("train_seconds_", "fold_in_seconds_"):
            if hasattr(r.fitted, attr):
                timing[attr.rstrip("_")] = float(getattr(r.fitted, attr))
        results[r.model] = {"config": r.params, "full": dict(r.metrics),
                            "sampled": {m: sampled.metrics[m] for m in METRICS}, "timing": timing,
                            "seeds": {0: {"full": {m: r.metrics[m] for m in METRICS},
                                          "sampled": {m: sampled.metrics[m] for m in METRICS}}}}
        per_user[r.model] = {"full": {"users": r.evaluation.users, **{m: [r.evaluation.per_user[m]] for m in METRICS}},
                             "sampled": {"users": sampled.users, **{m: [sampled.per_user[m]] for m in METRICS}}}
        print(f"  {r.model}: full {r.metrics} sampled {results[r.model]['sampled']} fit {r.fit_seconds:.1f} s",
              flush=True)
    # more seeds for the two models under comparison
    for seed in range(1, args.seeds):
        for name in MAIN:
            cfg = {**configs[name], "seed": seed}
            seeded_run = run_evaluation(ds, [name], metric_names, split=split, configs={name: cfg}, feedback=feedback)
            res = seeded_run.results[0]
            assert res.fitted is not None and res.evaluation is not None
            sampled = evaluate(res.fitted, split.test, ks=(10,), history=split.fold_in, protocol="sampled",
                               n_negatives=100, seed=0)
            results[name]["seeds"][seed] = {"full": {m: res.metrics[m] for m in METRICS},
                                            "sampled": {m: sampled.metrics[m] for m in METRICS},
                                            "fit_s": res.fit_seconds}
            for protocol, ev in (("full", res.evaluation), ("sampled", sampled)):
                assert list(ev.users) == list(per_user[name][protocol]["users"])
                for m in METRICS:
                    per_user[name][protocol][m].append(ev.per_user[m])
            print(f"  {name} seed {seed}: {results[name]['seeds'][seed]}", flush=True)
    for name in MAIN:  # the seed-averaged figures are the ones reported
        for protocol in ("full", "sampled"):
            for m in METRICS:
                results[name][protocol][m] = float(np.mean(np.nanmean(np.vstack(per_user[name][protocol][m]), axis=0)))

    comparisons: list[dict[str, Any]] = []
    for protocol in ("full", "sampled"):
        for m in METRICS:
            a = per_user["ncf"][protocol]
            b = per_user["mf"][protocol]
            pc = paired_comparison(a["users"], np.mean(np.vstack(a[m]), axis=0), b["users"],
                                   np.mean(np.vstack(b[m]), axis=0), metric=m, n_boot=2000, seed=0)
            per_seed = [results["mf"]["seeds"][s][protocol][m] - results["ncf"]["seeds"][s][protocol][m]
                        for s in sorted(results["mf"]["seeds"])]
            ratio = pc.mean_b / pc.mean_a if pc.mean_a else float("nan")
            comparisons.append({"protocol": protocol, **pc.to_dict(), "ratio_mf_over_ncf": ratio,
                                "per_seed_diff": per_seed, "verdict": "MET" if ratio >= 1.0 else "MISSED"})
            print(f"MF/NeuMF {protocol} {m}: {pc.mean_b:.4f} / {pc.mean_a:.4f} = {ratio:.3f}; "
                  f"diff {pc.diff.mean:+.4f} 95% CI [{pc.diff.low:+.4f}, {pc.diff.high:+.4f}]", flush=True)
    for name in [*REFERENCES, "pop"]:
        for protocol in ("full", "sampled"):
            ratio = results[name][protocol]["ndcg@10"] / results["ncf"][protocol]["ndcg@10"]
            print(f"{name}/NeuMF {protocol} ndcg@10 ratio {ratio:.3f}", flush=True)

    report = {
        "benchmark": "ncf",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_ncf.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": {"start": load_start, "end": _load()},
        "environment": environment(),
        "dataset": {"name": ds.name, "sha256": dataset_checksum(ds), "protocol": run.protocol.to_dict()},
        "goal": GOAL,
        "trials": args.trials if not args.skip_tuning else 0,
        "seeds": args.seeds,
        "tuning": tuning,
        "results": results,
        "comparisons": comparisons,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ncf.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "ncf.md").write_text(markdown(report, {n: get_model_class(n).Config().model_dump(mode="json")
                                                  for n in [*names, "pop"]}))
    print(f"wrote {out / 'ncf.md'} and {out / 'ncf.json'} in {report['seconds']:.0f} s", flush=True)
    return 0


def markdown(r: dict[str, Any], defaults: dict[str, dict[str, Any]]) -> str:
    env = r["environment"]
    proto = r["dataset"]["protocol"]
    lines = [
        "# NeuMF vs a tuned dot-product MF (NCF protocol, MovieLens-100K)",
        "",
        "## Goal",
        "",
        "| comparison | MF | NeuMF | ratio MF / NeuMF | MF − NeuMF (95% bootstrap CI over users) | per seed | target | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["comparisons"]:
        per_seed = ", ".join(f"{d:+.4f}" for d in c["per_seed_diff"])
        lines.append(
            f"| {c['metric'].upper().replace('@', '@')} {c['protocol']} | {c['mean_b']:.4f} | {c['mean_a']:.4f} | "
            f"{c['ratio_mf_over_ncf']:.3f} | {c['diff']['mean']:+.4f} [{c['diff']['ci_low']:+.4f}, "
            f"{c['diff']['ci_high']:+.4f}] (t-test p {c['t_pvalue']:.3f}, n={c['n_users']}) | {per_seed} | >= 1.0 | "
            f"{c['verdict']} |")
    lines += [
        "",
        f"Goal: {r['goal']}. MET says only that the ratio is >= 1; whether the difference is "
        "distinguishable from zero is what the CI says.",
        "",
        f"{r['date']}, code {env['commit']}, command `{r['command'].strip()}`, {r['seconds']:.0f} s. "
        f"{env['cpu']}, {env['cores']} cores, {env['memory']}; load average (1/5/15 min) "
        f"{r['load_average']['start']} at the start, {r['load_average']['end']} at the end: the cores were shared "
        f"with other jobs, so every time below is inflated by contention. Python {env['python']}, numpy "
        f"{env['numpy']}, scipy {env['scipy']}, torch {env['torch']} (CPU; mf and ncf with threads=1, the others at their default threads), "
        f"optuna {env['optuna']}, aisle {env['aisle']}.",
        "",
        "## Results on the test part",
        "",
        f"{r['dataset']['name']} (sha256 {r['dataset']['sha256']}), every rating a positive (binary); split: "
        f"{proto['split']['name']} ({proto['split'].get('train_events')} training events, "
        f"{proto['split'].get('test_events')} test events: each user's last rating); {proto['n_items']} items, "
        f"{proto['n_test_users']} test users. Full: {proto['candidates']}. Sampled: the test item among 100 "
        "seeded random unrated items (seed 0), as in the NCF paper. "
        f"Tuning: defaults + {r['trials']} TPE trials (seed 0) per model on the validation part (each user's "
        "second-to-last rating), NDCG@10, full ranking. mf and ncf: mean over "
        f"{r['seeds']} training seeds (per user, then over users); the others one fit.",
        "",
        "| model | config (changes from defaults) | val NDCG@10 defaults → tuned | HR@10 full | NDCG@10 full | "
        "HR@10 sampled | NDCG@10 sampled | Recall@20 | coverage@10 | ARP@10 | tune s | fit s (train + fold-in) | predict s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in r["results"].items():
        t = r["tuning"].get(name, {})
        val = f"{t['default_value']:.4f} → {t['best_value']:.4f}" if t else "n/a"
        tm = res["timing"]
        split_t = (f" ({tm['train_seconds']:.1f} + {tm['fold_in_seconds']:.1f})"
                   if "train_seconds" in tm else "")
        lines.append(
            f"| {name} | {_changes(res['config'], defaults.get(name, {}))} | {val} | {res['full']['hr@10']:.4f} | "
            f"{res['full']['ndcg@10']:.4f} | {res['sampled']['hr@10']:.4f} | {res['sampled']['ndcg@10']:.4f} | "
            f"{res['full']['recall@20']:.4f} | {res['full']['coverage@10']:.3f} | {res['full']['arp@10']:.1f} | "
            f"{t.get('seconds', 0):.0f} | {tm['fit_s']:.1f}{split_t} | {tm['predict_s']:.2f} |")
    lines += ["", "Per seed (mf, ncf):", ""]
    for name in MAIN:
        for seed, figs in r["results"][name]["seeds"].items():
            lines.append(f"- {name} seed {seed}: full HR@10 {figs['full']['hr@10']:.4f} NDCG@10 "
                         f"{figs['full']['ndcg@10']:.4f}; sampled HR@10 {figs['sampled']['hr@10']:.4f} NDCG@10 "
                         f"{figs['sampled']['ndcg@10']:.4f}")
    ncf = r["results"]["ncf"]
    lines += ["", "Ratios to NeuMF (NDCG@10, full / sampled): " + "; ".join(
        f"{n} {res['full']['ndcg@10'] / ncf['full']['ndcg@10']:.2f} / "
        f"{res['sampled']['ndcg@10'] / ncf['sampled']['ndcg@10']:.2f}"
        for n, res in r["results"].items() if n != "ncf")]
    mf_t, ncf_t = r["results"]["mf"]["timing"], ncf["timing"]
    lines += ["", f"Fit time NeuMF / MF (tuned configs, seed 0): {ncf_t['fit_s'] / mf_t['fit_s']:.2f}; "
              f"tuning time NeuMF / MF: {r['tuning'].get('ncf', {}).get('seconds', 0) / max(r['tuning'].get('mf', {}).get('seconds', 1), 1e-9):.2f}.",
              ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
