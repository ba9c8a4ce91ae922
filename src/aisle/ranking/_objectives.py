"""Multi-objective reranking: ``relevance + λ · business value`` under hard constraints.

A model's candidate list (over-fetched, e.g. ``k × 5``) is reranked by

    combined(u, i) = rel_norm(u, i) + λ · Σ_o w_o · value_o(i)

* ``rel_norm`` normalises the model's scores **per list** so that λ means the same for every
  model and user: ``"minmax"`` maps the list's scores to [0, 1] (best = 1, worst = 0),
  ``"rank"`` uses the linear rank score ``1 - r / (n - 1)`` (best = 1), ``"softmax"`` uses the
  softmax probability relative to the best item, ``exp((s - max) / T)`` (best = 1).
  Every choice is a non-decreasing function of the score, so λ = 0 keeps the model's order.
* ``value_o`` is a business value per item from catalog attributes, scaled over the whole
  catalog (not per list) so that lists are comparable: ``"margin"`` (unit margin, price ×
  margin rate), ``"revenue"`` (price), ``"inventory"`` (overstock: the share of current stock
  that is not expected to sell within ``inventory_horizon_days`` at the recent sales velocity)
  and ``"availability"`` (``min(stock / low_stock_units, 1)``: low stock is a risk of selling
  out before the user buys).
* **Hard constraints** are applied to every λ, λ = 0 included: an item that is out of stock
  (``stock <= 0``), not yet listed (``created_at`` after ``now``) or flagged ``available ==
  False`` is never returned, however relevant; with ``max_per_brand`` no list holds more than
  that many items of one brand (greedy: an item is skipped when its brand is full).

:func:`rerank_scores` does this on plain arrays; :class:`MultiObjectiveRanker` works on a
model's :class:`~aisle.models.Recommendations` (``recommend`` over-fetches and reranks) and is
also a rerank hook for the serving pipeline (``create_app(settings, reranker=ranker)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisle.errors import ConfigError, DataError
from aisle.models._base import Recommendations, Recommender

__all__ = [
    "OBJECTIVES",
    "BusinessObjective",
    "ItemValues",
    "MultiObjectiveRanker",
    "RankerConfig",
    "item_values",
    "normalize_relevance",
    "parse_objectives",
    "rerank_scores",
]

ObjectiveKind = Literal["margin", "revenue", "inventory", "availability"]
Normalization = Literal["minmax", "rank", "softmax"]
Scaling = Literal["quantile", "minmax", "rank"]
_TIE = 1e-6  # weight of relevance when λ is infinite (business value only)

#: Each objective and the catalog columns it reads.
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "margin": ("price", "margin"),
    "revenue": ("price",),
    "inventory": ("stock",),
    "availability": ("stock",),
}


class BusinessObjective(BaseModel):
    """One business objective: which item value, its weight and how it is scaled.

    Attributes:
        kind: ``"margin"`` (price × margin rate), ``"revenue"`` (price), ``"inventory"``
            (overstock share, stock to clear) or ``"availability"`` (stock level, capped at 1).
        weight: its weight in the business value (``Σ weight × scaled value``).
        scaling: how raw values become comparable with per-list relevance in [0, 1], over the
            whole catalog: ``"quantile"`` divides by the 95th percentile of the positive values
            (linear, robust to a few very expensive items; values above it exceed 1),
            ``"minmax"`` maps to [0, 1], ``"rank"`` uses the percentile rank.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ObjectiveKind = "margin"
    weight: float = Field(default=1.0, ge=0)
    scaling: Scaling = "quantile"


class RankerConfig(BaseModel):
    """Every knob of :class:`MultiObjectiveRanker`, with a default.

    Attributes:
        objectives: the business objectives and their weights (a spec string such as
            ``"margin=1,inventory=0.5"`` is accepted).
        lam: λ, the weight of the business value against the normalised relevance
            (0 = pure relevance, under the hard constraints).
        normalization: per-list relevance normalisation: ``"minmax"``, ``"rank"`` or
            ``"softmax"`` (see the module docstring).
        temperature: the softmax temperature (on the model's score scale).
        overfetch: :meth:`MultiObjectiveRanker.recommend` asks the model for
            ``k × overfetch`` candidates before reranking.
        max_per_brand: at most this many items of one brand per list (``None``: no cap).
        require_available: never return out-of-stock, unlisted or unavailable items (the hard
            constraint; switch off only to measure what it costs).
        inventory_horizon_days: the horizon of the ``"inventory"`` objective.
        velocity_window_days: sales velocity is units sold per day over this window before
            ``now`` (from purchase events).
        low_stock_units: the ``"availability"`` objective is ``min(stock / low_stock_units, 1)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    objectives: tuple[BusinessObjective, ...] = (BusinessObjective(),)
    lam: float = Field(default=1.0, ge=0)
    normalization: Normalization = "minmax"
    temperature: float = Field(default=1.0, gt=0)
    overfetch: int = Field(default=5, ge=1)
    max_per_brand: int | None = Field(default=None, ge=1)
    require_available: bool = True
    inventory_horizon_days: float = Field(default=14.0, gt=0)
    velocity_window_days: float = Field(default=28.0, gt=0)
    low_stock_units: float = Field(default=3.0, gt=0)

    @field_validator("objectives", mode="before")
    @classmethod
    def _spec(cls, value: Any) -> Any:
        """Accept a spec such as ``"margin=1,inventory=0.5"`` or ``{"margin": 1.0}``."""
        return parse_objectives(value) if isinstance(value, (str, Mapping)) else value


def parse_objectives(spec: str | Sequence[str] | Mapping[str, float]) -> tuple[BusinessObjective, ...]:
    """``"margin"``, ``"margin=1,inventory=0.5"`` or ``{"margin": 1.0}`` -> objectives.

    Raises:
        ConfigError: an unknown objective or a bad weight (the message lists the valid names).
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        for part in parts:
            part = part.strip()
            if part:
                name, _, weight = part.partition("=")
                pairs.append((name.strip(), weight.strip() or "1"))
    if not pairs:
        raise ConfigError(f"no objective given; e.g. margin or margin=1,inventory=0.5 (valid: {', '.join(OBJECTIVES)})")
    out: list[BusinessObjective] = []
    for name, weight in pairs:
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
        try:
            out.append(BusinessObjective(kind=name, weight=float(weight)))  # type: ignore[arg-type]
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"objective {name!r}: the weight must be a number >= 0, got {weight!r}") from exc
    return tuple(out)


# ---------------------------------------------------------------------------- item values
@dataclass(frozen=True, eq=False)
class ItemValues:
    """Business attributes of the catalog's items, aligned with ``item_ids``.

    Attributes:
        item_ids: the catalog's item ids.
        value: the business value ``Σ w_o · scaled value_o`` per item (0 where unknown).
        available: False where the item must never be recommended (out of stock, unlisted,
            flagged unavailable).
        brand: brand code per item, -1 when unknown (brand caps skip those).
        unit_margin: price × margin rate (``nan`` when unknown), for reporting.
        price: price (``nan`` when unknown).
        components: each objective's scaled value per item.
    """

    item_ids: np.ndarray
    value: np.ndarray
    available: np.ndarray
    brand: np.ndarray
    unit_margin: np.ndarray
    price: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    _index: pd.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", pd.Index(np.asarray(self.item_ids, dtype=object), dtype=object))

    def __len__(self) -> int:
        return len(self.item_ids)

    def positions(self, item_ids: Any) -> np.ndarray:
        """Row of each id in this catalog, -1 for ids it does not know (``None`` included)."""
        ids = np.asarray(item_ids, dtype=object)
        if ids.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        # object-dtype lookup: no conversion of the ids to another string type; None is not found
        pos = self._index.get_indexer(pd.Index(ids.ravel(), dtype=object))
        return np.asarray(pos, dtype=np.int64).reshape(ids.shape)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return np.asarray(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def _scale(x: np.ndarray, how: Scaling) -> np.ndarray:
    """Scale raw values over the catalog (``nan`` -> 0)."""
    out = np.zeros(len(x))
    finite = np.isfinite(x)
    if not finite.any():
        return out
    v = x[finite]
    if how == "minmax":
        lo, hi = float(v.min()), float(v.max())
        out[finite] = (v - lo) / (hi - lo) if hi > lo else 1.0
    elif how == "rank":
        ranks = pd.Series(v).rank(method="average").to_numpy()
        out[finite] = (ranks - 1) / max(len(v) - 1, 1) if len(v) > 1 else 1.0
    else:
        pos = v[v > 0]
        q = float(np.quantile(pos, 0.95)) if pos.size else 0.0
        out[finite] = np.maximum(v, 0.0) / q if q > 0 else 0.0
    return out


def _velocity(events: pd.DataFrame | None, item_ids: np.ndarray, now: pd.Timestamp | None,
              window_days: float) -> np.ndarray:
    """Units sold per day per item over the window before ``now`` (0 without purchase events)."""
    out = np.zeros(len(item_ids))
    if events is None or len(events) == 0 or "event_type" not in events:
        return out
    buys = events[events["event_type"].astype(str) == "purchase"]
    end = pd.Timestamp(now) if now is not None else (buys["timestamp"].max() if len(buys) else None)
    if end is None or len(buys) == 0:
        return out
    buys = buys[(buys["timestamp"] <= end) & (buys["timestamp"] > end - pd.Timedelta(days=window_days))]
    qty = pd.to_numeric(buys["quantity"], errors="coerce").fillna(1.0) if "quantity" in buys else pd.Series(1.0, index=buys.index)
    units = qty.groupby(buys["item_id"].astype(str).to_numpy()).sum()
    pos = pd.Index(np.asarray(item_ids, dtype=object).astype(str)).get_indexer(units.index)
    keep = pos >= 0
    out[pos[keep]] = units.to_numpy(dtype=np.float64)[keep] / window_days
    return out


def item_values(
    catalog: pd.DataFrame,
    objectives: Sequence[BusinessObjective] | str = "margin",
    *,
    events: pd.DataFrame | None = None,
    now: pd.Timestamp | str | None = None,
    inventory_horizon_days: float = 14.0,
    velocity_window_days: float = 28.0,
    low_stock_units: float = 3.0,
) -> ItemValues:
    """Business values, availability and brands of the catalog's items.

    Args:
        catalog: one row per item with ``item_id`` and the columns the objectives read:
            ``price``, ``margin`` (a rate: margin / price), ``stock``; optional ``brand``,
            ``created_at`` (items listed after ``now`` are unavailable) and ``available``.
        objectives: the objectives (or a spec for :func:`parse_objectives`).
        events: purchase events for the sales velocity of the ``"inventory"`` objective.
        now: the moment the lists are served (listing time and velocity window).
        inventory_horizon_days: see :class:`RankerConfig`.
        velocity_window_days: see :class:`RankerConfig`.
        low_stock_units: see :class:`RankerConfig`.

    Raises:
        ConfigError: an objective needs a column the catalog lacks (or has no value in).
        DataError: the catalog has no ``item_id`` column.
    """
    objs = parse_objectives(objectives) if isinstance(objectives, str) else tuple(objectives)
    if "item_id" not in catalog:
        raise DataError("the catalog needs an item_id column")
    frame = catalog.drop_duplicates("item_id", keep="last").reset_index(drop=True)
    ids = frame["item_id"].astype(str).to_numpy(dtype=object)
    for o in objs:
        missing = [c for c in OBJECTIVES[o.kind] if c not in frame or frame[c].isna().all()]
        if missing:
            raise ConfigError(
                f"objective {o.kind!r} needs the catalog columns {list(OBJECTIVES[o.kind])}; "
                f"{missing} {'is' if len(missing) == 1 else 'are'} missing or empty. Give a catalog with "
                "them (--catalog FILE: price, margin as a rate of price, stock) or use the simulator (--simulate)"
            )
    price = _column(frame, "price")
    rate = _column(frame, "margin")
    stock = _column(frame, "stock")
    unit_margin = price * rate
    when = None if now is None else pd.Timestamp(now)
    if when is not None and when.tzinfo is None:
        when = when.tz_localize("UTC")
    available = ~(stock <= 0)  # nan stock: unknown, treated as in stock (as the serving rules do)
    if when is not None and "created_at" in frame:
        created = pd.to_datetime(frame["created_at"], utc=True, errors="coerce")
        available &= ~(created > when).to_numpy(dtype=bool, na_value=False)
    if "available" in frame:
        flag = frame["available"].astype("boolean").to_numpy(dtype=bool, na_value=True)
        available &= flag
    raw: dict[str, np.ndarray] = {
        "margin": unit_margin,
        "revenue": price,
    }
    if any(o.kind == "inventory" for o in objs):
        need = _velocity(events, ids, when, velocity_window_days) * inventory_horizon_days
        with np.errstate(divide="ignore", invalid="ignore"):
            over = np.where(stock > 0, np.clip(1.0 - need / stock, 0.0, 1.0), 0.0)
        raw["inventory"] = np.where(np.isfinite(stock), over, np.nan)
    if any(o.kind == "availability" for o in objs):
        level = np.where(stock > 0, np.minimum(stock / low_stock_units, 1.0), 0.0)
        raw["availability"] = np.where(np.isfinite(stock), level, 1.0)
    components: dict[str, np.ndarray] = {}
    value = np.zeros(len(frame))
    for o in objs:
        scaled = _scale(raw[o.kind], o.scaling)
        components[o.kind] = components.get(o.kind, 0.0) + scaled
        value += o.weight * scaled
    if "brand" in frame:
        brands = frame["brand"].astype("string")
        codes, _ = pd.factorize(brands, use_na_sentinel=True)
        brand = np.asarray(codes, dtype=np.int64)
    else:
        brand = np.full(len(frame), -1, dtype=np.int64)
    return ItemValues(ids, value, np.asarray(available, dtype=bool), brand, unit_margin, price, components)


# ---------------------------------------------------------------------------- arrays
def normalize_relevance(scores: np.ndarray, how: Normalization = "minmax", temperature: float = 1.0) -> np.ndarray:
    """Per-row normalised relevance in [0, 1] (best candidate = 1); ``nan``/``-inf`` stay ``nan``.

    ``"minmax"``: ``(s - min) / (max - min)`` over the row's candidates (1 when all equal);
    ``"rank"``: ``1 - r / (n - 1)`` with r the 0-based rank (ties by position);
    ``"softmax"``: ``exp((s - max) / temperature)``, the softmax probability relative to the best.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError(f"scores must be a 2-d array (lists x candidates), got shape {s.shape}")
    valid = np.isfinite(s)
    masked = np.where(valid, s, np.nan)
    out = np.full(s.shape, np.nan)
    rows: np.ndarray = np.asarray(valid.any(axis=1))
    if not rows.any():
        return out
    with np.errstate(invalid="ignore"):
        hi = np.nanmax(np.where(rows[:, None], masked, 0.0), axis=1)
        lo = np.nanmin(np.where(rows[:, None], masked, 0.0), axis=1)
    if how == "minmax":
        span = (hi - lo)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(span > 0, (masked - lo[:, None]) / np.where(span > 0, span, 1.0), 1.0)
    elif how == "rank":
        order = np.argsort(-np.where(valid, s, -np.inf), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(s.shape[1])[None, :].repeat(s.shape[0], 0), axis=1)
        n = valid.sum(axis=1)[:, None]
        out = np.where(n > 1, 1.0 - rank / np.maximum(n - 1, 1), 1.0)
    elif how == "softmax":
        out = np.exp((masked - hi[:, None]) / temperature)
    else:
        raise ConfigError(f"normalization must be minmax, rank or softmax, got {how!r}")
    return np.where(valid, out, np.nan)


def _occurrences(groups: np.ndarray) -> np.ndarray:
    """Per cell, how many cells to its left in the same row hold the same group (-1: none)."""
    n, m = groups.shape
    out = np.zeros((n, m), dtype=np.int64)
    if m <= 256:  # short lists: a pairwise comparison per row block is the fastest
        earlier = np.tri(m, m, -1, dtype=bool)  # [j, i]: i is left of j
        step = max(1, (1 << 22) // max(m * m, 1))
        for lo in range(0, n, step):
            b = groups[lo:lo + step]
            same = (b[:, :, None] == b[:, None, :]) & earlier[None, :, :]
            out[lo:lo + step] = same.sum(axis=2)
        return out
    row = np.repeat(np.arange(n), m)
    flat = groups.ravel()
    seq = np.lexsort((np.tile(np.arange(m), n), flat, row))
    key_r, key_g = row[seq], flat[seq]
    first = np.ones(seq.size, dtype=bool)
    first[1:] = (key_r[1:] != key_r[:-1]) | (key_g[1:] != key_g[:-1])
    start = np.maximum.accumulate(np.where(first, np.arange(seq.size), 0))
    out.ravel()[seq] = np.arange(seq.size) - start
    return out


def rerank_scores(
    scores: np.ndarray,
    business_value: np.ndarray,
    k: int,
    *,
    lam: float,
    available: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    max_per_group: int | None = None,
    normalization: Normalization = "minmax",
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Rerank candidate lists by ``normalised relevance + lam · business value``.

    Args:
        scores: ``(n_lists, m)`` model scores of m candidates per list; ``nan``/``-inf`` marks
            an empty slot.
        business_value: ``(n_lists, m)`` or ``(m,)`` business value of each candidate.
        k: the length of the returned lists.
        lam: λ >= 0; ``inf`` ranks by business value alone (relevance breaks ties).
        available: bool like ``scores`` (or ``(m,)``): False candidates are never returned.
        groups: int codes like ``scores`` (or ``(m,)``), e.g. brands; -1 = no group.
        max_per_group: at most this many candidates of one group per list.
        normalization: see :func:`normalize_relevance`.
        temperature: softmax temperature.

    Returns:
        ``(positions, combined)``: ``(n_lists, k)`` column positions into ``scores`` (-1 where
        fewer than k candidates qualify) and their combined scores (``-inf`` there).
        With ``lam=0`` and no constraint binding, the order is the order of ``scores``
        (ties keep their column order).
    """
    if not lam >= 0:
        raise ConfigError(f"lam must be a number >= 0 (or inf), got {lam}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    s = np.asarray(scores, dtype=np.float64)
    n, m = s.shape if s.ndim == 2 else (0, 0)
    if s.ndim != 2:
        raise ConfigError(f"scores must be a 2-d array (lists x candidates), got shape {s.shape}")
    value = np.broadcast_to(np.nan_to_num(np.asarray(business_value, dtype=np.float64)), (n, m))
    if available is not None:  # normalise over the candidates that may be shown
        s = np.where(np.broadcast_to(np.asarray(available, dtype=bool), (n, m)), s, -np.inf)
    rel = normalize_relevance(s, normalization, temperature)
    # λ = inf: business value only, relevance breaks ties; λ = 0: relevance alone
    combined = value + _TIE * rel if np.isinf(lam) else (rel + lam * value if lam > 0 else rel)
    combined = np.where(np.isfinite(combined), combined, -np.inf)
    order = np.argsort(-combined, axis=1, kind="stable")
    ranked = np.take_along_axis(combined, order, axis=1)
    ok = np.isfinite(ranked)
    if groups is not None and max_per_group is not None:
        g = np.take_along_axis(np.broadcast_to(np.asarray(groups, dtype=np.int64), (n, m)), order, axis=1)
        # greedy cap == keep the first max_per_group occurrences of each group in ranked order
        gq = np.where(ok, g, -1)
        occurrence = _occurrences(gq)
        ok &= ~((gq >= 0) & (occurrence >= max_per_group))
    # first k qualifying candidates per row, order kept
    slot = np.cumsum(ok, axis=1) - 1
    take = ok & (slot < k)
    positions = np.full((n, k), -1, dtype=np.int64)
    values = np.full((n, k), -np.inf)
    r, c = np.nonzero(take)
    positions[r, slot[r, c]] = order[r, c]
    values[r, slot[r, c]] = ranked[r, c]
    return positions, values


# ---------------------------------------------------------------------------- the stage
def _make_config(config: RankerConfig | None, overrides: Mapping[str, Any]) -> RankerConfig:
    """``config`` updated by ``overrides`` (``objectives`` may be a spec string), validated."""
    upd = dict(overrides)
    if isinstance(upd.get("objectives"), (str, Mapping)):
        upd["objectives"] = parse_objectives(upd["objectives"])
    if config is not None and not upd:
        return config
    try:
        base = config.model_dump() if config is not None else {}
        return RankerConfig(**{**base, **upd})
    except ValidationError as exc:
        raise ConfigError(f"invalid ranker config: {exc}") from exc


class MultiObjectiveRanker:
    """Reranks any model's candidates by ``relevance + λ · business value`` under hard constraints.

    Args:
        values: the catalog's business values (see :func:`item_values`, or use
            :meth:`from_catalog`).
        config: the ranker's config; keyword overrides (``lam=0.5`` ...) update it.

    Example:
        >>> import pandas as pd
        >>> catalog = pd.DataFrame({"item_id": ["a", "b", "c"], "price": [10.0, 50.0, 20.0],
        ...                         "margin": [0.5, 0.5, 0.1], "stock": [3, 8, 0]})
        >>> ranker = MultiObjectiveRanker.from_catalog(catalog, lam=2.0)
        >>> ranker.rerank_ids([["c", "a", "b"]], [[0.9, 0.8, 0.1]], k=2)[0].tolist()
        [['b', 'a']]
    """

    def __init__(self, values: ItemValues, config: RankerConfig | None = None, **overrides: Any) -> None:
        self.values = values
        self.config = _make_config(config, overrides)

    @classmethod
    def from_catalog(
        cls,
        catalog: pd.DataFrame,
        config: RankerConfig | None = None,
        *,
        events: pd.DataFrame | None = None,
        now: pd.Timestamp | str | None = None,
        **overrides: Any,
    ) -> MultiObjectiveRanker:
        """A ranker whose business values come from ``catalog`` (see :func:`item_values`).

        Args:
            catalog: the catalog (price, margin rate, stock, brand, created_at ...).
            config: the config; keyword overrides update it (``objectives`` may be a spec
                string such as ``"margin=1,inventory=0.5"``).
            events: purchase events, for the sales velocity of the ``"inventory"`` objective.
            now: when the lists are served.
        """
        c = _make_config(config, overrides)
        values = item_values(catalog, c.objectives, events=events, now=now,
                             inventory_horizon_days=c.inventory_horizon_days,
                             velocity_window_days=c.velocity_window_days, low_stock_units=c.low_stock_units)
        return cls(values, c)

    def with_lambda(self, lam: float) -> MultiObjectiveRanker:
        """The same ranker with another λ."""
        return MultiObjectiveRanker(self.values, self.config, lam=lam)

    # ------------------------------------------------------------------ arrays of ids
    def rerank_ids(
        self, items: Any, scores: Any, k: int, *, lam: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rerank lists of item ids with their model scores.

        Args:
            items: ``(n, m)`` item ids (``None`` in empty slots), best first or in any order.
            scores: ``(n, m)`` model scores (``-inf`` in empty slots).
            k: list length of the result.
            lam: λ (default: the config's).

        Returns:
            ``(items, combined)``: ``(n, k)`` item ids (``None`` padding) and combined scores
            (``-inf`` padding). Items the catalog does not know have business value 0 and are
            treated as available.
        """
        ids = np.asarray(items, dtype=object)
        if ids.ndim == 1:
            ids = ids[None, :]
        s = np.asarray(scores, dtype=np.float64).reshape(ids.shape)
        pos = self.values.positions(ids)
        known = pos >= 0
        empty = np.zeros(ids.shape, dtype=bool)  # padding: only ids not found can be None
        if not known.all():
            empty[~known] = np.asarray(pd.isna(ids[~known]), dtype=bool)
        safe = np.where(known, pos, 0)
        s = np.where(empty, -np.inf, s)
        value = np.where(known, self.values.value[safe], 0.0)
        avail = ~known | self.values.available[safe] if self.config.require_available else None
        brand = np.where(known, self.values.brand[safe], -1)
        c = self.config
        top, combined = rerank_scores(
            s, value, k, lam=c.lam if lam is None else lam, available=avail,
            groups=brand if c.max_per_brand else None, max_per_group=c.max_per_brand,
            normalization=c.normalization, temperature=c.temperature,
        )
        out = np.full(top.shape, None, dtype=object)
        filled = top >= 0
        rows = np.nonzero(filled)[0]
        out[filled] = ids[rows, top[filled]]
        return out, combined

    def rerank(self, recs: Recommendations, k: int | None = None, *, lam: float | None = None) -> Recommendations:
        """Rerank a model's (over-fetched) recommendations; ``k`` defaults to their length."""
        items, combined = self.rerank_ids(recs.items, recs.scores, k or recs.items.shape[1], lam=lam)
        return Recommendations(recs.users, items, combined, recs.sources)

    def recommend(
        self,
        model: Recommender,
        users: Sequence[str] | str,
        k: int = 10,
        *,
        lam: float | None = None,
        **kwargs: Any,
    ) -> Recommendations:
        """Ask ``model`` for ``k × overfetch`` candidates and rerank them to ``k``.

        Keyword arguments go to ``model.recommend`` (``history=``, ``exclude=`` ...).
        """
        recs = model.recommend(users, k * self.config.overfetch, **kwargs)
        return self.rerank(recs, k, lam=lam)

    # ------------------------------------------------------------------ serving hook
    @property
    def pool_factor(self) -> int:
        """How many times k items the serving pipeline hands this hook (the config's over-fetch)."""
        return self.config.overfetch

    def __call__(self, items: list[Any], query: Any, model: Any) -> list[Any]:
        """The serving pipeline's rerank hook: reorder the pipeline's ranked items.

        The pipeline hands over ``k × pool_factor`` items that passed its own rules (stock,
        hidden, filters, brand cap); this reorders them by the fused score (normalised per list)
        plus λ · business value, drops items this catalog knows are unavailable, and returns
        them with their combined score (the source is kept); the pipeline keeps the first k.
        """
        if not items:
            return items
        ids = [[it.item_id for it in items]]
        scores = [[float(it.score) for it in items]]
        k = int(getattr(query, "k", len(items)) or len(items))
        top, combined = self.rerank_ids(ids, scores, max(k, len(items)))
        by_id = {it.item_id: it for it in items}
        out: list[Any] = []
        for item_id, value in zip(top[0], combined[0], strict=True):
            if item_id is None:
                break
            it = by_id[item_id]
            if dataclasses.is_dataclass(it) and not isinstance(it, type):
                it = dataclasses.replace(it, score=round(float(value), 6))
            out.append(it)
        return out

    def __repr__(self) -> str:
        return f"MultiObjectiveRanker({self.config!r}, n_items={len(self.values)})"
