"""The relevance / business-value trade-off: NDCG@k against expected margin per list over λ.

For one fitted model and one evaluation (its test users and their held-out relevant items),
:func:`tradeoff_curve` over-fetches each user's candidates once, reranks them for every λ of
a grid (see :class:`~aisle.ranking.MultiObjectiveRanker`) and measures each set of lists:

* ``ndcg``: NDCG@k against the held-out items (the evaluation's relevance, seen items removed).
* ``expected_margin`` (ground truth only, e.g. the simulator): the expected margin a list
  earns when shown once, ``Σ_r P(purchase | user, item, position r) × unit margin × E[qty]``,
  where ``P(purchase | u, i, r) = examination(r) × P(click | examined) × P(cart | click) ×
  P(purchase | cart) × 1[in stock]`` is the shop's true behaviour model at the moment the lists
  are served, and ``E[qty] = 1 + extra_quantity_mean``. ``expected_revenue`` is the same with
  the price. Without a ground truth both are ``nan``: nothing observed offline says how users
  would have reacted to items they were never shown.
* ``hit_margin``: an offline proxy that needs no ground truth, the margin-weighted DCG of the
  held-out hits, ``Σ_r 1[item r held out] × unit margin / log2(r + 1)``.
* ``list_margin`` (mean unit margin of the listed items), ``coverage@k`` and ``arp@k`` (mean
  training popularity), ``unavailable_share`` (share of list slots holding an item that is out
  of stock or not listed) and ``fill`` (mean list length / k).

Every λ is compared with two references: ``"model"`` (the model's own top k, no reranking and
no constraint) and ``"margin only"`` (the candidates sorted by business value, λ = ∞).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.errors import ConfigError, DataWarning
from aisle.evaluation._evaluate import EvaluationResult
from aisle.evaluation._metrics import beyond_accuracy, per_user_metrics
from aisle.models._base import Recommender
from aisle.ranking._objectives import ItemValues, MultiObjectiveRanker

__all__ = [
    "DEFAULT_LAMBDAS",
    "EXPECTED_MARGIN_DEFINITION",
    "TradeoffPoint",
    "TradeoffResult",
    "catalog_at",
    "parse_lambdas",
    "purchase_probability",
    "score_lists",
    "tradeoff_curve",
]

DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
EXPECTED_MARGIN_DEFINITION = (
    "expected margin per list = sum over list positions r of examination(r) x P(click|examined) x "
    "P(cart|click) x P(purchase|cart) x 1[in stock] x E[quantity] x price x margin rate, from the "
    "simulated shop's ground truth at the moment the lists are served (the training cutoff), "
    "averaged over the evaluated users"
)


def parse_lambdas(spec: str | Sequence[float]) -> tuple[float, ...]:
    """``"0,0.1,0.5,1,inf"`` -> sorted unique λ values (>= 0; ``inf`` = business value only)."""
    parts = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[float] = []
    for p in parts:
        if p == "":
            continue
        try:
            v = float(p)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--lambdas takes numbers >= 0 separated by commas (e.g. 0,0.1,0.5,1,2); got {p!r}") from exc
        if not v >= 0:
            raise ConfigError(f"λ must be >= 0, got {p!r}")
        out.append(v)
    if not out:
        raise ConfigError("no λ given; e.g. --lambdas 0,0.1,0.5,1,2")
    return tuple(sorted(set(out)))


def catalog_at(catalog: pd.DataFrame, stock_ledger: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:
    """The catalog with ``stock`` as it was at ``when`` (from a simulated shop's stock ledger).

    Items without a ledger entry at or before ``when`` (not listed yet) get stock 0.
    """
    led = stock_ledger[stock_ledger["timestamp"] <= when]
    last = led.groupby(led["item_id"].astype(str).to_numpy(), sort=False)["stock_after"].last()
    out = catalog.copy()
    ids = out["item_id"].astype(str)
    out["stock"] = ids.map(last).fillna(0.0).to_numpy(dtype=np.float64)
    return out


def purchase_probability(truth: Any, users: Sequence[str], lists: np.ndarray, *,
                         at: pd.Timestamp | None = None, chunk: int = 512) -> np.ndarray:
    """``P(purchase | user, item, position)`` of every slot of ``lists`` under a shop's ground truth.

    Args:
        truth: a :class:`aisle.simulate.ShopTruth`.
        users: one user id per list.
        lists: ``(n, k)`` item ids, ``None`` in empty slots (probability 0 there).
        at: the time of the seasonal term (``None``: the yearly average).
        chunk: lists per block.

    Returns:
        ``(n, k)``: examination at rank r × P(click | examined) × P(cart | click) × P(purchase |
        cart); stock is not included (multiply by availability).
    """
    from aisle.simulate import examination

    ids = np.asarray(lists, dtype=object)
    n, k = ids.shape
    out = np.zeros((n, k))
    exam = examination(np.arange(1, k + 1), truth.config)
    user_arr = np.asarray(list(users), dtype=object)
    filled = ~np.asarray(pd.isna(ids), dtype=bool)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        block, ok = ids[lo:hi], filled[lo:hi]
        if not ok.any():
            continue
        uniq, inv = np.unique(block[ok].astype(str), return_inverse=True)
        grid = truth.true_relevance(user_arr[lo:hi], uniq, event="purchase", at=at)
        col = np.zeros(block.shape, dtype=np.int64)
        col[ok] = inv
        rows = np.arange(hi - lo)[:, None].repeat(k, axis=1)
        out[lo:hi] = np.where(ok, grid[rows, col], 0.0) * exam[None, :]
    return out


@dataclass(frozen=True)
class TradeoffPoint:
    """One set of lists (one model and one policy) and its figures; see the module docstring."""

    model: str
    policy: str
    lam: float | None
    k: int
    ndcg: float
    expected_margin: float
    expected_revenue: float
    hit_margin: float
    list_margin: float
    coverage: float
    arp: float
    unavailable_share: float
    fill: float
    n_lists: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[key] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return d


@dataclass
class TradeoffResult:
    """The trade-off of one or more models over a grid of λ."""

    k: int
    objectives: list[dict[str, Any]]
    normalization: str
    overfetch: int
    max_per_brand: int | None
    ground_truth: bool
    points: list[TradeoffPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: TradeoffResult) -> TradeoffResult:
        """Add another model's points (same settings)."""
        self.points += other.points
        self.notes += [n for n in other.notes if n not in self.notes]
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; what ``aisle evaluate`` stores under ``tradeoff`` and the report reads."""
        return {
            "k": self.k, "objectives": self.objectives, "normalization": self.normalization,
            "overfetch": self.overfetch, "max_per_brand": self.max_per_brand, "ground_truth": self.ground_truth,
            "expected_margin": EXPECTED_MARGIN_DEFINITION if self.ground_truth
            else "not available: no ground truth (real data); see hit_margin, the margin-weighted DCG of held-out hits",
            "points": [p.to_dict() for p in self.points], "notes": self.notes,
        }


def score_lists(
    model: Recommender,
    evaluation: EvaluationResult,
    lists: np.ndarray,
    values: ItemValues,
    *,
    policy: str,
    lam: float | None = None,
    truth: Any = None,
    at: pd.Timestamp | None = None,
) -> TradeoffPoint:
    """The figures of one set of lists (``(n_users, k)`` item ids aligned with ``evaluation.users``)."""
    ids = np.asarray(lists, dtype=object)
    n, k = ids.shape
    if n != len(evaluation.users) or evaluation.relevant is None:
        raise ConfigError(f"{n} lists for {len(evaluation.users)} evaluated users (or no relevance kept)")
    filled = ~np.asarray(pd.isna(ids), dtype=bool)
    text = np.where(filled, ids, "").astype(object)
    top = model.items_.index(text.ravel(), unknown="ignore").reshape(n, k)
    top = np.where(filled, top, -1)
    ndcg = float(np.nanmean(per_user_metrics(top, evaluation.relevant, [k], ["ndcg"])[f"ndcg@{k}"]))
    beyond = beyond_accuracy(top, model.item_popularity_, len(model.users_), [k])
    pos = values.positions(ids)
    known = pos >= 0
    safe = np.where(known, pos, 0)
    unit_margin = np.where(known, np.nan_to_num(values.unit_margin[safe]), 0.0)
    price = np.where(known, np.nan_to_num(values.price[safe]), 0.0)
    available = np.where(known, values.available[safe], True)
    slots = int(filled.sum())
    unavailable = float((filled & ~available).sum() / slots) if slots else 0.0
    rel = sp.csr_matrix(evaluation.relevant)
    hits = np.zeros((n, k), dtype=bool)
    ok = top >= 0
    if ok.any():
        rows = np.nonzero(ok)[0]
        hits[ok] = np.asarray(rel[rows, top[ok]]).ravel() > 0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hit_margin = float(((hits * unit_margin) * discount).sum(axis=1).mean()) if n else 0.0
    list_margin = float(unit_margin[filled].mean()) if slots else 0.0
    exp_margin = exp_revenue = float("nan")
    if truth is not None:
        p = purchase_probability(truth, list(evaluation.users), ids, at=at) * available
        qty = 1.0 + float(getattr(truth.config, "extra_quantity_mean", 0.0))
        exp_margin = float((p * unit_margin).sum(axis=1).mean() * qty) if n else 0.0
        exp_revenue = float((p * price).sum(axis=1).mean() * qty) if n else 0.0
    return TradeoffPoint(
        model=model.name, policy=policy, lam=lam, k=k, ndcg=ndcg, expected_margin=exp_margin,
        expected_revenue=exp_revenue, hit_margin=hit_margin, list_margin=list_margin,
        coverage=beyond[f"coverage@{k}"], arp=beyond[f"arp@{k}"], unavailable_share=unavailable,
        fill=float(filled.sum() / (n * k)) if n else 0.0, n_lists=n,
    )


def _policy_name(lam: float) -> str:
    return "margin only" if math.isinf(lam) else f"λ={lam:g}"


def tradeoff_curve(
    model: Recommender,
    evaluation: EvaluationResult,
    ranker: MultiObjectiveRanker,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    *,
    k: int = 10,
    history: pd.DataFrame | None = None,
    truth: Any = None,
    at: pd.Timestamp | None = None,
    include_references: bool = True,
) -> TradeoffResult:
    """NDCG@k, expected margin and the other figures of the reranked lists for every λ.

    Args:
        model: the fitted model.
        evaluation: its evaluation (``evaluate(...)``): the users and their relevant items.
        ranker: the ranker (objectives, normalisation, constraints, over-fetch).
        lambdas: the grid of λ.
        k: list length.
        history: the fold-in events of test users unknown to the model (the split's
            ``fold_in``), as given to ``evaluate``.
        truth: the simulator's :class:`~aisle.simulate.ShopTruth` for the expected margin.
        at: when the lists are served (seasonal term of the ground truth).
        include_references: add the model's own top k and "margin only" (λ = ∞).
    """
    users = [str(u) for u in evaluation.users]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # evaluate() counted the fold-in events it drops
        recs = model.recommend(users, k * ranker.config.overfetch, history=history, unknown_users="empty")
    c = ranker.config
    result = TradeoffResult(
        k=k, objectives=[o.model_dump() for o in c.objectives], normalization=c.normalization,
        overfetch=c.overfetch, max_per_brand=c.max_per_brand, ground_truth=truth is not None,
    )
    grid = list(lambdas)
    if include_references:
        result.points.append(score_lists(model, evaluation, recs.items[:, :k], ranker.values,
                                         policy="model", truth=truth, at=at))
        if math.inf not in grid:
            grid.append(math.inf)
    for lam in grid:
        lists, _ = ranker.rerank_ids(recs.items, recs.scores, k, lam=lam)
        result.points.append(score_lists(model, evaluation, lists, ranker.values, policy=_policy_name(lam),
                                         lam=lam, truth=truth, at=at))
    short = [p for p in result.points if p.fill < 0.999 and p.policy != "model"]
    if short:
        result.notes.append(
            f"{model.name}: some lists are shorter than k={k} after the constraints "
            f"(fill down to {min(p.fill for p in short):.3f}); raise overfetch")
    return result
