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
from aisle.models._coldstart import (
    ContentCF,
    ContentCFConfig,
    ContentToFactors,
    Onboarding,
    OnboardingPolicy,
)
from aisle.models._content import (
    ColdItemsMixin,
    ContentBased,
    ContentBasedConfig,
    ItemEncoder,
    attribute_matrix,
    encode_texts,
)
from aisle.models._ease import EASE, EASEConfig
from aisle.models._gru4rec import GRU4Rec, GRU4RecConfig
from aisle.models._hybrid import Hybrid, HybridConfig
from aisle.models._ials import IALS, IALSConfig
from aisle.models._itemknn import ItemKNN, ItemKNNConfig
from aisle.models._ncf import MF, MFConfig, NeuMF, NeuMFConfig
from aisle.models._popularity import Popularity, PopularityConfig
from aisle.models._registry import MODELS, get_model_class, make_model
from aisle.models._sasrec import SASRec, SASRecConfig
from aisle.models._sknn import VSKNN, SessionKNN, SessionKNNConfig, VSKNNConfig
from aisle.models._two_tower import TwoTower, TwoTowerConfig

__all__ = [
    "BPR",
    "EASE",
    "IALS",
    "MF",
    "MODELS",
    "VSKNN",
    "BPRConfig",
    "ColdItemsMixin",
    "ContentBased",
    "ContentBasedConfig",
    "ContentCF",
    "ContentCFConfig",
    "ContentToFactors",
    "EASEConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "Hybrid",
    "HybridConfig",
    "IALSConfig",
    "ItemEncoder",
    "ItemKNN",
    "ItemKNNConfig",
    "MFConfig",
    "ModelConfig",
    "NeuMF",
    "NeuMFConfig",
    "Onboarding",
    "OnboardingPolicy",
    "Popularity",
    "PopularityConfig",
    "RandomConfig",
    "RandomRecommender",
    "RecentPopularity",
    "RecentPopularityConfig",
    "Recommendations",
    "Recommender",
    "SASRec",
    "SASRecConfig",
    "SegmentPopularity",
    "SegmentPopularityConfig",
    "SessionKNN",
    "SessionKNNConfig",
    "SideData",
    "TwoTower",
    "TwoTowerConfig",
    "VSKNNConfig",
    "attribute_matrix",
    "encode_texts",
    "get_model_class",
    "make_model",
    "top_k",
]
