"""Ranking metrics at k, per user, from top-k index lists and a sparse relevance matrix.

All metrics use binary relevance and full ranking unless a protocol says otherwise:

``precision@k``     hits / k
``recall@k``        hits / |relevant|
``capped_recall@k`` hits / min(k, |relevant|) (the normalisation of the Mult-VAE and iALS papers)
``ndcg@k``          DCG / ideal DCG, gains 1/log2(rank+1), ideal over min(k, |relevant|) items
``map@k``           mean of precision at each hit, over min(k, |relevant|)
``mrr@k``           1 / rank of the first hit (0 if none)
``hit_rate@k``      1 if any hit (``hr@k`` is the same figure under the name sequential papers use)

Beyond accuracy (over the whole set of lists): ``coverage@k`` (share of the catalog recommended
at least once), ``novelty@k`` (mean self-information −log2 of the item's share of training users),
``gini@k`` (Gini of exposure counts over the catalog; 0 = equal exposure) and ``arp@k`` (average
recommendation popularity: mean training-user count of recommended items).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from aisle.errors import ConfigError

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "beyond_accuracy",
    "gini",
    "per_user_metrics",
]

ACCURACY_METRICS: tuple[str, ...] = (
    "precision", "recall", "capped_recall", "ndcg", "map", "mrr", "hit_rate", "hr",
)
BEYOND_ACCURACY_METRICS: tuple[str, ...] = ("coverage", "novelty", "gini", "arp")


def _hits(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each rank relevant? ``top`` uses -1 for padding."""
    n, k = top.shape
    rows = np.repeat(np.arange(n), k)
    cols = top.ravel()
    valid = cols >= 0
    out = np.zeros(n * k, dtype=bool)
    if valid.any():
        out[valid] = np.asarray(relevant[rows[valid], cols[valid]]).ravel() > 0
    return out.reshape(n, k)


def per_user_metrics(
    top: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int], metrics: Sequence[str] = ACCURACY_METRICS
) -> dict[str, np.ndarray]:
    """Accuracy metrics per user for every k in ``ks``.

    Args:
        top: ``(n_users, K)`` item indices ranked best first, ``-1`` where the list is short;
            ``K >= max(ks)``.
        relevant: ``(n_users, n_items)`` sparse matrix, > 0 where the item is relevant.
        ks: cut-offs.
        metrics: names from :data:`ACCURACY_METRICS`.

    Returns:
        ``{"ndcg@10": array of n_users floats, ...}``.
    """
    unknown = [m for m in metrics if m not in ACCURACY_METRICS]
    if unknown:
        raise ConfigError(f"unknown metrics {unknown}; valid: {', '.join(ACCURACY_METRICS)}")
    if top.shape[0] != relevant.shape[0]:
        raise ConfigError(f"{top.shape[0]} lists but {relevant.shape[0]} relevance rows")
    if max(ks) > top.shape[1]:
        raise ConfigError(f"lists have {top.shape[1]} items; cannot compute metrics at k={max(ks)}")
    n_rel = np.diff(sp.csr_matrix(relevant > 0).indptr).astype(np.float64)
    hits = _hits(top[:, : max(ks)], sp.csr_matrix(relevant))
    discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            h = hits[:, :k]
            n_hits = h.sum(axis=1).astype(np.float64)
            capped = np.minimum(k, n_rel)
            for m in metrics:
                if m == "precision":
                    v = n_hits / k
                elif m == "recall":
                    v = n_hits / n_rel
                elif m == "capped_recall":
                    v = n_hits / capped
                elif m == "ndcg":
                    dcg = (h * discounts[:k]).sum(axis=1)
                    ideal = np.cumsum(discounts[:k])[np.maximum(capped.astype(int) - 1, 0)]
                    v = dcg / ideal
                elif m == "map":
                    prec_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
                    v = (prec_at * h).sum(axis=1) / capped
                elif m == "mrr":
                    first = np.argmax(h, axis=1)
                    v = np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)
                else:  # hit_rate, hr
                    v = h.any(axis=1).astype(np.float64)
                out[f"{m}@{k}"] = np.where(n_rel > 0, v, np.nan)
    return out


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: all equal; towards 1: all on one)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def beyond_accuracy(
    top: np.ndarray, item_popularity: np.ndarray, n_train_users: int, ks: Sequence[int]
) -> dict[str, float]:
    """Coverage, novelty, Gini of exposure and average recommendation popularity at each k.

    Args:
        top: ``(n_users, K)`` item indices, ``-1`` padding.
        item_popularity: number of training users per item (length n_items).
        n_train_users: users in training (for the popularity share in novelty).
        ks: cut-offs.
    """
    n_items = item_popularity.size
    out: dict[str, float] = {}
    share = np.maximum(item_popularity, 1.0) / max(n_train_users, 1)
    info = -np.log2(np.minimum(share, 1.0))
    for k in ks:
        t = top[:, :k]
        flat = t[t >= 0]
        exposure = np.bincount(flat, minlength=n_items)
        out[f"coverage@{k}"] = float((exposure > 0).sum() / n_items) if n_items else 0.0
        out[f"novelty@{k}"] = float(info[flat].mean()) if flat.size else 0.0
        out[f"gini@{k}"] = gini(exposure)
        out[f"arp@{k}"] = float(item_popularity[flat].mean()) if flat.size else 0.0
    return out
