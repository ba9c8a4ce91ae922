"""What the shop's own pages show, and the calibration of the funnel to the configured rates.

Each browsing session lands on a page (home, category, search, product). The page shows a
ranked list drawn without replacement from a Plackett-Luce model over the available items
(Gumbel top-k): the score mixes the user's taste and the items' popularity with weights that
depend on the page, plus season and a boost for new items. Category pages show one category,
picked by the user's taste.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._world import DAY, PAGES, World, examination

__all__ = ["calibrate", "expose"]

# Exposure of the shop's own pages: weight of the user's taste and of popularity per page.
_PAGE_TASTE = np.array([0.3, 0.5, 1.5, 1.0])  # home, category, search, product
_PAGE_POP = np.array([1.0, 1.0, 0.3, 0.5])
_CATEGORY_PAGE = PAGES.index("category")
_CELLS_PER_CHUNK = 1 << 21  # sessions × items scored at once
_CALIBRATION_SESSIONS = 4_000


def _gumbel(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.float32]:
    """Standard Gumbel noise, float32 (``-log`` of a standard exponential)."""
    noise = rng.standard_exponential(shape, dtype=np.float32)
    np.maximum(noise, np.float32(1e-30), out=noise)  # a draw of exactly 0 would give +inf
    np.log(noise, out=noise)
    np.negative(noise, out=noise)
    return noise


def _draw_lists(
    rng: np.random.Generator,
    uf: NDArray[np.float32],
    pg: NDArray[np.int8],
    ln: NDArray[np.int64],
    v: NDArray[np.float32],
    pop: NDArray[np.float32],
    item_term: NDArray[np.float32],
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.int64]]:
    """Gumbel top-k per row over the given columns: (row, column, 1-based rank) of shown pairs."""
    n_col = v.shape[0]
    # score = taste weight × taste + popularity weight × popularity + season/novelty + noise
    x = uf @ v.T
    x *= _PAGE_TASTE[pg].astype(np.float32)[:, None]
    x += np.multiply.outer(_PAGE_POP[pg].astype(np.float32), pop)
    x += item_term
    x += _gumbel(rng, x.shape)
    top_n = min(int(ln.max()), n_col)
    if top_n < n_col:
        part = np.argpartition(x, n_col - top_n, axis=1)[:, n_col - top_n :]
    else:
        part = np.broadcast_to(np.arange(n_col), x.shape).copy()
    g = np.take_along_axis(x, part, axis=1)
    order = np.argsort(-g, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    rank = np.arange(1, top_n + 1)
    r, c = np.nonzero(rank[None, :] <= ln[:, None])
    return r, top[r, c], (c + 1).astype(np.int64)


def expose(
    world: World,
    rng: np.random.Generator,
    user: NDArray[np.int64],
    page: NDArray[np.int8],
    length: NDArray[np.int64],
    t: float,
    avail: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The lists the shop shows: a Plackett-Luce draw (Gumbel top-k) over available items.

    Category pages draw from the items of one category, chosen by the user's taste for the
    categories and their size; the other pages draw from every available item.

    Returns:
        Shown pairs sorted by session then rank: local session index, item index, rank.
    """
    cfg = world.config
    truth = world.truth
    items = np.flatnonzero(avail)
    n_av = len(items)
    cat = truth.item_category_index[items]
    created = world.item_created_s[items]
    novelty = np.where(created >= 0, cfg.new_item_boost * np.exp(-(t - created) / (7 * DAY)), 0.0)
    item_term = (truth._season(cat, np.full(n_av, t / DAY)) + novelty).astype(np.float32)
    pop = (cfg.popularity_strength * truth.item_popularity[items]).astype(np.float32)
    v = truth.item_factors[items].astype(np.float32)
    n_cat = len(truth.category_paths)
    with np.errstate(divide="ignore"):
        log_cat = np.log(np.bincount(cat, minlength=n_cat).astype(np.float64))

    # Which rows draw from which columns: all items, or the items of one category.
    on_cat = page == _CATEGORY_PAGE
    groups: list[tuple[NDArray[np.intp], NDArray[np.intp]]] = []
    rest = np.flatnonzero(~on_cat)
    if len(rest):
        groups.append((rest, np.arange(n_av)))
    cat_rows = np.flatnonzero(on_cat)
    if len(cat_rows):
        score = truth.user_factors[user[cat_rows]] @ world.cat_centroids.T + log_cat[None, :]
        chosen = np.argmax(score + _gumbel(rng, score.shape), axis=1)
        by_cat = np.argsort(chosen, kind="stable")
        bounds = np.searchsorted(chosen[by_cat], np.arange(n_cat + 1))
        cat_order = np.argsort(cat, kind="stable")
        col_bounds = np.searchsorted(cat[cat_order], np.arange(n_cat + 1))
        for c in range(n_cat):
            if bounds[c] < bounds[c + 1] and col_bounds[c] < col_bounds[c + 1]:
                rows = cat_rows[by_cat[bounds[c] : bounds[c + 1]]]
                groups.append((rows, cat_order[col_bounds[c] : col_bounds[c + 1]]))

    out_s: list[NDArray[np.int64]] = []
    out_i: list[NDArray[np.int64]] = []
    out_p: list[NDArray[np.int64]] = []
    for rows, cols in groups:
        per_chunk = max(1, _CELLS_PER_CHUNK // len(cols))
        vc, pc, tc = v[cols], pop[cols], item_term[cols]
        for lo in range(0, len(rows), per_chunk):
            sub = rows[lo : lo + per_chunk]
            uf = truth.user_factors[user[sub]].astype(np.float32)
            r, col, rank = _draw_lists(rng, uf, page[sub], length[sub], vc, pc, tc)
            out_s.append(sub[r].astype(np.int64))
            out_i.append(items[cols[col]].astype(np.int64))
            out_p.append(rank)
    if not out_s:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    sess, item, pos = np.concatenate(out_s), np.concatenate(out_i), np.concatenate(out_p)
    order = np.lexsort((pos, sess))
    return sess[order], item[order], pos[order]


def _solve(terms: NDArray[np.float64], weights: NDArray[np.float64], target: float) -> float:
    """The intercept ``b`` with ``sum(w * sigmoid(b + terms)) / sum(w) == target`` (bisection)."""
    total = float(weights.sum())
    if total <= 0:
        return math.log(target / (1 - target))
    lo, hi = -40.0, 40.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        mean = float((weights * (1.0 + np.tanh(0.5 * (mid + terms)))).sum()) / (2.0 * total)
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return 0.5 * (lo + hi)


def calibrate(world: World) -> tuple[float, float, float, float]:
    """Intercepts that make the shop's own pages show the configured funnel rates.

    A sample of sessions (users drawn by activity, at mid-period, every listed item in stock)
    is shown the shop's lists; each intercept is solved so the rate over the pairs reaching
    that stage matches the config (``click_rate`` is clicks per shown item; it cannot exceed
    the mean examination probability, and is capped there).

    Returns:
        The click, cart, purchase and return intercepts.
    """
    cfg = world.config
    truth = world.truth
    rng = np.random.default_rng([cfg.seed, 0x5EED, 6])
    n = _CALIBRATION_SESSIONS
    act = truth.user_activity
    user = rng.choice(len(act), size=n, p=act / act.sum()).astype(np.int64)
    mix = cfg.page_mix
    page_w = np.array([mix.home, mix.category, mix.search, mix.product])
    page = rng.choice(4, size=n, p=page_w / page_w.sum()).astype(np.int8)
    length = np.minimum(rng.geometric(1.0 / cfg.mean_session_length, n), cfg.max_session_length)
    t = 0.5 * cfg.n_days * DAY
    avail = world.item_avail_s <= t
    if not avail.any():
        avail = np.ones(len(avail), dtype=bool)
    sess, item, pos = expose(world, rng, user, page, length.astype(np.int64), t, avail)
    u = user[sess]
    season = truth._season(truth.item_category_index[item], np.full(len(item), t / DAY))
    click, cart, buy, ret = truth._logit_terms(u, item, season)
    exam = examination(pos, cfg)
    # clicks per shown item = mean(exam * p) = mean(exam) * (exam-weighted mean of p)
    b_click = _solve(click, exam, min(cfg.click_rate / float(exam.mean()), 0.999))
    w = exam * 0.5 * (1.0 + np.tanh(0.5 * (b_click + click)))
    b_cart = _solve(cart, w, cfg.cart_rate)
    w = w * 0.5 * (1.0 + np.tanh(0.5 * (b_cart + cart)))
    b_buy = _solve(buy, w, cfg.purchase_rate)
    w = w * 0.5 * (1.0 + np.tanh(0.5 * (b_buy + buy)))
    b_ret = _solve(ret, w, cfg.return_rate)
    return b_click, b_cart, b_buy, b_ret
