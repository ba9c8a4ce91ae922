"""Models: one contract (fit / recommend / score / similar_items / save / load) for every model."""

from aisle.models._base import ModelConfig, Recommendations, Recommender, SideData, top_k
from aisle.models._baselines import (
    RandomConfig,
    RandomRecommender,
    RecentPopularity,
    RecentPopularityConfig,
    SegmentPopularity,
    SegmentPopularityConfig,
)
from aisle.models._bpr import BPR, BPRConfig
from aisle.models._ease import EASE, EASEConfig
from aisle.models._ials import IALS, IALSConfig
from aisle.models._itemknn import ItemKNN, ItemKNNConfig
from aisle.models._popularity import Popularity, PopularityConfig
from aisle.models._registry import MODELS, get_model_class, make_model

__all__ = [
    "BPR",
    "EASE",
    "IALS",
    "MODELS",
    "BPRConfig",
    "EASEConfig",
    "IALSConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "ModelConfig",
    "Popularity",
    "PopularityConfig",
    "RandomConfig",
    "RandomRecommender",
    "RecentPopularity",
    "RecentPopularityConfig",
    "Recommendations",
    "Recommender",
    "SegmentPopularity",
    "SegmentPopularityConfig",
    "SideData",
    "get_model_class",
    "make_model",
    "top_k",
]
