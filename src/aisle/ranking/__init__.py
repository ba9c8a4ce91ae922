"""Ranking stage: rerank a model's candidates by relevance and business value (docs/ranking.md).

:class:`MultiObjectiveRanker` reranks over-fetched candidates by ``normalised relevance +
λ · business value`` (margin, revenue, inventory pressure, availability) under hard
constraints (never an unavailable item; optional per-brand caps); :func:`tradeoff_curve`
measures NDCG against expected margin per list over a grid of λ.
"""

from aisle.ranking._objectives import (
    OBJECTIVES,
    BusinessObjective,
    ItemValues,
    MultiObjectiveRanker,
    RankerConfig,
    item_values,
    normalize_relevance,
    parse_objectives,
    rerank_scores,
)
from aisle.ranking._tradeoff import (
    DEFAULT_LAMBDAS,
    EXPECTED_MARGIN_DEFINITION,
    TradeoffPoint,
    TradeoffResult,
    catalog_at,
    parse_lambdas,
    purchase_probability,
    score_lists,
    tradeoff_curve,
)

__all__ = [
    "DEFAULT_LAMBDAS",
    "EXPECTED_MARGIN_DEFINITION",
    "OBJECTIVES",
    "BusinessObjective",
    "ItemValues",
    "MultiObjectiveRanker",
    "RankerConfig",
    "TradeoffPoint",
    "TradeoffResult",
    "catalog_at",
    "item_values",
    "normalize_relevance",
    "parse_lambdas",
    "parse_objectives",
    "purchase_probability",
    "rerank_scores",
    "score_lists",
    "tradeoff_curve",
]
