"""Popularity baselines: the floor every personalised model must beat."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from aisle.models._base import CategoricalParam, ModelConfig, Recommender, SearchSpace

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(ModelConfig):
    """Config of :class:`Popularity`.

    Attributes:
        by: ``"users"`` counts distinct users per item; ``"weight"`` sums interaction weights.
    """

    by: Literal["users", "weight"] = "users"


class Popularity(Recommender):
    """Global popularity: every user gets the most popular items they have not seen."""

    name: ClassVar[str] = "pop"
    Config: ClassVar[type[ModelConfig]] = PopularityConfig
    config: PopularityConfig
    search_space: ClassVar[SearchSpace] = {"by": CategoricalParam(("users", "weight"))}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        if self.config.by == "users":
            self.scores_ = np.asarray((matrix > 0).sum(axis=0), dtype=np.float64).ravel()
        else:
            self.scores_ = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.tile(self.scores_, (rows.shape[0], 1))

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scores_ = state["scores"]


