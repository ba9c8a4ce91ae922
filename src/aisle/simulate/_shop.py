"""The shop simulator: a seeded synthetic event log with its catalog, users and ground truth.

Browsing sessions arrive over the period (heavy-tailed activity, weekly and daily traffic
cycles, users signing up as time goes on). Each session lands on a page that shows a ranked
list drawn from the shop's own exposure (popularity, the user's taste, season and novelty,
mixed per page); the user examines ranks with position bias and moves down the funnel of
:mod:`aisle.simulate._world`. Stock and availability are updated ``steps_per_day`` times a day;
the work within a step is vectorised with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import ValidationError as PydanticValidationError

from aisle.data._dataset import Dataset
from aisle.errors import ConfigError

from ._config import SimulatorConfig
from ._exposure import expose
from ._funnel import EventArrays, events_frame, run_funnel, string_column
from ._threads import single_blas_thread
from ._world import DAY, ShopState, ShopTruth, World, build_world, utc_times

if TYPE_CHECKING:
    from datetime import datetime

    from ._policy import Policy, PolicyRun

__all__ = ["ShopSimulator", "SimulatedShop", "simulate"]


@dataclass(frozen=True, eq=False)
class SimulatedShop:
    """What :meth:`ShopSimulator.generate` returns.

    Attributes:
        dataset: the shop's tables in aisle's canonical schema (``name="simulated"``): events,
            the catalog (``stock`` as at the end of the period) and the users table.
        truth: the hidden ground truth (tastes, item factors, popularity, true relevance).
        stock_ledger: every stock movement: ``item_id``, ``timestamp``, ``change``,
            ``reason`` (``"initial"``, ``"restock"``, ``"purchase"``) and ``stock_after``,
            sorted by time.
        state: the shop at the end of the period (pass it to
            :meth:`ShopSimulator.simulate_policy` to continue from there).
        config: the config the shop was generated from.
    """

    dataset: Dataset
    truth: ShopTruth
    stock_ledger: pd.DataFrame
    state: ShopState
    config: SimulatorConfig

    @property
    def events(self) -> pd.DataFrame:
        """Shortcut for ``dataset.events``."""
        return self.dataset.events


class ShopSimulator:
    """A seeded synthetic shop with a known ground truth.

    Args:
        config: every knob of the shop; the defaults give a small, realistic shop.

    Example:
        >>> shop = ShopSimulator(SimulatorConfig(n_users=200, n_items=100, n_days=7)).generate()
        >>> shop.dataset.name
        'simulated'
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self._world_cache: World | None = None

    def __repr__(self) -> str:
        c = self.config
        return f"ShopSimulator(seed={c.seed}, n_users={c.n_users}, n_items={c.n_items}, n_days={c.n_days})"

    @property
    def truth(self) -> ShopTruth:
        """The ground truth of the shop (drawn from the seed; no events needed)."""
        return self._world().truth

    def _world(self) -> World:
        if not isinstance(self.config, SimulatorConfig):
            raise ConfigError(
                f"ShopSimulator needs a SimulatorConfig, got {type(self.config).__name__}"
            )
        if self._world_cache is None or self._world_cache.config is not self.config:
            with single_blas_thread():
                self._world_cache = build_world(self.config)
        return self._world_cache

    def generate(self) -> SimulatedShop:
        """Simulate the whole period: browsing sessions, the funnel, stock and returns.

        Returns:
            The dataset, the ground truth, the stock ledger and the final shop state.
        """
        world = self._world()
        with single_blas_thread():
            return self._generate(world)

    def _generate(self, world: World) -> SimulatedShop:
        cfg = self.config
        sessions = _draw_sessions(world, np.random.default_rng([cfg.seed, 0x5EED, 2]))
        rng = np.random.default_rng([cfg.seed, 0x5EED, 3])
        stock = world.stock0.copy()
        step = world.step_seconds
        n_steps = cfg.n_days * cfg.steps_per_day
        t_end = cfg.n_days * DAY
        sess_step = np.minimum((sessions.t0 // step).astype(np.int64), n_steps - 1)
        bounds = np.searchsorted(sess_step, np.arange(n_steps + 1))
        ledger = _Ledger(world)
        parts: list[EventArrays] = []
        for k in range(n_steps):
            t = k * step
            _restock(world, stock, t - step, t, ledger)
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            avail = (world.item_avail_s <= t) & (stock > 0)
            if lo == hi or not avail.any():
                continue
            sl = slice(lo, hi)
            pair_sess, pair_item, pair_pos = expose(
                world, rng, sessions.user[sl], sessions.page[sl], sessions.length[sl], t, avail
            )
            res = run_funnel(
                world,
                rng,
                sess_user=sessions.user[sl],
                sess_t0=sessions.t0[sl],
                sess_page=sessions.page[sl],
                sess_device=sessions.device[sl],
                sess_id=np.arange(lo, hi, dtype=np.int64),
                pair_sess=pair_sess,
                pair_item=pair_item,
                pair_pos=pair_pos,
                stock=stock,
                purchasable=avail,
                t_end=t_end,
            )
            parts.append(res.events)
            ledger.purchases(res.purchase_item, res.purchase_t, res.purchase_qty)
        events = finish_events(world, EventArrays.concat(parts), session_base=len(sessions.t0))
        frame = events_frame(world, events.arrays, session_numbers=events.sessions, session_width=7)
        items = world.items.copy()
        items["stock"] = stock.astype(np.float64)
        dataset = Dataset(
            name="simulated",
            events=frame,
            items=items,
            users=world.users.copy(),
            meta={"generator": "aisle.simulate", "config": cfg.model_dump(mode="json")},
        )
        end = pd.Timestamp(cfg.start) + pd.Timedelta(days=cfg.n_days)
        return SimulatedShop(
            dataset=dataset,
            truth=world.truth,
            stock_ledger=ledger.frame(),
            state=ShopState(time=end, item_ids=world.truth.item_ids, stock=stock.copy()),
            config=cfg,
        )

    def simulate_policy(
        self,
        policy: Policy,
        *,
        n_days: int = 7,
        users: Any = None,
        k: int = 10,
        start: datetime | pd.Timestamp | None = None,
        state: ShopState | None = None,
    ) -> PolicyRun:
        """Show a policy's recommendations to visiting users and simulate what they do.

        Args:
            policy: a callable ``(user_ids, k, context) -> ranked item ids per user`` or an
                object with ``recommend(user_ids, k)``; see :class:`aisle.simulate.Policy`.
            n_days: length of the run in days.
            users: the users who may visit (ids); ``None`` for every user.
            k: the length of each shown list.
            start: when the run starts; by default ``state.time``, or the end of the
                generated period.
            state: stock to start from (e.g. ``SimulatedShop.state`` or a previous
                ``PolicyRun.state``); by default the initial stock.

        Returns:
            The events, the impressions with propensities, summary figures and the final state.
        """
        from ._policy import run_policy

        world = self._world()
        with single_blas_thread():
            return run_policy(
                world, policy, n_days=n_days, users=users, k=k, start=start, state=state
            )


@dataclass
class _Sessions:
    user: NDArray[np.int64]
    t0: NDArray[np.float64]
    page: NDArray[np.int8]
    device: NDArray[np.int8]
    length: NDArray[np.int64]


def draw_visit_times(
    world: World,
    rng: np.random.Generator,
    t_start: float,
    n_days: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Visits of every user in ``[t_start, t_start + n_days)`` (seconds since the start).

    Users visit at their own rate (activity × mean sessions per user over the configured
    period), following the weekly and daily traffic cycles, and only after signing up.

    Returns:
        The user index and the time of each visit, sorted by time.
    """
    cfg = world.config
    n_hours = n_days * 24
    w = world.traffic(t_start / 3600.0, n_hours)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    per_hour = cfg.mean_sessions_per_user / float(world.traffic(0.0, cfg.n_days * 24).sum())
    hours = np.arange(n_hours + 1, dtype=np.float64)
    signup_h = np.clip((world.user_signup_s - t_start) / 3600.0, 0.0, float(n_hours))
    lo = np.interp(signup_h, hours, cum)
    expected = world.truth.user_activity * per_hour * (cum[-1] - lo)
    counts = rng.poisson(expected)
    user = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    target = lo[user] + rng.random(len(user)) * (cum[-1] - lo[user])
    t = t_start + 3600.0 * np.interp(target, cum, hours)
    t = np.maximum(t, world.user_signup_s[user] + 1e-3)
    order = np.argsort(t, kind="stable")
    return user[order], t[order]


def draw_devices(
    world: World, rng: np.random.Generator, user: NDArray[np.int64]
) -> NDArray[np.int8]:
    """The device of each visit: the user's primary device, or now and then another one."""
    cfg = world.config
    dev_w = np.array([cfg.device_mix.mobile, cfg.device_mix.desktop, cfg.device_mix.app])
    other = rng.choice(3, size=len(user), p=dev_w / dev_w.sum())
    loyal = rng.random(len(user)) < cfg.device_loyalty
    return np.where(loyal, world.user_device[user], other).astype(np.int8)


def _draw_sessions(world: World, rng: np.random.Generator) -> _Sessions:
    cfg = world.config
    user, t0 = draw_visit_times(world, rng, 0.0, cfg.n_days)
    n = len(user)
    mix = cfg.page_mix
    page_w = np.array([mix.home, mix.category, mix.search, mix.product])
    page = rng.choice(4, size=n, p=page_w / page_w.sum()).astype(np.int8)
    device = draw_devices(world, rng, user)
    length = np.minimum(rng.geometric(1.0 / cfg.mean_session_length, n), cfg.max_session_length)
    return _Sessions(user=user, t0=t0, page=page, device=device, length=length.astype(np.int64))


def _restock(
    world: World, stock: NDArray[np.float64], t_prev: float, t: float, ledger: _Ledger | None
) -> None:
    """Refill every item to its initial stock if a restock day falls in ``(t_prev, t]``."""
    every = world.config.restock_every_days
    if every is None:
        return
    period = every * DAY
    m = math.floor(t / period)
    if m < 1 or m * period <= t_prev:
        return
    delta = world.stock0 - stock
    up = np.flatnonzero(delta > 0)
    if len(up) == 0:
        return
    stock[up] = world.stock0[up]
    if ledger is not None:
        ledger.restocks(up, np.full(len(up), m * period), delta[up])


class _Ledger:
    """Collects stock movements and turns them into the ``stock_ledger`` table."""

    _REASONS = ("initial", "restock", "purchase")

    def __init__(self, world: World) -> None:
        self.world = world
        n = len(world.stock0)
        self.item = [np.arange(n, dtype=np.int64)]
        self.t = [world.item_created_s.copy()]
        self.change = [world.stock0.copy()]
        self.reason = [np.zeros(n, dtype=np.int8)]

    def restocks(
        self, item: NDArray[np.intp], t: NDArray[np.float64], qty: NDArray[np.float64]
    ) -> None:
        self._add(item, t, qty, 1)

    def purchases(
        self, item: NDArray[np.int64], t: NDArray[np.float64], qty: NDArray[np.float64]
    ) -> None:
        self._add(item, t, -qty, 2)

    def _add(
        self, item: NDArray[Any], t: NDArray[np.float64], change: NDArray[np.float64], reason: int
    ) -> None:
        self.item.append(np.asarray(item, dtype=np.int64))
        self.t.append(np.asarray(t, dtype=np.float64))
        self.change.append(np.asarray(change, dtype=np.float64))
        self.reason.append(np.full(len(item), reason, dtype=np.int8))

    def frame(self) -> pd.DataFrame:
        item = np.concatenate(self.item)
        t = np.round(np.concatenate(self.t) * 1_000.0) / 1_000.0
        change = np.concatenate(self.change)
        reason = np.concatenate(self.reason)
        order = np.lexsort((reason, t, item))
        item, t, change, reason = item[order], t[order], change[order], reason[order]
        cum = np.cumsum(change)
        first = np.ones(len(item), dtype=bool)
        first[1:] = item[1:] != item[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(len(item)), 0))
        after = cum - (cum[start] - change[start])
        by_time = np.lexsort((reason, item, t))
        start_ns = pd.Timestamp(self.world.config.start).value
        return pd.DataFrame(
            {
                "item_id": string_column(item[by_time], self.world.truth.item_ids),
                "timestamp": utc_times(start_ns, t[by_time]),
                "change": change[by_time],
                "reason": string_column(reason[by_time], list(self._REASONS)),
                "stock_after": after[by_time],
            }
        )


@dataclass
class FinishedEvents:
    """Events sorted by time, logged users only, with compact session numbers."""

    arrays: EventArrays
    sessions: NDArray[np.int64]


def finish_events(
    world: World, ev: EventArrays, *, session_base: int, compact: bool = True
) -> FinishedEvents:
    """Drop untracked users' events, sort by time and number the sessions.

    Returns get a session of their own (a visit to the orders page), numbered from
    ``session_base`` on. With ``compact``, sessions are then renumbered 0, 1, ... in the order
    of their first event.
    """
    ev = ev.take(world.user_tracked[ev.user])
    ms = np.round(ev.t * 1_000.0).astype(np.int64)
    ev = ev.take(np.argsort(ms, kind="stable"))
    session = ev.session.copy()
    is_ret = session < 0
    session[is_ret] = session_base + np.arange(int(is_ret.sum()), dtype=np.int64)
    if not compact:
        return FinishedEvents(arrays=ev, sessions=session)
    # Number sessions by their first event, so ids increase with time.
    uniq, first, inverse = np.unique(session, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq), dtype=np.int64)
    return FinishedEvents(arrays=ev, sessions=rank[inverse])


def _sized_config(
    n_events: int, base: SimulatorConfig, overrides: Mapping[str, Any]
) -> SimulatorConfig:
    """A config whose shop produces about ``n_events`` events (sizes users from a pilot run)."""
    default_ratio = SimulatorConfig().n_users / SimulatorConfig().n_items
    pilot_users = min(base.n_users, 600)

    def with_users(n_users: int) -> SimulatorConfig:
        update: dict[str, Any] = {"n_users": n_users}
        n_items = base.n_items
        if "n_items" not in overrides:
            n_items = max(base.n_items, n_users // 10)
            update["n_items"] = n_items
        if "initial_stock_mean" not in overrides:
            ratio = max(n_users / n_items, 1e-9) / default_ratio
            update["initial_stock_mean"] = base.initial_stock_mean * max(ratio, 1.0)
        return base.model_copy(update=update)

    pilot = ShopSimulator(with_users(pilot_users)).generate()
    per_user = max(len(pilot.dataset.events) / pilot_users, 1e-9)
    return with_users(max(1, round(n_events / per_user)))


def simulate(n_events: int | None = None, *, seed: int = 0, **overrides: Any) -> SimulatedShop:
    """Generate a simulated shop in one call.

    Args:
        n_events: about how many events to generate; the number of users (and, unless given,
            items and stock) is sized from a small pilot run. ``None`` keeps the config's sizes.
        seed: the seed of every random draw.
        **overrides: any :class:`SimulatorConfig` field.

    Returns:
        The simulated shop.

    Raises:
        ConfigError: if an override is unknown or invalid (the message names the field).

    Example:
        >>> shop = simulate(20_000, seed=1)
        >>> 15_000 < len(shop.events) < 25_000
        True
    """
    try:
        base = SimulatorConfig(seed=seed, **overrides)
    except PydanticValidationError as exc:
        raise ConfigError(f"invalid simulator settings: {exc}") from exc
    if n_events is None:
        return ShopSimulator(base).generate()
    if not isinstance(n_events, int) or isinstance(n_events, bool) or n_events < 1:
        raise ConfigError(f"n_events must be a positive integer or None, got {n_events!r}")
    if "n_users" in overrides:
        raise ConfigError("give either n_events or n_users, not both (n_events sizes n_users)")
    return ShopSimulator(_sized_config(n_events, base, overrides)).generate()
