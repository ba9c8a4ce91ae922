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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import DataError, DataWarning
from aisle.evaluation._metrics import ACCURACY_METRICS, beyond_accuracy, per_user_metrics
from aisle.models._base import Recommender

__all__ = ["EvaluationResult", "evaluate"]


@dataclass
class EvaluationResult:
    """Metrics of one model on one test set.

    Attributes:
        model: the model's short name.
        protocol: how candidates were formed (``"full ranking"``).
        ks: the cut-offs.
        metrics: mean of each per-user metric, and the beyond-accuracy figures.
        per_user: each accuracy metric per evaluated user (for confidence intervals and tests).
        users: the evaluated user ids, aligned with ``per_user``.
        counts: users evaluated / skipped, test interactions used / dropped.
    """

    model: str
    protocol: str
    ks: tuple[int, ...]
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    users: np.ndarray = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "protocol": self.protocol, "ks": list(self.ks),
                "metrics": self.metrics, "counts": self.counts}


def evaluate(
    model: Recommender,
    test_events: pd.DataFrame,
    *,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = ACCURACY_METRICS,
    exclude_seen: bool = True,
    relevance: FeedbackConfig | None = None,
    history: pd.DataFrame | None = None,
    batch_size: int = 2048,
) -> EvaluationResult:
    """Score ``model`` on ``test_events`` with full ranking.

    Args:
        model: a fitted model.
        test_events: canonical events held out from training.
        ks: cut-offs for every metric.
        metrics: accuracy metric names (see :mod:`aisle.evaluation._metrics`).
        exclude_seen: filter training items from lists and from the relevant sets.
        relevance: rules that make a test event relevant (default: the model's feedback rules).
        history: events of test users that are not in training (a session's first clicks, a
            held-out user's fold-in part); those users are scored by fold-in, not skipped.
        batch_size: users per scoring batch.
    """
    model._check_fitted()
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
    seen, _, source = model._history_rows(list(users.ids), history, "empty")
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
    matrix = matrix[has_rel]
    recs = model.recommend(list(eval_users), k=max(ks), exclude_seen=exclude_seen, history=history,
                           unknown_users="empty", batch_size=batch_size)
    top = model.items_.index(np.where(recs.items == None, "", recs.items).ravel().astype(object),  # noqa: E711
                             unknown="ignore").reshape(recs.items.shape)
    per_user = per_user_metrics(top, matrix, ks, metrics)
    summary = {name: float(np.nanmean(v)) for name, v in per_user.items()}
    summary.update(beyond_accuracy(top, model.item_popularity_, len(model.users_), ks))
    counts = {
        "users_evaluated": len(eval_users),
        "users_skipped_unknown": int((~known_mask).sum()),
        "users_skipped_no_relevant": int((~has_rel).sum()),
        "users_fold_in": int((source[has_rel] == "fold-in").sum()),
        "test_events": len(test_events),
        "test_events_unknown_item": n_dropped_items,
        "relevant_pairs": int(matrix.nnz),
    }
    return EvaluationResult(model.name, "full ranking", ks, summary, per_user, eval_users, counts)
