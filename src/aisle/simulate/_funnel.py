"""The event funnel shared by browsing sessions and policy runs.

Given what was shown to whom (pairs of a session and an item at a rank), draw examination,
click, add-to-cart, purchase (limited by stock) and return, with times that keep each item's
funnel in order inside its session, and return the events as flat arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from aisle.data._schema import EVENT_COLUMNS, Kind, pandas_dtype

from ._world import DAY, DEVICES, EVENTS, PAGES, World, examination, utc_times

__all__ = [
    "EventArrays",
    "FunnelResult",
    "canonical_dtype",
    "events_frame",
    "run_funnel",
    "sequential_ids",
    "string_column",
]

VIEW, CLICK, CART, PURCHASE, RETURN = range(5)
ORDERS_PAGE = PAGES.index("orders")


@dataclass
class EventArrays:
    """Events as parallel arrays (codes and indices; strings are made once at the end)."""

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    etype: NDArray[np.int8]
    t: NDArray[np.float64]  # seconds since config.start
    session: NDArray[np.int64]  # -1: to be numbered later (returns)
    qty: NDArray[np.float64]
    page: NDArray[np.int8]
    pos: NDArray[np.float64]
    device: NDArray[np.int8]

    @classmethod
    def empty(cls) -> EventArrays:
        return cls(
            user=np.empty(0, np.int64),
            item=np.empty(0, np.int64),
            etype=np.empty(0, np.int8),
            t=np.empty(0, np.float64),
            session=np.empty(0, np.int64),
            qty=np.empty(0, np.float64),
            page=np.empty(0, np.int8),
            pos=np.empty(0, np.float64),
            device=np.empty(0, np.int8),
        )

    @classmethod
    def concat(cls, parts: list[EventArrays]) -> EventArrays:
        if not parts:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> EventArrays:
        return EventArrays(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class FunnelResult:
    """What happened to one batch of shown pairs."""

    events: EventArrays
    purchase_item: NDArray[np.int64]  # successful purchases (also of untracked users)
    purchase_t: NDArray[np.float64]
    purchase_qty: NDArray[np.float64]
    view_t: NDArray[np.float64]  # per pair
    clicked: NDArray[np.bool_]  # per pair
    purchased: NDArray[np.bool_]  # per pair


def _group_starts(keys: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.intp]]:
    """For sorted ``keys``: where each run starts, and the start index of each element's run."""
    n = len(keys)
    first = np.ones(n, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return first, start


def run_funnel(
    world: World,
    rng: np.random.Generator,
    *,
    sess_user: NDArray[np.int64],
    sess_t0: NDArray[np.float64],
    sess_page: NDArray[np.int8],
    sess_device: NDArray[np.int8],
    sess_id: NDArray[np.int64],
    pair_sess: NDArray[np.int64],
    pair_item: NDArray[np.int64],
    pair_pos: NDArray[np.int64],
    stock: NDArray[np.float64],
    purchasable: NDArray[np.bool_],
    t_end: float,
) -> FunnelResult:
    """Draw the funnel for shown pairs; updates ``stock`` in place.

    Args:
        world: the simulated world.
        rng: the generator to draw from.
        sess_user, sess_t0, sess_page, sess_device, sess_id: per session (or visit): user
            index, start time in seconds since ``config.start``, page code, device code, and
            its global number.
        pair_sess, pair_item, pair_pos: the shown pairs, sorted by session then rank: the local
            session index, the item index and the 1-based rank.
        stock: units in stock per item; successful purchases are taken off it.
        purchasable: items that may be added to the cart (listed and in stock).
        t_end: events at or after this time are not written (the period is over).

    Returns:
        The events, the successful purchases and per-pair outcomes.
    """
    cfg = world.config
    truth = world.truth
    n = len(pair_item)
    user = sess_user[pair_sess]
    t0 = sess_t0[pair_sess]
    season = truth._season(truth.item_category_index[pair_item], t0 / DAY)
    p_click, p_cart, p_buy, p_ret = truth._probabilities(user, pair_item, season)
    draws = rng.random((4, n))
    clicked = draws[0] < examination(pair_pos, cfg) * p_click
    carted = clicked & (draws[1] < p_cart) & purchasable[pair_item]
    bought = carted & (draws[2] < p_buy)
    if cfg.extra_quantity_mean > 0:
        qty = 1.0 + rng.poisson(cfg.extra_quantity_mean, n).astype(np.float64)
    else:
        qty = np.ones(n)

    # Timeline: scroll to each item; a click opens the product page (where carting happens)
    # and the user scrolls on after it; purchases happen at checkout, after the last item.
    gap = 1.0 + rng.exponential(5.0, n)
    click_delay = 1.0 + 3.0 * rng.random(n)
    cart_delay = 2.0 + rng.exponential(20.0, n)
    dwell = np.where(clicked, click_delay + cart_delay + 3.0 + rng.exponential(30.0, n), 0.0)
    spent = gap + dwell
    cum = np.cumsum(spent)
    first, start = _group_starts(pair_sess)
    base = cum[start] - spent[start]
    view_t = t0 + (cum - dwell) - base
    click_t = view_t + click_delay
    cart_t = click_t + cart_delay
    group = np.cumsum(first) - 1
    last = np.append(np.flatnonzero(first)[1:] - 1, n - 1) if n else np.empty(0, np.intp)
    end_t = (t0[last] + cum[last] - base[last] + 10.0 + rng.exponential(60.0, len(last)))[group]
    n_bought = np.cumsum(bought)
    rank = n_bought - (n_bought[start] - bought[start])  # 1-based among the session's buys
    buy_t = end_t + 2.0 * rank

    # Stock: purchases are served in time order per item while units last.
    cand = np.flatnonzero(bought & (buy_t < t_end))
    cand = cand[np.lexsort((buy_t[cand], pair_item[cand]))]
    c_items = pair_item[cand]
    c_qty = qty[cand]
    _c_first, c_start = _group_starts(c_items)
    run = np.cumsum(c_qty)
    run = run - (run[c_start] - c_qty[c_start])
    ok = cand[run <= stock[c_items]]
    ok.sort()
    if len(ok):
        stock -= np.bincount(pair_item[ok], weights=qty[ok], minlength=len(stock))
    purchased = np.zeros(n, dtype=bool)
    purchased[ok] = True

    # Returns: some days after the purchase, if still inside the period.
    ret = ok[draws[3][ok] < p_ret[ok]]
    scale = (cfg.mean_return_delay_days - 0.5) / 2.0
    ret_t = buy_t[ret] + DAY * (0.5 + rng.gamma(2.0, scale, len(ret)))
    keep = ret_t < t_end
    ret, ret_t = ret[keep], ret_t[keep]

    views = np.flatnonzero(view_t < t_end)
    clicks = np.flatnonzero(clicked & (click_t < t_end))
    carts = np.flatnonzero(carted & (cart_t < t_end))
    idx = np.concatenate([views, clicks, carts, ok, ret])
    kinds = np.repeat(
        np.array([VIEW, CLICK, CART, PURCHASE, RETURN], dtype=np.int8),
        [len(views), len(clicks), len(carts), len(ok), len(ret)],
    )
    times = np.concatenate([view_t[views], click_t[clicks], cart_t[carts], buy_t[ok], ret_t])
    sess = pair_sess[idx]
    is_ret = kinds == RETURN
    events = EventArrays(
        user=user[idx].astype(np.int64),
        item=pair_item[idx].astype(np.int64),
        etype=kinds,
        t=times,
        session=np.where(is_ret, -1, sess_id[sess]),
        qty=np.where(kinds >= CART, qty[idx], np.nan),
        page=np.where(is_ret, ORDERS_PAGE, sess_page[sess]).astype(np.int8),
        pos=np.where(is_ret, np.nan, pair_pos[idx].astype(np.float64)),
        device=np.where(is_ret, world.user_device[user[idx]], sess_device[sess]).astype(np.int8),
    )
    return FunnelResult(
        events=events,
        purchase_item=pair_item[ok].astype(np.int64),
        purchase_t=buy_t[ok],
        purchase_qty=qty[ok],
        view_t=view_t,
        clicked=clicked & (click_t < t_end),
        purchased=purchased,
    )


def canonical_dtype(kind: Kind) -> Any:
    """The in-memory dtype of a canonical column kind (see :mod:`aisle.data._schema`)."""
    return pandas_dtype(kind)


def string_column(
    codes: NDArray[np.integer], vocabulary: NDArray[np.str_] | list[str]
) -> pd.Series:
    """A canonical string column from integer codes into ``vocabulary`` (fast, via Arrow)."""
    dictionary = pa.array(np.asarray(vocabulary, dtype=object), type=pa.string())
    arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)
    decoded = pc.cast(arr, pa.string())
    column: pd.Series = pd.Series(pd.arrays.ArrowStringArray(decoded), dtype=canonical_dtype("id"))
    return column


def sequential_ids(prefix: str, numbers: NDArray[np.int64], width: int) -> pd.Series:
    """Ids such as ``"e00000042"``: ``prefix`` and zero-padded ``numbers``."""
    digits = pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string())
    padded = pc.utf8_lpad(digits, width, "0")
    joined = pc.binary_join_element_wise(pa.scalar(prefix), padded, pa.scalar(""))
    column: pd.Series = pd.Series(pd.arrays.ArrowStringArray(joined), dtype=canonical_dtype("id"))
    return column


def events_frame(
    world: World,
    ev: EventArrays,
    *,
    session_numbers: NDArray[np.int64],
    session_width: int,
    event_prefix: str = "e",
    session_prefix: str = "s",
) -> pd.DataFrame:
    """The canonical event table for ``ev`` (already sorted by time).

    Args:
        world: gives the id vocabularies and prices.
        ev: the events, sorted by time.
        session_numbers: the session number of each event (no -1 left).
        session_width: digits of session ids.
        event_prefix: prefix of the event ids.
        session_prefix: prefix of the session ids.
    """
    n = len(ev)
    start_ns = pd.Timestamp(world.config.start).value
    width = max(8, len(str(max(n - 1, 0))))
    truth = world.truth
    frame = pd.DataFrame(
        {
            "event_id": sequential_ids(event_prefix, np.arange(n, dtype=np.int64), width),
            "user_id": string_column(ev.user, truth.user_ids),
            "item_id": string_column(ev.item, truth.item_ids),
            "event_type": string_column(ev.etype, list(EVENTS)),
            "timestamp": utc_times(start_ns, ev.t),
            "session_id": sequential_ids(session_prefix, session_numbers, session_width),
            "quantity": ev.qty.astype(np.float64),
            "price": world.item_price[ev.item].astype(np.float64),
            "value": np.full(n, np.nan),
            "device": string_column(ev.device, list(DEVICES)),
            "page": string_column(ev.page, list(PAGES)),
            "position": ev.pos.astype(np.float64),
        }
    )
    assert list(frame.columns) == [c.name for c in EVENT_COLUMNS]
    return frame
