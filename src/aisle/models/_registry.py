"""Short model names -> classes, in one place. A typo fails with the list of valid names."""

from __future__ import annotations

import difflib
from typing import Any

from aisle.errors import ConfigError
from aisle.models._base import Recommender
from aisle.models._baselines import RandomRecommender, RecentPopularity, SegmentPopularity
from aisle.models._bpr import BPR
from aisle.models._coldstart import ContentCF
from aisle.models._content import ContentBased
from aisle.models._ease import EASE
from aisle.models._gru4rec import GRU4Rec
from aisle.models._hybrid import Hybrid
from aisle.models._ials import IALS
from aisle.models._itemknn import ItemKNN
from aisle.models._ncf import MF, NeuMF
from aisle.models._popularity import Popularity
from aisle.models._sasrec import SASRec
from aisle.models._sknn import VSKNN, SessionKNN
from aisle.models._two_tower import TwoTower

__all__ = ["MODELS", "get_model_class", "make_model"]

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (Popularity, RecentPopularity, RandomRecommender, SegmentPopularity, ItemKNN, EASE, IALS, BPR,
                SASRec, GRU4Rec, SessionKNN, VSKNN, TwoTower, MF, NeuMF,
                ContentBased, ContentCF, Hybrid)
}


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model '{name}'; valid names: {', '.join(sorted(MODELS))}.{hint}") from None


def make_model(name: str, **params: Any) -> Recommender:
    """Build a model by short name with config overrides, e.g. ``make_model("ease", l2=300)``."""
    return get_model_class(name)(**params)
