"""Models: one contract (fit / recommend / score / similar_items / save / load) for every model."""

from aisle.models._base import ModelConfig, Recommendations, Recommender, top_k
from aisle.models._ease import EASE, EASEConfig
from aisle.models._popularity import Popularity, PopularityConfig
from aisle.models._registry import MODELS, get_model_class, make_model

__all__ = [
    "EASE",
    "MODELS",
    "EASEConfig",
    "ModelConfig",
    "Popularity",
    "PopularityConfig",
    "Recommendations",
    "Recommender",
    "get_model_class",
    "make_model",
    "top_k",
]
