"""Declarative feature definitions: entities, windows, aggregations, feature views, repositories.

A feature view is one typed, frozen object: the entity it describes, the source it reads (the
canonical event log, enriched with the catalog's ``category``), the sliding windows, the
aggregations, a TTL and a version. Views are plain data: :func:`view_fingerprint` hashes the
semantic fields, and the registry (:mod:`aisle.features._registry`) turns a changed fingerprint
into a new version while older versions stay readable.

Example:
    >>> from aisle.features import ITEM, Count, FeatureView, Rate
    >>> view = FeatureView(
    ...     name="item_clicks",
    ...     entity=ITEM,
    ...     windows=("1d", "7d"),
    ...     aggregations=(Count("click"), Rate("ctr", numerator="click", denominator="view")),
    ... )
    >>> view.feature_names()
    ['count_click_1d', 'count_click_7d', 'ctr_1d', 'ctr_7d']
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import runpy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from aisle.data._schema import EVENT_TYPES
from aisle.errors import ConfigError, NotFoundError

__all__ = [
    "ITEM",
    "SESSION",
    "USER",
    "USER_CATEGORY",
    "AnyView",
    "Count",
    "EmbeddingView",
    "Entity",
    "EventSource",
    "FeatureRepository",
    "FeatureView",
    "Max",
    "Mean",
    "Min",
    "Missing",
    "Rate",
    "Recency",
    "Sum",
    "Window",
    "default_repository",
    "encode_key",
    "parse_duration",
    "view_fingerprint",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}

#: Numeric event columns an aggregation may read.
VALUE_COLUMNS: tuple[str, ...] = ("price", "quantity", "value")
#: Columns an entity key may use: event columns plus ``category`` from the catalog.
KEY_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "session_id", "category", "device", "page")

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def pydantic_message(exc: PydanticValidationError) -> str:
    """A one-line summary of a pydantic error: ``field.path: message; ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{where}: {err.get('msg', '')}")
    return "; ".join(parts)


class _Def(BaseModel):
    """Base of the definitions: frozen, no extra fields, errors raised as ConfigError."""

    model_config = _FROZEN

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ConfigError(f"invalid {type(self).__name__}: {pydantic_message(exc)}") from exc


def _valid_name(value: str | None, what: str = "feature") -> str | None:
    if value is not None and not _NAME.match(value):
        raise ValueError(f"{what} name {value!r} must be lower_snake_case (a-z, 0-9, _)")
    return value


def _valid_windows(value: Any) -> Any:
    if value is None:
        return None
    return tuple(Window.model_validate(v).name for v in ([value] if isinstance(value, str) else value))


def parse_duration(value: str | timedelta | int | float) -> timedelta:
    """Parse ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"``, ISO 8601 (``"P1D"``), seconds or a timedelta.

    Args:
        value: the duration.

    Returns:
        The duration as a :class:`datetime.timedelta`.

    Raises:
        ConfigError: the text is not a positive whole number followed by s, m, h, d or w.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    text = str(value).strip()
    if text.startswith("P"):  # ISO 8601, as definitions are serialized
        try:
            return TypeAdapter(timedelta).validate_python(text)
        except PydanticValidationError:
            pass
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"cannot read duration {value!r}; write a number and a unit: 90s, 5m, 1h, 7d, 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """The short form of a duration (``timedelta(days=7)`` -> ``"7d"``)."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0 and seconds >= _UNITS[unit] and unit != "w":
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _default_hop(length: timedelta) -> timedelta:
    if length <= timedelta(hours=1):
        return timedelta(minutes=5)
    if length <= timedelta(days=1):
        return timedelta(hours=1)
    return timedelta(days=1)


class Window(_Def):
    """A sliding window of ``length``, advancing in ``hop`` steps (the tile size).

    The window as of time ``t`` covers the events from the start of the tile that lies
    ``length / hop - 1`` tiles before the tile of ``t``, up to (excluding) ``t``: between
    ``length - hop`` and ``length`` of history. Tiles are aligned to UTC. Write ``"7d"`` (the
    hop then defaults to 5 minutes up to 1 h, 1 hour up to 1 day, 1 day beyond) or ``"7d/1h"``.
    """

    length: timedelta
    hop: timedelta

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str | timedelta):
            text = data if isinstance(data, str) else format_duration(data)
            length_text, _, hop_text = text.partition("/")
            length = parse_duration(length_text)
            hop = parse_duration(hop_text) if hop_text else _default_hop(length)
            return {"length": length, "hop": hop}
        if isinstance(data, Mapping) and "hop" not in data and "length" in data:
            length = parse_duration(data["length"])
            return {"length": length, "hop": _default_hop(length)}
        return data

    @model_validator(mode="after")
    def _check(self) -> Window:
        length_s, hop_s = self.length.total_seconds(), self.hop.total_seconds()
        if hop_s < 1 or length_s < hop_s or not float(length_s / hop_s).is_integer():
            raise ValueError(
                f"window {format_duration(self.length)} must be a whole number of hops "
                f"(hop {format_duration(self.hop)}); e.g. '1d/1h'"
            )
        if length_s / hop_s > 2000:
            raise ValueError(
                f"window {format_duration(self.length)} with hop {format_duration(self.hop)} has "
                f"{int(length_s / hop_s)} tiles; use a coarser hop (at most 2000 tiles)"
            )
        return self

    @classmethod
    def parse(cls, text: str | timedelta) -> Window:
        """A window from ``"7d"`` or ``"7d/1h"`` (length/hop).

        Raises:
            ConfigError: the text is not a valid window.
        """
        try:
            return cls.model_validate(text)
        except PydanticValidationError as exc:
            raise ConfigError(f"invalid window {text!r}: {pydantic_message(exc)}") from exc

    @property
    def name(self) -> str:
        """The suffix of the window's feature names (``"7d"``)."""
        return format_duration(self.length)

    @property
    def n_tiles(self) -> int:
        """How many hops make up the window."""
        return int(self.length.total_seconds() // self.hop.total_seconds())


class Missing(_Def):
    """What a feature holds when its value is missing (entity absent, or undefined such as a
    mean over no events).

    Attributes:
        policy: ``"default"`` (use ``value``), ``"prior"`` (the same feature of the entity's
            prior group: its category, else all entities; for :class:`Mean` and :class:`Rate`), or
            ``"flag"`` (``value``, NaN by default, and a companion ``<feature>_absent`` column
            holding 1.0 where the value was missing).
        value: the fill value; ``None`` means 0.0 for ``"default"`` and NaN otherwise.
    """

    policy: Literal["default", "prior", "flag"] = "default"
    value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"policy": data} if isinstance(data, str) else data

    def fill(self) -> float:
        """The value written where the feature is missing."""
        if self.value is not None:
            return float(self.value)
        return 0.0 if self.policy == "default" else math.nan


def _types(values: Any) -> tuple[str, ...]:
    items = [values] if isinstance(values, str) else list(values)
    out = tuple(dict.fromkeys(str(v) for v in items))
    bad = [v for v in out if v not in EVENT_TYPES]
    if bad:
        raise ValueError(f"unknown event type(s) {bad}; use one of {', '.join(EVENT_TYPES)}")
    return out


class _Agg(_Def):
    """Fields shared by the windowed aggregations."""

    event_types: tuple[str, ...] = ()
    name: str | None = None
    windows: tuple[str, ...] | None = None
    missing: Missing = Missing()

    @field_validator("event_types", mode="before")
    @classmethod
    def _check_types(cls, value: Any) -> tuple[str, ...]:
        return _types(value)

    @field_validator("windows", mode="before")
    @classmethod
    def _check_windows(cls, value: Any) -> Any:
        return _valid_windows(value)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return _valid_name(value)

    def _suffix(self) -> str:
        return "_".join(self.event_types) if self.event_types else "events"


class Count(_Agg):
    """How many events (of the given types) fall in each window: ``count_<types>_<window>``."""

    kind: Literal["count"] = "count"

    def __init__(self, *event_types: str, **data: Any) -> None:
        if event_types:
            data["event_types"] = event_types
        super().__init__(**data)

    @property
    def base_name(self) -> str:
        """The feature name before the window suffix."""
        return self.name or f"count_{self._suffix()}"


class _ColumnAgg(_Agg):
    column: str

    def __init__(self, *args: str, **data: Any) -> None:
        if args:
            data["column"] = args[0]
            if len(args) > 1:
                data["event_types"] = args[1:]
        super().__init__(**data)

    @field_validator("column")
    @classmethod
    def _check_column(cls, value: str) -> str:
        if value not in VALUE_COLUMNS:
            raise ValueError(f"aggregation column {value!r} is not one of {', '.join(VALUE_COLUMNS)}")
        return value

    @property
    def base_name(self) -> str:
        """The feature name before the window suffix."""
        kind = getattr(self, "kind", "agg")
        return self.name or f"{kind}_{self.column}_{self._suffix()}"


class Sum(_ColumnAgg):
    """The sum of ``column`` over events in each window (nulls skipped): ``sum_<col>_<types>_<w>``."""

    kind: Literal["sum"] = "sum"

    def __init__(self, *args: str, **data: Any) -> None:
        super().__init__(*args, **data)


class Mean(_ColumnAgg):
    """The mean of ``column`` over events in each window; missing (prior policy) when none."""

    kind: Literal["mean"] = "mean"
    missing: Missing = Missing(policy="prior")

    def __init__(self, *args: str, **data: Any) -> None:
        super().__init__(*args, **data)


class Min(_ColumnAgg):
    """The smallest ``column`` value in each window; flagged missing when there is none."""

    kind: Literal["min"] = "min"
    missing: Missing = Missing(policy="flag")

    def __init__(self, *args: str, **data: Any) -> None:
        super().__init__(*args, **data)


class Max(_ColumnAgg):
    """The largest ``column`` value in each window; flagged missing when there is none."""

    kind: Literal["max"] = "max"
    missing: Missing = Missing(policy="flag")

    def __init__(self, *args: str, **data: Any) -> None:
        super().__init__(*args, **data)


class Rate(_Def):
    """A ratio of event counts (CTR, conversion) smoothed toward the prior group's rate.

    ``rate = (numerator + strength * prior) / (denominator + strength)`` where the prior is the
    same rate over the entity's prior group (its category, itself smoothed toward all
    entities) or over all entities (``prior="global"``). A long-tail item with one view and one
    purchase thus scores near its category's conversion rate, not 100 %.

    Attributes:
        name: the feature name (``ctr`` gives ``ctr_7d`` ...).
        numerator: the event type(s) counted above the line.
        denominator: the event type(s) counted below the line.
        strength: the prior's weight, in pseudo-events.
        prior: ``"group"`` (category, falling back to all entities) or ``"global"``.
    """

    kind: Literal["rate"] = "rate"
    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    strength: float = Field(20.0, ge=0.0)
    prior: Literal["group", "global"] = "group"
    windows: tuple[str, ...] | None = None
    missing: Missing = Missing(policy="prior")

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**data)

    @field_validator("windows", mode="before")
    @classmethod
    def _check_windows(cls, value: Any) -> Any:
        return _valid_windows(value)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        _valid_name(value)
        return value

    @field_validator("numerator", "denominator", mode="before")
    @classmethod
    def _check_types(cls, value: Any) -> tuple[str, ...]:
        out = _types(value)
        if not out:
            raise ValueError("a rate needs at least one event type above and below the line")
        return out

    @property
    def base_name(self) -> str:
        """The feature name before the window suffix."""
        return self.name


class Recency(_Def):
    """Seconds since the latest event (of the given types) within the view's lookback.

    The value is missing (flagged by default) when there is no such event in the lookback.
    """

    kind: Literal["recency"] = "recency"
    event_types: tuple[str, ...] = ()
    name: str | None = None
    missing: Missing = Missing(policy="flag")

    def __init__(self, *event_types: str, **data: Any) -> None:
        if event_types:
            data["event_types"] = event_types
        super().__init__(**data)

    @field_validator("event_types", mode="before")
    @classmethod
    def _check_types(cls, value: Any) -> tuple[str, ...]:
        return _types(value)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return _valid_name(value)

    @property
    def base_name(self) -> str:
        """The feature name."""
        suffix = "_".join(self.event_types) if self.event_types else "event"
        return self.name or f"seconds_since_{suffix}"


Aggregation = Annotated[Count | Sum | Mean | Min | Max | Rate | Recency, Field(discriminator="kind")]


class Entity(_Def):
    """What a feature view describes, identified by one or more key columns.

    Attributes:
        name: the entity's name.
        keys: the event columns that identify it (``category`` comes from the catalog).
        prior_by: the column that names the entity's prior group for smoothing (``category``);
            ``None`` smooths toward all entities.
    """

    name: str
    keys: tuple[str, ...]
    prior_by: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Entity:
        if not _NAME.match(self.name):
            raise ConfigError(f"entity name {self.name!r} must be lower_snake_case")
        if not self.keys:
            raise ConfigError(f"entity {self.name!r} needs at least one key column")
        bad = [k for k in self.keys if k not in KEY_COLUMNS]
        if bad:
            raise ConfigError(f"entity {self.name!r}: key columns {bad} are not among {', '.join(KEY_COLUMNS)}")
        if self.prior_by is not None and self.prior_by != "category":
            raise ConfigError(f"entity {self.name!r}: prior_by must be 'category' or None")
        if self.prior_by == "category" and "category" not in self.keys and self.keys != ("item_id",):
            raise ConfigError(
                f"entity {self.name!r}: prior_by='category' needs 'category' among the keys or the "
                "single key item_id (the category then comes from the catalog)"
            )
        return self


USER = Entity(name="user", keys=("user_id",), description="a shopper")
ITEM = Entity(name="item", keys=("item_id",), prior_by="category", description="a product")
USER_CATEGORY = Entity(
    name="user_category", keys=("user_id", "category"), prior_by="category",
    description="a shopper's affinity to a catalog category",
)
SESSION = Entity(name="session", keys=("session_id",), description="a browsing session")


class EventSource(_Def):
    """Where a view's events come from: the canonical event log, enriched with the catalog.

    Attributes:
        name: the source table (only ``"events"`` for now).
        event_types: keep only these event types (empty: all).
    """

    name: Literal["events"] = "events"
    event_types: tuple[str, ...] = ()

    @field_validator("event_types", mode="before")
    @classmethod
    def _check_types(cls, value: Any) -> tuple[str, ...]:
        return _types(value)


class FeatureView(_Def):
    """A named group of windowed aggregate features of one entity.

    Attributes:
        name: the view's name (lower_snake_case).
        entity: the entity the features describe.
        source: the events the view reads.
        windows: the sliding windows every aggregation is computed over (unless it names a
            subset in its own ``windows``).
        aggregations: :class:`Count`, :class:`Sum`, :class:`Mean`, :class:`Min`, :class:`Max`,
            :class:`Rate` and :class:`Recency` definitions.
        ttl: an entity with no event for this long is absent (missing-value policies apply) and
            its online state expires; default: the longest window.
        description: free text (not part of the fingerprint).
        tags: free labels (not part of the fingerprint).
        version: set by the registry; ``None`` for a definition not yet registered.
    """

    kind: Literal["aggregate"] = "aggregate"
    name: str
    entity: Entity
    source: EventSource = EventSource()
    windows: tuple[Window, ...] = (
        Window.model_validate("1h"), Window.model_validate("1d"),
        Window.model_validate("7d"), Window.model_validate("30d"),
    )
    aggregations: tuple[Aggregation, ...]
    ttl: timedelta | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    version: int | None = None

    @field_validator("windows", mode="before")
    @classmethod
    def _windows(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else list(value)
        return tuple(Window.model_validate(v) if isinstance(v, str | timedelta) else v for v in items)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> FeatureView:
        if not _NAME.match(self.name):
            raise ConfigError(f"feature view name {self.name!r} must be lower_snake_case")
        if not self.windows:
            raise ConfigError(f"feature view {self.name!r} needs at least one window")
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ConfigError(f"feature view {self.name!r}: windows {names} repeat a length")
        if not self.aggregations:
            raise ConfigError(f"feature view {self.name!r} has no aggregations")
        for agg in self.aggregations:
            subset = getattr(agg, "windows", None)
            if subset is not None:
                unknown = [w for w in subset if w not in names]
                if unknown:
                    raise ConfigError(
                        f"feature view {self.name!r}: {agg.base_name} names windows {unknown} "
                        f"that the view does not have ({', '.join(names)})"
                    )
            if agg.missing.policy == "prior" and agg.kind not in ("mean", "rate"):
                raise ConfigError(
                    f"feature view {self.name!r}: {agg.base_name} uses missing='prior', which only "
                    "mean and rate features support; use 'default' or 'flag'"
                )
            if agg.kind == "rate" and agg.missing.policy == "flag":
                raise ConfigError(f"feature view {self.name!r}: rate {agg.base_name} cannot use missing='flag'")
        seen: set[str] = set()
        for feature in self.feature_names():
            if feature in seen:
                raise ConfigError(f"feature view {self.name!r}: feature {feature!r} is defined twice")
            seen.add(feature)
        if self.ttl is not None and self.ttl.total_seconds() <= 0:
            raise ConfigError(f"feature view {self.name!r}: ttl must be positive")
        return self

    @property
    def effective_ttl(self) -> timedelta:
        """The TTL, defaulting to the longest window."""
        return self.ttl if self.ttl is not None else max(w.length for w in self.windows)

    def windows_of(self, agg: Any) -> list[Window]:
        """The windows an aggregation is computed over."""
        subset = getattr(agg, "windows", None)
        return [w for w in self.windows if subset is None or w.name in subset]

    def feature_names(self) -> list[str]:
        """The output columns in order (``<feature>_absent`` flags follow their feature)."""
        out: list[str] = []
        for agg in self.aggregations:
            bases = (
                [agg.base_name] if agg.kind == "recency"
                else [f"{agg.base_name}_{w.name}" for w in self.windows_of(agg)]
            )
            for base in bases:
                out.append(base)
                if agg.missing.policy == "flag":
                    out.append(f"{base}_absent")
        return out

    @property
    def fingerprint(self) -> str:
        """The sha256 of the semantic definition (see :func:`view_fingerprint`)."""
        return view_fingerprint(self)

    def with_version(self, version: int) -> FeatureView:
        """A copy carrying a registry version."""
        return self.model_copy(update={"version": version})


class EmbeddingView(_Def):
    """Learned vectors of an entity (item factors, say), served as features ``<name>_<i>``.

    Attributes:
        name: the view's name.
        entity: the entity the vectors describe.
        dim: the vector length.
        description: free text (not part of the fingerprint).
        tags: free labels (not part of the fingerprint).
        version: set by the registry.
    """

    kind: Literal["embedding"] = "embedding"
    name: str
    entity: Entity
    dim: int = Field(gt=0, le=4096)
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    version: int | None = None

    @model_validator(mode="after")
    def _check(self) -> EmbeddingView:
        if not _NAME.match(self.name):
            raise ConfigError(f"embedding view name {self.name!r} must be lower_snake_case")
        return self

    def feature_names(self) -> list[str]:
        """The output columns: ``<name>_0`` ... ``<name>_<dim-1>``."""
        return [f"{self.name}_{i}" for i in range(self.dim)]

    @property
    def fingerprint(self) -> str:
        """The sha256 of the semantic definition."""
        return view_fingerprint(self)

    def with_version(self, version: int) -> EmbeddingView:
        """A copy carrying a registry version."""
        return self.model_copy(update={"version": version})


AnyView = Annotated[FeatureView | EmbeddingView, Field(discriminator="kind")]

_NOT_SEMANTIC = {"version", "description", "tags"}


def view_fingerprint(view: FeatureView | EmbeddingView) -> str:
    """The sha256 of a view's semantic definition: what changes its values.

    Description, tags and version are left out, so editing a description does not create a
    new version.
    """
    payload = view.model_dump(mode="json", exclude=_NOT_SEMANTIC)
    if isinstance(payload.get("entity"), dict):
        payload["entity"].pop("description", None)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode_key(key: str | Sequence[str]) -> str:
    """The storage form of an entity key: one id as is, several joined by ``|`` (escaped)."""
    if isinstance(key, str):
        return key
    parts = [str(p) for p in key]
    if len(parts) == 1:
        return parts[0]
    return "|".join(p.replace("%", "%25").replace("|", "%7C") for p in parts)


def decode_key(text: str, n_keys: int) -> tuple[str, ...]:
    """The inverse of :func:`encode_key` for an entity with ``n_keys`` key columns."""
    if n_keys == 1:
        return (text,)
    parts = text.split("|")
    if len(parts) != n_keys:
        raise ConfigError(f"entity key {text!r} should have {n_keys} parts separated by '|'")
    return tuple(p.replace("%7C", "|").replace("%25", "%") for p in parts)


@dataclass
class FeatureRepository:
    """A set of entities and views, e.g. the module-level objects of a Python file.

    Attributes:
        entities: entities by name.
        views: feature and embedding views by name.
        source: where the definitions were read from.
    """

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView | EmbeddingView] = field(default_factory=dict)
    source: str = "<objects>"

    @classmethod
    def from_objects(cls, objects: Iterable[Any], *, source: str = "<objects>") -> FeatureRepository:
        """Collect the entities and views among ``objects`` (other objects are ignored).

        Raises:
            ConfigError: two different views share a name.
        """
        repo = cls(source=source)
        for obj in objects:
            if isinstance(obj, Entity):
                repo.entities.setdefault(obj.name, obj)
            elif isinstance(obj, FeatureView | EmbeddingView):
                previous = repo.views.get(obj.name)
                if previous is not None and previous.fingerprint != obj.fingerprint:
                    raise ConfigError(f"{source}: two different views are named {obj.name!r}")
                repo.views[obj.name] = obj
                repo.entities.setdefault(obj.entity.name, obj.entity)
        return repo

    @classmethod
    def from_path(cls, path: str | Path) -> FeatureRepository:
        """Run a Python file and collect its module-level entities and views.

        The file is executed like any Python module (as Feast's feature repositories are):
        only load repositories you trust.

        Raises:
            NotFoundError: the file does not exist.
            ConfigError: the file defines no view, or its code fails.
        """
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"feature repository {p} does not exist; write a Python file defining FeatureView objects")
        try:
            namespace = runpy.run_path(str(p), run_name="aisle_feature_repo")
        except Exception as exc:  # the user's file: report where it failed
            raise ConfigError(f"{p}: the feature repository failed to load: {type(exc).__name__}: {exc}") from exc
        repo = cls.from_objects(namespace.values(), source=str(p))
        if not repo.views:
            raise ConfigError(f"{p} defines no FeatureView or EmbeddingView at module level")
        return repo

    def view(self, name: str) -> FeatureView | EmbeddingView:
        """A view by name.

        Raises:
            NotFoundError: no view has that name (the message lists the names).
        """
        try:
            return self.views[name]
        except KeyError:
            raise NotFoundError(
                f"no feature view {name!r} in {self.source}; views: {', '.join(sorted(self.views)) or 'none'}"
            ) from None


def default_repository() -> FeatureRepository:
    """The built-in views: user activity, item statistics, user x category affinity, sessions.

    ``item_stats`` has exactly 20 features (the read-latency benchmark uses it).
    """
    funnel = ("view", "click", "add_to_cart", "purchase")
    user_activity = FeatureView(
        name="user_activity",
        entity=USER,
        windows=("1d", "7d", "30d"),
        aggregations=(
            *(Count(t) for t in (*funnel, "return")),
            Sum("price", "purchase", name="spend", windows=("30d",)),
            Mean("price", "view", windows=("30d",)),
            Rate("conversion", numerator="purchase", denominator="view", prior="global", windows=("30d",)),
            Recency(),
            Recency("purchase"),
        ),
        description="What a shopper did in the last day, week and month.",
    )
    item_stats = FeatureView(
        name="item_stats",
        entity=ITEM,
        windows=("1h", "1d", "7d", "30d"),
        aggregations=(
            *(Count(t) for t in funnel),
            Rate("ctr", numerator="click", denominator="view", windows=("7d",)),
            Rate("conversion", numerator="purchase", denominator="view", windows=("30d",)),
            Mean("price", "view", windows=("30d",)),
            Sum("quantity", "purchase", name="units_sold", windows=("30d",)),
        ),
        description="Item popularity, CTR and conversion smoothed toward the category, price.",
    )
    user_category = FeatureView(
        name="user_category_affinity",
        entity=USER_CATEGORY,
        windows=("7d", "30d"),
        aggregations=(
            Count("view"), Count("click"), Count("purchase"),
            Rate("ctr", numerator="click", denominator="view", windows=("30d",)),
            Recency("view"),
        ),
        description="A shopper's recent interest in each category.",
    )
    session = FeatureView(
        name="session_activity",
        entity=SESSION,
        windows=("1h", "1d"),
        aggregations=(Count("view"), Count("click"), Count("add_to_cart"), Recency()),
        ttl="1d",
        description="What happened so far in a browsing session.",
    )
    return FeatureRepository.from_objects(
        [USER, ITEM, USER_CATEGORY, SESSION, user_activity, item_stats, user_category, session],
        source="<default views>",
    )
