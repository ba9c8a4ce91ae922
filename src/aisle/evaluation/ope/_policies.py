"""Target policies as action distributions: the probability of each item at each slot.

Every estimator reads a target policy as an :class:`ActionDistribution`: ``probs[g, a, k]`` is
the probability that the policy shows action ``a`` at position ``k`` to a row of group ``g``.
Rows share a group when they share a context (one group for a context-free policy such as
Bernoulli TS, one group per distinct user for a model policy), which keeps memory at
``n_groups × n_actions × n_positions`` instead of obp's ``n_rounds × n_actions × n_positions``.

Policies built here:

* :func:`uniform_policy` — the uniform-random policy (``1/n_actions`` at every position).
* :func:`top_k_policy` — deterministic: the item ranked ``k``-th by score goes to slot ``k``.
* :func:`epsilon_greedy_policy` — the top-k list with probability ``1 - ε``, otherwise a
  uniformly random list.
* :func:`softmax_policy` — Plackett-Luce sampling without replacement from
  ``softmax(score / temperature)``; exact position marginals for up to 3 slots
  (:func:`plackett_luce_marginals`), seeded Monte Carlo beyond.
* :func:`model_policy` — any aisle model (``score(users, items)``) turned into one of the above,
  over the logged action set.
* :func:`bts_policy` / :func:`obd_bts_policy` — the Bernoulli Thompson Sampling policy of the
  Open Bandit Dataset, reproduced by Monte Carlo from its published Beta prior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol, runtime_checkable

import numpy as np

from aisle.errors import ConfigError

__all__ = [
    "DEFAULT_BTS_DRAWS",
    "ActionDistribution",
    "PolicyKind",
    "SupportsScore",
    "bts_policy",
    "epsilon_greedy_policy",
    "model_policy",
    "obd_bts_policy",
    "plackett_luce_marginals",
    "rank_marginals",
    "simulate_bts_rankings",
    "softmax_policy",
    "top_k_policy",
    "uniform_policy",
]

#: Monte Carlo draws for the Bernoulli TS action distribution (obp uses 100,000). 20,000 keeps
#: the largest standard error of a position probability at 0.5/sqrt(20,000) = 0.0035, and the
#: Monte Carlo standard error of the OBD estimates at about 2% of their bootstrap standard error
#: (docs/ope.md shows the measurement); the simulation takes about 0.2 s per campaign.
DEFAULT_BTS_DRAWS: Final[int] = 20_000

PolicyKind = Literal["top-k", "epsilon-greedy", "softmax"]

_SUM_TOL: Final[float] = 1e-6
_CHUNK_ELEMENTS: Final[int] = 4_000_000


@dataclass(frozen=True, eq=False)
class ActionDistribution:
    """A target policy's probability of every (action, position), per context group.

    Attributes:
        probs: ``(n_groups, n_actions, n_positions)``; every ``probs[g, :, k]`` sums to 1.
        group: the group of every logged row (``(n_rounds,)`` ints), or ``None``: one group
            shared by every row, or (obp's layout) one group per row.
        meta: how the distribution was made (policy name, draws, seed ...), for reports.
    """

    probs: np.ndarray
    group: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.probs
        if p.ndim != 3 or 0 in p.shape:
            raise ConfigError(
                f"an action distribution must be (n_groups, n_actions, n_positions); got shape {p.shape}"
            )
        if not np.all(np.isfinite(p)) or (p < 0).any():
            raise ConfigError("action probabilities must be finite and non-negative")
        sums = p.sum(axis=1)
        worst = float(np.abs(sums - 1.0).max())
        if worst > _SUM_TOL:
            raise ConfigError(
                f"the probabilities of the actions at each position must sum to 1 (off by {worst:.3g}); "
                "normalise the policy"
            )
        if self.group is not None:
            g = self.group
            if g.ndim != 1 or (g.size and (g.min() < 0 or g.max() >= p.shape[0])):
                raise ConfigError(f"'group' must be 1-d indices into the {p.shape[0]} groups")

    @property
    def n_groups(self) -> int:
        """The number of distinct contexts."""
        return int(self.probs.shape[0])

    @property
    def n_actions(self) -> int:
        """The size of the action set."""
        return int(self.probs.shape[1])

    @property
    def n_positions(self) -> int:
        """The number of slots."""
        return int(self.probs.shape[2])

    @classmethod
    def shared(cls, probs: np.ndarray, meta: Mapping[str, Any] | None = None) -> ActionDistribution:
        """One distribution for every row (a context-free policy).

        Args:
            probs: ``(n_actions, n_positions)`` or ``(n_actions,)`` for a single slot.
            meta: provenance for reports.

        Returns:
            The distribution with one group.
        """
        arr = np.asarray(probs, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        return cls(_frozen(arr[None, :, :]), None, dict(meta or {}))

    @classmethod
    def from_array(cls, action_dist: np.ndarray, meta: Mapping[str, Any] | None = None) -> ActionDistribution:
        """obp's layout: ``(n_rounds, n_actions, n_positions)``, one group per logged row.

        Args:
            action_dist: the per-row distribution.
            meta: provenance for reports.

        Returns:
            The distribution.
        """
        arr = np.asarray(action_dist, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return cls(_frozen(arr), None, dict(meta or {}))

    def row_groups(self, n_rounds: int) -> np.ndarray:
        """The group of each of ``n_rounds`` logged rows.

        Raises:
            ConfigError: the distribution cannot be matched to that many rows.
        """
        if self.group is not None:
            if self.group.shape[0] != n_rounds:
                raise ConfigError(
                    f"the target policy has a group for {self.group.shape[0]} rows, the log has {n_rounds}"
                )
            return self.group
        if self.n_groups == 1:
            return np.zeros(n_rounds, dtype=np.int64)
        if self.n_groups == n_rounds:
            return np.arange(n_rounds, dtype=np.int64)
        raise ConfigError(
            f"the target policy has {self.n_groups} contexts but no 'group' index, and the log has "
            f"{n_rounds} rows; pass group= (row -> context) or one distribution per row"
        )

    def to_array(self, n_rounds: int) -> np.ndarray:
        """obp's ``(n_rounds, n_actions, n_positions)`` array (memory: all three multiplied)."""
        return np.asarray(self.probs[self.row_groups(n_rounds)])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float64)
    array.setflags(write=False)
    return array


def _scores_2d(scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ConfigError(f"scores must be (n_actions,) or (n_groups, n_actions); got shape {arr.shape}")
    if np.isposinf(arr).any():
        raise ConfigError("scores must not be +inf")
    return np.where(np.isnan(arr), -np.inf, arr)


def _check_positions(n_positions: int, n_actions: int) -> None:
    if not 1 <= n_positions <= n_actions:
        raise ConfigError(f"n_positions must lie in 1..n_actions={n_actions}; got {n_positions}")


def _ranking(scores: np.ndarray, n_positions: int) -> np.ndarray:
    """The indices of the top ``n_positions`` scores per row, best first, ties to the lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :n_positions]


def uniform_policy(n_actions: int, n_positions: int = 1) -> ActionDistribution:
    """The uniform-random policy: every item with probability ``1/n_actions`` at every slot.

    A list of distinct items drawn uniformly without replacement has exactly these marginals,
    which is how the Open Bandit Dataset's ``random`` policy logged (propensity ``1/n_items``).

    Args:
        n_actions: the size of the action set.
        n_positions: the number of slots.

    Returns:
        The shared distribution.
    """
    _check_positions(n_positions, n_actions)
    return ActionDistribution.shared(
        np.full((n_actions, n_positions), 1.0 / n_actions), {"policy": "uniform"}
    )


def top_k_policy(
    scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    n_positions: int = 1,
    *,
    group: np.ndarray | None = None,
) -> ActionDistribution:
    """The deterministic policy that shows the ``n_positions`` best-scored items in score order.

    Ties go to the lower action index; ``nan`` scores rank last.

    Args:
        scores: ``(n_actions,)`` for every row, or ``(n_groups, n_actions)``.
        n_positions: the number of slots.
        group: the group of every logged row (see :class:`ActionDistribution`).

    Returns:
        A 0/1 distribution.
    """
    s = _scores_2d(scores)
    _check_positions(n_positions, s.shape[1])
    top = _ranking(s, n_positions)
    probs = np.zeros((s.shape[0], s.shape[1], n_positions))
    rows = np.arange(s.shape[0])[:, None]
    probs[rows, top, np.arange(n_positions)[None, :]] = 1.0
    return ActionDistribution(_frozen(probs), group, {"policy": "top-k"})


def epsilon_greedy_policy(
    scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    n_positions: int = 1,
    epsilon: float = 0.1,
    *,
    group: np.ndarray | None = None,
) -> ActionDistribution:
    """The top-k list with probability ``1 - epsilon``, otherwise a uniformly random list.

    The random list has marginal ``1/n_actions`` at every slot, so
    ``probs = (1 - ε) · top_k + ε / n_actions``.

    Args:
        scores: ``(n_actions,)`` or ``(n_groups, n_actions)``.
        n_positions: the number of slots.
        epsilon: the exploration probability, in ``[0, 1]``.
        group: the group of every logged row.

    Returns:
        The distribution.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must lie in [0, 1]; got {epsilon}")
    greedy = top_k_policy(scores, n_positions, group=group).probs
    probs = (1.0 - epsilon) * greedy + epsilon / greedy.shape[1]
    return ActionDistribution(_frozen(probs), group, {"policy": "epsilon-greedy", "epsilon": epsilon})


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out: np.ndarray = np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))
    return out


def _pl_chunk(logits: np.ndarray, n_positions: int) -> np.ndarray:
    """Exact Plackett-Luce position marginals for up to 3 slots (see plackett_luce_marginals)."""
    g, n = logits.shape
    out = np.zeros((g, n, n_positions))
    lse = _logsumexp(logits, axis=1)
    logp0 = logits - lse[:, None]
    out[:, :, 0] = np.exp(logp0)
    if n_positions == 1:
        return out
    rows = np.arange(g)
    order = np.argsort(-logits, axis=1, kind="stable")
    t0 = order[:, 0]
    top = logits[rows, t0]
    # log-sum-exp of every item but b: exact for b != t0 (the top term keeps the sum >= 1) ...
    shifted = np.exp(logits - top[:, None])
    total = shifted.sum(axis=1)
    with np.errstate(divide="ignore"):
        lse_ex1 = top[:, None] + np.log(np.maximum(total[:, None] - shifted, 0.0))
        # ... and computed directly for b == t0
        masked = logits.copy()
        masked[rows, t0] = -np.inf
        lse_ex1[rows, t0] = _logsumexp(masked, axis=1)
    # logj[g, b, c] = log P(b at slot 0, c at slot 1)
    eye = np.eye(n, dtype=bool)
    logj = logp0[:, :, None] + logits[:, None, :] - lse_ex1[:, :, None]
    logj[:, eye] = -np.inf
    joint = np.exp(logj)
    out[:, :, 1] = joint.sum(axis=1)
    if n_positions == 2:
        return out
    # log-sum-exp of every item but b and c. T = the three best items, R = the rest; the largest
    # remaining logit m (the first of T not in {b, c}) is the shift, so nothing overflows, and
    # the R part (all <= m) is summed without cancelling against a dominant term.
    t = order[:, :3]
    lt = logits[rows[:, None], t]  # (g, 3), descending
    in_t = np.zeros((g, n), dtype=bool)
    in_t[rows[:, None], t] = True
    idx = np.arange(n)
    bc_hits = [
        (idx[None, :, None] == t[:, j][:, None, None]) | (idx[None, None, :] == t[:, j][:, None, None])
        for j in range(3)
    ]  # bc_hits[j][g, b, c]: t_j is b or c
    m = np.where(~bc_hits[0], lt[:, 0, None, None], np.where(~bc_hits[1], lt[:, 1, None, None], lt[:, 2, None, None]))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s_top = sum(np.where(bc_hits[j], 0.0, np.exp(lt[:, j, None, None] - m)) for j in range(3))
        rest = np.where(in_t, -np.inf, logits)  # (g, n)
        s_rest_all = np.exp(_logsumexp(rest, axis=1)[:, None, None] - m)
        e_b = np.where(in_t[:, :, None], 0.0, np.exp(logits[:, :, None] - m))
        e_c = np.where(in_t[:, None, :], 0.0, np.exp(logits[:, None, :] - m))
        s_rest = np.maximum(s_rest_all - e_b - e_c, 0.0)
        lse_ex2 = m + np.log(s_top + s_rest)
    # slot 2 for a in R: exp(l_a - l_t2) · Σ_{b≠c, a∉{b,c}} H[b, c] with H <= joint, no overflow
    with np.errstate(invalid="ignore"):
        h = np.where(np.isfinite(logj), np.exp(logj + lt[:, 2, None, None] - lse_ex2), 0.0)
    h_total = h.sum(axis=(1, 2))
    p2 = np.exp(rest - lt[:, 2, None]) * np.maximum(h_total[:, None] - h.sum(axis=2) - h.sum(axis=1), 0.0)
    # slot 2 for the three items of T: direct sums
    for j in range(3):
        a = t[:, j]
        la = logits[rows, a]
        keep = ~bc_hits[j]
        with np.errstate(invalid="ignore"):
            arg = np.where(keep & np.isfinite(logj), logj + la[:, None, None] - lse_ex2, -np.inf)
        p2[rows, a] = np.exp(arg).sum(axis=(1, 2))
    out[:, :, 2] = p2
    return out


def plackett_luce_marginals(logits: np.ndarray | Sequence[float], n_positions: int) -> np.ndarray:
    """Exact position marginals of a Plackett-Luce ranking (sampling without replacement).

    Slot 0 takes item ``a`` with probability ``softmax(logits)_a``; each next slot samples from
    the softmax of the items not yet placed. The marginal of slot 1 is
    ``Σ_b P(b first) · P(a | b first)`` and of slot 2 ``Σ_{b≠c} P(b, c first) · P(a | b, c)``,
    summed in log space (O(n_actions²) per context), so near-deterministic logits stay exact.

    Args:
        logits: ``(n_actions,)`` or ``(n_groups, n_actions)``; ``-inf`` means never shown.
        n_positions: 1, 2 or 3.

    Returns:
        ``(n_groups, n_actions, n_positions)`` marginals; each slot sums to 1.

    Raises:
        ConfigError: more than 3 slots, or fewer finite logits than slots.
    """
    s = _scores_2d(logits)
    if not 1 <= n_positions <= 3:
        raise ConfigError(f"exact Plackett-Luce marginals cover 1 to 3 slots; got {n_positions}")
    n_finite = np.isfinite(s).sum(axis=1)
    if (n_finite < n_positions).any():
        raise ConfigError(
            f"every context needs at least {n_positions} items with a finite score to fill "
            f"{n_positions} slots; the fewest is {int(n_finite.min())}"
        )
    n = s.shape[1]
    step = max(1, _CHUNK_ELEMENTS // (n * n * max(1, n_positions - 1)))
    out = np.concatenate([_pl_chunk(s[i:i + step], n_positions) for i in range(0, s.shape[0], step)])
    normalised: np.ndarray = out / out.sum(axis=1, keepdims=True)
    return normalised


def _pl_monte_carlo(logits: np.ndarray, n_positions: int, n_draws: int, seed: int) -> np.ndarray:
    """Plackett-Luce position marginals by the Gumbel-top-k trick, seeded."""
    rng = np.random.default_rng(seed)
    g, n = logits.shape
    out = np.zeros((g, n, n_positions))
    per_group = max(1, _CHUNK_ELEMENTS // n)
    for gi in range(g):
        counts = np.zeros(n * n_positions)
        for start in range(0, n_draws, per_group):
            d = min(per_group, n_draws - start)
            noisy = logits[gi][None, :] + rng.gumbel(size=(d, n))
            top = _ranking(noisy, n_positions)
            counts += np.bincount((top * n_positions + np.arange(n_positions)).ravel(), minlength=n * n_positions)
        out[gi] = counts.reshape(n, n_positions) / n_draws
    return out


def softmax_policy(
    scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    n_positions: int = 1,
    temperature: float = 1.0,
    *,
    group: np.ndarray | None = None,
    n_draws: int = 10_000,
    seed: int = 0,
) -> ActionDistribution:
    """Sample a list without replacement from ``softmax(scores / temperature)`` (Plackett-Luce).

    For up to 3 slots the marginals are exact (:func:`plackett_luce_marginals`); for longer
    lists they are estimated with ``n_draws`` seeded Gumbel-top-k draws per context.

    Args:
        scores: ``(n_actions,)`` or ``(n_groups, n_actions)``; ``nan`` / ``-inf`` are never shown.
        n_positions: the number of slots.
        temperature: > 0; small is greedy, large is uniform.
        group: the group of every logged row.
        n_draws: Monte Carlo draws per context (only for more than 3 slots).
        seed: the Monte Carlo seed.

    Returns:
        The distribution.
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}")
    s = _scores_2d(scores)
    _check_positions(n_positions, s.shape[1])
    logits = s / temperature
    meta: dict[str, Any] = {"policy": "softmax", "temperature": temperature}
    if n_positions <= 3:
        probs = plackett_luce_marginals(logits, n_positions)
    else:
        if n_draws < 1:
            raise ConfigError(f"n_draws must be >= 1; got {n_draws}")
        if (np.isfinite(logits).sum(axis=1) < n_positions).any():
            raise ConfigError(f"every context needs at least {n_positions} items with a finite score")
        probs = _pl_monte_carlo(logits, n_positions, n_draws, seed)
        meta |= {"monte_carlo_draws": n_draws, "seed": seed}
    return ActionDistribution(_frozen(probs), group, meta)


@runtime_checkable
class SupportsScore(Protocol):
    """Anything with aisle's ``score(users, items) -> (n_users, n_items)`` (every aisle model)."""

    def score(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray: ...


def model_policy(
    model: SupportsScore,
    users: Sequence[str] | np.ndarray,
    items: Sequence[str],
    n_positions: int = 1,
    *,
    kind: PolicyKind = "top-k",
    epsilon: float = 0.1,
    temperature: float = 1.0,
    n_draws: int = 10_000,
    seed: int = 0,
) -> ActionDistribution:
    """Turn a recommender into a target policy over the logged action set.

    Each distinct user is scored once (``model.score(unique_users, items)``); items the model
    does not know score ``nan`` and are ranked last (never shown by ``softmax``).

    Args:
        model: a fitted aisle model (or anything with ``score``).
        users: the user of every logged row (``LoggedFeedback.users``).
        items: the action set in action-index order (``LoggedFeedback.action_ids``).
        n_positions: the number of slots.
        kind: ``"top-k"``, ``"epsilon-greedy"`` or ``"softmax"``.
        epsilon: exploration for ``epsilon-greedy``.
        temperature: temperature for ``softmax``.
        n_draws: Monte Carlo draws for ``softmax`` with more than 3 slots.
        seed: Monte Carlo seed.

    Returns:
        The distribution, one group per distinct user.

    Raises:
        ConfigError: an unknown ``kind``.
    """
    user_arr = np.asarray(users, dtype=object)
    unique, group = np.unique(user_arr.astype(str), return_inverse=True)
    scores = np.asarray(model.score(list(unique), list(items)), dtype=np.float64)
    meta = {"model": type(model).__name__, "n_users": int(unique.size)}
    dist: ActionDistribution
    if kind == "top-k":
        dist = top_k_policy(scores, n_positions, group=group)
    elif kind == "epsilon-greedy":
        dist = epsilon_greedy_policy(scores, n_positions, epsilon, group=group)
    elif kind == "softmax":
        dist = softmax_policy(scores, n_positions, temperature, group=group, n_draws=n_draws, seed=seed)
    else:
        raise ConfigError(f"policy kind must be one of top-k, epsilon-greedy, softmax; got {kind!r}")
    return ActionDistribution(dist.probs, dist.group, {**dist.meta, **meta})


# ---------------------------------------------------------------------- Bernoulli TS (OBD)
def simulate_bts_rankings(
    alpha: np.ndarray | Sequence[float],
    beta: np.ndarray | Sequence[float],
    n_positions: int = 3,
    n_draws: int = DEFAULT_BTS_DRAWS,
    seed: int = 0,
) -> np.ndarray:
    """Monte Carlo rankings of Bernoulli Thompson Sampling with a Beta prior.

    Each draw samples ``θ_a ~ Beta(alpha_a, beta_a)`` for every item and ranks the items by
    ``θ`` (largest first): the list the policy would show (obp's
    ``BernoulliTS.compute_batch_action_dist``).

    Args:
        alpha: Beta ``alpha`` per item.
        beta: Beta ``beta`` per item.
        n_positions: the list length.
        n_draws: the number of simulated lists.
        seed: the seed (``numpy.random.default_rng``).

    Returns:
        ``(n_draws, n_positions)`` item indices.
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ConfigError(f"alpha and beta must be 1-d and of equal length; got {a.shape} and {b.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ConfigError("Beta parameters must be > 0")
    _check_positions(n_positions, a.size)
    if n_draws < 1:
        raise ConfigError(f"n_draws must be >= 1; got {n_draws}")
    rng = np.random.default_rng(seed)
    out = np.empty((n_draws, n_positions), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // a.size)
    for start in range(0, n_draws, step):
        d = min(step, n_draws - start)
        theta = rng.beta(a, b, size=(d, a.size))
        if n_positions < a.size:
            part = np.argpartition(-theta, n_positions - 1, axis=1)[:, :n_positions]
        else:
            part = np.tile(np.arange(a.size), (d, 1))
        vals = np.take_along_axis(theta, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        out[start:start + d] = np.take_along_axis(part, order, axis=1)
    return out


def rank_marginals(rankings: np.ndarray, n_actions: int) -> np.ndarray:
    """How often each item lands at each position over simulated rankings.

    Args:
        rankings: ``(n_draws, n_positions)`` item indices.
        n_actions: the number of items.

    Returns:
        ``(n_actions, n_positions)`` frequencies; each position sums to 1.
    """
    r = np.asarray(rankings, dtype=np.int64)
    d, k = r.shape
    counts = np.bincount((r * k + np.arange(k)).ravel(), minlength=n_actions * k)
    freq: np.ndarray = counts.reshape(n_actions, k) / d
    return freq


def bts_policy(
    alpha: np.ndarray | Sequence[float],
    beta: np.ndarray | Sequence[float],
    n_positions: int = 3,
    n_draws: int = DEFAULT_BTS_DRAWS,
    seed: int = 0,
) -> ActionDistribution:
    """Bernoulli Thompson Sampling's action distribution by Monte Carlo (see docs/ope.md).

    Args:
        alpha: Beta ``alpha`` per item.
        beta: Beta ``beta`` per item.
        n_positions: the list length.
        n_draws: simulated lists; the standard error of each probability ``p`` is
            ``sqrt(p (1 - p) / n_draws)``, at most ``0.5 / sqrt(n_draws)``.
        seed: the seed.

    Returns:
        The shared distribution; ``meta`` records the draws, the seed and the largest Monte
        Carlo standard error of a probability.
    """
    rankings = simulate_bts_rankings(alpha, beta, n_positions, n_draws, seed)
    probs = rank_marginals(rankings, len(np.asarray(alpha)))
    max_se = float(np.sqrt(probs * (1 - probs) / n_draws).max())
    return ActionDistribution.shared(
        probs, {"policy": "bts", "monte_carlo_draws": n_draws, "seed": seed, "max_probability_se": max_se}
    )


def obd_bts_policy(
    campaign: str = "all",
    n_draws: int = DEFAULT_BTS_DRAWS,
    seed: int = 0,
    data_home: str | Path | None = None,
) -> ActionDistribution:
    """The Open Bandit Dataset's Bernoulli TS policy from its published prior (``prior_bts.yaml``).

    Args:
        campaign: ``all``, ``men`` or ``women``.
        n_draws: Monte Carlo draws.
        seed: the seed.
        data_home: the data home (default: ``AISLE_DATA_HOME``).

    Returns:
        The shared ``(1, n_items, 3)`` distribution.
    """
    from aisle.datasets import load_bts_prior

    alpha, beta = load_bts_prior(campaign, data_home)
    dist = bts_policy(alpha, beta, 3, n_draws, seed)
    return ActionDistribution(dist.probs, None, {**dist.meta, "campaign": campaign})
