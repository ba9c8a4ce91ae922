"""The simulated world: catalog, users and the hidden ground truth that drives their behaviour.

The world is drawn once from the config's seed (independently of the event log), so
:meth:`ShopSimulator.generate` and :meth:`ShopSimulator.simulate_policy` see the same shop.

The behaviour model, on the logit scale, for user ``u``, item ``i`` (leaf category ``c``) at
time ``t``::

    taste(u, i)  = user_factors[u] · item_factors[i]            (std ≈ taste_strength)
    pop(i)       = popularity_strength · item_popularity[i]       (centred log base popularity)
    price(u, i)  = -price_sensitivity[u] · log(price[i] / median price of c)
    season(c, t) = weekly and yearly sinusoids of category c

    P(click | examined)  = σ(click_bias    + taste + pop + price + season)
    P(cart | click)      = σ(cart_bias     + taste/2 + price)
    P(purchase | cart)   = σ(purchase_bias + taste/2 + price/2)
    P(return | purchase) = σ(return_bias   - taste/2)

A shown item at rank ``r`` is examined with the position-bias probability of the config. The
intercepts are calibrated when the world is drawn, so that the shop's own pages show the
configured ``click_rate``, ``cart_rate``, ``purchase_rate`` and ``return_rate`` (a better
ranking than the shop's then earns more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from aisle.data._schema import Kind, pandas_dtype
from aisle.errors import ConfigError, UnknownIdError

from ._config import SimulatorConfig

__all__ = [
    "DEVICES",
    "EVENTS",
    "PAGES",
    "ShopState",
    "ShopTruth",
    "World",
    "build_world",
    "examination",
    "utc_times",
]

DAY = 86_400.0

#: Event types the simulator writes, in funnel order (codes are indices).
EVENTS: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "return")
#: Pages written to the ``page`` column (codes are indices).
PAGES: tuple[str, ...] = ("home", "category", "search", "product", "recommendations", "orders")
#: Devices written to the ``device`` column (codes are indices).
DEVICES: tuple[str, ...] = ("mobile", "desktop", "app")

RelevanceEvent = Literal["click", "add_to_cart", "purchase", "return"]

_TOP_VOCAB: dict[str, tuple[str, ...]] = {
    "Women": ("Shoes", "Dresses", "Tops", "Bags", "Jackets", "Accessories"),
    "Men": ("Shoes", "Shirts", "Trousers", "Jackets", "Watches", "Accessories"),
    "Home": ("Kitchen", "Bedding", "Decor", "Lighting", "Storage", "Bath"),
    "Sports": ("Running", "Cycling", "Fitness", "Outdoor", "Swimming", "Team Sports"),
    "Kids": ("Toys", "Clothing", "Shoes", "School", "Baby", "Games"),
    "Beauty": ("Skincare", "Makeup", "Fragrance", "Haircare", "Nails", "Wellness"),
    "Electronics": ("Phones", "Audio", "Computers", "Cameras", "Gaming", "Wearables"),
    "Garden": ("Plants", "Tools", "Furniture", "Grills", "Lighting", "Watering"),
}
_BRAND_HEADS = ("Nor", "Lum", "Vel", "Kai", "Oro", "Sol", "Bry", "Tam", "Fen", "Ast", "Mir", "Cor")
_BRAND_TAILS = ("vik", "ora", "ent", "ana", "ello", "ix", "und", "ea", "ton", "ara", "is", "ux")
_STYLE_WORDS = (
    "minimalist", "vintage", "sporty", "elegant", "rugged", "playful", "classic", "bold",
    "cosy", "sleek", "natural", "urban", "bright", "muted", "technical", "handmade",
    "compact", "premium", "casual", "retro", "modern", "soft", "durable", "light",
    "organic", "glossy", "practical", "festive", "warm", "cool", "artisan", "smart",
)  # fmt: skip
_ADJECTIVES = ("Everyday", "Signature", "Essential", "Studio", "Heritage", "Pro", "Air", "Core")

# Segment label, top category and idiosyncratic share of a user's taste vector.
_USER_MIX = (0.45, 0.6, 0.66)


def examination(positions: ArrayLike, config: SimulatorConfig) -> NDArray[np.float64]:
    """The probability that a user examines an item shown at 1-based rank ``positions``.

    Args:
        positions: ranks, 1 for the first slot.
        config: gives the position-bias model and its parameters.

    Returns:
        Examination probabilities, one per rank.
    """
    r = np.asarray(positions, dtype=np.float64)
    if config.position_bias == "log":
        return np.asarray((1.0 / np.log2(1.0 + r)) ** config.position_bias_strength)
    if config.position_bias == "geometric":
        return np.asarray(config.position_bias_decay ** (r - 1.0))
    return np.ones_like(r)


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))


@dataclass(frozen=True, eq=False)
class ShopTruth:
    """The hidden ground truth of a simulated shop (what a recommender tries to recover).

    Attributes:
        config: the config the world was drawn from.
        user_ids: external user ids, row order of the user arrays.
        item_ids: external item ids, row order of the item arrays.
        user_factors: latent tastes, shape ``(n_users, n_factors)``.
        item_factors: latent item factors, shape ``(n_items, n_factors)``; the taste term of
            the behaviour model is ``user_factors @ item_factors.T``.
        item_popularity: centred log base popularity of each item.
        item_category: category path of each item.
        item_log_price_ratio: ``log(price / median price of the item's category)``.
        user_segment: segment label of each user.
        user_price_sensitivity: price sensitivity of each user (from the segment).
        user_activity: expected sessions of each user relative to the average user.
        category_paths: the leaf categories; ``item_category_index`` indexes into it.
        item_category_index: leaf category index of each item.
        weekly_amplitude, weekly_phase, yearly_amplitude, yearly_phase: seasonality of each
            leaf category (phases in days).
        click_bias, cart_bias, purchase_bias, return_bias: the intercepts of the funnel
            logits, calibrated so the shop's own pages show the configured funnel rates.
    """

    config: SimulatorConfig
    user_ids: NDArray[np.str_]
    item_ids: NDArray[np.str_]
    user_factors: NDArray[np.float64]
    item_factors: NDArray[np.float64]
    item_popularity: NDArray[np.float64]
    item_category: NDArray[np.str_]
    item_log_price_ratio: NDArray[np.float64]
    user_segment: NDArray[np.str_]
    user_price_sensitivity: NDArray[np.float64]
    user_activity: NDArray[np.float64]
    category_paths: tuple[str, ...]
    item_category_index: NDArray[np.int64]
    weekly_amplitude: NDArray[np.float64]
    weekly_phase: NDArray[np.float64]
    yearly_amplitude: NDArray[np.float64]
    yearly_phase: NDArray[np.float64]
    click_bias: float = 0.0
    cart_bias: float = 0.0
    purchase_bias: float = 0.0
    return_bias: float = 0.0
    _user_index: pd.Index = field(init=False, repr=False)
    _item_index: pd.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_user_index", pd.Index(self.user_ids))
        object.__setattr__(self, "_item_index", pd.Index(self.item_ids))

    # -- ids -----------------------------------------------------------------------------------
    def user_index(self, user_ids: ArrayLike) -> NDArray[np.intp]:
        """Row numbers of ``user_ids`` in the user arrays.

        Raises:
            UnknownIdError: if an id is not a user of this world.
        """
        return _lookup(self._user_index, user_ids, "user")

    def item_index(self, item_ids: ArrayLike) -> NDArray[np.intp]:
        """Row numbers of ``item_ids`` in the item arrays.

        Raises:
            UnknownIdError: if an id is not an item of this world.
        """
        return _lookup(self._item_index, item_ids, "item")

    # -- model ---------------------------------------------------------------------------------
    def affinity(self, user_ids: ArrayLike, item_ids: ArrayLike) -> NDArray[np.float64]:
        """The taste term ``user_factors · item_factors`` as a ``(users, items)`` matrix."""
        u = self.user_index(user_ids)
        i = self.item_index(item_ids)
        return np.asarray(self.user_factors[u] @ self.item_factors[i].T)

    def seasonality(self, item_ids: ArrayLike, at: datetime | pd.Timestamp) -> NDArray[np.float64]:
        """The seasonal term of the click logit of each item at time ``at``."""
        i = self.item_index(item_ids)
        return self._season(self.item_category_index[i], np.asarray(self._days(at)))

    def true_relevance(
        self,
        user_ids: ArrayLike,
        item_ids: ArrayLike,
        *,
        event: RelevanceEvent = "click",
        at: datetime | pd.Timestamp | None = None,
    ) -> NDArray[np.float64]:
        """The true probability of ``event`` for each user and item, given the item is examined.

        Args:
            user_ids: users (rows of the result).
            item_ids: items (columns of the result).
            event: ``"click"`` for P(click | examined), ``"add_to_cart"`` for
                P(cart | examined), ``"purchase"`` for P(purchase | examined) (ignoring stock),
                ``"return"`` for P(return | purchase).
            at: include the seasonal term at this time; ``None`` leaves it out (the yearly
                average).

        Returns:
            A ``(len(user_ids), len(item_ids))`` array of probabilities.
        """
        u = self.user_index(user_ids)
        i = self.item_index(item_ids)
        season: NDArray[np.float64] | float = 0.0
        if at is not None:
            season = self._season(self.item_category_index[i], np.asarray(self._days(at)))[None, :]
        click, cart, buy, ret = self._probabilities(u[:, None], i[None, :], season)
        if event == "click":
            return click
        if event == "add_to_cart":
            return click * cart
        if event == "purchase":
            return click * cart * buy
        if event == "return":
            return ret
        raise ConfigError(
            f"event must be one of click, add_to_cart, purchase, return; got {event!r}"
        )

    # -- internals (index based) ---------------------------------------------------------------
    def _days(self, at: datetime | pd.Timestamp) -> float:
        ts = pd.Timestamp(at)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return float((ts - pd.Timestamp(self.config.start)).total_seconds()) / DAY

    def _season(self, cat: NDArray[np.int64], days: NDArray[np.float64]) -> NDArray[np.float64]:
        """Seasonal logit term for categories ``cat`` at ``days`` since the start (broadcast)."""
        doy = self.config.start.timetuple().tm_yday - 1
        weekly = self.weekly_amplitude[cat] * np.sin(
            2 * np.pi * (days + self.weekly_phase[cat]) / 7.0
        )
        yearly = self.yearly_amplitude[cat] * np.sin(
            2 * np.pi * (days + doy + self.yearly_phase[cat]) / 365.25
        )
        return np.asarray(weekly + yearly)

    def _logit_terms(
        self,
        u: NDArray[np.intp],
        i: NDArray[np.intp],
        season: NDArray[np.float64] | float,
    ) -> tuple[NDArray[np.float64], ...]:
        """The funnel logits without intercepts (click, cart, purchase, return), broadcast."""
        if u.ndim == i.ndim == 1:  # pairs
            taste = np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i])
        else:  # a grid from u[:, None], i[None, :]
            taste = self.user_factors[u[:, 0]] @ self.item_factors[i[0]].T
        price = -self.user_price_sensitivity[u] * self.item_log_price_ratio[i]
        pop = self.config.popularity_strength * self.item_popularity[i]
        click = taste + pop + price + season
        cart = 0.5 * taste + price
        buy = 0.5 * taste + 0.5 * price
        ret = -0.5 * taste
        return click, cart, buy, ret

    def _probabilities(
        self,
        u: NDArray[np.intp],
        i: NDArray[np.intp],
        season: NDArray[np.float64] | float,
    ) -> tuple[NDArray[np.float64], ...]:
        """P(click|examined), P(cart|click), P(purchase|cart), P(return|purchase), broadcast."""
        click, cart, buy, ret = self._logit_terms(u, i, season)
        return (
            _sigmoid(self.click_bias + click),
            _sigmoid(self.cart_bias + cart),
            _sigmoid(self.purchase_bias + buy),
            _sigmoid(self.return_bias + ret),
        )


def _lookup(index: pd.Index, ids: ArrayLike, what: str) -> NDArray[np.intp]:
    values = np.asarray(ids, dtype=object).ravel()
    pos = index.get_indexer(pd.Index(values))
    bad = pos < 0
    if bad.any():
        missing = pd.unique(values[bad])
        shown = ", ".join(repr(x) for x in missing[:5])
        raise UnknownIdError(
            f"{len(missing)} unknown {what} id(s) ({shown}{', ...' if len(missing) > 5 else ''});"
            f" the simulated shop has {what} ids such as {index[0]!r}"
        )
    return np.asarray(pos, dtype=np.intp)


@dataclass(frozen=True, eq=False)
class ShopState:
    """The mutable part of a shop at one instant: where a policy run starts or ended.

    Attributes:
        time: the instant (UTC).
        item_ids: the items, in the order of ``stock``.
        stock: units in stock per item.
    """

    time: pd.Timestamp
    item_ids: NDArray[np.str_]
    stock: NDArray[np.float64]

    def stock_of(self, item_ids: ArrayLike) -> NDArray[np.float64]:
        """Units in stock of ``item_ids``."""
        pos = _lookup(pd.Index(self.item_ids), item_ids, "item")
        return np.asarray(self.stock[pos], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class World:
    """Everything drawn before any event: truth, catalog, users (private to the simulator)."""

    config: SimulatorConfig
    truth: ShopTruth
    items: pd.DataFrame
    users: pd.DataFrame
    item_price: NDArray[np.float64]
    item_margin: NDArray[np.float64]
    stock0: NDArray[np.float64]
    item_created_s: NDArray[np.float64]
    item_avail_s: NDArray[np.float64]
    user_signup_s: NDArray[np.float64]
    user_device: NDArray[np.int8]
    user_tracked: NDArray[np.bool_]
    cat_centroids: NDArray[np.float64]

    @property
    def step_seconds(self) -> float:
        return DAY / self.config.steps_per_day

    def traffic(self, hour0: float, n_hours: int) -> NDArray[np.float64]:
        """Relative traffic of the hours starting ``hour0, hour0 + 1, ...`` (hours since start)."""
        start = self.config.start
        h = np.arange(hour0, hour0 + n_hours, dtype=np.float64) + start.hour
        weekday = (start.weekday() + np.floor(h / 24.0)) % 7  # Monday = 0
        day_w = 1.0 + self.config.traffic_weekly_amplitude * np.cos(
            2 * np.pi * (weekday - 5.5) / 7.0
        )
        hod = h % 24
        hour_w = (
            0.15 + np.exp(-((hod - 20.0) ** 2) / 12.0) + 0.6 * np.exp(-((hod - 12.5) ** 2) / 8.0)
        )
        return np.asarray(day_w * hour_w)


def _canonical(kind: Kind) -> Any:
    return pandas_dtype(kind)


def _ids(prefix: str, n: int, width: int) -> NDArray[np.str_]:
    w = max(width, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}{k:0{w}d}" for k in range(n)])


def _category_names(n_top: int, n_sub: int) -> list[tuple[str, str]]:
    tops = list(_TOP_VOCAB)
    out = []
    for t in range(n_top):
        top = tops[t] if t < len(tops) else f"Department {t + 1}"
        subs = _TOP_VOCAB.get(top, ())
        for s in range(n_sub):
            out.append((top, subs[s] if s < len(subs) else f"Range {s + 1}"))
    return out


def _brand_names(n: int) -> list[str]:
    nh, nt = len(_BRAND_HEADS), len(_BRAND_TAILS)
    names = []
    for b in range(n):
        name = _BRAND_HEADS[b % nh] + _BRAND_TAILS[(b // nh + b) % nt]
        if b >= nh * nt:
            name += f" {b // (nh * nt) + 1}"
        names.append(name)
    return names


def _choice(rng: np.random.Generator, weights: NDArray[np.float64], size: int) -> NDArray[np.int64]:
    p = np.asarray(weights, dtype=np.float64)
    return np.asarray(rng.choice(len(p), size=size, p=p / p.sum()), dtype=np.int64)


def build_world(config: SimulatorConfig) -> World:
    """Draw the catalog, the users and the ground truth of a shop from ``config``."""
    cfg = config
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED, 1]))
    d = cfg.n_factors
    n_top, n_sub, n_cat = cfg.n_top_categories, cfg.n_sub_categories, cfg.n_categories
    n_items, n_users, n_brands = cfg.n_items, cfg.n_users, cfg.n_brands
    horizon = cfg.n_days * DAY

    # Categories and brands, each with a centre in the latent space.
    top_centre = rng.standard_normal((n_top, d))
    leaf_top = np.repeat(np.arange(n_top), n_sub)
    cat_centre = np.sqrt(0.5) * top_centre[leaf_top] + np.sqrt(0.5) * rng.standard_normal(
        (n_cat, d)
    )
    brand_centre = rng.standard_normal((n_brands, d))
    brand_pop = rng.standard_normal(n_brands)
    brand_price = 0.25 * rng.standard_normal(n_brands)

    # Items: category, brand, latent factors, popularity, price, margin, stock, listing time.
    cat_weight = rng.lognormal(0.0, 0.5, n_cat)
    item_cat = _choice(rng, cat_weight, n_items)
    u01 = rng.random(n_items)
    top_of_item = leaf_top[item_cat]
    brands_in_top = -(-(n_brands - top_of_item) // n_top)  # brands b with b % n_top == top
    item_brand = top_of_item + n_top * (u01 * brands_in_top).astype(np.int64)
    coh = cfg.category_coherence
    item_f = (
        np.sqrt(coh) * cat_centre[item_cat]
        + np.sqrt((1 - coh) * 0.3) * brand_centre[item_brand]
        + np.sqrt((1 - coh) * 0.7) * rng.standard_normal((n_items, d))
    )
    raw_pop = np.sqrt(0.3) * brand_pop[item_brand] + np.sqrt(0.7) * rng.standard_normal(n_items)
    item_pop = cfg.popularity_sigma * (raw_pop - raw_pop.mean()) if n_items > 1 else raw_pop * 0.0
    cat_log_median = math.log(cfg.price_median) + cfg.category_price_sigma * rng.standard_normal(
        n_cat
    )
    log_price = (
        cat_log_median[item_cat]
        + brand_price[item_brand]
        + cfg.price_sigma * rng.standard_normal(n_items)
    )
    price = np.maximum(np.round(np.exp(log_price)) - 0.01, 0.99)
    log_ratio = np.log(price) - cat_log_median[item_cat]
    k = cfg.margin_concentration
    margin = np.round(rng.beta(cfg.margin_mean * k, (1 - cfg.margin_mean) * k, n_items), 3)
    margin = np.clip(margin, 0.001, 0.999)
    s = cfg.stock_sigma
    stock0 = np.maximum(
        np.round(cfg.initial_stock_mean * rng.lognormal(-s * s / 2, s, n_items)), 1.0
    )
    is_new = rng.random(n_items) < cfg.new_item_fraction
    created = np.where(
        is_new, rng.random(n_items) * horizon, -rng.random(n_items) * 365 * DAY - 1.0
    )
    # Ids follow listing order: the newest items have the largest ids.
    order = np.argsort(created, kind="stable")
    item_cat, item_brand, item_f, item_pop = (
        item_cat[order],
        item_brand[order],
        item_f[order],
        item_pop[order],
    )
    price, log_ratio, margin, stock0, created = (
        price[order],
        log_ratio[order],
        margin[order],
        stock0[order],
        created[order],
    )
    step = DAY / cfg.steps_per_day
    avail = np.where(created < 0, created, (np.floor(created / step) + 1.0) * step)

    # Users: segment, taste, price sensitivity, activity, sign-up, device, consent.
    seg_w = np.array([sg.weight for sg in cfg.segments])
    seg_centre = rng.standard_normal((len(cfg.segments), d))
    user_seg = _choice(rng, seg_w, n_users)
    fav_top = rng.integers(0, n_top, n_users)
    a, b, c = _USER_MIX
    user_f = (
        a * seg_centre[user_seg] + b * top_centre[fav_top] + c * rng.standard_normal((n_users, d))
    )
    sens = np.array([sg.price_sensitivity for sg in cfg.segments])[user_seg]
    sig = cfg.activity_sigma
    activity = rng.lognormal(-sig * sig / 2, sig, n_users)
    new_user = rng.random(n_users) < cfg.new_user_fraction
    signup = np.where(
        new_user, rng.random(n_users) * horizon, -rng.random(n_users) * 365 * DAY - 1.0
    )
    dev_w = np.array([cfg.device_mix.mobile, cfg.device_mix.desktop, cfg.device_mix.app])
    device = _choice(rng, dev_w, n_users).astype(np.int8)
    consent_p = rng.random(n_users) < cfg.consent_personalization_rate
    tracked = rng.random(n_users) < cfg.consent_tracking_rate
    uorder = np.argsort(signup, kind="stable")
    user_seg, user_f, sens, activity, signup = (
        user_seg[uorder],
        user_f[uorder],
        sens[uorder],
        activity[uorder],
        signup[uorder],
    )
    device, consent_p, tracked = device[uorder], consent_p[uorder], tracked[uorder]

    # Scale the taste term so its standard deviation over user-item pairs is taste_strength.
    n_pairs = 20_000
    pu = rng.integers(0, n_users, n_pairs)
    pi = rng.integers(0, n_items, n_pairs)
    sd = float(np.std(np.einsum("ij,ij->i", user_f[pu], item_f[pi])))
    scale = cfg.taste_strength / sd if sd > 0 else 0.0
    user_f = user_f * math.sqrt(scale)
    item_f = item_f * math.sqrt(scale)
    centroids = np.zeros((n_cat, d))
    np.add.at(centroids, item_cat, item_f)
    centroids /= np.maximum(np.bincount(item_cat, minlength=n_cat), 1)[:, None]

    # Seasonality per leaf category.
    w_amp = cfg.weekly_amplitude * rng.uniform(0.5, 1.5, n_cat)
    w_phase = rng.uniform(0.0, 7.0, n_cat)
    y_amp = cfg.yearly_amplitude * rng.uniform(0.5, 1.5, n_cat)
    y_phase = rng.uniform(0.0, 365.25, n_cat)

    # Tables.
    names = _category_names(n_top, n_sub)
    paths = tuple(f"{t}/{sname}" for t, sname in names)
    brands = _brand_names(n_brands)
    item_ids = _ids("i", n_items, 5)
    user_ids = _ids("u", n_users, 6)
    segments = np.array([sg.name for sg in cfg.segments])[user_seg]
    titles, texts = _texts(item_f, item_cat, item_brand, names, brands, rng)
    start_ns = pd.Timestamp(cfg.start).value
    items = pd.DataFrame(
        {
            "item_id": pd.array(item_ids, dtype=_canonical("id")),
            "title": pd.array(titles, dtype=_canonical("str")),
            "category": pd.array(np.array(paths)[item_cat], dtype=_canonical("str")),
            "brand": pd.array(np.array(brands)[item_brand], dtype=_canonical("str")),
            "text": pd.array(texts, dtype=_canonical("str")),
            "price": price.astype(np.float64),
            "margin": margin.astype(np.float64),
            "stock": stock0.astype(np.float64),
            "created_at": utc_times(start_ns, created),
        }
    )
    users = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype=_canonical("id")),
            "segment": pd.array(segments, dtype=_canonical("str")),
            "signup_at": utc_times(start_ns, signup),
            "consent_personalization": pd.array(consent_p, dtype=_canonical("bool")),
            "consent_tracking": pd.array(tracked, dtype=_canonical("bool")),
        }
    )
    truth = ShopTruth(
        config=cfg,
        user_ids=user_ids,
        item_ids=item_ids,
        user_factors=user_f,
        item_factors=item_f,
        item_popularity=item_pop,
        item_category=np.array(paths)[item_cat],
        item_log_price_ratio=log_ratio,
        user_segment=segments,
        user_price_sensitivity=sens.astype(np.float64),
        user_activity=activity,
        category_paths=paths,
        item_category_index=item_cat,
        weekly_amplitude=w_amp,
        weekly_phase=w_phase,
        yearly_amplitude=y_amp,
        yearly_phase=y_phase,
    )
    world = World(
        config=cfg,
        truth=truth,
        items=items,
        users=users,
        item_price=price,
        item_margin=margin,
        stock0=stock0,
        item_created_s=created,
        item_avail_s=avail,
        user_signup_s=signup,
        user_device=device,
        user_tracked=tracked,
        cat_centroids=centroids,
    )
    from ._exposure import calibrate

    b_click, b_cart, b_buy, b_ret = calibrate(world)
    calibrated = replace(
        truth, click_bias=b_click, cart_bias=b_cart, purchase_bias=b_buy, return_bias=b_ret
    )
    return replace(world, truth=calibrated)


def utc_times(start_ns: int, seconds: NDArray[np.float64]) -> pd.Series:
    """Canonical UTC timestamps ``start + seconds``, at millisecond resolution."""
    ns = start_ns + np.round(seconds * 1_000.0).astype(np.int64) * 1_000_000
    return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"))


def _texts(
    item_f: NDArray[np.float64],
    item_cat: NDArray[np.int64],
    item_brand: NDArray[np.int64],
    names: list[tuple[str, str]],
    brands: list[str],
    rng: np.random.Generator,
) -> tuple[list[str], list[str]]:
    """Titles and short descriptions; the style words follow the item's strongest factors."""
    d = item_f.shape[1]
    top2 = np.argsort(-np.abs(item_f), axis=1)[:, : min(2, d)]
    sign = np.take_along_axis(item_f, top2, axis=1) < 0
    word_idx = (2 * top2 + sign) % len(_STYLE_WORDS)
    adj = rng.integers(0, len(_ADJECTIVES), len(item_cat))
    model_no = rng.integers(100, 1000, len(item_cat))
    titles: list[str] = []
    texts: list[str] = []
    for k in range(len(item_cat)):
        top, sub = names[item_cat[k]]
        brand = brands[item_brand[k]]
        w1 = _STYLE_WORDS[word_idx[k, 0]]
        w2 = _STYLE_WORDS[word_idx[k, -1] if d > 1 else (word_idx[k, 0] + 3) % len(_STYLE_WORDS)]
        titles.append(f"{brand} {_ADJECTIVES[adj[k]]} {sub} {model_no[k]}")
        texts.append(
            f"{w1.capitalize()} and {w2} {sub.lower()} from {brand} for {top.lower()}. "
            f"{_ADJECTIVES[adj[k]]} line, {w1} look."
        )
    return titles, texts
