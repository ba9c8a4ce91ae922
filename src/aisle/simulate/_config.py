"""The typed, frozen configuration of the shop simulator: every knob, with a default."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DeviceMix", "PageMix", "Segment", "SimulatorConfig"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Segment(BaseModel):
    """A user segment: a label, its share of users and how it reacts to price.

    Attributes:
        name: the label written to the users table (``segment`` column).
        weight: relative share of users in the segment (normalised over all segments).
        price_sensitivity: how much a price above the category median lowers the odds of a
            click, a cart and a purchase (on the logit scale, per unit of log price ratio);
            negative values make the segment prefer expensive items.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    weight: float = Field(gt=0)
    price_sensitivity: float = 0.5


class PageMix(BaseModel):
    """Relative frequency of the page a browsing session lands on (normalised).

    ``home`` shows mostly popular items, ``category`` one category the user likes, ``search``
    items that match the user's taste closely, ``product`` items similar to what the user likes.
    """

    model_config = _FROZEN

    home: float = Field(default=0.3, ge=0)
    category: float = Field(default=0.3, ge=0)
    search: float = Field(default=0.2, ge=0)
    product: float = Field(default=0.2, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> PageMix:
        if self.home + self.category + self.search + self.product <= 0:
            raise ValueError("page_mix: at least one page weight must be positive")
        return self


class DeviceMix(BaseModel):
    """Relative frequency of each device among users' primary devices (normalised)."""

    model_config = _FROZEN

    mobile: float = Field(default=0.55, ge=0)
    desktop: float = Field(default=0.30, ge=0)
    app: float = Field(default=0.15, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> DeviceMix:
        if self.mobile + self.desktop + self.app <= 0:
            raise ValueError("device_mix: at least one device weight must be positive")
        return self


_DEFAULT_SEGMENTS = (
    Segment(name="bargain", weight=0.3, price_sensitivity=1.2),
    Segment(name="mainstream", weight=0.5, price_sensitivity=0.5),
    Segment(name="premium", weight=0.2, price_sensitivity=-0.3),
)


class SimulatorConfig(BaseModel):
    """Every knob of the synthetic shop. The defaults give a small, realistic shop.

    Sizes and time:
        seed: the seed of every random draw; the same config gives byte-identical output.
        n_users: users in the world (some sign up during the period, see ``new_user_fraction``).
        n_items: items in the catalog (some are listed during the period, see
            ``new_item_fraction``).
        n_top_categories: top-level categories (``"Women"``, ``"Home"`` ...).
        n_sub_categories: sub-categories per top-level category (``"Women/Shoes"`` ...).
        n_brands: brands; each belongs to one top-level category.
        n_days: length of the simulated period, in days.
        start: the first instant of the period (UTC; a naive datetime is taken as UTC).
        steps_per_day: how often per day stock and availability are updated (an item that
            sells out is no longer shown from the next step on).

    Tastes and popularity:
        n_factors: dimension of the latent taste space.
        taste_strength: standard deviation of the user-item taste term on the logit scale
            (0 removes personal taste; the default 2 gives a signal that collaborative models
            learn well beyond popularity).
        category_coherence: share (0..1) of an item's latent factors explained by its category.
        segments: the user segments (label, share, price sensitivity).
        popularity_sigma: spread of the items' log base popularity (heavy-tailed popularity).
        popularity_strength: weight of base popularity in exposure and click odds.
        new_item_boost: extra exposure of newly listed items (decays over about a week).

    Traffic:
        mean_sessions_per_user: expected browsing sessions of an average user over the period.
        activity_sigma: sigma of the lognormal per-user activity (heavy-tailed activity).
        mean_session_length: expected items shown per session (geometric).
        max_session_length: cap on items shown per session.
        traffic_weekly_amplitude: weekly swing of traffic (weekends busier), 0..1.
        device_mix: primary-device shares; ``device_loyalty`` is the chance a session uses it.
        device_loyalty: probability that a session uses the user's primary device.
        page_mix: landing-page shares of browsing sessions.

    Funnel (the funnel intercepts are calibrated so the shop's own pages show these rates):
        position_bias: examination model: ``"log"`` (1/log2(1+rank))**strength,
            ``"geometric"`` decay**(rank-1), or ``"none"``.
        position_bias_strength: exponent of the ``"log"`` model.
        position_bias_decay: per-rank decay of the ``"geometric"`` model.
        click_rate: clicks per shown item (capped at the mean examination probability).
        cart_rate: carts per click.
        purchase_rate: purchases per cart (before stock runs out).
        return_rate: returns per purchase (before the end of the period cuts late returns).
        mean_return_delay_days: mean days between a purchase and its return (at least half a
            day).
        extra_quantity_mean: quantity is 1 + Poisson(extra_quantity_mean).

    Catalog economics:
        price_median: median list price over the catalog.
        category_price_sigma: spread of category median prices (lognormal).
        price_sigma: spread of prices within a category (lognormal).
        margin_mean: mean margin as a fraction of price.
        margin_concentration: concentration of the Beta distribution of margins.
        initial_stock_mean: mean initial units per item (lognormal with ``stock_sigma``).
        stock_sigma: spread of initial stock.
        restock_every_days: every this many days each item is refilled to its initial stock;
            ``None`` never restocks.

    Seasonality and arrivals:
        weekly_amplitude: amplitude of each category's weekly sinusoid on the click logit.
        yearly_amplitude: amplitude of each category's yearly sinusoid on the click logit.
        new_item_fraction: share of items listed during the period (cold-start items).
        new_user_fraction: share of users who sign up during the period.
        consent_personalization_rate: share of users who allow personalization.
        consent_tracking_rate: share of users who allow tracking; the events of the others are
            not written to the event log (their purchases still deplete stock).
    """

    model_config = _FROZEN

    seed: int = Field(default=0, ge=0)
    n_users: int = Field(default=2_000, ge=1)
    n_items: int = Field(default=1_000, ge=1)
    n_top_categories: int = Field(default=4, ge=1, le=64)
    n_sub_categories: int = Field(default=4, ge=1, le=64)
    n_brands: int = Field(default=40, ge=1)
    n_days: int = Field(default=60, ge=1, le=3_650)
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    steps_per_day: int = Field(default=4, ge=1, le=96)

    n_factors: int = Field(default=16, ge=1, le=512)
    taste_strength: float = Field(default=2.0, ge=0, le=20)
    category_coherence: float = Field(default=0.5, ge=0, le=1)
    segments: tuple[Segment, ...] = Field(default=_DEFAULT_SEGMENTS, min_length=1)
    popularity_sigma: float = Field(default=1.0, ge=0, le=10)
    popularity_strength: float = Field(default=1.0, ge=0, le=10)
    new_item_boost: float = Field(default=0.5, ge=0, le=10)

    mean_sessions_per_user: float = Field(default=8.0, gt=0)
    activity_sigma: float = Field(default=1.0, ge=0, le=5)
    mean_session_length: float = Field(default=8.0, ge=1)
    max_session_length: int = Field(default=40, ge=1, le=1_000)
    traffic_weekly_amplitude: float = Field(default=0.2, ge=0, lt=1)
    device_mix: DeviceMix = DeviceMix()
    device_loyalty: float = Field(default=0.8, ge=0, le=1)
    page_mix: PageMix = PageMix()

    position_bias: Literal["log", "geometric", "none"] = "log"
    position_bias_strength: float = Field(default=1.0, ge=0, le=10)
    position_bias_decay: float = Field(default=0.85, gt=0, le=1)
    click_rate: float = Field(default=0.12, gt=0, lt=1)
    cart_rate: float = Field(default=0.3, gt=0, lt=1)
    purchase_rate: float = Field(default=0.5, gt=0, lt=1)
    return_rate: float = Field(default=0.1, gt=0, lt=1)
    mean_return_delay_days: float = Field(default=7.0, gt=0.5, le=365)
    extra_quantity_mean: float = Field(default=0.15, ge=0, le=100)

    price_median: float = Field(default=40.0, gt=0)
    category_price_sigma: float = Field(default=0.6, ge=0, le=5)
    price_sigma: float = Field(default=0.4, ge=0, le=5)
    margin_mean: float = Field(default=0.3, gt=0, lt=1)
    margin_concentration: float = Field(default=20.0, gt=0)
    initial_stock_mean: float = Field(default=12.0, gt=0)
    stock_sigma: float = Field(default=0.7, ge=0, le=5)
    restock_every_days: int | None = Field(default=14, ge=1)

    weekly_amplitude: float = Field(default=0.3, ge=0, le=10)
    yearly_amplitude: float = Field(default=0.5, ge=0, le=10)
    new_item_fraction: float = Field(default=0.2, ge=0, le=1)
    new_user_fraction: float = Field(default=0.3, ge=0, le=1)
    consent_personalization_rate: float = Field(default=0.9, ge=0, le=1)
    consent_tracking_rate: float = Field(default=1.0, ge=0, le=1)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> SimulatorConfig:
        if self.n_brands < self.n_top_categories:
            raise ValueError(
                f"n_brands ({self.n_brands}) must be at least n_top_categories "
                f"({self.n_top_categories}): every top-level category needs a brand"
            )
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segments: segment names must be unique, got {names}")
        if self.max_session_length < self.mean_session_length:
            raise ValueError(
                f"max_session_length ({self.max_session_length}) must be at least "
                f"mean_session_length ({self.mean_session_length})"
            )
        return self

    @property
    def n_categories(self) -> int:
        """Number of leaf categories (top level × sub level)."""
        return self.n_top_categories * self.n_sub_categories
