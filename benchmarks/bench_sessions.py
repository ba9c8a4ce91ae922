"""Benchmark: session-based next-item models on YooChoose and DIGINETICA samples.

Models: ``pop``, ``sknn``, ``vsknn`` and, when it is registered, ``gru4rec`` (each at its
defaults; the knn defaults were chosen on YooChoose's own validation split ``tr-valid``, never
on these test sessions). Everything is scored by aisle's evaluation code:

1. **Quality, aisle's protocol** (``aisle.evaluation._runner.run_evaluation`` with the dataset's
   default split, ``session-next-item``): held-out sessions' clicks but the last are fold-in
   history, the last click is the target; full ranking over the training items, items already
   in the session removed from the list and from the targets (a session whose last click
   repeats an earlier one has no target left and is skipped, counted). HR@20 and MRR@20 with
   the paired per-session difference of each model against ``pop`` (the named peer), as a
   bootstrap 95% CI (``aisle.evaluation._stats.paired_comparison``), and sknn vs vsknn.
2. **Every next click** (the protocol of GRU4Rec and of Ludewig & Jannach, 2018): each prefix of
   each held-out session predicts its next click, through ``aisle.evaluation.evaluate`` with one
   query per prefix; once with items already in the session removed (aisle's default), once
   with them kept (session-rec's: repeats count as hits).
3. **Fit / predict seconds** of step 1: median of ``--repeats`` runs after the quality run
   (which doubles as warm-up); gru4rec is timed on its one quality run.
4. **The same algorithm as per-query loops**: S-KNN and V-SKNN written the way session-rec
   writes them (dicts of item -> sessions, a Python loop per query and per candidate), on the
   YooChoose held-out prefixes: the knn scores must agree (max relative difference) and the
   top-20 lists must be identical; the throughput ratio is aisle's batch scoring over the loops.
5. **The CLI**: ``aisle evaluate --dataset D --models pop,sknn,vsknn --metrics hr@20,mrr@20
   --json`` in a subprocess; its figures must equal step 1's.

Usage::

    python benchmarks/bench_sessions.py [--repeats 3] [--datasets yoochoose-sample,diginetica-sample]
        [--no-gru4rec] [--no-cli] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DATASETS = ("yoochoose-sample", "diginetica-sample")
KNN = ("sknn", "vsknn")
METRICS = ("hr@20", "mrr@20")
K = 20
SPEED_GOAL = 10.0  # aisle's batch scoring at least 10x the per-query loops


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src/aisle/models/_sknn.py"], capture_output=True,
                               text=True, check=False).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted _sknn.py)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    import scipy
    import threadpoolctl

    import aisle

    info: dict[str, Any] = {
        "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
        "pandas": pd.__version__, "aisle": aisle.__version__, "cores": os.cpu_count(),
        "blas": [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                 for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"],
    }
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    return info


# ------------------------------------------------------------------------------ protocols


def every_next_click(held_out: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One query per prefix of each held-out session: ``(history, targets)`` keyed by
    ``<session>#<prefix length>``."""
    ev = held_out.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    pos = ev.groupby("user_id", sort=False).cumcount().to_numpy()
    length = ev.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    hist_parts, target_parts = [], []
    # prefix t (1 <= t < L): history = events 0..t-1, target = event t
    for t in range(1, int(length.max()) if len(ev) else 1):
        long_enough = length > t
        target = ev[long_enough & (pos == t)].copy()
        target["user_id"] = target["user_id"].astype(str) + f"#{t}"
        target_parts.append(target)
        hist = ev[long_enough & (pos < t)].copy()
        hist["user_id"] = hist["user_id"].astype(str) + f"#{t}"
        hist_parts.append(hist)
    return pd.concat(hist_parts, ignore_index=True), pd.concat(target_parts, ignore_index=True)


def paired(a: Any, b: Any, metric: str) -> dict[str, Any]:
    """B minus A per session (bootstrap 95% CI)."""
    from aisle.evaluation._stats import paired_comparison

    c = paired_comparison(a.users, a.per_user[metric], b.users, b.per_user[metric], metric=metric, seed=0)
    return {"a": a.model, "b": b.model, "metric": metric, "mean_a": c.mean_a, "mean_b": c.mean_b,
            "diff": c.diff.mean, "ci_low": c.diff.low, "ci_high": c.diff.high, "n": c.n_users,
            "t_p": c.t_pvalue}


def part_quality(name: str, models: list[str], repeats: int, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from aisle.datasets import load_dataset
    from aisle.evaluation import evaluate
    from aisle.evaluation._runner import make_split, run_evaluation

    t0 = time.perf_counter()
    ds = load_dataset(name)
    split = make_split(ds)
    load_s = time.perf_counter() - t0
    print(f"  {name}: loaded in {load_s:.1f} s; {len(split.train):,} train events, "
          f"{split.test['user_id'].nunique():,} held-out sessions", flush=True)
    run = run_evaluation(ds, models, list(METRICS), split=split, configs=configs)
    res = {r.model: r for r in run.results}
    out: dict[str, Any] = {
        "dataset": name, "dataset_sha256": run.protocol.dataset_sha256, "load_s": round(load_s, 2),
        "split": run.protocol.split, "candidates": run.protocol.candidates,
        "train_sessions": int(split.train["user_id"].nunique()), "n_items": run.protocol.n_items,
        "models": {}, "paired": [], "every_next": {},
    }
    for m, r in res.items():
        out["models"][m] = {"params": r.params, "metrics": r.metrics, "counts": r.counts,
                            "fit_s_first": r.fit_seconds, "predict_s_first": r.predict_seconds}
        epochs = getattr(r.fitted, "epoch_seconds_", None)
        if epochs is not None:
            out["models"][m]["epoch_seconds"] = [round(float(x), 2) for x in epochs]
        print(f"    {m:8s} HR@20 {r.metrics['hr@20']:.4f}  MRR@20 {r.metrics['mrr@20']:.4f}  "
              f"fit {r.fit_seconds:.2f} s  predict {r.predict_seconds:.2f} s", flush=True)
    # paired per-session differences
    pairs = [("pop", m) for m in models if m != "pop"] + [("sknn", "vsknn")]
    if "gru4rec" in res:
        pairs.append(("vsknn", "gru4rec"))
    for a, b in pairs:
        for metric in METRICS:
            ea, eb = res[a].evaluation, res[b].evaluation
            assert ea is not None and eb is not None
            out["paired"].append(paired(ea, eb, metric))
    # timing repeats (the quality run above was the warm-up), alternating the model order
    timed = [m for m in models if m != "gru4rec"]
    fits: dict[str, list[float]] = {m: [] for m in timed}
    preds: dict[str, list[float]] = {m: [] for m in timed}
    for rep in range(repeats):
        for m in (timed if rep % 2 == 0 else timed[::-1]):
            r = run_evaluation(ds, [m], list(METRICS), split=split).results[0]
            fits[m].append(r.fit_seconds)
            preds[m].append(r.predict_seconds)
    for m in models:
        row = out["models"][m]
        if fits.get(m):
            row.update({"fit_s": statistics.median(fits[m]), "predict_s": statistics.median(preds[m]),
                        "timing_runs": len(fits[m])})
        else:
            row.update({"fit_s": row["fit_s_first"], "predict_s": row["predict_s_first"], "timing_runs": 1})
    last = split.test.assign(user_id=split.test["user_id"].astype(str))
    prefix = split.fold_in if split.fold_in is not None else split.test.iloc[:0]
    share = _repeat_share(prefix.assign(user_id=prefix["user_id"].astype(str)), last)
    out["last_click_repeats"] = round(share * len(last))
    # every next click, on the same fitted models
    held_out = pd.concat([split.fold_in, split.test], ignore_index=True) if split.fold_in is not None else split.test
    history, targets = every_next_click(held_out)
    out["every_next"]["queries"] = int(targets["user_id"].nunique())
    repeat_share = _repeat_share(history, targets)
    out["every_next"]["targets_repeating_a_session_item"] = repeat_share
    for exclude in (True, False):
        key = "exclude_seen" if exclude else "keep_seen"
        out["every_next"][key] = {}
        evals = {}
        for m in models:
            model = res[m].fitted
            assert model is not None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ev = evaluate(model, targets, ks=[K], metrics=["hr", "mrr"], history=history, exclude_seen=exclude)
            evals[m] = ev
            out["every_next"][key][m] = {"hr@20": ev.metrics["hr@20"], "mrr@20": ev.metrics["mrr@20"],
                                         "evaluated": ev.counts["users_evaluated"], "predict_s": ev.seconds}
        out["every_next"][key]["paired"] = [paired(evals["pop"], evals[m], metric)
                                            for m in models if m != "pop" for metric in METRICS]
        print(f"    every next click ({key}): " + ", ".join(
            f"{m} {out['every_next'][key][m]['hr@20']:.4f}/{out['every_next'][key][m]['mrr@20']:.4f}"
            for m in models), flush=True)
    out["_fitted"] = {m: res[m].fitted for m in models}
    out["_held_out"] = (split.fold_in, split.test)
    return out


def _repeat_share(history: pd.DataFrame, targets: pd.DataFrame) -> float:
    seen = set(zip(history["user_id"].astype(str), history["item_id"].astype(str), strict=True))
    hits = [(u, i) in seen for u, i in zip(targets["user_id"].astype(str), targets["item_id"].astype(str),
                                           strict=True)]
    return float(np.mean(hits)) if hits else math.nan


# ------------------------------------------------------------------------------ the loop peer


class LoopKNN:
    """S-KNN / V-SKNN the way session-rec writes them: item -> sessions sets and Python loops.

    Written from the papers' description for this benchmark (no session-rec code); the
    similarity, weightings and tie-breaks are aisle's (see ``aisle.models._sknn``) so the two
    must give the same scores.
    """

    def __init__(self, model: Any) -> None:
        from aisle.models._sknn import match_decay, position_decay

        self.cfg = model.config.model_dump()
        self.vsknn = model.name == "vsknn"
        self.position_decay, self.match_decay = position_decay, match_decay
        self.recency = model.session_recency_
        self.session_items: dict[int, set[int]] = {}
        self.item_sessions: dict[int, set[int]] = {}
        for s in range(len(model.users_)):
            items = {int(i) for i in model.sequences_[s]}
            self.session_items[s] = items
            for i in items:
                self.item_sessions.setdefault(i, set()).add(s)
        n = sum(1 for v in self.session_items.values() if v)
        self.idf = {i: math.log(n / len(ss)) for i, ss in self.item_sessions.items()}

    def scores(self, clicks: list[int]) -> dict[int, float]:
        cfg = self.cfg
        last = {i: p for p, i in enumerate(clicks, start=1)}
        kind = cfg.get("position_weighting", "same")
        w = {i: float(self.position_decay(kind, np.array([float(p)]), np.array([float(len(clicks))]))[0])
             for i, p in last.items()}
        relevant: set[int] = set()
        for i in last:
            relevant |= self.item_sessions.get(i, set())
        cand = sorted(relevant, key=lambda s: -self.recency[s])
        if cfg["sample_size"] > 0:
            cand = cand[:cfg["sample_size"]]
        norm = math.sqrt(sum(v * v for v in w.values()))
        neighbours = []
        for s in cand:
            items = self.session_items[s]
            shared = [i for i in last if i in items]
            dot = sum(w[i] for i in shared)
            if cfg["similarity"] == "cosine":
                sim = dot / (norm * math.sqrt(len(items)))
            elif cfg["similarity"] == "jaccard":
                sim = dot / (len(last) + len(items) - len(shared))
            else:
                sim = dot / len(last)
            neighbours.append((sim, self.recency[s], s, shared))
        neighbours.sort(key=lambda t: (-round(t[0], 12), -t[1]))  # ties at 12 decimals, as aisle
        out: dict[int, float] = {}
        for sim, _, s, shared in neighbours[:cfg["k"]]:
            vote = sim
            if self.vsknn and cfg["match_weighting"] != "same":
                step = len(clicks) - max(last[i] for i in shared) + 1
                vote *= float(self.match_decay(cfg["match_weighting"], np.array([float(step)]))[0])
            for i in self.session_items[s]:
                out[i] = out.get(i, 0.0) + vote
        lam = cfg.get("idf_weight", 0.0)
        if self.vsknn and lam > 0:
            out = {i: v * (1.0 + lam * self.idf[i]) for i, v in out.items()}
        return out


def part_loops(fitted: dict[str, Any], fold_in: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """aisle's batch scoring vs the per-query loops on the held-out prefixes (no backfill)."""
    rows = []
    for name in KNN:
        src = fitted[name]
        model = copy.copy(src)  # the fitted model with its backfill switched off
        model.config = src.config.model_copy(update={"popular_backfill": False})
        users = list(pd.unique(fold_in["user_id"].astype(str).to_numpy()))
        seqs = model._history_sequences(users, np.full(len(users), -1), fold_in)
        queries = [q for q in seqs if q.size]
        loop = LoopKNN(model)
        model._score_sequences(queries[:50])  # warm-up
        aisle_s, loop_s = [], []
        dense = np.zeros(0)
        looped: list[dict[int, float]] = []
        for _ in range(repeats):
            t = time.perf_counter()
            dense = model._score_sequences(queries)
            aisle_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            looped = [loop.scores([int(i) for i in q]) for q in queries]
            loop_s.append(time.perf_counter() - t)
        ref = np.zeros(dense.shape)  # float64: the loops' own precision
        for r, d in enumerate(looped):
            if d:
                ref[r, list(d)] = list(d.values())
        top = np.maximum(np.abs(dense), np.abs(ref))
        rel = float(np.max(np.abs(dense - ref)[top > 0] / top[top > 0])) if (top > 0).any() else 0.0
        same = tied = 0
        for r, q in enumerate(queries):
            a, b = dense[r].copy(), ref[r].copy()
            a[q], b[q] = -np.inf, -np.inf
            ta = np.lexsort((np.arange(a.size), -a))[:K]
            tb = np.lexsort((np.arange(b.size), -b))[:K]
            if (ta == tb).all():
                same += 1
            elif np.allclose(b[ta], b[tb], rtol=1e-6, atol=0) and np.allclose(a[ta], a[tb], rtol=1e-6, atol=0):
                tied += 1  # the lists differ only in the order of items whose scores are equal
        a_med, l_med = statistics.median(aisle_s), statistics.median(loop_s)
        rows.append({"model": name, "queries": len(queries), "aisle_s": a_med, "loop_s": l_med,
                     "aisle_queries_per_s": len(queries) / a_med, "loop_queries_per_s": len(queries) / l_med,
                     "speedup": l_med / a_med, "speed_verdict": _verdict(l_med / a_med >= SPEED_GOAL),
                     "max_relative_score_difference": rel, "identical_top20_share": same / len(queries),
                     "identical_up_to_tied_scores_share": (same + tied) / len(queries),
                     "equivalence_verdict": _verdict(same + tied == len(queries) and rel < 1e-6)})
        print(f"    {name}: aisle {a_med:.3f} s, loops {l_med:.2f} s ({l_med / a_med:.1f}x); identical top-20 "
              f"{same}/{len(queries)} (+{tied} differing only among tied scores), max rel diff {rel:.2e}", flush=True)
    return {"rows": rows, "repeats": repeats,
            "threads": "aisle: scipy.sparse and numpy (1 thread); loops: 1 Python thread"}


def part_cli(name: str) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("aisle")
    cmd = [str(exe), "evaluate", "--dataset", name, "--models", "pop,sknn,vsknn", "--metrics", "hr@20,mrr@20",
           "--json"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        return {"command": " ".join(cmd[1:]), "error": done.stderr[-2000:]}
    data = json.loads(done.stdout)
    return {"command": "aisle " + " ".join(cmd[1:]), "wall_s": round(wall, 1),
            "results": {r["model"]: {**r["metrics"], "fit_s": r["fit_seconds"], "predict_s": r["predict_seconds"]}
                        for r in data["results"]}}


# ------------------------------------------------------------------------------ report


def _f(v: Any, nd: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def _ci(p: dict[str, Any]) -> str:
    return f"{p['diff']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]"


def markdown(r: dict[str, Any]) -> str:
    v = r["machine"]
    L = [
        "# Session benchmark: next-item HR@20 / MRR@20 on YooChoose and DIGINETICA samples",
        "",
        f"{r['when']}, code {r['code_version']}, command `{r['command']}`, {r['runtime_s']:.0f} s. "
        f"{v.get('cpu', '?')}, {v['cores']} cores, {v.get('memory_gib')} GiB; load average (1/5/15 min) "
        f"{r['load_start']} at the start, {r['load_end']} at the end (other jobs shared the machine). "
        f"Python {v['python']}, numpy {v['numpy']}, scipy {v['scipy']}, pandas {v['pandas']}, torch "
        f"{v['torch']}, aisle {v['aisle']}. BLAS: {'; '.join(v['blas'])}.",
        "",
        f"Models: {', '.join(r['models'])}, at their defaults unless stated. {r['gru4rec_note']}",
        "",
    ]
    goals: list[tuple[str, str, str, str]] = []
    for d in r["datasets"]:
        name = d["dataset"]
        L += [f"## {name}", "",
              f"sha256 {d['dataset_sha256']}; split `{d['split']['name']}` ({d['split'].get('target')}): "
              f"{d['split']['train_events']:,} training events in {d['train_sessions']:,} sessions, "
              f"{d['split']['test_events']:,} target events; {d['candidates']}; items already in the session "
              "removed from lists and targets.", "",
              "### aisle's protocol: the last click of each held-out session (`run_evaluation`)", "",
              "| model | HR@20 | MRR@20 | sessions evaluated | skipped: no rankable target | "
              "fit s | predict s | timing runs |",
              "|---|---|---|---|---|---|---|---|"]
        for m, row in d["models"].items():
            c = row["counts"]
            L.append(f"| {m} | {_f(row['metrics']['hr@20'])} | {_f(row['metrics']['mrr@20'])} | "
                     f"{c['users_evaluated']:,} | {c['users_skipped_no_relevant']:,} | {row['fit_s']:.2f} | "
                     f"{row['predict_s']:.2f} | {row['timing_runs']} |")
        c0 = next(iter(d["models"].values()))["counts"]
        L += ["", f"Skipped sessions have no target a model could hit: the last click repeats an item of the "
              f"session ({d['last_click_repeats']:,} sessions) or is on an item unseen in training "
              f"({c0['test_events_unknown_item']:,} target events; a session can be both).", "",
              "Paired per-session difference, B - A (bootstrap 95% CI, 1,000 resamples, seed 0):", "",
              "| A | B | metric | A | B | B - A [95% CI] | t-test p | sessions |", "|---|---|---|---|---|---|---|---|"]
        for p in d["paired"]:
            L.append(f"| {p['a']} | {p['b']} | {p['metric']} | {_f(p['mean_a'])} | {_f(p['mean_b'])} | {_ci(p)} | "
                     f"{p['t_p']:.2g} | {p['n']:,} |")
            if p["a"] == "pop" and p["b"] in KNN:
                goals.append((f"{name}: {p['b']} beats pop on {p['metric']} (CI above 0)", _ci(p),
                              f"{p['mean_b'] / p['mean_a']:.1f}x pop" if p["mean_a"] else "-",
                              _verdict(p["ci_low"] > 0)))
        en = d["every_next"]
        L += ["", f"### Every next click: {en['queries']:,} prefix queries; "
              f"{100 * en['targets_repeating_a_session_item']:.1f}% of the targets repeat an item of their prefix",
              "", "| model | HR@20 seen removed | MRR@20 seen removed | queries | HR@20 seen kept | MRR@20 seen kept "
              "| queries |", "|---|---|---|---|---|---|---|"]
        for m in r["models"]:
            a, b = en["exclude_seen"][m], en["keep_seen"][m]
            L.append(f"| {m} | {_f(a['hr@20'])} | {_f(a['mrr@20'])} | {a['evaluated']:,} | {_f(b['hr@20'])} | "
                     f"{_f(b['mrr@20'])} | {b['evaluated']:,} |")
        L += ["", "Prefixes of one session are not independent draws, so these paired CIs (resampling "
              "prefix queries) are narrower than resampling sessions would give.", "",
              "Paired vs pop, every next click: " + "; ".join(
            f"{p['b']} {p['metric']} {_ci(p)} ({key.replace('_', ' ')})"
            for key in ("exclude_seen", "keep_seen") for p in en[key]["paired"]) + ".", ""]
        if d.get("cli"):
            c = d["cli"]
            if "error" in c:
                L += [f"CLI `{c['command']}` failed: {c['error']}", ""]
            else:
                L += [f"### CLI: `{c['command']}` ({c['wall_s']} s wall, data loading included)", "",
                      "| model | HR@20 | MRR@20 | fit s | predict s | equals run_evaluation |", "|---|---|---|---|---|---|"]
                for m, x in c["results"].items():
                    same = all(abs(x[k] - d["models"][m]["metrics"][k]) < 1e-12 for k in METRICS)
                    L.append(f"| {m} | {_f(x['hr@20'])} | {_f(x['mrr@20'])} | {x['fit_s']:.2f} | "
                             f"{x['predict_s']:.2f} | {'yes' if same else 'NO'} |")
                L.append("")
    lp = r.get("loops")
    if lp:
        L += ["## The same algorithm as per-query loops (session-rec's structure), yoochoose-sample", "",
              f"Queries: the held-out sessions' fold-in prefixes. {lp['threads']}. Median of {lp['repeats']} "
              "alternating runs after a warm-up; popularity backfill off on both sides (pure knn scores).", "",
              "| model | queries | aisle s | loops s | aisle queries/s | loops queries/s | speed-up | goal | verdict "
              "| identical top-20 | identical up to tied scores | max rel. score diff | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in lp["rows"]:
            L.append(f"| {x['model']} | {x['queries']:,} | {x['aisle_s']:.3f} | {x['loop_s']:.2f} | "
                     f"{x['aisle_queries_per_s']:,.0f} | {x['loop_queries_per_s']:,.0f} | {x['speedup']:.1f}x | "
                     f">= {SPEED_GOAL:g}x | {x['speed_verdict']} | {100 * x['identical_top20_share']:.1f}% | "
                     f"{100 * x['identical_up_to_tied_scores_share']:.1f}% | "
                     f"{x['max_relative_score_difference']:.1e} | {x['equivalence_verdict']} |")
            goals.append((f"{x['model']}: batch scoring vs per-query loops", f"{x['speedup']:.1f}x",
                          f">= {SPEED_GOAL:g}x", x["speed_verdict"]))
            goals.append((f"{x['model']}: same top-20 as the loops (up to tied scores)",
                          f"{100 * x['identical_up_to_tied_scores_share']:.1f}%", "100%", x["equivalence_verdict"]))
        L.append("")
    L = L[:6] + ["## Goals", "", "| goal | measured | ratio / target | verdict |", "|---|---|---|---|"] + [
        f"| {a} | {b} | {c} | {d_} |" for a, b, c, d_ in goals] + ["", *L[6:]]
    return "\n".join(L) + "\n"


def _public(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--no-gru4rec", action="store_true", help="leave gru4rec out even when registered")
    parser.add_argument("--gru4rec-epochs", type=int, default=10,
                        help="train gru4rec this many epochs on all training sessions (patience 0); 0: its "
                             "defaults (up to 100 epochs, early stopping on a validation split)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `aisle evaluate` subprocesses")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    os.environ.setdefault("AISLE_DATA_HOME", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    warnings.simplefilter("ignore")
    from aisle.models import MODELS

    started = time.perf_counter()
    models = ["pop", *KNN]
    configs: dict[str, dict[str, Any]] = {}
    if "gru4rec" in MODELS and not args.no_gru4rec:
        models.append("gru4rec")
        if args.gru4rec_epochs > 0:
            configs["gru4rec"] = {"epochs": args.gru4rec_epochs, "patience": 0}
            note = (f"gru4rec is registered and included with a budget of {args.gru4rec_epochs} epochs on all "
                    "training sessions (`epochs`, `patience=0`; other settings its defaults), on the CPU; its "
                    "defaults (up to 100 epochs with early stopping) took about a minute per epoch on this "
                    "loaded machine and were still improving at epoch 29, so it is under-trained here. Its "
                    "time is one run, not a median.")
        else:
            note = "gru4rec is registered and included at its defaults (CPU; its time is one run, not a median)."
    else:
        note = ("gru4rec left out: " + ("--no-gru4rec given." if args.no_gru4rec else "not registered in MODELS "
                                         "when this ran."))
    result: dict[str, Any] = {
        "benchmark": "sessions", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repeats": args.repeats, "models": models, "configs": configs, "gru4rec_note": note,
        "load_start": _load(), "datasets": [],
    }
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        print(f"\n== {name} ==", flush=True)
        d = part_quality(name, models, args.repeats, configs)
        if name == "yoochoose-sample":
            print("  per-query loops vs batch scoring", flush=True)
            result["loops"] = part_loops(d["_fitted"], d["_held_out"][0], args.repeats)
        if not args.no_cli:
            print("  CLI", flush=True)
            d["cli"] = part_cli(name)
        result["datasets"].append(_public(d))
    result["machine"] = machine()
    result["load_end"] = _load()
    result["runtime_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sessions.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = markdown(result)
    (args.out / "sessions.md").write_text(md)
    print("\n" + md)
    print(f"wrote {args.out / 'sessions.json'} and {args.out / 'sessions.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
