"""Benchmark: aisle's models against implicit and cornac, quality (tuned against tuned) and speed.

One run, four parts, each printed with the aisle/peer ratio beside its goal (MET / MISSED):

1. **Quality** on MovieLens-latest-small, aisle's temporal split
   (``aisle.evaluation._runner.make_split(ds, "temporal")``: users first seen after the cutoff
   give half of their test-period events as fold-in history). aisle ``ials``, ``bpr``, ``ease``
   against implicit ``AlternatingLeastSquares`` and ``BayesianPersonalizedRanking`` and cornac
   ``EASE`` and ``BPR``. Every side trains on the same matrix (aisle's default feedback rules:
   ratings >= 4, binary), ranks the full catalog with the user's seen items removed, and is
   scored by the same code (``aisle.evaluation.per_user_metrics`` on index lists; the relevant
   sets and the evaluated users come from ``aisle.evaluation.evaluate``). New users are folded
   in where the peer can: implicit ALS by ``recommend(..., recalculate_user=True)`` (its exact
   least-squares solve), cornac EASE by ``history @ B`` (the formula of its own ``score``). The
   BPR peers cannot fold in, so every model is also reported on the test users known in
   training, and the goal is checked on both populations. Tuning (unless ``--skip-tuning``):
   the same budget per model (its defaults as trial 0, then ``--trials`` Optuna TPE trials,
   seed 0) on the validation part of the same split (``make_split(..., validation=True)``):
   aisle's own ``tune`` for aisle, the same loop (aisle's ``_suggest``) over each peer's
   equivalent hyperparameters for peers.
2. **iALS epoch time** against implicit's CG solver at 64 and 128 factors on the synthetic
   matrix (``bench_ials.bench``: same confidence, regularization, 3 CG steps, BLAS at 1 thread).
3. **Batch top-20 for all users** of the synthetic matrix with seen-item filtering, on the same
   factors: aisle's public ``recommend(user_ids, k=20, exclude_seen=True)`` and its batched
   internal path (``_user_scores`` + ``top_k_excluding`` per 2,048-user batch, the loop inside
   ``recommend`` without the id handling) against implicit's
   ``recommend(userids, user_items, N=20, filter_already_liked_items=True)`` (BLAS at 1 thread,
   as implicit asks; aisle at its default BLAS threads).
4. **EASE fit** (the learning step ``_fit``: Gram matrix, inverse, weights) against the bare
   LAPACK floor (``potrf`` + ``potri`` alone on the same Gram matrix, Fortran-ordered, in place)
   and cornac's ``EASE.fit`` on the same matrix (MovieLens-latest-small, default feedback rules,
   every event: 609 users x 6,298 items), at the default BLAS threads and again, aisle and floor
   only, at 1 BLAS thread (less sensitive to other jobs on a shared machine).

Peak memory per phase: a fresh process per side and phase loads its inputs, warms up, resets
its resident high-water mark (``/proc/self/clear_refs``) and reports ``VmHWM`` minus ``VmRSS``
before the phase (numpy, numba and BLAS allocations included; tracemalloc would miss them).

Timing: one warm-up per side, then ``--repeats`` repetitions alternating which side goes first;
medians are printed, and each speed verdict uses the median of per-repetition ratios (the sides
of one repetition run back to back, so they share the machine's load). The load average is
recorded before and after every part; the last commit touching the measured code is recorded at
the start and the end, and a change in between is flagged (child processes would run it).

Usage::

    python benchmarks/bench_models.py [--small] [--skip-tuning] [--trials 10] [--repeats 3]
        [--only quality,ials,topk,ease] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ials

KS = (10, 20)
METRICS = ("ndcg", "recall")
TOPK_N = 20
EASE_L2 = 500.0
PARTS = ("quality", "ials", "topk", "ease")
GOALS = {
    "quality": "aisle NDCG@10 >= best peer (ratio >= 1.0)",
    "ials": "aisle epoch / implicit CG epoch <= 1.0",
    "topk": "aisle throughput / implicit throughput >= 1.0",
    "ease": "aisle EASE fit / LAPACK potrf+potri floor <= 1.2",
}


# ------------------------------------------------------------------------------ small helpers


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _rank_dense(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k column indices per row of dense scores, seen entries removed (-1 padding)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    r, c = seen.nonzero()
    s[r, c] = -np.inf
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    return np.where(np.isfinite(np.take_along_axis(vals, order, axis=1)), top, -1)


def _implicit_ids(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """implicit's ranked ids with filtered / missing entries as -1."""
    ids = np.asarray(ids, dtype=np.int64)
    bad = ~np.isfinite(scores) | (scores < -1e30)
    return np.where(bad, -1, ids)


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def _cornac_dataset(x: sp.csr_matrix) -> tuple[Any, np.ndarray, np.ndarray]:
    """A cornac Dataset of a binary matrix, with aisle index -> cornac index for users and items."""
    from cornac.data import Dataset

    u, i = x.nonzero()
    triples = list(zip(u.astype(str).tolist(), i.astype(str).tolist(), [1.0] * len(u), strict=True))
    d = Dataset.from_uir(triples, seed=0)
    users = np.full(x.shape[0], -1, dtype=np.int64)
    for raw, idx in d.uid_map.items():
        users[int(raw)] = idx
    items = np.full(x.shape[1], -1, dtype=np.int64)
    for raw, idx in d.iid_map.items():
        items[int(raw)] = idx
    return d, users, items


def _item_index(model: Any, items: np.ndarray) -> np.ndarray:
    """Item ids of ``Recommendations.items`` (None padding) -> aisle item indices (-1 padding)."""
    flat = np.where(items == None, "", items).ravel().astype(object)  # noqa: E711
    return np.asarray(model.items_.index(flat, unknown="ignore")).reshape(items.shape)


def _status_mib(key: str) -> float:
    return bench_ials._status_mib(key)


# ------------------------------------------------------------------------------ quality: data


@dataclass
class EvalSet:
    """One train / held-out pair with everything needed to score any model the same way."""

    name: str
    train: Any  # aisle Interactions
    test_events: Any
    history: Any
    users: np.ndarray  # evaluated user ids, in evaluate()'s order
    relevant: sp.csr_matrix  # evaluated users x aisle items
    seen: sp.csr_matrix  # the same users' training rows, or their folded-in history
    user_index: np.ndarray  # training row, -1 for folded-in users
    known: np.ndarray  # user_index >= 0

    @classmethod
    def build(cls, name: str, train_events: Any, test_events: Any, history: Any) -> EvalSet:
        from aisle.data._feedback import FeedbackConfig, build_interactions
        from aisle.evaluation import evaluate
        from aisle.models import make_model

        train = build_interactions(train_events, FeedbackConfig())
        ref = make_model("pop").fit(train)
        res = evaluate(ref, test_events, ks=KS, metrics=METRICS, history=history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seen, idx, _source = ref._history_rows(list(res.users), history, "empty")
        assert res.relevant is not None
        known = idx >= 0
        return cls(name, train, test_events, history, np.asarray(res.users), sp.csr_matrix(res.relevant),
                   sp.csr_matrix(seen, dtype=np.float32), idx, known)

    def metrics(self, top: np.ndarray) -> dict[str, np.ndarray]:
        from aisle.evaluation import per_user_metrics

        return per_user_metrics(top, self.relevant, KS, METRICS)

    def summary(self, per_user: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pop, mask in (("all", np.ones(len(self.users), bool)), ("known", self.known)):
            for key, v in per_user.items():
                vals = v[mask]
                out[f"{key}/{pop}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else None
        return out


# ------------------------------------------------------------------------------ quality: peers


@dataclass
class Peer:
    """A peer model behind one interface: fit on a binary matrix, rank users' full catalog."""

    name: str
    library: str
    can_fold_in: bool
    defaults: dict[str, Any]
    space: dict[str, Any]
    threads: str
    fold_in_note: str
    params: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    _extra: dict[str, Any] = field(default_factory=dict)

    def with_params(self, params: dict[str, Any]) -> Peer:
        return Peer(self.name, self.library, self.can_fold_in, self.defaults, self.space, self.threads,
                    self.fold_in_note, {**self.defaults, **params})

    # -- fit
    def prepare(self, x: sp.csr_matrix) -> None:
        """Data conversion a peer needs before fitting (not timed as fit)."""
        if self.library == "cornac":
            self._extra["dataset"], self._extra["users"], self._extra["items"] = _cornac_dataset(x)

    def fit(self, x: sp.csr_matrix) -> None:
        from threadpoolctl import threadpool_limits

        p = self.params
        if self.name == "implicit-als":
            from implicit.cpu.als import AlternatingLeastSquares

            with threadpool_limits(1, "blas"):  # as implicit asks
                self.model = AlternatingLeastSquares(
                    factors=int(p["factors"]), regularization=float(p["regularization"]),
                    alpha=float(p["alpha"]), iterations=int(p["iterations"]),
                    calculate_training_loss=False, num_threads=0, random_state=0)
                self.model.fit(x, show_progress=False)
        elif self.name == "implicit-bpr":
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            with threadpool_limits(1, "blas"):
                self.model = BayesianPersonalizedRanking(
                    factors=int(p["factors"]), learning_rate=float(p["learning_rate"]),
                    regularization=float(p["regularization"]), iterations=int(p["iterations"]),
                    num_threads=0, random_state=0)
                self.model.fit(x, show_progress=False)
        elif self.name == "cornac-ease":
            import cornac

            self.model = cornac.models.EASE(lamb=float(p["lamb"]), posB=bool(p["posB"]), verbose=False)
            self.model.fit(self._extra["dataset"])
        elif self.name == "cornac-bpr":
            import cornac

            self.model = cornac.models.BPR(
                k=int(p["k"]), max_iter=int(p["max_iter"]), learning_rate=float(p["learning_rate"]),
                lambda_reg=float(p["lambda_reg"]), seed=0, verbose=False)
            self.model.fit(self._extra["dataset"])
        else:  # pragma: no cover
            raise ValueError(self.name)

    # -- rank
    def rank(self, es: EvalSet, k: int) -> np.ndarray:
        """(n_users, k) aisle item indices, -1 rows for users this peer cannot score."""
        from threadpoolctl import threadpool_limits

        n = len(es.users)
        top = np.full((n, k), -1, dtype=np.int64)
        known = np.flatnonzero(es.known)
        new = np.flatnonzero(~es.known)
        seen = sp.csr_matrix(es.seen)
        if self.library == "implicit":
            with threadpool_limits(1, "blas"):
                if known.size:
                    ids, sc = self.model.recommend(es.user_index[known], seen[known], N=k,
                                                   filter_already_liked_items=True)
                    top[known] = _implicit_ids(ids, sc)
                if new.size and self.can_fold_in:
                    ids, sc = self.model.recommend(np.arange(new.size), seen[new], N=k,
                                                   filter_already_liked_items=True, recalculate_user=True)
                    top[new] = _implicit_ids(ids, sc)
            return top
        # cornac: scores in cornac's item order, mapped back to aisle's
        items = self._extra["items"]
        assert (items >= 0).all(), "every aisle item has a positive in training, so cornac knows it"
        n_items = seen.shape[1]
        if known.size:
            uids = self._extra["users"][es.user_index[known]]
            assert (uids >= 0).all(), "every training user has a positive, so cornac knows them"
            s = np.vstack([np.asarray(self.model.score(int(u))).ravel() for u in uids])
            top[known] = _rank_dense(s[:, items], seen[known], k)
        if new.size and self.can_fold_in:  # EASE: scores = history @ B, as cornac's score does
            hist = _binary(seen[new])
            b = self.model.B[np.ix_(items, items)]
            s = np.asarray(hist @ b)
            top[new] = _rank_dense(s.reshape(new.size, n_items), seen[new], k)
        return top


def peers() -> list[Peer]:
    from aisle.models._base import CategoricalParam as C
    from aisle.models._base import FloatParam as F
    from aisle.models._base import IntParam as I

    return [
        Peer("implicit-als", "implicit", True,
             {"factors": 100, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
             {"factors": C((32, 64, 128)), "regularization": F(1e-3, 100.0, log=True),
              "alpha": F(1.0, 100.0, log=True), "iterations": I(5, 30)},
             "OpenMP 2 (num_threads=0), BLAS 1",
             "recommend(..., recalculate_user=True): exact least squares against the item factors"),
        Peer("implicit-bpr", "implicit", False,
             {"factors": 100, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
             {"factors": C((32, 64, 128)), "learning_rate": F(0.005, 0.2, log=True),
              "regularization": F(1e-5, 0.1, log=True), "iterations": I(10, 100, log=True)},
             "OpenMP 2 (num_threads=0, Hogwild), BLAS 1",
             "no fold-in (recalculate_user is not supported by implicit's BPR)"),
        Peer("cornac-ease", "cornac", True,
             {"lamb": 500.0, "posB": True},
             {"lamb": F(1.0, 20_000.0, log=True), "posB": C((True, False))},
             "BLAS 2 (numpy.linalg.inv, float64)",
             "history @ B, the formula of cornac's EASE.score"),
        Peer("cornac-bpr", "cornac", False,
             {"k": 10, "max_iter": 100, "learning_rate": 0.001, "lambda_reg": 0.01},
             {"k": C((32, 64, 128)), "max_iter": I(10, 100, log=True),
              "learning_rate": F(0.005, 0.2, log=True), "lambda_reg": F(1e-5, 0.1, log=True)},
             "1 (cornac runs single-threaded when seeded)",
             "no fold-in (cornac scores only training users)"),
    ]


def peer_score(peer: Peer, es: EvalSet) -> tuple[float, dict[str, np.ndarray]]:
    """Fit on es.train, rank, and return NDCG@10 over the users this peer can score."""
    x = _binary(es.train.matrix)
    peer.prepare(x)
    peer.fit(x)
    per_user = es.metrics(peer.rank(es, max(KS)))
    v = per_user["ndcg@10"] if peer.can_fold_in else per_user["ndcg@10"][es.known]
    return float(np.nanmean(v)), per_user


def tune_peer(peer: Peer, es: EvalSet, n_trials: int, seed: int = 0) -> dict[str, Any]:
    """aisle's tuning loop for a peer: its defaults as trial 0, then n_trials TPE trials."""
    import optuna

    from aisle.evaluation._tune import _suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    default_value, _ = peer_score(peer.with_params({}), es)
    trials = [{"trial": 0, "value": default_value, "params": "defaults"}]

    def objective(trial: Any) -> float:
        params = _suggest(trial, peer.space)
        value, _ = peer_score(peer.with_params(params), es)
        trials.append({"trial": trial.number + 1, "value": value, "params": params})
        return value

    best_value, best = default_value, {}
    if n_trials > 0:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=n_trials)
        if study.best_value >= default_value:
            best_value, best = float(study.best_value), dict(study.best_params)
    return {"best_value": best_value, "default_value": default_value, "config": {**peer.defaults, **best},
            "trials": trials, "seconds": round(time.perf_counter() - started, 2)}


# ------------------------------------------------------------------------------ quality: run


def part_quality(args: argparse.Namespace) -> dict[str, Any]:
    from aisle.datasets import load_dataset
    from aisle.evaluation import evaluate, paired_comparison
    from aisle.evaluation._runner import dataset_checksum, make_split
    from aisle.evaluation._tune import tune
    from aisle.models import make_model

    load_before = _load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_load, ds = _timed(lambda: load_dataset("movielens-latest-small"))
        split = make_split(ds, "temporal")
        vsplit = make_split(ds, "temporal", validation=True)
        test = EvalSet.build("test", split.train, split.test, split.fold_in)
        val = EvalSet.build("validation", vsplit.train, vsplit.validation, vsplit.validation_fold_in)
    print(f"  data: {len(ds.events):,} events loaded in {t_load:.2f} s; train {test.train.matrix.shape} "
          f"nnz {test.train.matrix.nnz:,}; test users {len(test.users)} ({int(test.known.sum())} known, "
          f"{int((~test.known).sum())} folded in); validation users {len(val.users)} "
          f"({int(val.known.sum())} known)", flush=True)

    aisle_models = ["ials", "bpr", "ease"]
    rows: list[dict[str, Any]] = []
    per_user_all: dict[str, dict[str, np.ndarray]] = {}
    # tuning, aisle and peers alternating
    tuned: dict[str, dict[str, Any]] = {}
    peer_list = peers()
    order: list[tuple[str, Any]] = []
    for i in range(max(len(aisle_models), len(peer_list))):
        if i < len(aisle_models):
            order.append(("aisle", aisle_models[i]))
        if i < len(peer_list):
            order.append(("peer", peer_list[i]))
    for side, what in order:
        name = what if side == "aisle" else what.name
        label = f"aisle-{name}" if side == "aisle" else name
        if args.skip_tuning:
            tuned[label] = {"config": {} if side == "aisle" else dict(what.defaults), "best_value": None,
                            "default_value": None, "seconds": 0.0, "trials": []}
            continue
        t0 = time.perf_counter()
        if side == "aisle":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = tune(ds, name, metric="ndcg@10", n_trials=args.trials, split_name="temporal", seed=0)
            from aisle.models._registry import get_model_class

            defaults = get_model_class(name).Config().model_dump(mode="json")
            changed = {k: v for k, v in res.best_config.items() if defaults.get(k) != v}
            tuned[label] = {"config": changed, "best_value": res.best_value,
                            "default_value": res.default_value, "seconds": round(res.seconds, 2),
                            "trials": res.trials.to_dict(orient="records")}
        else:
            tuned[label] = tune_peer(what, val, args.trials)
        tv = tuned[label]
        print(f"  tuned {label:<14} val NDCG@10 {tv['default_value']:.4f} (defaults) -> "
              f"{tv['best_value']:.4f} in {time.perf_counter() - t0:.1f} s: {tv['config']}", flush=True)

    # final fits on the test split's training part, timed, then scored
    for side, what in order:
        name = what if side == "aisle" else what.name
        label = f"aisle-{name}" if side == "aisle" else name
        cfg = tuned[label]["config"]
        fit_times: list[float] = []
        if side == "aisle":
            for _ in range(args.fit_repeats):
                model = make_model(name, **cfg)
                dt, _ = _timed(lambda model=model: model.fit(test.train))
                fit_times.append(dt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = evaluate(model, test.test_events, ks=KS, metrics=METRICS, history=test.history)
            assert np.array_equal(np.asarray(res.users), test.users), "evaluated users differ"
            per_user = {k: np.asarray(v) for k, v in res.per_user.items()}
            predict_s = res.seconds
            # the same lists through the peers' metric path must give the same metrics
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                recs = model.recommend(list(test.users), k=max(KS), history=test.history, unknown_users="empty")
            check = test.metrics(_item_index(model, recs.items))
            assert np.allclose(check["ndcg@10"], per_user["ndcg@10"], equal_nan=True), "metric paths differ"
            threads = {"ials": "numba 2, BLAS 1 during fit", "bpr": "1 (threads=1, deterministic)",
                       "ease": "BLAS 2"}[name]
            fold = "yes (aisle fold-in: exact solve / SGD / history @ B)"
            can_fold = True
        else:
            peer = what.with_params(cfg)
            x = _binary(test.train.matrix)
            peer.prepare(x)
            for _ in range(args.fit_repeats):
                dt, _ = _timed(lambda peer=peer, x=x: peer.fit(x))
                fit_times.append(dt)
            predict_s, top = _timed(lambda peer=peer: peer.rank(test, max(KS)))
            per_user = test.metrics(top)
            threads = what.threads
            fold = what.fold_in_note
            can_fold = what.can_fold_in
        per_user_all[label] = per_user
        summ = test.summary(per_user)
        if not can_fold:
            summ = {k: (v if k.endswith("/known") else None) for k, v in summ.items()}
        row = {
            "side": "aisle" if side == "aisle" else what.library,
            "model": label,
            "config": cfg,
            "val_ndcg@10": tuned[label]["best_value"],
            "val_ndcg@10_defaults": tuned[label]["default_value"],
            "tuning_seconds": tuned[label]["seconds"],
            "test": summ,
            "fit_s_median": round(statistics.median(fit_times), 4),
            "fit_s_all": [round(t, 4) for t in fit_times],
            "predict_s": round(predict_s, 4),
            "threads": threads,
            "fold_in": fold,
            "can_fold_in": can_fold,
        }
        rows.append(row)
        all_s = "   n/a" if summ["ndcg@10/all"] is None else f"{summ['ndcg@10/all']:.4f}"
        print(f"  {label:<14} test NDCG@10 all {all_s}, known {summ['ndcg@10/known']:.4f}; "
              f"fit {row['fit_s_median']:.2f} s", flush=True)

    # goals: best aisle model vs best peer, on all users (peers that fold in) and on known users
    goals = []
    for pop, title in (("all", "all test users (fold-in; peers that can fold in)"),
                       ("known", "test users known in training (every peer)")):
        key = f"ndcg@10/{pop}"
        cands = [r for r in rows if r["test"][key] is not None]
        a = max((r for r in cands if r["side"] == "aisle"), key=lambda r: r["test"][key])
        b = max((r for r in cands if r["side"] != "aisle"), key=lambda r: r["test"][key])
        mask = np.ones(len(test.users), bool) if pop == "all" else test.known
        pc = paired_comparison(test.users[mask], per_user_all[b["model"]]["ndcg@10"][mask],
                               test.users[mask], per_user_all[a["model"]]["ndcg@10"][mask],
                               metric="ndcg@10", n_boot=2000, seed=0)
        ratio = a["test"][key] / b["test"][key]
        goals.append({
            "population": pop, "title": title, "n_users": int(mask.sum()),
            "aisle_best": a["model"], "aisle_ndcg@10": a["test"][key],
            "peer_best": b["model"], "peer_ndcg@10": b["test"][key],
            "ratio": round(ratio, 4), "goal": ">= 1.0", "verdict": _verdict(ratio >= 1.0),
            "paired_diff_ci95": [round(pc.diff.low, 4), round(pc.diff.high, 4)],
            "paired_t_p": round(pc.t_pvalue, 4), "wilcoxon_p": round(pc.wilcoxon_pvalue, 4),
        })
    # pairs of the same model family (informational)
    pairs = []
    by = {r["model"]: r for r in rows}
    for a, b, pop in (("aisle-ials", "implicit-als", "all"), ("aisle-ease", "cornac-ease", "all"),
                      ("aisle-ials", "implicit-als", "known"), ("aisle-ease", "cornac-ease", "known"),
                      ("aisle-bpr", "implicit-bpr", "known"), ("aisle-bpr", "cornac-bpr", "known")):
        va, vb = by[a]["test"][f"ndcg@10/{pop}"], by[b]["test"][f"ndcg@10/{pop}"]
        pairs.append({"aisle": a, "peer": b, "population": pop, "aisle_ndcg@10": va, "peer_ndcg@10": vb,
                      "ratio": round(va / vb, 4) if vb else None})
    return {
        "dataset": "movielens-latest-small",
        "dataset_sha256": dataset_checksum(ds),
        "source_files": {Path(s.path).name: s.sha256 for s in ds.sources},
        "split": {k: str(v) for k, v in split.params.items()},
        "validation_split": {k: str(v) for k, v in vsplit.params.items()},
        "train_shape": list(test.train.matrix.shape), "train_nnz": int(test.train.matrix.nnz),
        "test_users": len(test.users), "test_users_known": int(test.known.sum()),
        "validation_users": len(val.users), "validation_users_known": int(val.known.sum()),
        "tuning": "skipped (defaults)" if args.skip_tuning else f"defaults + {args.trials} TPE trials (seed 0)",
        "tuning_detail": tuned,
        "models": rows, "goals": goals, "pairs": pairs,
        "load_before": load_before, "load_after": _load(),
    }


# ------------------------------------------------------------------------------ iALS epochs


def part_ials(args: argparse.Namespace, m: sp.csr_matrix, threads: int) -> dict[str, Any]:
    load_before = _load()
    rows = bench_ials.bench("synthetic", m, [64, 128], args.ials_epochs, args.repeats, threads,
                            args.small, not args.no_memory)
    return {"rows": rows, "epochs_per_fit": args.ials_epochs, "load_before": load_before, "load_after": _load()}


# ------------------------------------------------------------------------------ top-20


def _synthetic_interactions(m: sp.csr_matrix) -> Any:
    from aisle.data._feedback import Interactions
    from aisle.data._vocab import Vocabulary

    return Interactions(sp.csr_array(m), Vocabulary(np.arange(m.shape[0]).astype(str)),
                        Vocabulary(np.arange(m.shape[1]).astype(str)))


def _implicit_with(user_factors: np.ndarray, item_factors: np.ndarray) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    imp = AlternatingLeastSquares(factors=user_factors.shape[1], num_threads=0, dtype=np.float32)
    imp.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
    imp.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    return imp


def topk_implicit(imp: Any, m: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's recommendation (2x faster here than BLAS 2)
        ids, sc = imp.recommend(users, m[users], N=TOPK_N, filter_already_liked_items=True)
    return _implicit_ids(ids, sc)


def topk_aisle_public(model: Any, user_ids: list[str]) -> Any:
    return model.recommend(user_ids, k=TOPK_N, exclude_seen=True)


def topk_aisle_internal(model: Any, users: np.ndarray, batch: int = 2048) -> np.ndarray:
    """The loop inside ``recommend`` on indices, without the id handling: ``_user_scores``, then
    ``top_k_excluding`` (seen items skipped in aisle's numba kernel) where aisle has it, else the
    older seen mask + ``top_k`` (argpartition)."""
    try:
        from aisle.models._topk import top_k_excluding
    except ImportError:  # aisle before the top-k kernel
        top_k_excluding = None
    from aisle.models._base import top_k

    out = np.empty((len(users), TOPK_N), dtype=np.int64)
    for s in range(0, len(users), batch):
        idx = users[s:s + batch]
        rows = sp.csr_matrix(model.train_matrix_[idx])
        scores = model._user_scores(rows, idx)
        if top_k_excluding is not None:
            top, _ = top_k_excluding(scores, TOPK_N, rows.indptr, rows.indices)
        else:
            r, c = rows.nonzero()
            scores[r, c] = -np.inf
            top, _ = top_k(scores, TOPK_N)
        out[s:s + batch] = top
    return out


def _aisle_topk_threads() -> str:
    try:
        import aisle.models._topk  # noqa: F401

        return "BLAS 2 (default) for the scores; top-k in a numba kernel over rows (2 threads)"
    except ImportError:
        return "BLAS 2 (default) for the scores; top-k single-threaded (numpy argpartition)"


def part_topk(args: argparse.Namespace, m: sp.csr_matrix, tmp: Path) -> dict[str, Any]:
    from aisle.models import make_model

    load_before = _load()
    inter = _synthetic_interactions(m)
    model = make_model("ials", factors=64, iterations=2, reg_scaling="none", regularization=0.1, alpha=10.0)
    t_fit, _ = _timed(lambda: model.fit(inter))
    print(f"  factors: aisle iALS f=64, 2 iterations ({t_fit:.1f} s); implicit gets the same factors",
          flush=True)
    model_dir = tmp / "ials64"
    model.save(model_dir)
    imp = _implicit_with(model.user_factors_, model.item_factors_)
    n = m.shape[0]
    users = np.arange(n)
    user_ids = list(inter.users.ids)
    warm = min(n, 4096)
    topk_implicit(imp, m, users[:warm])
    topk_aisle_public(model, user_ids[:warm])
    topk_aisle_internal(model, users[:warm])
    sides: dict[str, Callable[[], Any]] = {
        "implicit": lambda: topk_implicit(imp, m, users),
        "aisle_recommend": lambda: topk_aisle_public(model, user_ids),
        "aisle_internal": lambda: topk_aisle_internal(model, users),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    outs: dict[str, Any] = {}
    names = list(sides)
    for rep in range(args.repeats):
        seq = names if rep % 2 == 0 else names[::-1]
        for name in seq:
            dt, outs[name] = _timed(sides[name])
            times[name].append(dt)
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in names), flush=True)
    # agreement of the lists (ties, e.g. users without events, may order differently)
    ref = outs["implicit"]
    pub = _item_index(model, outs["aisle_recommend"].items)
    sample = np.arange(0, n, max(1, n // 5000))

    def overlap(a: np.ndarray) -> float:
        return float(np.mean([len(set(a[i]) & set(ref[i])) / TOPK_N for i in sample]))

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name in ("aisle_recommend", "aisle_internal"):
        # median of per-repetition throughput ratios (adjacent runs share the machine's load)
        ratio = statistics.median(b / a for a, b in zip(times[name], times["implicit"], strict=True))
        rows.append({
            "aisle_path": name, "aisle_s": round(med[name], 3), "implicit_s": round(med["implicit"], 3),
            "aisle_users_per_s": round(n / med[name]), "implicit_users_per_s": round(n / med["implicit"]),
            "throughput_ratio": round(ratio, 3), "ratio_method": "median of per-repetition ratios",
            "ratio_of_medians": round(med["implicit"] / med[name], 3),
            "goal": ">= 1.0", "verdict": _verdict(ratio >= 1.0),
            "list_overlap_with_implicit": round(overlap(pub if name == "aisle_recommend" else outs[name]), 4),
        })
    for r in rows:
        print(f"  {r['aisle_path']}: {r['aisle_s']:.2f} s vs implicit {r['implicit_s']:.2f} s -> throughput "
              f"ratio {r['throughput_ratio']:.2f} (goal >= 1.0) {r['verdict']}", flush=True)
    out: dict[str, Any] = {"users": n, "items": m.shape[1], "nnz": int(m.nnz), "factors": 64, "k": TOPK_N,
                           "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()}, "rows": rows,
                           "threads": {"implicit": "OpenMP 2 (num_threads=0), BLAS 1",
                                       "aisle": _aisle_topk_threads()}}
    if not args.no_memory:
        # the internal path allocates what recommend's loop does; one aisle child is enough
        out["peak_rss_mib"] = {s: child("topk", s, tmp, args.small) for s in ("implicit", "aisle_recommend")}
    out["load_before"], out["load_after"] = load_before, _load()
    return out


# ------------------------------------------------------------------------------ EASE


def ease_matrix(small: bool) -> tuple[sp.csr_matrix, str]:
    got = bench_ials.movielens()
    if got is None:
        raise SystemExit("MovieLens-latest-small not found under AISLE_DATA_HOME")
    m, sha = got
    if small:  # the 2,500 most popular items
        pop = np.asarray((m > 0).sum(axis=0)).ravel()
        keep = np.sort(np.argsort(-pop, kind="stable")[:2500])
        m = sp.csr_matrix(m[:, keep])
    return m, sha


def ease_gram(m: sp.csr_matrix) -> np.ndarray:
    """The Gram matrix aisle's EASE builds (binary, float32, + l2 on the diagonal), Fortran order."""
    x = _binary(m)
    g = np.asfortranarray(np.asarray((x.T @ x).todense(), dtype=np.float32))
    g[np.diag_indices(g.shape[0])] += EASE_L2
    return g


def lapack_floor(g: np.ndarray) -> float:
    """potrf + potri alone, in place (the Gram matrix is consumed)."""
    potrf, potri = sla.lapack.get_lapack_funcs(("potrf", "potri"), (g,))
    start = time.perf_counter()
    c, info = potrf(g, lower=True, overwrite_a=True, clean=False)
    assert info == 0
    _, info = potri(c, lower=True, overwrite_c=True)
    assert info == 0
    return time.perf_counter() - start


def ease_sides(m: sp.csr_matrix) -> dict[str, Callable[[], float]]:
    from aisle.models import make_model

    data, _, _ = _cornac_dataset(_binary(m))

    def aisle_fit() -> float:
        model = make_model("ease", l2=EASE_L2)
        return _timed(lambda: model._fit(m))[0]

    def floor() -> float:
        return lapack_floor(ease_gram(m))  # the Gram matrix is built outside the timing

    def cornac_fit() -> float:
        import cornac

        model = cornac.models.EASE(lamb=EASE_L2, verbose=False)  # posB=True: cornac's default
        return _timed(lambda: model.fit(data))[0]

    return {"aisle": aisle_fit, "lapack_floor": floor, "cornac": cornac_fit}


def part_ease(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    load_before = _load()
    m, sha = ease_matrix(args.small)
    sp.save_npz(tmp / "ease.npz", m)
    warm = sp.csr_matrix(m[:, :1000])
    for fn in ease_sides(warm).values():
        fn()
    sides = ease_sides(m)
    names = list(sides)
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(args.repeats):
        for name in (names if rep % 2 == 0 else names[::-1]):
            times[name].append(sides[name]())
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in names), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    # the verdict uses the median of per-repetition ratios (adjacent runs share the machine's load)
    ratio = statistics.median(a / f for a, f in zip(times["aisle"], times["lapack_floor"], strict=True))
    # the same pair with BLAS at 1 thread: less sensitive to other jobs on a shared 2-core machine
    # (a 2-thread OpenBLAS call waits for its slower thread), so the overhead beyond LAPACK shows
    from threadpoolctl import threadpool_limits

    t1: dict[str, list[float]] = {"aisle": [], "lapack_floor": []}
    with threadpool_limits(1, "blas"):
        for rep in range(args.repeats):
            for name in (("aisle", "lapack_floor") if rep % 2 == 0 else ("lapack_floor", "aisle")):
                t1[name].append(sides[name]())
            print(f"  BLAS 1, rep {rep + 1}: aisle {t1['aisle'][-1]:.2f} s, lapack_floor "
                  f"{t1['lapack_floor'][-1]:.2f} s", flush=True)
    ratio1 = statistics.median(a / f for a, f in zip(t1["aisle"], t1["lapack_floor"], strict=True))
    out: dict[str, Any] = {
        "data": "movielens-latest-small (default feedback, all events)" + (", 2,500 most popular items"
                                                                           if args.small else ""),
        "ratings_sha256": sha, "users": m.shape[0], "items": m.shape[1], "nnz": int(m.nnz), "l2": EASE_L2,
        "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "aisle_s": round(med["aisle"], 3), "lapack_floor_s": round(med["lapack_floor"], 3),
        "cornac_s": round(med["cornac"], 3),
        "ratio_aisle_over_floor": round(ratio, 3), "goal": "<= 1.2", "verdict": _verdict(ratio <= 1.2),
        "ratio_method": "median of per-repetition ratios aisle/floor",
        "ratio_of_medians": round(med["aisle"] / med["lapack_floor"], 3),
        "ratio_aisle_over_cornac": round(med["aisle"] / med["cornac"], 3),
        "blas1": {"times_s": {k: [round(t, 3) for t in v] for k, v in t1.items()},
                  "aisle_s": round(statistics.median(t1["aisle"]), 3),
                  "lapack_floor_s": round(statistics.median(t1["lapack_floor"]), 3),
                  "ratio_aisle_over_floor": round(ratio1, 3), "verdict": _verdict(ratio1 <= 1.2)},
        "threads": "BLAS 2 (OpenBLAS default) on every side; aisle float32, cornac float64 (numpy.linalg.inv)",
    }
    print(f"  EASE fit: aisle {med['aisle']:.2f} s, LAPACK floor {med['lapack_floor']:.2f} s, cornac "
          f"{med['cornac']:.2f} s -> aisle/floor {ratio:.2f} (goal <= 1.2) {out['verdict']}; at BLAS 1: "
          f"{ratio1:.2f} {out['blas1']['verdict']}", flush=True)
    if not args.no_memory:
        out["peak_rss_mib"] = {s: child("ease", s, tmp, args.small) for s in names}
    out["load_before"], out["load_after"] = load_before, _load()
    return out


# ------------------------------------------------------------------------------ memory children


def child(phase: str, side: str, tmp: Path, small: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", phase, "--child-side", side, "--child-dir", str(tmp)]
    cmd += ["--small"] if small else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return {"error": float("nan")}
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def child_main(phase: str, side: str, tmp: Path) -> int:
    warnings.simplefilter("ignore")
    if phase == "topk":
        from aisle.models._base import Recommender

        model: Any = Recommender.load(tmp / "ials64")
        m = sp.csr_matrix(model.train_matrix_)
        users = np.arange(m.shape[0])
        ids = [str(u) for u in users]
        imp = _implicit_with(model.user_factors_, model.item_factors_)
        run: Callable[[Any], Any] = {
            "implicit": lambda u: topk_implicit(imp, m, u),
            "aisle_recommend": lambda u: topk_aisle_public(model, [ids[i] for i in u]),
            "aisle_internal": lambda u: topk_aisle_internal(model, u),
        }[side]
        run(users[:512])  # warm-up
        go = lambda: run(users)  # noqa: E731
    else:
        m = sp.load_npz(tmp / "ease.npz").tocsr()
        for fn in ease_sides(sp.csr_matrix(m[:, :200])).values():  # warm-up: imports, compiled code
            fn()
        sides = ease_sides(m)  # cornac's Dataset is built here, before the baseline
        go = sides[side]
    base = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux >= 4.0)
    go()
    peak = _status_mib("VmHWM")
    print(json.dumps({"base_mib": round(base, 1), "peak_mib": round(peak, 1),
                      "phase_extra_mib": round(peak - base, 1)}))
    return 0


# ------------------------------------------------------------------------------ report


MEASURED_PATHS = ("src/aisle/models", "src/aisle/evaluation", "src/aisle/data", "benchmarks/bench_ials.py")


def _git(*cmd: str) -> str:
    out = subprocess.run(["git", *cmd], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return out.stdout


def _measured_code_version() -> str:
    """The last commit that touched the measured code (other commits may land during a run)."""
    try:
        return _git("log", "-1", "--format=%h", "--", *MEASURED_PATHS).strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _dirty() -> list[str]:
    """Uncommitted changes under the code this benchmark measures (read-only ``git status``)."""
    try:
        return [line.strip() for line in _git("status", "--porcelain", "--", *MEASURED_PATHS).splitlines()
                if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        return ["unknown"]


def machine(threads: int) -> dict[str, Any]:
    import cornac
    import optuna
    import pandas as pd

    import aisle

    v = bench_ials.versions(threads)
    v.update({"cornac": cornac.__version__, "optuna": optuna.__version__, "pandas": pd.__version__,
              "aisle": aisle.__version__})
    return v


def _f(v: Any, nd: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def markdown(r: dict[str, Any]) -> str:
    v = r["machine"]
    L = [
        "# Models benchmark: aisle vs implicit and cornac" + (" (--small)" if r["small"] else ""),
        "",
        (f"**WARNING: {r['warning']}.**\n\n" if r.get("warning") else "") +
        f"{r['when']}, code {r['code_version']} (measured code last changed in "
        f"{r.get('measured_code_version', '?')}), command `{r['command']}`, {r['runtime_s']:.0f} s. "
        f"{v['cpu']}, {v['cores']} cores, {v['memory_gib']} GiB; load average (1/5/15 min) "
        f"{r['load_start']} at the start, {r['load_end']} at the end (other jobs shared the machine). "
        f"Python {v['python']}, numpy {v['numpy']}, scipy {v['scipy']}, pandas {v['pandas']}, numba "
        f"{v['numba']} ({v['numba_threading_layer']}), implicit {v['implicit']}, cornac {v['cornac']}, "
        f"optuna {v['optuna']}, threadpoolctl {v['threadpoolctl']}, aisle {v['aisle']}. BLAS: "
        f"{'; '.join(v['blas'])}.",
        "",
    ]
    goals: list[tuple[str, str, str, str, str]] = []
    q = r.get("quality")
    if q:
        L += [
            "## Quality: MovieLens-latest-small, temporal split, full ranking, seen items removed",
            "",
            f"dataset sha256 {q['dataset_sha256']} (ratings.csv {q['source_files'].get('ratings.csv')}); "
            f"cutoff {q['split'].get('cutoff')}; train {q['train_shape'][0]} users x {q['train_shape'][1]} "
            f"items, {q['train_nnz']:,} positives (ratings >= 4, binary, for every side); "
            f"{q['test_users']} test users with a relevant item, {q['test_users_known']} known in training, "
            f"the rest folded in from half of their test-period events. Tuning: {q['tuning']}, on the "
            f"validation part ({q['validation_users']} users, {q['validation_users_known']} known), metric "
            "NDCG@10 (over the users the model can score). Metrics: aisle's per_user_metrics on every "
            "side's index lists. \"all\" = every test user (n/a: the peer cannot fold in new users); "
            "\"known\" = users in the training data.",
            "",
            "| model | config (tuned; aisle: changes from defaults) | val NDCG@10 defaults -> tuned | "
            "NDCG@10 all | Recall@20 all | NDCG@10 known | Recall@20 known | fit s | predict s | threads "
            "| fold-in |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in q["models"]:
            t = m["test"]
            cfg = ", ".join(f"{k}={(round(x, 4) if isinstance(x, float) else x)}" for k, x in m["config"].items())
            L.append(
                f"| {m['model']} | {cfg or 'defaults'} | {_f(m['val_ndcg@10_defaults'])} -> "
                f"{_f(m['val_ndcg@10'])} | {_f(t['ndcg@10/all'])} | {_f(t['recall@20/all'])} | "
                f"{_f(t['ndcg@10/known'])} | {_f(t['recall@20/known'])} | {m['fit_s_median']:.2f} | "
                f"{m['predict_s']:.2f} | {m['threads']} | {m['fold_in']} |")
        L += ["", "Same-family pairs (NDCG@10, aisle / peer): " + "; ".join(
            f"{p['aisle']} / {p['peer']} ({p['population']}) {_f(p['aisle_ndcg@10'])} / "
            f"{_f(p['peer_ndcg@10'])} = {_f(p['ratio'], 2)}" for p in q["pairs"]) + ".", ""]
        for g in q["goals"]:
            goals.append((
                f"NDCG@10 >= best peer, {g['title']}, n={g['n_users']}",
                f"{g['aisle_best']} {g['aisle_ndcg@10']:.4f} vs {g['peer_best']} {g['peer_ndcg@10']:.4f} "
                f"(paired diff 95% CI {g['paired_diff_ci95']}, t-test p {g['paired_t_p']})",
                f"{g['ratio']:.3f}", ">= 1.0", g["verdict"]))
    ia = r.get("ials")
    if ia:
        L += ["## iALS epoch time: synthetic matrix (bench_ials.bench)", "",
              f"{r['synthetic']['users']:,} users x {r['synthetic']['items']:,} items, "
              f"{ia['rows'][0]['nnz']:,} nonzeros (seed 0); c = 1 + 10 r, regularization 0.1 constant, 3 CG "
              f"steps, float32; aisle numba {v['threads']['aisle_numba']} threads, implicit OpenMP "
              f"{v['threads']['implicit_openmp']}, BLAS 1 on both. Median over {r['repeats']} alternating "
              f"fits of {ia['epochs_per_fit']} epochs after a warm-up (aisle's last epoch, an exact user "
              "solve, is excluded and shown apart). Memory: peak RSS of a fresh process fitting 2 epochs, "
              "above its RSS once the data is built.", "",
              "| factors | aisle s/epoch | implicit s/epoch | ratio | goal | verdict | aisle last epoch s | "
              "fit s aisle / implicit | fit memory MiB aisle / implicit |", "|---|---|---|---|---|---|---|---|---|"]
        for x in ia["rows"]:
            pk = x.get("peak_rss_mib")
            mem = f"{pk['aisle']['fit_extra_mib']:.0f} / {pk['implicit']['fit_extra_mib']:.0f}" if pk else "-"
            L.append(f"| {x['factors']} | {x['aisle_epoch_s']:.3f} | {x['implicit_epoch_s']:.3f} | "
                     f"{x['ratio_aisle_over_implicit']:.2f} | <= 1.0 | {x['verdict']} | "
                     f"{x['aisle_last_epoch_exact_users_s']:.3f} | {x['aisle_fit_s']:.2f} / "
                     f"{x['implicit_fit_s']:.2f} | {mem} |")
            goals.append((f"iALS epoch time, f={x['factors']}",
                          f"{x['aisle_epoch_s']:.3f} s vs {x['implicit_epoch_s']:.3f} s",
                          f"{x['ratio_aisle_over_implicit']:.3f}", "<= 1.0", x["verdict"]))
        L.append("")
    tk = r.get("topk")
    if tk:
        L += ["## Batch top-20 for all users, seen items removed: synthetic matrix", "",
              f"{tk['users']:,} users x {tk['items']:,} items, {tk['nnz']:,} seen entries filtered; the same "
              f"64-factor iALS factors on both sides. implicit: {tk['threads']['implicit']}. aisle: "
              f"{tk['threads']['aisle']}. `aisle_recommend` = public `recommend(user_ids, k=20)` (ids in, ids "
              "out); `aisle_internal` = its inner loop on indices (`_user_scores`, then top-k without the "
              f"seen items, 2,048 users per batch). Median of {r['repeats']} alternating runs after a warm-up; the "
              "ratio is the median of per-repetition throughput ratios. Memory: peak RSS "
              "of a fresh process during one full run, above its RSS before it.", "",
              "| aisle path | aisle s | implicit s | aisle users/s | implicit users/s | ratio | goal | verdict "
              "| list overlap | memory MiB aisle / implicit |", "|---|---|---|---|---|---|---|---|---|---|"]
        pk = tk.get("peak_rss_mib", {})
        for x in tk["rows"]:
            mem = (f"{pk[x['aisle_path']].get('phase_extra_mib', float('nan')):.0f} / "
                   f"{pk['implicit'].get('phase_extra_mib', float('nan')):.0f}") if x['aisle_path'] in pk else "-"
            L.append(f"| {x['aisle_path']} | {x['aisle_s']:.2f} | {x['implicit_s']:.2f} | "
                     f"{x['aisle_users_per_s']:,} | {x['implicit_users_per_s']:,} | {x['throughput_ratio']:.2f} | "
                     f">= 1.0 | {x['verdict']} | {x['list_overlap_with_implicit']:.3f} | {mem} |")
            goals.append((f"top-20 throughput, {x['aisle_path']}",
                          f"{x['aisle_users_per_s']:,} vs {x['implicit_users_per_s']:,} users/s",
                          f"{x['throughput_ratio']:.3f}", ">= 1.0", x["verdict"]))
        L.append("")
    e = r.get("ease")
    if e:
        pk = e.get("peak_rss_mib", {})
        mem = ", ".join(f"{k} {val.get('phase_extra_mib', float('nan')):.0f}" for k, val in pk.items())
        L += ["## EASE fit vs the bare LAPACK floor", "",
              f"{e['data']}: {e['users']} users x {e['items']:,} items, {e['nnz']:,} nonzeros, l2 {e['l2']:g} "
              f"(ratings.csv sha256 {e['ratings_sha256']}). {e['threads']}. aisle: `EASE._fit` (Gram, "
              "potrf+potri, mirror, weights); floor: `potrf`+`potri` alone on the same Gram matrix "
              f"(Fortran order, in place); cornac: `EASE.fit`. Median of {r['repeats']} alternating runs after "
              "a warm-up. Memory: peak RSS above the RSS before the fit, fresh process per side.", "",
              "| BLAS threads | aisle s | LAPACK floor s | cornac s | aisle / floor | goal | verdict | "
              "aisle / cornac | peak MiB |",
              "|---|---|---|---|---|---|---|---|---|",
              f"| 2 (default) | {e['aisle_s']:.2f} | {e['lapack_floor_s']:.2f} | {e['cornac_s']:.2f} | "
              f"{e['ratio_aisle_over_floor']:.2f} | <= 1.2 | {e['verdict']} | {e['ratio_aisle_over_cornac']:.2f} "
              f"| {mem or '-'} |"]
        if "blas1" in e:
            b1 = e["blas1"]
            L.append(f"| 1 | {b1['aisle_s']:.2f} | {b1['lapack_floor_s']:.2f} | - | "
                     f"{b1['ratio_aisle_over_floor']:.2f} | <= 1.2 | {b1['verdict']} | - | - |")
        L += ["", "Ratios are medians of per-repetition ratios (each repetition runs the sides back to back).",
              ""]
        goals.append(("EASE fit vs potrf+potri floor (BLAS 2)",
                      f"{e['aisle_s']:.2f} s vs {e['lapack_floor_s']:.2f} s",
                      f"{e['ratio_aisle_over_floor']:.3f}", "<= 1.2", e["verdict"]))
        if "blas1" in e:
            b1 = e["blas1"]
            goals.append(("EASE fit vs potrf+potri floor (BLAS 1)",
                          f"{b1['aisle_s']:.2f} s vs {b1['lapack_floor_s']:.2f} s",
                          f"{b1['ratio_aisle_over_floor']:.3f}", "<= 1.2", b1["verdict"]))
    loads = ", ".join(f"{k} {r[k]['load_before']} -> {r[k]['load_after']}" for k in PARTS if k in r)
    L.insert(4, f"Load average per part (before -> after): {loads}.")
    L.insert(5, "")
    L = L[:2] + ["## Goals", "", "| goal | measured | ratio | target | verdict |", "|---|---|---|---|---|"] + [
        f"| {a} | {b} | {c} | {d} | {e_} |" for a, b, c, d, e_ in goals] + ["", *L[2:]]
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="quick run: small synthetic matrix, 3 trials")
    parser.add_argument("--skip-tuning", action="store_true", help="every side at its default hyperparameters")
    parser.add_argument("--trials", type=int, default=None, help="tuning trials after the defaults (10; small 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-repeats", type=int, default=None, help="timed quality fits per model (3; small 1)")
    parser.add_argument("--ials-epochs", type=int, default=3, help="epochs per timed iALS fit (>= 2)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of parts: {','.join(PARTS)}")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--child", choices=["topk", "ease"], help=argparse.SUPPRESS)
    parser.add_argument("--child-side", help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_side, args.child_dir)
    args.trials = args.trials if args.trials is not None else (3 if args.small else 10)
    args.fit_repeats = args.fit_repeats or (1 if args.small else 3)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        parser.error(f"unknown parts {bad}; valid: {PARTS}")
    os.environ.setdefault("AISLE_DATA_HOME", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    started = time.perf_counter()
    load_start = _load()
    mach = machine(0)
    threads = mach["threads"]["aisle_numba"]
    size = bench_ials.SMALL if args.small else bench_ials.FULL
    result: dict[str, Any] = {
        "benchmark": "models", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": bench_ials._code_version(),
        "measured_code_version": _measured_code_version(),
        "uncommitted_changes_in_measured_code": _dirty(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "small": args.small,
        "repeats": args.repeats, "synthetic": {**size, "seed": 0}, "load_start": load_start,
        "memory_method": "fresh process per side and phase: VmHWM after /proc/self/clear_refs reset, minus "
                         "VmRSS before the phase",
    }
    with tempfile.TemporaryDirectory(prefix="aisle-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if "quality" in parts:
            print("\n== quality: MovieLens-latest-small, temporal split ==", flush=True)
            result["quality"] = part_quality(args)
        m = None
        if {"ials", "topk"} & set(parts):
            print(f"\nsynthetic data {size} ...", flush=True)
            t, m = _timed(lambda: bench_ials.synthetic(size["users"], size["items"], size["events"]))
            digest = hashlib.sha256()
            for a in (m.indptr, m.indices, m.data):
                digest.update(np.ascontiguousarray(a).tobytes())
            result["synthetic"].update({"nnz": int(m.nnz), "build_s": round(t, 2), "csr_sha256": digest.hexdigest()})
        if "ials" in parts:
            print("\n== iALS epoch time vs implicit CG ==", flush=True)
            result["ials"] = part_ials(args, m, threads)
        if "topk" in parts:
            print("\n== batch top-20 for all users ==", flush=True)
            result["topk"] = part_topk(args, m, tmp)
        if "ease" in parts:
            print("\n== EASE fit vs LAPACK floor and cornac ==", flush=True)
            result["ease"] = part_ease(args, tmp)
    import numba

    mach["numba_threading_layer"] = numba.threading_layer()
    result["machine"] = mach
    result["load_end"] = _load()
    result["code_version_end"] = bench_ials._code_version()
    result["measured_code_version_end"] = _measured_code_version()
    if (result["measured_code_version_end"] != result["measured_code_version"]
            or _dirty() != result["uncommitted_changes_in_measured_code"]):
        result["warning"] = (f"the measured code changed during the run ({result['measured_code_version']} -> "
                             f"{result['measured_code_version_end']}); child processes may have run the newer code")
        print("WARNING: " + result["warning"], flush=True)
    result["runtime_s"] = round(time.perf_counter() - started, 1)
    stem = "models-small" if args.small else "models"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = markdown(result)
    (args.out / f"{stem}.md").write_text(md)
    print("\n" + md)
    print(f"wrote {args.out / (stem + '.json')} and {args.out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
