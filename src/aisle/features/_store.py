"""The feature store's configuration and a thin facade wiring registry, stores and stream.

:class:`FeatureStoreConfig` is one typed config (loadable from YAML or TOML) choosing every
backend by ``type``; the defaults need no server::

    registry: {type: sqlite}                 # or {type: postgres, dsn: ...}
    online:   {type: sqlite}                 # or {type: redis, url: redis://127.0.0.1:6379/0}
    offline:  {type: parquet}
    stream:   {type: memory}                 # or {type: redis, url: ..., stream: aisle:events}

:class:`FeatureStore` only opens what a call needs and delegates the work to the modules that
do it (registry, offline store, online store, materialization, stream, skew).
"""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from aisle.errors import ConfigError, NotFoundError
from aisle.settings import get_settings

from ._definitions import EmbeddingView, FeatureRepository, FeatureView, pydantic_message
from ._materialize import MaterializeResult, Track, materialize
from ._offline import OfflineStore
from ._online import FeatureFrame, Key, OnlineConfig, OnlineStore, SQLiteOnlineConfig, open_online
from ._registry import (
    ApplyResult,
    FeatureRegistry,
    PostgresRegistryConfig,
    SQLiteRegistryConfig,
    open_registry,
)
from ._skew import SkewError, SkewReport, validate_skew
from ._stream import MemorySource, RedisStreamSource, StreamProcessor

__all__ = [
    "FeatureStore",
    "FeatureStoreConfig",
    "MemoryStreamConfig",
    "ParquetOfflineConfig",
    "RedisStreamConfig",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ParquetOfflineConfig(BaseModel):
    """The offline store: Parquet files queried with DuckDB (default ``<workspace>/features/offline``)."""

    model_config = _FROZEN

    type: Literal["parquet"] = "parquet"
    path: Path | None = None


class MemoryStreamConfig(BaseModel):
    """The embedded stream: events posted over HTTP are applied in process."""

    model_config = _FROZEN

    type: Literal["memory"] = "memory"


class RedisStreamConfig(BaseModel):
    """Events arrive on a Redis stream and a consumer group applies them.

    Attributes:
        url: the Redis server.
        stream: the stream key.
        group: the consumer group.
        consumer: this process's consumer name (default: the host name); keep it stable across
            restarts so a restarted consumer gets its pending entries back first.
        start_id: where a new group starts: ``"0"`` (whole stream) or ``"$"`` (new entries).
        batch_entries: entries per read.
        block_ms: how long a read waits.
        claim_idle_ms: pending entries of other consumers idle this long are claimed.
    """

    model_config = _FROZEN

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "aisle:events"
    group: str = "aisle-features"
    consumer: str | None = None
    start_id: str = "0"
    batch_entries: int = Field(100, ge=1)
    block_ms: int = Field(1000, ge=1)
    claim_idle_ms: int = Field(60_000, ge=0)


class FeatureStoreConfig(BaseModel):
    """Every backend of the feature store, by ``type``; the defaults need no server.

    Attributes:
        workspace: where embedded stores live (default: ``AISLE_WORKSPACE`` or ``./.aisle``).
        registry: ``sqlite`` (default) or ``postgres``.
        online: ``sqlite`` (default) or ``redis``.
        offline: ``parquet``.
        stream: ``memory`` (default) or ``redis``.
    """

    model_config = _FROZEN

    workspace: Path | None = None
    registry: Annotated[SQLiteRegistryConfig | PostgresRegistryConfig, Field(discriminator="type")] = SQLiteRegistryConfig()
    online: OnlineConfig = SQLiteOnlineConfig()
    offline: ParquetOfflineConfig = ParquetOfflineConfig()
    stream: Annotated[MemoryStreamConfig | RedisStreamConfig, Field(discriminator="type")] = MemoryStreamConfig()

    @classmethod
    def load(cls, path: str | Path) -> FeatureStoreConfig:
        """Read a YAML, TOML or JSON file (relative store paths resolve against its folder).

        Raises:
            NotFoundError: the file does not exist.
            ConfigError: the file cannot be parsed or a field is invalid (the message names it).
        """
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"feature store config {p} does not exist")
        text = p.read_text()
        try:
            if p.suffix == ".toml":
                data = tomllib.loads(text)
            elif p.suffix == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot parse: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of registry/online/offline/stream settings")
        data = data.get("features", data)
        try:
            config = cls.model_validate(data)
        except PydanticValidationError as exc:
            raise ConfigError(f"{p}: invalid feature store config: {pydantic_message(exc)}") from exc
        if config.workspace is not None and not config.workspace.is_absolute():
            config = config.model_copy(update={"workspace": p.parent / config.workspace})
        return config


class FeatureStore:
    """Registry, offline store, online store and stream of one deployment.

    Args:
        config: the backends (default: the embedded ones).
        workspace: overrides ``config.workspace``.
    """

    def __init__(self, config: FeatureStoreConfig | None = None, *, workspace: str | Path | None = None) -> None:
        self.config = config or FeatureStoreConfig()
        ws = workspace or self.config.workspace
        self.workspace = Path(ws) if ws is not None else get_settings().workspace
        self._registry: FeatureRegistry | None = None
        self._online: OnlineStore | None = None
        self._offline: OfflineStore | None = None

    # ------------------------------------------------------------------ parts
    @property
    def registry(self) -> FeatureRegistry:
        """The registry (opened on first use)."""
        if self._registry is None:
            self._registry = open_registry(self.config.registry, self.workspace)
        return self._registry

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        if self._online is None:
            self._online = OnlineStore(open_online(self.config.online, self.workspace))
        return self._online

    @property
    def offline(self) -> OfflineStore:
        """The offline store."""
        if self._offline is None:
            self._offline = OfflineStore(self.config.offline.path or self.workspace / "features" / "offline")
        return self._offline

    def close(self) -> None:
        """Close open connections."""
        if self._online is not None:
            self._online.close()
            self._online = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    # ------------------------------------------------------------------ definitions
    def apply(self, definitions: FeatureRepository | Iterable[FeatureView | EmbeddingView]) -> list[ApplyResult]:
        """Register views; changed definitions become new versions."""
        views = list(definitions.views.values()) if isinstance(definitions, FeatureRepository) else list(definitions)
        return self.registry.apply(views)

    def view(self, name: str, version: int | None = None) -> FeatureView | EmbeddingView:
        """A registered view (latest version unless given)."""
        return self.registry.get(name, version)

    def views(self, names: Sequence[str] | None = None) -> list[FeatureView | EmbeddingView]:
        """Registered views by name (``name`` or ``name:v2``), or all of them.

        Raises:
            NotFoundError: a name is not registered, or nothing is.
        """
        if not names:
            entries = self.registry.list()
            if not entries:
                raise NotFoundError("no feature view is registered; run `aisle features apply` first")
            return [e.view for e in entries]
        out = []
        for ref in names:
            name, _, version = ref.partition(":v")
            out.append(self.view(name, int(version) if version else None))
        return out

    # ------------------------------------------------------------------ work
    def materialize(
        self, names: Sequence[str] | None = None, *, as_of: Any = None, track: Track | None = None
    ) -> list[MaterializeResult]:
        """Replay the offline history of views into the online store."""
        return [materialize(v, self.offline, self.online, as_of=as_of, track=track) for v in self.views(names)]

    def read(self, name: str, keys: Sequence[Key], *, version: int | None = None, as_of: Any = None) -> FeatureFrame:
        """Online features of some entities of one view."""
        return self.online.read(self.view(name, version), keys, as_of=as_of)

    def training_set(self, names: Sequence[str], labels: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time features of several views joined to label rows (see
        :meth:`OfflineStore.training_set`); feature columns are prefixed ``<view>__``."""
        out = labels.reset_index(drop=True).copy()
        for view in self.views(names):
            ts = self.offline.training_set(view, labels)
            feats = ts[view.feature_names()].add_prefix(f"{view.name}__")
            out = pd.concat([out, feats], axis=1)
        return out

    def processor(self, names: Sequence[str] | None = None) -> StreamProcessor:
        """A stream processor for aggregate views (all registered ones by default)."""
        views = [v for v in self.views(names) if isinstance(v, FeatureView)]
        if not views:
            raise ConfigError("no aggregate feature view to stream into")
        group = self.config.stream.group if isinstance(self.config.stream, RedisStreamConfig) else "memory"
        return StreamProcessor(views, self.online, name=group)

    def source(self, *, consumer: str | None = None, batch_entries: int | None = None) -> RedisStreamSource | MemorySource:
        """The configured event stream (a consumer in the group for Redis)."""
        cfg = self.config.stream
        if isinstance(cfg, MemoryStreamConfig):
            return MemorySource(batch_entries or 100)
        return RedisStreamSource(
            cfg.url, cfg.stream, cfg.group, consumer or cfg.consumer or socket.gethostname(),
            start_id=cfg.start_id, batch_entries=batch_entries or cfg.batch_entries, block_ms=cfg.block_ms,
            claim_idle_ms=cfg.claim_idle_ms,
        )

    def validate_skew(
        self, names: Sequence[str] | None = None, *, raise_on_failure: bool = True, **options: Any
    ) -> list[SkewReport]:
        """Skew reports of views (see :func:`validate_skew`); raises if any fails.

        Raises:
            SkewError: a view's mismatch rate exceeds the threshold (with ``raise_on_failure``).
        """
        reports = [
            validate_skew(v, self.online, self.offline, raise_on_failure=False, **options) for v in self.views(names)
        ]
        if raise_on_failure and any(not r.ok for r in reports):
            raise SkewError(reports)
        return reports
