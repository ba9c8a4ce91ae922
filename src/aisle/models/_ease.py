"""EASE (Steck, 2019): a closed-form item-item linear autoencoder.

``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹`` and a zero diagonal. The inverse comes from a
Cholesky factorisation of the symmetric positive definite Gram matrix (LAPACK ``potrf``/``potri``
through scipy), in float32 (default) or float64. Memory is ``n_items²`` floats: fine to ~30k items.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from pydantic import Field

from aisle.errors import ConfigError, DataError
from aisle.models._base import FloatParam, ModelConfig, Recommender, SearchSpace

__all__ = ["EASE", "EASEConfig"]


def spd_inverse(a: np.ndarray, *, block: int = 256) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix by Cholesky (LAPACK potrf + potri), in place.

    ``a`` is overwritten and returned. A C-ordered symmetric matrix is handed to LAPACK as its
    transpose (the same matrix, Fortran-ordered), so nothing is copied; potri writes the lower
    triangle and the upper one is mirrored block by block (no n x n temporaries).
    """
    f = a.T if a.flags.c_contiguous and not a.flags.f_contiguous else a
    potrf, potri = sla.lapack.get_lapack_funcs(("potrf", "potri"), (f,))
    chol, info = potrf(f, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise DataError(f"the Gram matrix is not positive definite (LAPACK potrf info={info}); raise l2")
    inv, info = potri(chol, lower=True, overwrite_c=True)
    if info != 0:
        raise DataError(f"inverting the Gram matrix failed (LAPACK potri info={info})")
    n = inv.shape[0]
    for j0 in range(0, n, block):
        j1 = min(j0 + block, n)
        inv[:j0, j0:j1] = inv[j0:j1, :j0].T
        diag = inv[j0:j1, j0:j1]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
    out: np.ndarray = inv.T if a is not f else inv  # back in the caller's memory order
    return out


class EASEConfig(ModelConfig):
    """Config of :class:`EASE`.

    Attributes:
        l2: the ridge penalty λ (Steck reports 200-1000 on MovieLens-scale data).
        dtype: float precision of the Gram matrix and its inverse.
        binarize: use 0/1 interactions (the paper's setting) instead of weights.
        max_items: refuse catalogs larger than this (memory guard).
    """

    l2: float = Field(default=500.0, gt=0)
    dtype: Literal["float32", "float64"] = "float32"
    binarize: bool = True
    max_items: int = Field(default=40_000, gt=0)


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: scores = history @ B."""

    name: ClassVar[str] = "ease"
    Config: ClassVar[type[ModelConfig]] = EASEConfig
    config: EASEConfig
    search_space: ClassVar[SearchSpace] = {"l2": FloatParam(1.0, 20_000.0, log=True)}

    def _prep(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(matrix, dtype=self.config.dtype)
        if self.config.binarize:
            x.data = np.ones_like(x.data)
        return x

    def _fit(self, matrix: sp.csr_matrix) -> None:
        n_items = matrix.shape[1]
        if n_items > self.config.max_items:
            raise ConfigError(
                f"EASE needs n_items² memory; {n_items} items exceed max_items={self.config.max_items}. "
                "Filter rare items (min_item_events) or raise max_items"
            )
        x = self._prep(matrix)
        gram = np.asarray((x.T @ x).todense(), dtype=self.config.dtype)
        gram[np.diag_indices(n_items)] += self.config.l2
        b = spd_inverse(gram)  # P, in place
        b /= -np.diag(b)[None, :]  # B = -P / diag(P), column by column, in place
        b[np.diag_indices(n_items)] = 0.0
        self.weights_ = b.astype(self.config.dtype, copy=False)

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray(self._prep(rows) @ self.weights_)

    def _item_vectors(self) -> np.ndarray:
        return np.asarray(self.weights_.T)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = state["weights"]
