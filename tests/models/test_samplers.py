"""Negative samplers: distributions, positive rejection, logQ, hard negatives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aisle.errors import ConfigError
from aisle.models._samplers import (
    HardNegativeSampler,
    InBatchSampler,
    MixedSampler,
    PopularitySampler,
    UniformSampler,
    sampler_by_name,
)

COUNTS = np.array([1000.0, 100.0, 10.0, 1.0, 0.0])


def test_uniform_is_flat_and_skips_positives() -> None:
    rng = np.random.default_rng(0)
    positives = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float32))
    s = UniformSampler(5)
    draws = s.sample(np.array([0, 1] * 500), 4, rng, positives=positives)
    assert draws.shape == (1000, 4)
    assert not np.isin(draws[0::2], [0, 1]).any() and not (draws[1::2] == 4).any()
    freq = np.bincount(s.sample(np.zeros(20000, int), 1, rng).ravel(), minlength=5) / 20000
    np.testing.assert_allclose(freq, 0.2, atol=0.02)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_popularity_matches_its_distribution(alpha: float) -> None:
    s = PopularitySampler(COUNTS, alpha)
    expected = (COUNTS + 1) ** alpha / ((COUNTS + 1) ** alpha).sum()
    np.testing.assert_allclose(s.probabilities(), expected)
    freq = np.bincount(s.sample(np.zeros(50000, int), 1, np.random.default_rng(1)).ravel(), minlength=5) / 50000
    np.testing.assert_allclose(freq, expected, atol=0.01)
    np.testing.assert_allclose(s.log_q(np.array([0, 4])), np.log(expected[[0, 4]]))


def test_popularity_pushes_harder_on_popular_items_than_uniform() -> None:
    assert PopularitySampler(COUNTS, 0.75).expected_popularity(COUNTS) > UniformSampler(5).expected_popularity(COUNTS)
    assert InBatchSampler(COUNTS).expected_popularity(COUNTS) > PopularitySampler(COUNTS, 0.75).expected_popularity(COUNTS)


def test_hard_negatives_keep_the_highest_scored() -> None:
    item_scores = np.array([0.0, 5.0, 1.0, 4.0, 2.0])
    s = HardNegativeSampler(UniformSampler(5), lambda rows, items: item_scores[items], pool=8)
    rng = np.random.default_rng(2)
    draws = s.sample(np.arange(1000), 2, rng)
    uniform = UniformSampler(5).sample(np.arange(1000), 2, rng)
    assert (draws[:, 0] == 1).mean() > 0.8  # the best-scored item whenever it is in the pool
    assert item_scores[draws].mean() > item_scores[uniform].mean() + 1.5


def test_mixed_and_in_batch_expose_their_q() -> None:
    m = MixedSampler(COUNTS)
    np.testing.assert_allclose(m.in_batch.probabilities(), COUNTS / COUNTS.sum())
    np.testing.assert_allclose(m.uniform.probabilities(), 0.2)


def test_factory_and_errors() -> None:
    assert sampler_by_name("popularity", COUNTS, alpha=0.5).name == "popularity"
    with pytest.raises(ConfigError, match="valid: uniform"):
        sampler_by_name("nope", COUNTS)
    with pytest.raises(ConfigError, match="score_fn"):
        sampler_by_name("hard", COUNTS)
    with pytest.raises(ConfigError, match="alpha"):
        PopularitySampler(COUNTS, -1)
