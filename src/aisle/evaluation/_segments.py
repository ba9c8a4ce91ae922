"""Per-segment results with bootstrap confidence intervals.

User segments split the evaluated users; item segments restrict the relevant items:

``activity``  users by the number of training interactions: ``1-4``, ``5-19``, ``20-99``, ``100+``
              (fold-in users by their history length).
``user-type`` ``returning`` (in training) vs ``new`` (scored by fold-in from history).
``item-pop``  ``head`` / ``torso`` / ``tail`` items: sorted by training popularity, the head holds
              the most popular items that together have 50 % of training interactions, the tail
              the least popular items with the last 20 %, the torso the rest. A user's metric in
              a group uses only the relevant items of that group (users without any are left out),
              with the same ranked list: "how well are tail items found when they are wanted".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from aisle.errors import ConfigError
from aisle.evaluation._evaluate import EvaluationResult
from aisle.evaluation._metrics import per_user_metrics
from aisle.evaluation._stats import bootstrap_ci
from aisle.models._base import Recommender

__all__ = ["ACTIVITY_BINS", "SEGMENTATIONS", "item_popularity_groups", "segment_results"]

ACTIVITY_BINS: tuple[tuple[str, int, float], ...] = (
    ("1-4", 1, 5), ("5-19", 5, 20), ("20-99", 20, 100), ("100+", 100, np.inf),
)
SEGMENTATIONS: tuple[str, ...] = ("activity", "user-type", "item-pop")


def item_popularity_groups(popularity: np.ndarray, head_share: float = 0.5, tail_share: float = 0.2) -> np.ndarray:
    """Label each item ``head``, ``torso`` or ``tail`` by its share of training interactions."""
    order = np.argsort(-popularity, kind="stable")
    total = popularity.sum()
    cum = np.cumsum(popularity[order]) / total if total > 0 else np.linspace(0, 1, popularity.size)
    labels = np.empty(popularity.size, dtype=object)
    before = np.concatenate([[0.0], cum[:-1]])  # share held by strictly more popular items
    labels[order] = np.where(before < head_share, "head", np.where(before >= 1 - tail_share, "tail", "torso"))
    return labels


def segment_results(
    result: EvaluationResult,
    model: Recommender,
    *,
    metrics: Sequence[str] | None = None,
    segmentations: Sequence[str] = SEGMENTATIONS,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Mean and bootstrap CI of each metric in each segment.

    Args:
        result: an evaluation of ``model`` (it keeps the ranked lists and relevance).
        model: the evaluated model (for training activity and item popularity).
        metrics: names such as ``"ndcg@10"`` (default: every accuracy metric in the result).
        segmentations: any of :data:`SEGMENTATIONS`.
        level: CI coverage.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        Rows ``{"segmentation", "segment", "metric", "mean", "ci_low", "ci_high", "n"}``.
    """
    unknown = [s for s in segmentations if s not in SEGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown segmentations {unknown}; valid: {', '.join(SEGMENTATIONS)}")
    if result.top is None or result.relevant is None or result.sources is None:
        raise ConfigError("this evaluation result does not keep its lists; re-run evaluate()")
    names = list(metrics) if metrics is not None else [m for m in result.per_user if not m.startswith("ild@")]
    rows: list[dict[str, Any]] = []

    def add(segmentation: str, segment: str, values: np.ndarray, metric: str) -> None:
        v = values[~np.isnan(values)]
        if v.size == 0:
            return
        ci = bootstrap_ci(v, level=level, n_boot=n_boot, seed=seed)
        rows.append({"segmentation": segmentation, "segment": segment, "metric": metric, "mean": ci.mean,
                     "ci_low": ci.low, "ci_high": ci.high, "n": ci.n})

    if "activity" in segmentations or "user-type" in segmentations:
        idx = model.users_.index(result.users.astype(object), unknown="ignore")
        train_counts = np.diff(model.train_matrix_.indptr)
        activity = np.where(idx >= 0, train_counts[np.maximum(idx, 0)], 0)
        for metric in names:
            values = result.per_user[metric]
            if "activity" in segmentations:
                for label, lo, hi in ACTIVITY_BINS:
                    add("activity", label, values[(activity >= lo) & (activity < hi)], metric)
            if "user-type" in segmentations:
                add("user-type", "returning", values[result.sources == "model"], metric)
                add("user-type", "new", values[result.sources == "fold-in"], metric)
    if "item-pop" in segmentations:
        groups = item_popularity_groups(model.item_popularity_)
        by_k: dict[int, list[str]] = {}
        for metric in names:
            base, _, cut = metric.partition("@")
            by_k.setdefault(int(cut), []).append(base)
        for group in ("head", "torso", "tail"):
            keep = sp.diags((groups == group).astype(np.float32))
            rel = sp.csr_matrix(result.relevant @ keep)
            rel.eliminate_zeros()
            for cutoff, bases in by_k.items():
                per_user = per_user_metrics(result.top, rel, [cutoff], bases)
                for base in bases:
                    add("item-pop", group, per_user[f"{base}@{cutoff}"], f"{base}@{cutoff}")
    return rows
