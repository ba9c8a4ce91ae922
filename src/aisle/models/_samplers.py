"""Negative samplers: reusable components for models trained on sampled negatives.

Every sampler draws item indices and knows its own sampling distribution ``Q``, so a sampled
softmax can apply the logQ correction (Yi et al., RecSys 2019: subtract ``log Q(item)`` from the
logit of each sampled or in-batch item) and the popularity bias of the sampler stays visible:

* :class:`UniformSampler`: every item equally likely. Popular items are rarely negatives, so
  models trained this way tend to over-recommend popular items.
* :class:`PopularitySampler`: ``Q(i) ∝ (count_i + 1)^alpha`` (word2vec's 0.75 by default); popular
  items are pushed down more often, which counteracts popularity bias (``alpha=0`` is uniform).
* :class:`InBatchSampler`: the other rows' positives of a training batch serve as negatives; an
  item appears with probability proportional to its frequency in the training pairs, which the
  logQ correction removes.
* :class:`HardNegativeSampler`: draws a pool from a base sampler and keeps the items the current
  model scores highest (Rendle & Freudenthaler 2014, adaptive sampling), skipping positives.
* :class:`MixedSampler`: in-batch negatives plus uniformly drawn ones (Yang et al., WWW 2020,
  mixed negative sampling), each with its own ``Q``.

``sampler_by_name("popularity", counts, alpha=0.5)`` builds one from a config string; the
evaluation reports each trained model's average recommendation popularity (``arp@k``) so the
bias a sampler leaves is measured, not assumed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp

from aisle.errors import ConfigError

__all__ = [
    "SAMPLERS",
    "HardNegativeSampler",
    "InBatchSampler",
    "MixedSampler",
    "NegativeSampler",
    "PopularitySampler",
    "SamplerName",
    "UniformSampler",
    "sampler_by_name",
]

SamplerName = Literal["uniform", "popularity", "in-batch", "hard", "mixed"]
SAMPLERS: tuple[str, ...] = ("uniform", "popularity", "in-batch", "hard", "mixed")


def _drop_positives(
    draws: np.ndarray, rows: np.ndarray, positives: sp.csr_matrix | None, redraw: Callable[[int], np.ndarray],
    tries: int = 50,
) -> np.ndarray:
    """Redraw (up to ``tries`` times) sampled items that are positives of their row's user."""
    if positives is None or draws.size == 0:
        return draws
    pos = sp.csr_matrix(positives)
    for _ in range(tries):
        flat_rows = np.repeat(rows, draws.shape[1])
        hit = np.asarray(pos[flat_rows, draws.ravel()]).ravel() > 0
        if not hit.any():
            break
        flat = draws.ravel()
        flat[hit] = redraw(int(hit.sum()))
        draws = flat.reshape(draws.shape)
    return draws


class NegativeSampler(ABC):
    """Draws negative item indices; ``log_q`` gives the log sampling probability per item."""

    name: str = ""

    def __init__(self, n_items: int) -> None:
        if n_items < 1:
            raise ConfigError(f"a sampler needs at least one item, got n_items={n_items}")
        self.n_items = int(n_items)

    @abstractmethod
    def probabilities(self) -> np.ndarray:
        """``Q(i)`` for every item (sums to 1)."""

    def log_q(self, items: np.ndarray) -> np.ndarray:
        """``log Q(item)`` for the given item indices (for the logQ correction)."""
        out: np.ndarray = np.log(np.maximum(self.probabilities()[items], 1e-30))
        return out

    def sample(
        self, rows: np.ndarray, n: int, rng: np.random.Generator, *, positives: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """``(len(rows), n)`` item indices; with ``positives`` (users × items), the row's own
        positives are redrawn (up to 50 times; a user who likes almost everything may keep some)."""
        p = self.probabilities()
        draws = rng.choice(self.n_items, size=(len(rows), n), p=p)
        return _drop_positives(draws, np.asarray(rows), positives, lambda m: rng.choice(self.n_items, size=m, p=p))

    def expected_popularity(self, counts: np.ndarray) -> float:
        """Mean training count of a sampled negative: how hard this sampler pushes on popular items."""
        return float(self.probabilities() @ np.asarray(counts, dtype=np.float64))


class UniformSampler(NegativeSampler):
    """Every item equally likely."""

    name = "uniform"

    def probabilities(self) -> np.ndarray:
        return np.full(self.n_items, 1.0 / self.n_items)

    def sample(
        self, rows: np.ndarray, n: int, rng: np.random.Generator, *, positives: sp.csr_matrix | None = None
    ) -> np.ndarray:
        draws = rng.integers(0, self.n_items, size=(len(rows), n))
        return _drop_positives(draws, np.asarray(rows), positives, lambda m: rng.integers(0, self.n_items, size=m))


class PopularitySampler(NegativeSampler):
    """``Q(i) ∝ (count_i + 1)^alpha``."""

    name = "popularity"

    def __init__(self, counts: np.ndarray, alpha: float = 0.75) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        super().__init__(counts.size)
        if not np.isfinite(alpha) or alpha < 0:
            raise ConfigError(f"popularity sampler alpha must be >= 0, got {alpha}")
        if (counts < 0).any():
            raise ConfigError("popularity sampler counts must be non-negative")
        w = (counts + 1.0) ** alpha
        self._p: np.ndarray = w / w.sum()
        self._cdf: np.ndarray = np.cumsum(self._p)
        self.alpha = float(alpha)

    def probabilities(self) -> np.ndarray:
        return self._p

    def _draw(self, rng: np.random.Generator, size: int | tuple[int, int]) -> np.ndarray:
        u = rng.random(size) * self._cdf[-1]
        out: np.ndarray = np.minimum(np.searchsorted(self._cdf, u, side="right"), self.n_items - 1)
        return out

    def sample(
        self, rows: np.ndarray, n: int, rng: np.random.Generator, *, positives: sp.csr_matrix | None = None
    ) -> np.ndarray:
        draws = self._draw(rng, (len(rows), n))
        return _drop_positives(draws, np.asarray(rows), positives, lambda m: self._draw(rng, m))


class InBatchSampler(NegativeSampler):
    """In-batch negatives: the batch's other positives. ``Q`` is the items' share of training pairs.

    ``sample`` is not used for in-batch training (the negatives are the batch itself); it draws
    from the same distribution for completeness.
    """

    name = "in-batch"

    def __init__(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        super().__init__(counts.size)
        total = counts.sum()
        self._p: np.ndarray = counts / total if total > 0 else np.full(counts.size, 1.0 / counts.size)

    def probabilities(self) -> np.ndarray:
        return self._p


class HardNegativeSampler(NegativeSampler):
    """From a pool drawn by ``base``, keep the ``n`` items the current model scores highest.

    ``score_fn(rows, items)`` returns ``(len(rows), pool)`` scores for each row's pool items (the
    model's current scores). ``Q`` reported for logQ is the base sampler's (the selection is
    deterministic given the pool, so no unbiased correction exists; use hard negatives with a
    pairwise or pointwise loss rather than a corrected softmax).
    """

    name = "hard"

    def __init__(self, base: NegativeSampler, score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 pool: int = 20) -> None:
        super().__init__(base.n_items)
        if pool < 1:
            raise ConfigError(f"hard negative pool must be >= 1, got {pool}")
        self.base = base
        self.score_fn = score_fn
        self.pool = int(pool)

    def probabilities(self) -> np.ndarray:
        return self.base.probabilities()

    def sample(
        self, rows: np.ndarray, n: int, rng: np.random.Generator, *, positives: sp.csr_matrix | None = None
    ) -> np.ndarray:
        rows = np.asarray(rows)
        pool = self.base.sample(rows, max(self.pool, n), rng, positives=positives)
        scores = np.asarray(self.score_fn(rows, pool), dtype=np.float64)
        if scores.shape != pool.shape:
            raise ConfigError(f"hard negative score_fn returned shape {scores.shape}, expected {pool.shape}")
        order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return np.take_along_axis(pool, order, axis=1)


class MixedSampler(NegativeSampler):
    """Mixed negative sampling: in-batch negatives plus ``n`` uniformly drawn ones.

    ``sample`` returns the uniform part; the in-batch part comes from the batch. ``log_q`` of
    in-batch items is :attr:`in_batch`'s and of the uniform part :attr:`uniform`'s.
    """

    name = "mixed"

    def __init__(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        super().__init__(counts.size)
        self.in_batch = InBatchSampler(counts)
        self.uniform = UniformSampler(counts.size)

    def probabilities(self) -> np.ndarray:
        return self.uniform.probabilities()

    def sample(
        self, rows: np.ndarray, n: int, rng: np.random.Generator, *, positives: sp.csr_matrix | None = None
    ) -> np.ndarray:
        return self.uniform.sample(rows, n, rng, positives=positives)


def sampler_by_name(
    name: str, counts: np.ndarray, *, alpha: float = 0.75,
    score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, pool: int = 20,
) -> NegativeSampler:
    """A sampler from its config name; ``counts`` are the items' training interaction counts.

    ``hard`` draws its pool by popularity^alpha and needs ``score_fn``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if name == "uniform":
        return UniformSampler(counts.size)
    if name == "popularity":
        return PopularitySampler(counts, alpha)
    if name == "in-batch":
        return InBatchSampler(counts)
    if name == "mixed":
        return MixedSampler(counts)
    if name == "hard":
        if score_fn is None:
            raise ConfigError("the 'hard' sampler needs the model's score_fn(rows, items)")
        return HardNegativeSampler(PopularitySampler(counts, alpha), score_fn, pool)
    raise ConfigError(f"unknown negative sampler {name!r}; valid: {', '.join(SAMPLERS)}")
