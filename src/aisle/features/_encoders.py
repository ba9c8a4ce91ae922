"""Encoders: out-of-fold target encoding, hashing of high-cardinality ids, learned embeddings.

Target encoding replaces a category by the (smoothed) mean target of its rows. Computed on the
rows it is then evaluated on ("in fold"), it leaks each row's own label into its feature: a
category seen twice with one positive gets 0.5 for the positive row partly *because* of that
row. :class:`TargetEncoder` encodes each training row with statistics of the other folds only
(``fit_transform``) and new rows with statistics of all training rows (``transform``).

:func:`hash_ids` maps ids to a fixed number of buckets with a stable, seeded hash (the same in
every process and version), and :func:`learn_item_embeddings` learns item vectors from
co-occurrence in sessions (PPMI and a truncated SVD) to be served through an
:class:`~aisle.features.EmbeddingView`. :func:`embeddings_from_model` exports the factors of a
fitted factor model the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from aisle.errors import ConfigError, DataError, NotFittedError

from ._definitions import pydantic_message

__all__ = [
    "TargetEncoder",
    "TargetEncoderConfig",
    "embeddings_from_model",
    "hash_ids",
    "learn_item_embeddings",
    "naive_target_encoding",
]


class TargetEncoderConfig(BaseModel):
    """Settings of :class:`TargetEncoder`.

    Attributes:
        n_folds: folds for the out-of-fold encoding of training rows.
        smoothing: pseudo-rows pulling each category toward the prior (the overall mean).
        seed: the seed of the fold assignment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_folds: int = Field(5, ge=2)
    smoothing: float = Field(20.0, ge=0.0)
    seed: int = 0


def _codes(categories: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.object_]]:
    values = pd.Series(np.asarray(categories, dtype=object)).astype(str)
    codes, uniques = pd.factorize(values)
    return codes.astype(np.intp), np.asarray(uniques, dtype=object)


def naive_target_encoding(categories: ArrayLike, target: ArrayLike, smoothing: float = 0.0) -> NDArray[np.float64]:
    """In-fold target encoding: each row encoded with statistics that include its own label.

    This is what :class:`TargetEncoder` avoids; it is here to show the leak (its training-set
    metrics look better than the encoding deserves).
    """
    codes, uniques = _codes(categories)
    y = np.asarray(target, dtype=np.float64)
    sums = np.bincount(codes, weights=y, minlength=len(uniques))
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    prior = float(y.mean()) if y.size else 0.0
    return (sums[codes] + smoothing * prior) / (counts[codes] + smoothing)


class TargetEncoder:
    """Smoothed target encoding, out-of-fold for training rows.

    ``encoding(c) = (sum of targets in c + smoothing * prior) / (rows in c + smoothing)``; an
    unseen category gets the prior.

    Args:
        config: the settings (or pass them as keyword arguments).

    Example:
        >>> enc = TargetEncoder(n_folds=2, smoothing=1.0)
        >>> train = enc.fit_transform(["a", "a", "b", "b"], [1, 0, 1, 1])
        >>> [round(float(v), 3) for v in enc.transform(["a", "zzz"])]
        [0.583, 0.75]
    """

    Config = TargetEncoderConfig

    def __init__(self, config: TargetEncoderConfig | None = None, **overrides: Any) -> None:
        try:
            if config is None:
                config = TargetEncoderConfig(**overrides)
            elif overrides:
                config = TargetEncoderConfig(**{**config.model_dump(), **overrides})
        except PydanticValidationError as exc:
            raise ConfigError(f"invalid TargetEncoder config: {pydantic_message(exc)}") from exc
        self.config = config

    def fit(self, categories: ArrayLike, target: ArrayLike) -> Self:
        """Learn per-category statistics from all rows (for encoding new rows).

        Raises:
            DataError: lengths differ or there are no rows.
        """
        codes, uniques = _codes(categories)
        y = np.asarray(target, dtype=np.float64)
        if y.shape[0] != codes.shape[0] or y.size == 0:
            raise DataError(f"target encoding needs as many targets as categories (got {y.shape[0]} and {codes.shape[0]}, non-empty)")
        self.prior_ = float(y.mean())
        sums = np.bincount(codes, weights=y, minlength=len(uniques))
        counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
        self.categories_: dict[str, tuple[float, float]] = {
            str(c): (float(s), float(n)) for c, s, n in zip(uniques, sums, counts, strict=True)
        }
        return self

    def transform(self, categories: ArrayLike) -> NDArray[np.float64]:
        """Encode rows with the statistics of every training row (use for new data).

        Raises:
            NotFittedError: before :meth:`fit`.
        """
        if not hasattr(self, "categories_"):
            raise NotFittedError("TargetEncoder is not fitted; call fit or fit_transform first")
        m = self.config.smoothing
        prior = self.prior_
        out = np.empty(len(np.asarray(categories, dtype=object)), dtype=np.float64)
        for i, c in enumerate(pd.Series(np.asarray(categories, dtype=object)).astype(str)):
            s, n = self.categories_.get(c, (0.0, 0.0))
            out[i] = (s + m * prior) / (n + m) if n + m > 0 else prior
        return out

    def fit_transform(
        self, categories: ArrayLike, target: ArrayLike, *, folds: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Out-of-fold encoding of training rows, and :meth:`fit` on all of them.

        Args:
            categories: one category per row.
            target: one target per row (0/1 or any number).
            folds: the fold of each row (e.g. time-based or grouped by user); default: a
                seeded random assignment to ``n_folds`` folds.

        Returns:
            Each row encoded with statistics of the other folds only (prior of those folds too).
        """
        self.fit(categories, target)
        codes, uniques = _codes(categories)
        y = np.asarray(target, dtype=np.float64)
        n, k = len(uniques), self.config.n_folds
        if folds is None:
            rng = np.random.default_rng(self.config.seed)
            fold = rng.permutation(np.arange(codes.shape[0]) % k)
        else:
            fold = pd.factorize(np.asarray(folds))[0]
            if fold.shape[0] != codes.shape[0]:
                raise DataError("folds must give one fold per row")
        total_s = np.bincount(codes, weights=y, minlength=n)
        total_n = np.bincount(codes, minlength=n).astype(np.float64)
        m = self.config.smoothing
        out = np.empty(codes.shape[0], dtype=np.float64)
        for f in np.unique(fold):
            rows = fold == f
            other = ~rows
            if not other.any():
                raise DataError("out-of-fold encoding needs at least two folds with rows")
            prior = float(y[other].mean())
            in_s = np.bincount(codes[rows], weights=y[rows], minlength=n)
            in_n = np.bincount(codes[rows], minlength=n).astype(np.float64)
            s = (total_s - in_s)[codes[rows]]
            c = (total_n - in_n)[codes[rows]]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[rows] = np.where(c + m > 0, (s + m * prior) / (c + m), prior)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Config and fitted statistics as JSON-ready data (no pickle)."""
        if not hasattr(self, "categories_"):
            raise NotFittedError("TargetEncoder is not fitted")
        return {"config": self.config.model_dump(), "prior": self.prior_,
                "categories": {k: list(v) for k, v in self.categories_.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetEncoder:
        """Rebuild from :meth:`to_dict`."""
        enc = cls(TargetEncoderConfig(**data["config"]))
        enc.prior_ = float(data["prior"])
        enc.categories_ = {str(k): (float(v[0]), float(v[1])) for k, v in data["categories"].items()}
        return enc

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict()))
        return p

    @classmethod
    def load(cls, path: str | Path) -> TargetEncoder:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def hash_ids(
    ids: ArrayLike, n_buckets: int, *, seed: int = 0, signed: bool = False
) -> NDArray[np.int64] | tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Stable seeded hashing of ids into ``n_buckets`` (the hashing trick).

    The hash (SipHash via pandas) is the same in every process and run, unlike ``hash()``.

    Args:
        ids: the ids (any values; converted to text).
        n_buckets: number of buckets.
        seed: changes the assignment (for independent hash functions).
        signed: also return a ±1 sign per id (so collisions cancel in expectation).

    Returns:
        Bucket per id, and with ``signed`` the signs too.
    """
    if n_buckets < 1:
        raise ConfigError(f"n_buckets must be at least 1, got {n_buckets}")
    text = np.asarray(pd.Series(np.asarray(ids, dtype=object)).astype(str), dtype=object)
    key = f"aisle-{seed:010d}"[-16:].rjust(16, "0")
    h = pd.util.hash_array(text, hash_key=key, categorize=False)
    buckets = (h % np.uint64(n_buckets)).astype(np.int64)
    if not signed:
        return buckets
    signs = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0)
    return buckets, signs


def learn_item_embeddings(
    events: pd.DataFrame, dim: int = 16, *, context: str = "session_id", min_events: int = 1, seed: int = 0
) -> tuple[list[str], NDArray[np.float32]]:
    """Item vectors from co-occurrence: PPMI of items seen in the same context, truncated SVD.

    Args:
        events: canonical events.
        dim: the vector length.
        context: the column grouping events (``session_id``, falling back to ``user_id``).
        min_events: items with fewer events are left out.
        seed: the SVD's start vector seed.

    Returns:
        Item ids and one L2-normalised float32 vector per item (zeros for items that co-occur
        with nothing).
    """
    from scipy.sparse.linalg import svds

    ctx = events[context] if context in events.columns and events[context].notna().any() else events["user_id"]
    frame = pd.DataFrame({"c": ctx.astype(str).to_numpy(), "i": events["item_id"].astype(str).to_numpy()})
    counts = frame["i"].value_counts()
    keep = counts[counts >= min_events].index
    frame = frame[frame["i"].isin(keep)].drop_duplicates()
    c_codes, _ = pd.factorize(frame["c"])
    i_codes, items = pd.factorize(frame["i"])
    n_items = len(items)
    if n_items == 0:
        return [], np.zeros((0, dim), dtype=np.float32)
    x = sp.csr_matrix((np.ones(len(frame)), (c_codes, i_codes)), shape=(int(c_codes.max()) + 1, n_items))
    co = (x.T @ x).tocoo()
    off = co.row != co.col
    rows, cols, vals = co.row[off], co.col[off], co.data[off]
    total = vals.sum()
    if total == 0:
        return [str(i) for i in items], np.zeros((n_items, dim), dtype=np.float32)
    marg = np.bincount(rows, weights=vals, minlength=n_items)
    pmi = np.log(vals * total / (marg[rows] * marg[cols]))
    pos = pmi > 0
    ppmi = sp.csr_matrix((pmi[pos], (rows[pos], cols[pos])), shape=(n_items, n_items))
    k = min(dim, n_items - 1)
    vectors = np.zeros((n_items, dim), dtype=np.float64)
    if k >= 1 and ppmi.nnz:
        v0 = np.random.default_rng(seed).standard_normal(n_items)
        u, s, _ = svds(ppmi, k=k, v0=v0)
        order = np.argsort(-s)
        vectors[:, :k] = u[:, order] * np.sqrt(s[order])
        # fix each component's sign for reproducibility
        signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)])
        vectors *= np.where(signs == 0, 1.0, signs)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return [str(i) for i in items], vectors.astype(np.float32)


def embeddings_from_model(model: Any, kind: str = "item") -> tuple[list[str], NDArray[np.float32]]:
    """The factors of a fitted factor model (iALS, BPR ...) with their ids.

    The model needs ``<kind>_factors_`` (an array) and ``<kind>s_`` (a vocabulary with
    ``to_list()``), as aisle's factor models have.

    Raises:
        ConfigError: the model has no such factors.
    """
    factors = getattr(model, f"{kind}_factors_", None)
    vocab = getattr(model, f"{kind}s_", None)
    if factors is None or vocab is None or not hasattr(vocab, "to_list"):
        raise ConfigError(
            f"{type(model).__name__} has no {kind} factors to export (needs {kind}_factors_ and {kind}s_); "
            "use a fitted factor model such as ials or bpr"
        )
    ids = [str(i) for i in vocab.to_list()]
    arr = np.asarray(factors, dtype=np.float32)
    if arr.shape[0] != len(ids):
        raise DataError(f"{kind} factors have {arr.shape[0]} rows but the vocabulary has {len(ids)} ids")
    return ids, arr
