"""Uncertainty for offline results: bootstrap confidence intervals and paired model comparisons.

Per-user metric values are the unit of resampling (users are the independent draws; the items of
one user are not). ``nan`` values (users for whom a metric is undefined) are dropped first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from aisle.errors import ConfigError, DataError

__all__ = ["ConfidenceInterval", "PairedComparison", "bootstrap_ci", "paired_comparison"]


@dataclass(frozen=True)
class ConfidenceInterval:
    """A mean with its percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n": self.n, "level": self.level}


def _boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 200) -> np.ndarray:
    """Means of ``n_boot`` resamples with replacement, computed in chunks to bound memory."""
    n = values.size
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int64 if n > 2**31 - 1 else np.int32)
        out[start:start + b] = values[idx].mean(axis=1)
    return out


def bootstrap_ci(values: np.ndarray, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> ConfidenceInterval:
    """Percentile bootstrap interval of the mean of ``values`` (nan dropped).

    Args:
        values: one value per user.
        level: coverage of the interval, e.g. 0.95.
        n_boot: bootstrap resamples.
        seed: RNG seed (results are reproducible).
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise DataError("no values to bootstrap (every value is nan)")
    means = _boot_means(v, n_boot, np.random.default_rng(seed))
    tail = (1 - level) / 2
    return ConfidenceInterval(float(v.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)),
                              int(v.size), level)


@dataclass(frozen=True)
class PairedComparison:
    """Model B minus model A on the same users."""

    metric: str
    mean_a: float
    mean_b: float
    diff: ConfidenceInterval
    t_pvalue: float
    wilcoxon_pvalue: float
    n_users: int

    @property
    def relative_change(self) -> float:
        return self.diff.mean / self.mean_a if self.mean_a else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "diff": self.diff.to_dict(),
            "relative_change": self.relative_change,
            "t_pvalue": self.t_pvalue,
            "wilcoxon_pvalue": self.wilcoxon_pvalue,
            "n_users": self.n_users,
        }


def paired_comparison(
    users_a: np.ndarray,
    values_a: np.ndarray,
    users_b: np.ndarray,
    values_b: np.ndarray,
    *,
    metric: str = "",
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """Paired per-user test of B against A: bootstrap CI of the mean difference, paired t-test and
    Wilcoxon signed-rank p-values, over the users both results share (nan dropped).
    """
    _, ia, ib = np.intersect1d(np.asarray(users_a, dtype=object).astype(str),
                                    np.asarray(users_b, dtype=object).astype(str), return_indices=True)
    a = np.asarray(values_a, dtype=np.float64)[ia]
    b = np.asarray(values_b, dtype=np.float64)[ib]
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if a.size < 2:
        raise DataError(f"a paired comparison needs at least 2 shared users with values; found {a.size}")
    d = b - a
    t_p = float(stats.ttest_rel(b, a).pvalue) if np.any(d != 0) else 1.0
    w_p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue) if np.count_nonzero(d) > 0 else 1.0
    return PairedComparison(metric, float(a.mean()), float(b.mean()),
                            bootstrap_ci(d, level=level, n_boot=n_boot, seed=seed), t_p, w_p, int(a.size))
