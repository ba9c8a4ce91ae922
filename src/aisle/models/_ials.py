"""iALS: implicit alternating least squares (Hu, Koren & Volinsky 2008; Rendle et al. 2021).

The objective, over user factors ``x_u`` and item factors ``y_i`` (``f`` = ``factors``)::

    L = Σ_(u,i) c_ui (p_ui - x_uᵀy_i)²  +  Σ_u λ_u ‖x_u‖²  +  Σ_i λ_i ‖y_i‖²

Every user-item cell counts. An empty cell has ``p = 0`` and weight ``c = α0`` (the
``unobserved_weight``); a stored entry with weight ``r`` has ``d = alpha · g(r)`` with
``g(r) = r`` (``confidence="linear"``) or ``g(r) = sign(r)·log(1 + |r|/epsilon)`` (``"log"``),
and then ``p = 1, c = α0 + d`` when ``d > 0`` (Hu et al.'s ``c = 1 + αr`` when α0 = 1) or
``p = 0, c = α0 + |d|`` when ``d < 0`` (negative feedback, e.g. returns).

Regularization (``reg_scaling="frequency"``, Rendle, Krichene, Zhang & Koren 2021, "Revisiting
the performance of iALS on item recommendation benchmarks", eq. for frequency-scaled L2)::

    λ_u = λ · (|I_u| + α0 · |I|)^ν        λ_i = λ · (|U_i| + α0 · |U|)^ν

with ``λ`` = ``regularization``, ``ν`` = ``reg_exponent``, ``|I_u|`` the number of stored entries
of user ``u`` and ``|I|`` the number of items (the same for items with users): each embedding is
penalised in proportion to the number of loss terms it appears in (its observed entries plus
the ``α0``-weighted unobserved ones), so one ``λ`` suits data sets of any size.
``reg_scaling="none"`` is the classic constant ``λ_u = λ_i = λ`` (implicit's
``regularization``).

The model applies its own confidence rule to the raw weights of the interaction matrix
(``Interactions.matrix``); ``FeedbackConfig.confidence``/``alpha`` are not used here.

One half-step solves, for every user at once in parallel, the normal equations (the Gramian
trick: the sum over all items is ``α0 YᵀY``, shared by every user)::

    (α0 YᵀY + Σ_{i∈I_u} (c_ui - α0) y_i y_iᵀ + λ_u I) x_u = Σ_{i∈I_u} c_ui p_ui y_i

approximately with ``cg_steps`` conjugate-gradient steps warm-started from the previous ``x_u``
(``solver="cg"``, Takács et al. 2011, as in implicit), which never forms the matrix (each step
costs ``O(f² + |I_u| f)``), or exactly (``solver="cholesky"``, float64). The exact solver works
in the eigenbasis of the Gramian, ``α0 YᵀY = Q diag(e) Qᵀ``: a row with ``n <= f`` entries is
solved in ``n`` dimensions through the Woodbury identity (``O(n² f + n³)``), a longer row by
Cholesky of the ``f × f`` system (``O(n f² + f³)``). Each iteration updates the items, then the
users; the last user half-step is always exact, so the stored user factors are the exact
optimum for the final item factors. Every half-step minimises ``L`` over one side (CG lowers it
from the warm start), so the training loss never goes up.

Folding in a user (a history row without a stored factor) is that exact half-step on the row
alone, against the fitted item factors: a training user's own row folds in to bit-for-bit the
stored factor, and known and folded-in users are ranked the same way.

Speed: the solvers are numba kernels (``parallel=True``, ``fastmath=True``, ``cache=True``) that
run over blocks of rows of about equal work, handed out dynamically to ``num_threads``
threads; CG gathers each row's factor rows once into a contiguous buffer. Gramians are one
BLAS call. numba and threadpoolctl come with the ``fast`` extra and are imported when a model is
first fitted or folds in (BLAS is held at one thread meanwhile, as implicit recommends).
Results do not depend on the number of threads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field, FiniteFloat

from aisle.errors import ConfigError, require
from aisle.models._base import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ModelConfig,
    Recommender,
    SearchSpace,
    factor_scores,
)

__all__ = ["IALS", "IALSConfig"]

_Float = np.float32 | np.float64
FloatArray = npt.NDArray[Any]


class IALSConfig(ModelConfig):
    """Config of :class:`IALS` (see the module docstring for the objective).

    Attributes:
        factors: embedding size ``f``.
        iterations: alternating sweeps (items, then users) over the data.
        regularization: the base L2 penalty ``λ``. With ``reg_scaling="frequency"`` and ``ν = 1``
            the effective per-row penalty is ``λ · (|I_u| + α0 · |I|)``, so useful values are
            much smaller than with ``"none"``. The default 0.02 was best (Recall@20) on a
            MovieLens-latest-small holdout with the other defaults; 0.05 was clearly too much.
        reg_scaling: ``"frequency"`` – ``λ_u = λ · (|I_u| + α0 · |I|)^ν`` (Rendle et al. 2021);
            ``"none"`` – the same ``λ`` for every user and item (Hu et al., implicit).
        reg_exponent: the exponent ``ν`` of frequency scaling (``ν = 0`` is the constant ``λ``
            again; Rendle et al. use ``ν = 1``).
        confidence: how a stored weight ``r`` becomes the extra confidence ``d``:
            ``"linear"`` – ``d = alpha · r``; ``"log"`` – ``d = alpha · log(1 + r / epsilon)``
            (sign kept for negative weights). The observed cell then weighs ``c = α0 + d``.
        alpha: confidence scale (Hu et al. report 40 for watch counts; with aisle's default event
            weights, purchase = 5, 10 is a good start).
        epsilon: the log scale of ``confidence="log"``.
        unobserved_weight: ``α0``, the weight of every empty cell (the Gramian term). 1.0 is Hu
            et al.'s classic model; Rendle et al. tune it (often 0.01-0.5).
        solver: ``"cg"`` (``cg_steps`` conjugate-gradient steps per row, warm-started) or
            ``"cholesky"`` (exact per-row solve). Either way the last user half-step is exact
            (it costs about two CG epochs at f = 64-128).
        cg_steps: conjugate-gradient steps per row and half-step (implicit uses 3).
        init_std: standard deviation of the Gaussian initial factors; ``None`` gives
            ``1 / sqrt(factors)`` (rows of about unit length). Rendle et al.'s ``0.1 / sqrt(f)``
            starts too close to the saddle at zero: on MovieLens-latest-small its loss after 15
            epochs was still above the loss ``1 / sqrt(f)`` reaches after 4.
        seed: seed of the initial factors (the fit is deterministic for a given seed and
            thread-independent: each row is solved by one thread).
        num_threads: threads of the solver kernels; 0 uses all cores numba sees.
        dtype: float precision of the factors and the CG solver (the Cholesky solver and the
            loss always accumulate in float64).
        track_loss: compute the objective ``L`` after every iteration into ``loss_history_``
            (one extra pass over the data per iteration).
    """

    factors: int = Field(default=64, gt=0, le=4096)
    iterations: int = Field(default=15, ge=1)
    regularization: FiniteFloat = Field(default=0.02, gt=0)
    reg_scaling: Literal["none", "frequency"] = "frequency"
    reg_exponent: FiniteFloat = Field(default=1.0, ge=0)
    confidence: Literal["linear", "log"] = "linear"
    alpha: FiniteFloat = Field(default=10.0, gt=0)
    epsilon: FiniteFloat = Field(default=1.0, gt=0)
    unobserved_weight: FiniteFloat = Field(default=1.0, ge=0)
    solver: Literal["cg", "cholesky"] = "cg"
    cg_steps: int = Field(default=3, ge=1)
    init_std: FiniteFloat | None = Field(default=None, gt=0)
    seed: int = 0
    num_threads: int = Field(default=0, ge=0)
    dtype: Literal["float32", "float64"] = "float32"
    track_loss: bool = False


# ------------------------------------------------------------------------------------------
# kernels: plain Python, compiled by numba on first use (see _kernels)
# ------------------------------------------------------------------------------------------

# The kernels below are plain Python functions that :func:`_kernels` hands to numba on first
# use. The parallel sweeps only loop over blocks of rows and call a serial per-block function:
# every buffer is allocated inside that call, out of reach of numba's allocation hoisting
# (which would otherwise share, or mis-size, buffers across the iterations of a ``prange``).
# These globals are bound to ``numba.prange`` and to the compiled block functions first.
_prange: Any = range
_cg_block_fn: Any = None
_cholesky_block_fn: Any = None


def _cg_block(
    lo: int,
    hi: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    G: FloatArray,
    reg: FloatArray,
    alpha0: Any,
    steps: int,
) -> None:  # pragma: no cover - compiled by numba
    """Warm-started CG on rows ``lo:hi`` (see :func:`_cg_sweep`)."""
    f = X.shape[1]
    zero = X.dtype.type(0.0)
    width = 1
    for u in range(lo, hi):
        width = max(width, indptr[u + 1] - indptr[u])
    # One allocation, vectors a fixed 1 KiB+ apart: LLVM guards vectorised loops with runtime
    # overlap checks that also reject arrays lying *close* together, so separate small buffers
    # would take the scalar path (other rounding) or not depending on where malloc put them.
    gap = f + 256
    end = 3 * gap + width * f
    ws = np.empty(end + 256 + width, dtype=X.dtype)
    r = ws[0:f]
    p = ws[gap : gap + f]
    ap = ws[2 * gap : 2 * gap + f]
    yu = ws[3 * gap : end].reshape((width, f))
    w = ws[end + 256 : end + 256 + width]
    for u in range(lo, hi):
        start = indptr[u]
        n = indptr[u + 1] - start
        if n == 0:
            for k in range(f):
                X[u, k] = zero
            continue
        lam = reg[u]
        # r = b - A x, gathering the factor rows of this row's entries on the way
        for k in range(f):
            r[k] = -lam * X[u, k]
        for j in range(f):
            xj = X[u, j]
            for k in range(f):
                r[k] -= G[j, k] * xj
        for jj in range(n):
            i = indices[start + jj]
            d = data[start + jj]
            s = zero
            for k in range(f):
                v = Y[i, k]
                yu[jj, k] = v
                s += v * X[u, k]
            if d > zero:
                coef = alpha0 + d - d * s
                w[jj] = d
            else:
                coef = d * s
                w[jj] = -d
            for k in range(f):
                r[k] += coef * yu[jj, k]
        rsold = zero
        for k in range(f):
            p[k] = r[k]
            rsold += r[k] * r[k]
        if rsold < 1e-20:
            continue
        for _ in range(steps):
            # ap = A p = G p + λ p + Σ w (y·p) y
            for k in range(f):
                ap[k] = lam * p[k]
            for j in range(f):
                pj = p[j]
                for k in range(f):
                    ap[k] += G[j, k] * pj
            for jj in range(n):
                s = zero
                for k in range(f):
                    s += yu[jj, k] * p[k]
                s *= w[jj]
                for k in range(f):
                    ap[k] += s * yu[jj, k]
            pap = zero
            for k in range(f):
                pap += p[k] * ap[k]
            if pap <= zero:
                break
            a = rsold / pap
            rsnew = zero
            for k in range(f):
                X[u, k] += a * p[k]
                r[k] -= a * ap[k]
                rsnew += r[k] * r[k]
            if rsnew < 1e-20:
                break
            beta = rsnew / rsold
            for k in range(f):
                p[k] = r[k] + beta * p[k]
            rsold = rsnew


def _cg_sweep(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    G: FloatArray,
    reg: FloatArray,
    alpha0: Any,
    steps: int,
    bounds: npt.NDArray[np.int64],
) -> None:  # pragma: no cover - compiled by numba
    """Warm-started CG on every row of the CSR (indptr, indices, data); updates ``X`` in place.

    ``data`` holds the signed extra confidence ``d``; ``G`` is ``α0 YᵀY``; ``reg`` the per-row
    ``λ``; ``bounds`` cuts the rows into blocks of about equal work (one task each).
    """
    for b in _prange(bounds.shape[0] - 1):
        _cg_block_fn(bounds[b], bounds[b + 1], indptr, indices, data, X, Y, G, reg, alpha0, steps)


def _cholesky_block(
    lo: int,
    hi: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    G: npt.NDArray[np.float64],
    reg: FloatArray,
    alpha0: float,
    evals: npt.NDArray[np.float64],
    Q: npt.NDArray[np.float64],
    Yq: npt.NDArray[np.float64],
) -> None:  # pragma: no cover - compiled by numba
    """Exact solves of rows ``lo:hi`` in float64 (see :func:`_cholesky_sweep`).

    With ``G = Q diag(evals) Qᵀ`` and ``Yq = Y Q`` (the other side's factors in the eigenbasis
    of the Gramian), the system of a row with ``n`` entries is
    ``(diag(evals + λ) + ZᵀZ) x̂ = b̂``, ``x = Q x̂``, where ``Z`` holds the row's ``Yq`` rows
    scaled by ``sqrt(c - α0)``. Rows with ``n <= f`` solve it in ``n`` dimensions (Woodbury:
    ``x̂ = D^½ (I + WᵀW)⁻¹ D^½ b̂`` through ``(I + WWᵀ)`` with ``W = Z D^½``, ``D = diag(1 /
    (evals + λ))``): ``O(n² f + n³)`` instead of ``O(n f² + f³)``. Longer rows form the
    ``f × f`` system ``G + λI + Σ (c - α0) y yᵀ`` directly (BLAS gemm, 128 entries at a time). Both end in a Cholesky
    factorisation whose inner loops only read, so a row gets bit-for-bit the same factor in
    whatever block or thread it is solved: a folded-in history row gets exactly the factor
    training gave the same row.
    """
    f = X.shape[1]
    chunk = 128
    A = np.empty((f, f), dtype=np.float64)
    W = np.empty((f, f), dtype=np.float64)
    P = np.empty((f, f), dtype=np.float64)
    Z = np.empty((chunk, f), dtype=np.float64)
    sd = np.empty(f, dtype=np.float64)
    rhs = np.empty(f, dtype=np.float64)
    vec = np.empty(f, dtype=np.float64)
    for u in range(lo, hi):
        start = indptr[u]
        n = indptr[u + 1] - start
        if n == 0:
            for k in range(f):
                X[u, k] = 0.0
            continue
        lam = float(reg[u])
        if n <= f:
            # ---- n-space (Woodbury) in the eigenbasis
            for k in range(f):
                sd[k] = 1.0 / np.sqrt(evals[k] + lam)
                rhs[k] = 0.0
            for jj in range(n):
                i = indices[start + jj]
                d = float(data[start + jj])
                if d > 0.0:
                    sm = np.sqrt(d)
                    cw = alpha0 + d
                else:
                    sm = np.sqrt(-d)
                    cw = 0.0
                for k in range(f):
                    v = Yq[i, k]
                    W[jj, k] = sm * v * sd[k]
                    rhs[k] += cw * v
            for k in range(f):
                rhs[k] *= sd[k]  # v = D^½ b̂
            # S = I + W Wᵀ (lower triangle of A[:n, :n]) and t = W v (vec[:n])
            for a in range(n):
                for b in range(a + 1):
                    t = 0.0
                    for k in range(f):
                        t += W[a, k] * W[b, k]
                    A[a, b] = t
                A[a, a] += 1.0
                t = 0.0
                for k in range(f):
                    t += W[a, k] * rhs[k]
                vec[a] = t
            m = n
        else:
            # ---- f-space: A = G + λI + ZᵀZ, Z = sqrt(c - α0) y (original basis), built
            # ``chunk`` entries at a time with one BLAS gemm each; b = Σ c p y
            for a in range(f):
                for c in range(f):
                    A[a, c] = G[a, c]
                A[a, a] += lam
                vec[a] = 0.0
            for c0 in range(0, n, chunk):
                nc = min(chunk, n - c0)
                for jj in range(nc):
                    i = indices[start + c0 + jj]
                    d = float(data[start + c0 + jj])
                    if d > 0.0:
                        sm = np.sqrt(d)
                        cw = alpha0 + d
                    else:
                        sm = np.sqrt(-d)
                        cw = 0.0
                    for k in range(f):
                        v = float(Y[i, k])
                        Z[jj, k] = sm * v
                        vec[k] += cw * v
                np.dot(Z[:nc].T, Z[:nc], P)
                for a in range(f):
                    for c in range(f):
                        A[a, c] += P[a, c]
            m = f
        # Cholesky of A[:m, :m] (lower, dot-product form) and solve A s = vec
        ok = True
        for j in range(m):
            t = A[j, j]
            for k in range(j):
                t -= A[j, k] * A[j, k]
            if not t > 0.0:
                ok = False
                break
            t = np.sqrt(t)
            A[j, j] = t
            for i in range(j + 1, m):
                t2 = A[i, j]
                for k in range(j):
                    t2 -= A[i, k] * A[j, k]
                A[i, j] = t2 / t
        if not ok:
            for k in range(f):
                X[u, k] = np.nan
            continue
        for i in range(m):
            t = vec[i]
            for k in range(i):
                t -= A[i, k] * vec[k]
            vec[i] = t / A[i, i]
        for i in range(m - 1, -1, -1):
            t = vec[i]
            for k in range(i + 1, m):
                t -= A[k, i] * vec[k]
            vec[i] = t / A[i, i]
        if n <= f:
            # x̂ = D^½ (v - Wᵀ s), x = Q x̂
            for jj in range(n):
                s = vec[jj]
                for k in range(f):
                    rhs[k] -= s * W[jj, k]
            for k in range(f):
                rhs[k] *= sd[k]
            for a in range(f):
                t = 0.0
                for k in range(f):
                    t += Q[a, k] * rhs[k]
                X[u, a] = t
        else:
            for k in range(f):
                X[u, k] = vec[k]


def _cholesky_sweep(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    G: npt.NDArray[np.float64],
    reg: FloatArray,
    alpha0: float,
    evals: npt.NDArray[np.float64],
    Q: npt.NDArray[np.float64],
    Yq: npt.NDArray[np.float64],
    bounds: npt.NDArray[np.int64],
) -> None:  # pragma: no cover - compiled by numba
    """Exact per-row solves (float64); writes ``X`` in place.

    Same arguments as :func:`_cg_sweep`, with ``G`` in float64 and the Gramian's eigenbasis
    (``G = Q diag(evals) Qᵀ``, ``Yq = Y Q``). A row whose system is not positive definite (only
    possible through round-off) gets ``nan``.
    """
    for b in _prange(bounds.shape[0] - 1):
        _cholesky_block_fn(
            bounds[b], bounds[b + 1], indptr, indices, data, X, Y, G, reg, alpha0, evals, Q, Yq
        )


def _observed_loss(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    alpha0: float,
) -> float:  # pragma: no cover - compiled by numba
    """``Σ_stored [c (p - ŷ)² - α0 ŷ²]``: the stored cells' part of the loss beyond ``α0 Σ ŷ²``."""
    f = X.shape[1]
    total = 0.0
    for u in _prange(indptr.shape[0] - 1):
        acc = 0.0
        for idx in range(indptr[u], indptr[u + 1]):
            i = indices[idx]
            d = float(data[idx])
            yhat = 0.0
            for k in range(f):
                yhat += float(X[u, k]) * float(Y[i, k])
            if d > 0.0:
                acc += (alpha0 + d) * (1.0 - yhat) ** 2 - alpha0 * yhat * yhat
            else:
                acc += -d * yhat * yhat
        total += acc
    return total


@dataclass(frozen=True)
class _Kernels:
    cg: Callable[..., None]
    cholesky: Callable[..., None]
    loss: Callable[..., float]
    numba: Any
    #: a ``threadpoolctl.ThreadpoolController`` (made once: building one scans the loaded
    #: libraries, ~1 ms) or ``None`` without threadpoolctl
    blas: Any


@functools.cache
def _kernels() -> _Kernels:
    """The compiled kernels (numba imported here, so ``import aisle.models`` stays light)."""
    numba: Any = require("numba", "fast")
    global _prange, _cg_block_fn, _cholesky_block_fn
    _prange = numba.prange
    _cg_block_fn = numba.njit(fastmath=True, cache=True, nogil=True)(_cg_block)
    _cholesky_block_fn = numba.njit(fastmath=True, cache=True, nogil=True)(_cholesky_block)
    parallel = numba.njit(parallel=True, cache=True, nogil=True)
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba calls: loaded before the scan)

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with the same extra
        blas = None
    else:
        blas = ThreadpoolController()
    return _Kernels(
        cg=parallel(_cg_sweep),
        cholesky=parallel(_cholesky_sweep),
        loss=parallel(_observed_loss),
        numba=numba,
        blas=blas,
    )


@contextmanager
def _solver_threads(num_threads: int) -> Iterator[int]:
    """Run the kernels on ``num_threads`` threads (0 = all), BLAS on one, rows handed out
    dynamically; restores the previous settings."""
    kern = _kernels()
    numba = kern.numba
    most = int(numba.config.NUMBA_NUM_THREADS)
    n = most if num_threads == 0 else min(num_threads, most)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    blas = kern.blas.limit(limits=1, user_api="blas") if kern.blas is not None else None
    try:
        with numba.parallel_chunksize(1):
            yield n
    finally:
        numba.set_num_threads(previous)
        if blas is not None:
            blas.restore_original_limits()


# ------------------------------------------------------------------------------------------
# numpy helpers
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """A CSR of signed extra confidences ``d`` in the kernels' index types."""

    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int32]
    data: FloatArray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.indptr)

    @classmethod
    def of(cls, m: sp.csr_matrix | sp.csr_array, dtype: np.dtype[Any]) -> _Rows:
        return cls(
            np.asarray(m.indptr, dtype=np.int64),
            np.asarray(m.indices, dtype=np.int32),
            np.asarray(m.data, dtype=dtype),
            int(m.shape[1]),
        )


#: Below this many multiply-adds per half-step a single thread is faster than waking the others.
_PARALLEL_WORK = 2_000_000


def _blocks(counts: npt.NDArray[np.int64], factors: int, n_threads: int) -> npt.NDArray[np.int64]:
    """Row boundaries of blocks of about equal work (a row costs ~ ``f/2 + nnz`` units)."""
    n_rows = len(counts)
    if n_rows == 0:
        return np.zeros(1, dtype=np.int64)
    cost = np.cumsum(counts + (factors // 2 + 1), dtype=np.float64)
    # enough blocks to balance skewed rows over the threads; the cut does not depend on the
    # thread count (up to 32 threads), so neither do the results
    n_blocks = int(min(n_rows, max(256, 8 * n_threads)))
    targets = cost[-1] * np.arange(1, n_blocks) / n_blocks
    cuts = np.searchsorted(cost, targets, side="left") + 1
    bounds = np.unique(np.concatenate([[0], cuts, [n_rows]])).astype(np.int64)
    return bounds


def _row_regularization(
    counts: npt.NDArray[np.int64], n_other: int, config: IALSConfig, dtype: np.dtype[Any]
) -> FloatArray:
    """Per-row ``λ``: constant, or ``λ (|I_u| + α0 |I|)^ν`` (Rendle et al. 2021)."""
    lam = config.regularization
    if config.reg_scaling == "none":
        return np.full(len(counts), lam, dtype=dtype)
    base = counts.astype(np.float64) + config.unobserved_weight * n_other
    return (lam * np.power(base, config.reg_exponent)).astype(dtype)


def _gramian(
    Y: FloatArray, alpha0: float, dtype: np.dtype[Any] | type[np.floating[Any]]
) -> FloatArray:
    """``α0 YᵀY`` in ``dtype`` (one BLAS call, symmetric)."""
    y = np.asarray(Y, dtype=dtype)
    g = alpha0 * (y.T @ y)
    return np.ascontiguousarray((g + g.T) / 2, dtype=dtype)


def confidence_weights(matrix: sp.csr_matrix | sp.csr_array, config: IALSConfig) -> sp.csr_matrix:
    """The signed extra confidence ``d = alpha · g(r)`` of each stored entry (zeros dropped).

    Args:
        matrix: the weighted interactions ``r`` (users × items).
        config: supplies ``confidence``, ``alpha`` and ``epsilon``.

    Returns:
        A CSR matrix of ``d`` in ``config.dtype``; the observed cell weighs ``c = α0 + |d|``.
    """
    out = sp.csr_matrix(matrix, dtype=config.dtype, copy=True)  # the one copy, in place below
    r = out.data
    if config.confidence == "linear":
        np.multiply(r, config.alpha, out=r)
    else:
        r[:] = np.sign(r) * config.alpha * np.log1p(np.abs(r) / config.epsilon)
    out.eliminate_zeros()
    out.sort_indices()  # the same row always sums in the same order (training and fold-in)
    return out


@dataclass(frozen=True)
class _Basis:
    """The other side's factors ready for exact solves: ``G = α0 YᵀY = Q diag(evals) Qᵀ``."""

    G: npt.NDArray[np.float64]
    evals: npt.NDArray[np.float64]
    Q: npt.NDArray[np.float64]
    Yq: npt.NDArray[np.float64]

    @classmethod
    def of(cls, Y: FloatArray, alpha0: float) -> _Basis:
        G = _gramian(Y, alpha0, np.float64)
        evals, Q = np.linalg.eigh(G)
        Yq = np.asarray(Y, dtype=np.float64) @ Q
        return cls(G, np.maximum(evals, 0.0), np.ascontiguousarray(Q), np.ascontiguousarray(Yq))


def _solve(
    kern: _Kernels,
    rows: _Rows,
    reg: FloatArray,
    X: FloatArray,
    Y: FloatArray,
    config: IALSConfig,
    n_threads: int,
    solver: Literal["cg", "cholesky"],
    cg_steps: int,
    basis: _Basis | None = None,
) -> None:
    """One half-step with the thread settings already in place (see :func:`half_step`).

    ``basis`` (exact solver only) may be passed when it was already computed for this ``Y``.
    """
    alpha0 = config.unobserved_weight
    f = int(X.shape[1])
    # small jobs (tests, folding in a few users) run on one thread: waking the others costs more
    work = (int(rows.indptr[-1]) + rows.n_rows * f) * f
    threads = n_threads if work >= _PARALLEL_WORK else 1
    bounds = _blocks(rows.counts, f, threads)
    kern.numba.set_num_threads(threads)
    try:
        if solver == "cg":
            dtype = np.dtype(config.dtype)
            G = _gramian(Y, alpha0, dtype)
            kern.cg(
                rows.indptr,
                rows.indices,
                rows.data,
                X,
                Y,
                G,
                reg,
                dtype.type(alpha0),
                cg_steps,
                bounds,
            )
        else:
            b = basis if basis is not None else _Basis.of(Y, alpha0)
            kern.cholesky(
                rows.indptr,
                rows.indices,
                rows.data,
                X,
                Y,
                b.G,
                reg,
                float(alpha0),
                b.evals,
                b.Q,
                b.Yq,
                bounds,
            )
    finally:
        kern.numba.set_num_threads(n_threads)


def half_step(
    rows: sp.csr_matrix,
    X: FloatArray,
    Y: FloatArray,
    config: IALSConfig,
    *,
    solver: Literal["cg", "cholesky"] | None = None,
    cg_steps: int | None = None,
) -> None:
    """Solve the rows' factors ``X`` (in place) against fixed ``Y``: one ALS half-step.

    Args:
        rows: signed extra confidences ``d`` (from :func:`confidence_weights`), one row per
            row of ``X`` and one column per row of ``Y``.
        X: the factors to update, ``(n_rows, f)`` C-contiguous in ``config.dtype``; CG starts
            from its values.
        Y: the fixed factors of the other side, ``(n_cols, f)`` in ``config.dtype``.
        config: the model config (regularization, ``α0``, threads, dtype).
        solver: overrides ``config.solver``.
        cg_steps: overrides ``config.cg_steps``.
    """
    kern = _kernels()
    r = _Rows.of(rows, np.dtype(config.dtype))
    reg = _row_regularization(r.counts, int(Y.shape[0]), config, np.dtype(config.dtype))
    with _solver_threads(config.num_threads) as n_threads:
        _solve(
            kern,
            r,
            reg,
            X,
            Y,
            config,
            n_threads,
            solver or config.solver,
            int(cg_steps or config.cg_steps),
        )


def _objective(
    kern: _Kernels, rows: _Rows, X: FloatArray, Y: FloatArray, config: IALSConfig
) -> float:
    alpha0 = config.unobserved_weight
    item_counts = np.bincount(rows.indices, minlength=Y.shape[0]).astype(np.int64)
    reg_u = _row_regularization(rows.counts, int(Y.shape[0]), config, np.dtype(np.float64))
    reg_i = _row_regularization(item_counts, int(X.shape[0]), config, np.dtype(np.float64))
    x64 = np.asarray(X, dtype=np.float64)
    y64 = np.asarray(Y, dtype=np.float64)
    observed = float(kern.loss(rows.indptr, rows.indices, rows.data, X, Y, float(alpha0)))
    everything = alpha0 * float(np.sum((x64.T @ x64) * (y64.T @ y64)))
    penalty = float(
        reg_u @ np.einsum("ij,ij->i", x64, x64) + reg_i @ np.einsum("ij,ij->i", y64, y64)
    )
    return observed + everything + penalty


def objective(user_rows: sp.csr_matrix, X: FloatArray, Y: FloatArray, config: IALSConfig) -> float:
    """The iALS loss ``L`` (module docstring) of factors ``X``, ``Y`` on confidences ``user_rows``.

    Args:
        user_rows: signed extra confidences ``d``, users × items.
        X: user factors.
        Y: item factors.
        config: the model config.

    Returns:
        ``L`` in float64.
    """
    kern = _kernels()
    with _solver_threads(config.num_threads):
        return _objective(kern, _Rows.of(user_rows, np.dtype(config.dtype)), X, Y, config)


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------


class IALS(Recommender):
    """Implicit ALS matrix factorisation: ``score(u, i) = x_uᵀ y_i``.

    Attributes (after ``fit``):
        user_factors_: ``(n_users, factors)`` user embeddings.
        item_factors_: ``(n_items, factors)`` item embeddings.
        loss_history_: the objective after each iteration (empty unless ``track_loss``).
        epoch_seconds_: wall time of each iteration (both half-steps, without the loss); not
            saved.
    """

    name: ClassVar[str] = "ials"
    Config: ClassVar[type[ModelConfig]] = IALSConfig
    config: IALSConfig
    #: Rendle et al. tune the embedding size, λ (frequency-scaled) and α0; alpha scales the
    #: confidence of stored entries. The default config (λ = 0.02) lies inside every range.
    search_space: ClassVar[SearchSpace] = {
        "factors": CategoricalParam((32, 64, 128)),
        "regularization": FloatParam(1e-3, 0.3, log=True),
        "alpha": FloatParam(1.0, 100.0, log=True),
        "unobserved_weight": FloatParam(0.05, 1.0, log=True),
        "iterations": IntParam(5, 30),
    }

    def _init_factors(self, n: int, rng: np.random.Generator) -> FloatArray:
        cfg = self.config
        std = cfg.init_std if cfg.init_std is not None else 1.0 / np.sqrt(cfg.factors)
        out = rng.standard_normal((n, cfg.factors), dtype=np.float64) * std
        return np.ascontiguousarray(out, dtype=cfg.dtype)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        cfg = self.config
        user_rows = confidence_weights(matrix, cfg)
        item_rows = sp.csr_matrix(user_rows.T.tocsr(), dtype=cfg.dtype)
        rng = np.random.default_rng(cfg.seed)
        X = self._init_factors(user_rows.shape[0], rng)
        Y = self._init_factors(user_rows.shape[1], rng)
        dtype = np.dtype(cfg.dtype)
        users, items = _Rows.of(user_rows, dtype), _Rows.of(item_rows, dtype)
        reg_u = _row_regularization(users.counts, items.n_rows, cfg, dtype)
        reg_i = _row_regularization(items.counts, users.n_rows, cfg, dtype)
        kern = _kernels()
        history: list[float] = []
        seconds: list[float] = []
        basis: _Basis | None = None
        with _solver_threads(cfg.num_threads) as n_threads:
            for it in range(cfg.iterations):
                start = time.perf_counter()
                _solve(kern, items, reg_i, Y, X, cfg, n_threads, cfg.solver, cfg.cg_steps)
                if it < cfg.iterations - 1:
                    _solve(kern, users, reg_u, X, Y, cfg, n_threads, cfg.solver, cfg.cg_steps)
                else:
                    # the last user half-step is exact, in the basis fold-in reuses: stored user
                    # factors are bit-for-bit what folding in the same rows gives
                    basis = _Basis.of(Y, cfg.unobserved_weight)
                    _solve(kern, users, reg_u, X, Y, cfg, n_threads, "cholesky", 0, basis)
                seconds.append(time.perf_counter() - start)
                if cfg.track_loss:
                    history.append(_objective(kern, users, X, Y, cfg))
        if not (np.isfinite(X).all() and np.isfinite(Y).all()):
            raise ConfigError(
                "iALS diverged (non-finite factors); raise regularization, lower alpha or use "
                "dtype='float64'"
            )
        self.user_factors_: FloatArray = X
        self.item_factors_: FloatArray = Y
        self.loss_history_: npt.NDArray[np.float64] = np.asarray(history, dtype=np.float64)
        self.epoch_seconds_: npt.NDArray[np.float64] = np.asarray(seconds, dtype=np.float64)
        self._basis: _Basis | None = basis

    def fold_in(self, rows: sp.csr_matrix | sp.csr_array) -> FloatArray:
        """User factors for history rows (raw weights over the item vocabulary), solved exactly.

        Args:
            rows: ``(n, n_items)`` weighted interactions, built with the training rules.

        Returns:
            ``(n, factors)`` factors; an empty row gets zeros.
        """
        self._check_fitted()
        cfg = self.config
        dtype = np.dtype(cfg.dtype)
        X = np.zeros((rows.shape[0], cfg.factors), dtype=dtype)
        if rows.shape[0] == 0:
            return X
        Y = self.item_factors_
        r = _Rows.of(confidence_weights(rows, cfg), dtype)
        reg = _row_regularization(r.counts, int(Y.shape[0]), cfg, dtype)
        kern = _kernels()
        with _solver_threads(cfg.num_threads) as n_threads:
            if getattr(self, "_basis", None) is None:
                self._basis = _Basis.of(Y, cfg.unobserved_weight)
            _solve(kern, r, reg, X, Y, cfg, n_threads, "cholesky", 0, self._basis)
        return X

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        idx = np.asarray(user_index, dtype=np.int64)
        X = np.empty((len(idx), self.config.factors), dtype=self.config.dtype)
        known = idx >= 0
        X[known] = self.user_factors_[idx[known]]
        new = np.flatnonzero(~known)
        if new.size:
            X[new] = self.fold_in(sp.csr_matrix(rows)[new])
        return factor_scores(X, self.item_factors_)

    def _item_vectors(self) -> np.ndarray:
        return np.asarray(self.item_factors_)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "loss_history": self.loss_history_,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"])
        self.item_factors_ = np.ascontiguousarray(state["item_factors"])
        self.loss_history_ = np.asarray(state.get("loss_history", np.zeros(0)), dtype=np.float64)
        self.epoch_seconds_ = np.zeros(0, dtype=np.float64)
        self._basis = None
