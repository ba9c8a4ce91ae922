"""The compiled read path: encoded states to feature values in one numba call.

:func:`evaluate_fast` computes exactly what ``plan.basis_from_states`` followed by
:func:`~aisle.features._aggregates.evaluate` computes (window sums in slot order, the same
formulas and missing-value policies), bit for bit, in one compiled function instead of a few
dozen small numpy calls: it is what keeps an online read close to the raw Redis round trip.
numba comes with ``pip install 'aisle[fast]'``; without it, :func:`available` is false and the
store uses the numpy path.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._aggregates import NO_TIME, Plan, RowLayout

__all__ = ["available", "evaluate_fast"]

_KIND = {"sum": 0, "mean": 1, "min": 2, "max": 3, "rate": 4, "recency": 5}
_POLICY = {"default": 0, "prior": 1, "flag": 2}
_COMPILED: dict[str, Any] = {}


def available() -> bool:
    """Whether numba is installed (the compiled path can be used)."""
    return importlib.util.find_spec("numba") is not None


def _kernel(
    flat: NDArray[np.int64], width: int, cat_row: NDArray[np.int64], n_ent: int, as_of: int, ip: NDArray[np.int64],
    rings: NDArray[np.int64], wins: NDArray[np.int64], fi: NDArray[np.int64], ff: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:  # pragma: no cover - compiled by numba
    words = flat.reshape((flat.shape[0] // width, width))
    floats = words.view(np.float64)
    has_groups, off, n_slots = ip[1] != 0, ip[3], ip[4]
    o_sums, n_sums, o_mins, n_mins, o_maxs, n_maxs, o_last = ip[5], ip[6], ip[7], ip[8], ip[9], ip[10], ip[11]
    ttl, lookback, n_out, no_time = ip[12], ip[13], ip[14], ip[15]
    hops, ring_start, ring_size = rings[:, 0], rings[:, 1], rings[:, 2]
    win_ring, win_tiles = wins[:, 0], wins[:, 1]
    kind, fa, fb, fw = fi[:, 0], fi[:, 1], fi[:, 2], fi[:, 3]
    prior_global, policy, col, flag_col = fi[:, 4], fi[:, 5], fi[:, 6], fi[:, 7]
    strength, fill = ff[:, 0], ff[:, 1]
    n_rows = words.shape[0]
    n_win = win_ring.shape[0]
    sums = np.zeros((n_rows, max(n_sums, 1), n_win))
    mins = np.full((n_rows, max(n_mins, 1), n_win), np.inf)
    maxs = np.full((n_rows, max(n_maxs, 1), n_win), -np.inf)
    valid = np.empty(n_slots, dtype=np.int64)
    for n in range(n_rows):
        for w in range(n_win):
            r = win_ring[w]
            k = (as_of - 1 + off) // hops[r]
            lo = k - win_tiles[w]
            cnt = 0
            for s in range(ring_start[r], ring_start[r] + ring_size[r]):
                t = words[n, s]
                if t > lo and t <= k:
                    valid[cnt] = s
                    cnt += 1
            if cnt == 0:
                continue
            # slot order, as the numpy path's cumsum: the same bits
            for m in range(n_sums):
                base = o_sums + m * n_slots
                acc = 0.0
                for j in range(cnt):
                    acc += floats[n, base + valid[j]]
                sums[n, m, w] = acc
            for m in range(n_mins):
                base = o_mins + m * n_slots
                for j in range(cnt):
                    v = floats[n, base + valid[j]]
                    if v < mins[n, m, w]:
                        mins[n, m, w] = v
            for m in range(n_maxs):
                base = o_maxs + m * n_slots
                for j in range(cnt):
                    v = floats[n, base + valid[j]]
                    if v > maxs[n, m, w]:
                        maxs[n, m, w] = v
    out = np.empty((n_ent, n_out))
    absent = np.zeros(n_ent, dtype=np.bool_)
    g = n_ent
    for b in range(n_ent):
        last_any = words[b, o_last]
        ab = last_any == no_time or last_any < as_of - ttl
        absent[b] = ab
        c = cat_row[b]
        for f in range(kind.shape[0]):
            kd = kind[f]
            w = fw[f]
            val = np.nan
            prior = np.nan
            if kd == 0:
                val = sums[b, fa[f], w]
            elif kd == 1:
                den = sums[b, fb[f], w]
                if den > 0:
                    val = sums[b, fa[f], w] / den
                if has_groups:
                    gden = sums[g, fb[f], w]
                    pg = sums[g, fa[f], w] / gden if gden > 0 else np.nan
                    prior = pg
                    if c >= 0:
                        cden = sums[c, fb[f], w]
                        if cden > 0:
                            prior = sums[c, fa[f], w] / cden
            elif kd == 2:
                v = mins[b, fa[f], w]
                if not np.isinf(v):
                    val = v
            elif kd == 3:
                v = maxs[b, fa[f], w]
                if not np.isinf(v):
                    val = v
            elif kd == 4:
                st = strength[f]
                if has_groups:
                    gden = sums[g, fb[f], w]
                    pg = sums[g, fa[f], w] / gden if gden > 0 else 0.0
                    pc = pg
                    if c >= 0:
                        tot = sums[c, fb[f], w] + st
                        pc = (sums[c, fa[f], w] + st * pg) / tot if tot > 0 else pg
                    p = pg if prior_global[f] != 0 else pc
                    tot = sums[b, fb[f], w] + st
                    val = (sums[b, fa[f], w] + st * p) / tot if tot > 0 else p
                    prior = p
                else:
                    den = sums[b, fb[f], w]
                    val = sums[b, fa[f], w] / den if den > 0 else 0.0
            else:
                last = words[b, o_last + fa[f]]
                if last != no_time and last >= as_of - lookback:
                    age = as_of - last
                    val = (age if age > 0 else 0) / 1e9
            missing = ab or np.isnan(val)
            if missing:
                val = prior if policy[f] == 1 and not np.isnan(prior) else fill[f]
            out[b, col[f]] = val
            if flag_col[f] >= 0:
                out[b, flag_col[f]] = 1.0 if missing else 0.0
    return out, absent


def _compiled() -> Any:
    if "kernel" not in _COMPILED:
        import numba

        _COMPILED["kernel"] = numba.njit(cache=True, nogil=True)(_kernel)
    return _COMPILED["kernel"]


def _specs(plan: Plan) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    cached = plan._eval.get("fast")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    s = plan.n_slots
    ms, mn, mx = len(plan.sum_metrics), len(plan.min_metrics), len(plan.max_metrics)
    flag_col = np.full(len(plan.features), -1, dtype=np.int64)
    flag_col[plan._eval["flag_src"]] = plan._eval["flag_dst"]
    ip = np.array([
        0, int(plan.group_mode != "none"), 0, plan.utc_offset_ns, s, s, ms, s + ms * s, mn, s + (ms + mn) * s, mx,
        s + (ms + mn + mx) * s, plan.ttl_ns, plan.lookback_ns, int(plan._eval["n_out"]), NO_TIME,
    ], dtype=np.int64)
    rings = np.stack([plan.hops, plan.ring_starts, plan.ring_sizes], axis=1).astype(np.int64)
    wins = np.stack([plan.win_ring, plan.win_tiles], axis=1).astype(np.int64)
    fi = np.array([
        [_KIND[f.kind], f.a, max(f.b, 0), max(f.window, 0), int(f.prior == "global"), _POLICY[f.missing.policy],
         int(plan._eval["cols"][i]), int(flag_col[i])]
        for i, f in enumerate(plan.features)
    ], dtype=np.int64).reshape(len(plan.features), 8)
    ff = np.array([[f.strength, f.missing.fill()] for f in plan.features], dtype=np.float64).reshape(-1, 2)
    spec = (ip, rings, wins, fi, ff)
    plan._eval["fast"] = spec
    return spec


def evaluate_fast(
    plan: Plan, buffer: bytes, layout: RowLayout, as_of_ns: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Feature values from concatenated encoded states (``layout.n`` entities, then the group
    rows), as :func:`~aisle.features._aggregates.evaluate_states` computes them.

    Raises:
        ImportError: numba is not installed (check :func:`available` first).
    """
    ip, rings, wins, fi, ff = _specs(plan)
    return _compiled()(  # type: ignore[no-any-return]
        np.frombuffer(buffer, dtype=np.int64), plan.dtype.itemsize // 8, layout.category_state_row, layout.n,
        as_of_ns, ip, rings, wins, fi, ff,
    )
