"""Evaluate a fitted model on held-out events: accuracy and beyond-accuracy metrics at k.

Protocol (always stated in the result):

* **full ranking**: every item of the training catalog is a candidate for every user.
* The relevant items of a user are the test events that the feedback rules count as positive
  (the model's own :class:`~aisle.data.FeedbackConfig` unless ``relevance`` is given: ratings below
  the threshold are not relevant, for instance).
* With ``exclude_seen=True`` the items a user already had in training are removed both from the
  ranking and from that user's relevant set (they could never be hit).
* Test users unknown to the model are folded in from ``history`` when it has their events
  (session prefixes, strong-generalisation users), else counted and skipped; test events on items unknown to the model are dropped and counted, since no model
  trained on that catalog can rank them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning
from aisle.evaluation._metrics import ACCURACY_METRICS, beyond_accuracy, per_user_metrics
from aisle.models._base import Recommender, top_k

__all__ = ["EvaluationResult", "evaluate", "intra_list_diversity"]


@dataclass
class EvaluationResult:
    """Metrics of one model on one test set.

    Attributes:
        model: the model's short name.
        protocol: how candidates were formed (``"full ranking"`` or ``"sampled: N negatives, seed S"``).
        ks: the cut-offs.
        metrics: mean of each per-user metric, and the beyond-accuracy figures.
        per_user: each accuracy metric per evaluated user (for confidence intervals and tests).
        users: the evaluated user ids, aligned with ``per_user``.
        counts: users evaluated / skipped, test interactions used / dropped.
        seconds: time spent producing the ranked lists (the model's predict time).
        top: the ranked item indices per evaluated user (``-1`` padding), for segment analysis.
        relevant: the relevance matrix (evaluated users x model items).
        sources: what produced each user's list (``model``, ``fold-in``).
    """

    model: str
    protocol: str
    ks: tuple[int, ...]
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    users: np.ndarray = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    top: np.ndarray | None = field(default=None, repr=False)
    relevant: sp.csr_matrix | None = field(default=None, repr=False)
    sources: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "protocol": self.protocol, "ks": list(self.ks),
                "metrics": self.metrics, "counts": self.counts, "predict_seconds": self.seconds}


def _item_attribute_matrix(model: Recommender, catalog: pd.DataFrame, columns: Sequence[str]) -> sp.csr_matrix:
    """One-hot attributes per model item (L2-normalised rows); ``category`` paths split on / and |."""
    cat = catalog.drop_duplicates("item_id").set_index(catalog.drop_duplicates("item_id")["item_id"].astype("str"))
    cat = cat.reindex(pd.Index(model.items_.ids.astype(str)))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vocab: dict[str, int] = {}
    for col in columns:
        if col not in cat.columns:
            continue
        values = cat[col].astype("str")
        tokens = values.str.replace("|", "/", regex=False).str.split("/") if col == "category" else values.map(
            lambda v: [v] if isinstance(v, str) else [])
        for i, toks in enumerate(tokens.tolist()):
            if not isinstance(toks, list):
                continue
            ids = [vocab.setdefault(f"{col}={t.strip()}", len(vocab)) for t in toks if isinstance(t, str) and t.strip()]
            rows.append(np.full(len(ids), i))
            cols.append(np.asarray(ids, dtype=np.int64))
    n = len(model.items_)
    if not vocab:
        raise DataError(f"the catalog has none of the attribute columns {list(columns)} for intra-list diversity")
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n, len(vocab)))
    m.data[:] = 1.0  # duplicates count once
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0.0)) @ m)


def intra_list_diversity(top: np.ndarray, attributes: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-list mean pairwise cosine distance of item attribute vectors over the first k items.

    Uses ``sum_{i<j} cos(v_i, v_j) = (|S|^2 - sum |v_i|^2) / 2`` with ``S`` the sum of the list's
    unit vectors, so no pairwise loop is needed. Items without attributes count as dissimilar.
    """
    t = top[:, :k]
    n, kk = t.shape
    valid = t >= 0
    lengths = valid.sum(axis=1)
    sel = sp.csr_matrix((np.ones(int(valid.sum())), (np.repeat(np.arange(n), kk)[valid.ravel()], t[valid])),
                        shape=(n, attributes.shape[0]))
    summed = sel @ attributes
    sq = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    self_sq = np.asarray(sel @ np.asarray(attributes.multiply(attributes).sum(axis=1)).ravel()).ravel()
    pairs = lengths * (lengths - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_sim = (sq - self_sq) / 2 / pairs
    return np.where(pairs > 0, 1 - mean_sim, np.nan)


def evaluate(
    model: Recommender,
    test_events: pd.DataFrame,
    *,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = ACCURACY_METRICS,
    exclude_seen: bool = True,
    relevance: FeedbackConfig | None = None,
    history: pd.DataFrame | None = None,
    protocol: Literal["full", "sampled"] = "full",
    n_negatives: int = 100,
    seed: int = 0,
    catalog: pd.DataFrame | None = None,
    diversity_attributes: Sequence[str] = ("category", "brand"),
    batch_size: int = 2048,
) -> EvaluationResult:
    """Score ``model`` on ``test_events``.

    Args:
        model: a fitted model.
        test_events: canonical events held out from training.
        ks: cut-offs for every metric.
        metrics: accuracy metric names (see :mod:`aisle.evaluation._metrics`).
        exclude_seen: filter training items from lists and from the relevant sets.
        relevance: rules that make a test event relevant (default: the model's feedback rules).
        history: events of test users that are not in training (a session's first clicks, a
            held-out user's fold-in part); those users are scored by fold-in, not skipped.
        protocol: ``"full"`` ranks every catalog item; ``"sampled"`` ranks each user's relevant
            items among ``n_negatives`` seeded random negatives (labelled in the result; sampled
            metrics are known to disagree with full ranking, Krichene & Rendle 2020).
        n_negatives: negatives per user for the sampled protocol.
        seed: the negatives' seed.
        catalog: item attributes; when given, intra-list diversity ``ild@k`` is reported.
        diversity_attributes: catalog columns used for ``ild@k``.
        batch_size: users per scoring batch.
    """
    model._check_fitted()
    if protocol not in ("full", "sampled"):
        raise ConfigError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    ks = tuple(sorted({int(k) for k in ks}))
    rules = relevance or model.feedback_
    test_users = pd.unique(test_events["user_id"].astype("str").to_numpy()).astype(object)
    known_mask = model.users_.index(test_users, unknown="ignore") >= 0
    if history is not None:
        known_mask |= np.isin(test_users, pd.unique(history["user_id"].astype("str").to_numpy()).astype(object))
    users = Vocabulary.from_values(test_users[known_mask])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # unknown items are counted below instead
        rel = build_interactions(
            test_events[np.isin(test_events["user_id"].to_numpy(dtype=object), users.ids)],
            rules, users=users, items=model.items_,
        )
    n_dropped_items = int((model.items_.index(test_events["item_id"].to_numpy(dtype=object), unknown="ignore") < 0).sum())
    matrix = sp.csr_matrix(rel.matrix > 0, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # counted in history_events_unknown_item
        seen, _, source = model._history_rows(list(users.ids), history, "empty")
    seen = sp.csr_matrix(seen)
    if exclude_seen:
        matrix = sp.csr_matrix(matrix - matrix.multiply(seen > 0))
        matrix.eliminate_zeros()
    has_rel = np.diff(matrix.indptr) > 0
    if not has_rel.any():
        raise DataError(
            "no test user has a relevant item that the model could rank: check that test users "
            "appear in training and that the relevance rules (e.g. the rating threshold) keep test events"
        )
    eval_users = users.ids[has_rel]
    matrix = sp.csr_matrix(matrix[has_rel])
    seen_eval = sp.csr_matrix(seen[has_rel])
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # history events on unknown items: counted below
        if protocol == "full":
            # the history rows gathered above (fold-in done once): rows of known users are ignored
            # order-aware models need the history events themselves (a matrix has no order)
            hist: pd.DataFrame | sp.csr_matrix | None = history if model.uses_sequences else seen_eval
            recs = model.recommend(list(eval_users), k=max(ks), exclude_seen=exclude_seen, history=hist,
                                   unknown_users="empty", batch_size=batch_size)
            top = model.items_.index(np.where(recs.items == None, "", recs.items).ravel().astype(object),  # noqa: E711
                                     unknown="ignore").reshape(recs.items.shape)
            label = "full ranking"
        else:
            top = _sampled_top(model, eval_users, matrix, seen_eval,
                               history if model.uses_sequences else seen_eval, max(ks),
                               n_negatives, seed, batch_size)
            label = f"sampled: {n_negatives} negatives per user, seed {seed}"
        seconds = time.perf_counter() - started
    per_user = per_user_metrics(top, matrix, ks, metrics)
    summary = {name: float(np.nanmean(v)) for name, v in per_user.items()}
    if protocol == "full":
        summary.update(beyond_accuracy(top, model.item_popularity_, len(model.users_), ks))
    if catalog is not None:
        attrs = _item_attribute_matrix(model, catalog, diversity_attributes)
        for k in ks:
            ild = intra_list_diversity(top, attrs, k)
            per_user[f"ild@{k}"] = ild
            summary[f"ild@{k}"] = float(np.nanmean(ild))
    counts = {
        "users_evaluated": len(eval_users),
        "users_skipped_unknown": int((~known_mask).sum()),
        "users_skipped_no_relevant": int((~has_rel).sum()),
        "users_fold_in": int((source[has_rel] == "fold-in").sum()),
        "test_events": len(test_events),
        "test_events_unknown_item": n_dropped_items,
        "relevant_pairs": int(matrix.nnz),
        "history_events_unknown_item": 0 if history is None else int(
            (model.items_.index(history["item_id"].to_numpy(dtype=object), unknown="ignore") < 0).sum()),
    }
    return EvaluationResult(model.name, label, ks, summary, per_user, eval_users, counts, seconds,
                            top, matrix, source[has_rel])


def _sampled_top(
    model: Recommender,
    users: np.ndarray,
    relevant: sp.csr_matrix,
    seen: sp.csr_matrix,
    history: pd.DataFrame | sp.csr_matrix | None,
    k: int,
    n_negatives: int,
    seed: int,
    batch_size: int,
) -> np.ndarray:
    """Rank each user's relevant items among n seeded negatives (not relevant, not seen)."""
    rng = np.random.default_rng(seed)
    n_items = len(model.items_)
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        batch = list(users[start:stop])
        hist = sp.csr_matrix(history)[start:stop] if sp.issparse(history) else history
        rows, idx, _ = model._history_rows(batch, hist, "empty")
        scores = model._batch_scores(batch, rows, idx, hist)
        allowed = np.zeros_like(scores, dtype=bool)
        for j in range(stop - start):
            u = start + j
            rel_items = relevant.indices[relevant.indptr[u]:relevant.indptr[u + 1]]
            blocked = np.zeros(n_items, dtype=bool)
            blocked[rel_items] = True
            blocked[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = True
            pool = np.flatnonzero(~blocked)
            negs = rng.choice(pool, size=min(n_negatives, pool.size), replace=False)
            allowed[j, rel_items] = True
            allowed[j, negs] = True
        scores = np.where(allowed, scores, -np.inf)
        top, vals = top_k(scores, k)
        out[start:stop, : top.shape[1]] = np.where(np.isfinite(vals), top, -1)
    return out
