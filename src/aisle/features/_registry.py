"""The feature registry: every version of every view definition, in SQLite or PostgreSQL.

:meth:`FeatureRegistry.apply` compares each view's fingerprint with the latest registered
version: the same definition is ``unchanged``, a changed one becomes version ``n + 1``. Older
versions stay readable (``get(name, version=1)``), so a model trained on version 1 keeps
reading version 1's features, which live under their own fingerprint in the stores.

Backends are chosen by a typed config: ``SQLiteRegistryConfig`` (the default, a file in the
workspace) or ``PostgresRegistryConfig`` (``pip install 'aisle[postgres]'``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from aisle.errors import ConfigError, NotFoundError, ServiceError, require

from ._definitions import AnyView, EmbeddingView, FeatureView, pydantic_message

__all__ = [
    "ApplyResult",
    "FeatureRegistry",
    "PostgresRegistry",
    "PostgresRegistryConfig",
    "RegistryEntry",
    "SQLiteRegistry",
    "SQLiteRegistryConfig",
    "open_registry",
]

_VIEW_ADAPTER: TypeAdapter[FeatureView | EmbeddingView] = TypeAdapter(AnyView)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class SQLiteRegistryConfig(BaseModel):
    """The embedded registry: one SQLite file (default ``<workspace>/features/registry.sqlite``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sqlite"] = "sqlite"
    path: Path | None = None


class PostgresRegistryConfig(BaseModel):
    """A registry in PostgreSQL, shared by every process of a deployment.

    Attributes:
        dsn: a libpq connection string, e.g. ``postgresql://aisle@127.0.0.1:5432/aisle``.
        table: the table (``schema.table`` allowed), created if absent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["postgres"] = "postgres"
    dsn: str
    table: str = "aisle_feature_registry"


@dataclass(frozen=True)
class RegistryEntry:
    """One registered version of a view."""

    name: str
    version: int
    kind: str
    fingerprint: str
    created_at: datetime
    view: FeatureView | EmbeddingView

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "name": self.name, "version": self.version, "kind": self.kind,
            "fingerprint": self.fingerprint, "created_at": self.created_at.isoformat(),
            "features": len(self.view.feature_names()),
        }


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`FeatureRegistry.apply` did with one view.

    Attributes:
        name: the view.
        version: its version after the call.
        status: ``"created"`` (first version), ``"new_version"`` or ``"unchanged"``.
        fingerprint: the definition's fingerprint.
    """

    name: str
    version: int
    status: Literal["created", "new_version", "unchanged"]
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"name": self.name, "version": self.version, "status": self.status, "fingerprint": self.fingerprint}


def _load_view(text: str | dict[str, Any], version: int) -> FeatureView | EmbeddingView:
    data = json.loads(text) if isinstance(text, str) else text
    try:
        view = _VIEW_ADAPTER.validate_python(data)
    except PydanticValidationError as exc:
        raise ConfigError(f"registered view {data.get('name')!r} v{version} cannot be read: {pydantic_message(exc)}") from exc
    return view.with_version(version)


class FeatureRegistry(ABC):
    """Versions of view definitions. Subclasses store them; the versioning rule lives here."""

    @abstractmethod
    def _rows(self, name: str | None) -> list[tuple[str, int, str, str, Any, Any]]:
        """(name, version, kind, fingerprint, definition, created_at) rows, oldest first."""

    @abstractmethod
    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """A transaction holding the registry's write lock; yields a connection."""

    @abstractmethod
    def _latest_in(self, conn: Any, name: str) -> tuple[int, str] | None:
        """(version, fingerprint) of the latest version of ``name`` inside the transaction."""

    @abstractmethod
    def _insert(self, conn: Any, view: FeatureView | EmbeddingView, version: int, fingerprint: str) -> None:
        """Insert one version inside the transaction."""

    def apply(self, views: Iterable[FeatureView | EmbeddingView]) -> list[ApplyResult]:
        """Register definitions; a changed definition becomes a new version.

        Args:
            views: the views to register.

        Returns:
            One result per view, in order.
        """
        results: list[ApplyResult] = []
        with self._locked() as conn:
            for view in views:
                fp = view.fingerprint
                latest = self._latest_in(conn, view.name)
                if latest is not None and latest[1] == fp:
                    results.append(ApplyResult(view.name, latest[0], "unchanged", fp))
                    continue
                version = 1 if latest is None else latest[0] + 1
                self._insert(conn, view, version, fp)
                results.append(ApplyResult(view.name, version, "created" if latest is None else "new_version", fp))
        return results

    def versions(self, name: str) -> list[RegistryEntry]:
        """Every version of a view, oldest first (empty if unknown)."""
        return [self._entry(r) for r in self._rows(name)]

    def list(self) -> list[RegistryEntry]:
        """The latest version of every view, by name."""
        latest: dict[str, RegistryEntry] = {}
        for row in self._rows(None):
            entry = self._entry(row)
            latest[entry.name] = entry
        return [latest[k] for k in sorted(latest)]

    def get(self, name: str, version: int | None = None) -> FeatureView | EmbeddingView:
        """A registered view (the latest version unless ``version`` is given).

        Raises:
            NotFoundError: the view or the version is not registered.
        """
        entries = self.versions(name)
        if not entries:
            known = ", ".join(e.name for e in self.list()) or "none"
            raise NotFoundError(f"feature view {name!r} is not registered (registered: {known}); run `aisle features apply`")
        if version is None:
            return entries[-1].view
        for e in entries:
            if e.version == version:
                return e.view
        raise NotFoundError(
            f"feature view {name!r} has no version {version}; versions: {', '.join(str(e.version) for e in entries)}"
        )

    def _entry(self, row: tuple[str, int, str, str, Any, Any]) -> RegistryEntry:
        name, version, kind, fp, definition, created = row
        created_at = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
        return RegistryEntry(name, int(version), kind, fp, created_at, _load_view(definition, int(version)))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (nothing to do for connection-per-call backends)."""


def _definition(view: FeatureView | EmbeddingView) -> str:
    return json.dumps(view.model_dump(mode="json", exclude={"version"}), sort_keys=True)


class SQLiteRegistry(FeatureRegistry):
    """The registry in one SQLite file.

    Args:
        path: the database file (created with its folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS feature_views (name TEXT NOT NULL, version INTEGER NOT NULL, "
            "kind TEXT NOT NULL, fingerprint TEXT NOT NULL, definition TEXT NOT NULL, "
            "created_at TEXT NOT NULL, PRIMARY KEY (name, version))"
        )
        return conn

    def _rows(self, name: str | None) -> list[tuple[str, int, str, str, Any, Any]]:
        conn = self._connect()
        try:
            sql = "SELECT name, version, kind, fingerprint, definition, created_at FROM feature_views"
            cur = conn.execute(sql + " WHERE name = ? ORDER BY version", (name,)) if name else conn.execute(sql + " ORDER BY name, version")
            return list(cur.fetchall())
        finally:
            conn.close()

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _latest_in(self, conn: Any, name: str) -> tuple[int, str] | None:
        row = conn.execute(
            "SELECT version, fingerprint FROM feature_views WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def _insert(self, conn: Any, view: FeatureView | EmbeddingView, version: int, fingerprint: str) -> None:
        conn.execute(
            "INSERT INTO feature_views VALUES (?, ?, ?, ?, ?, ?)",
            (view.name, version, view.kind, fingerprint, _definition(view), datetime.now(UTC).isoformat()),
        )


class PostgresRegistry(FeatureRegistry):
    """The registry in a PostgreSQL table (``pip install 'aisle[postgres]'``).

    Args:
        dsn: libpq connection string.
        table: table name, optionally ``schema.table``; created if absent.
    """

    def __init__(self, dsn: str, table: str = "aisle_feature_registry") -> None:
        if not _IDENT.match(table):
            raise ConfigError(f"registry table {table!r} must be an identifier or schema.identifier")
        self.dsn = dsn
        self.table = table
        self._ready = False

    def _connect(self) -> Any:
        psycopg: Any = require("psycopg", "postgres")
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ServiceError(f"cannot reach the PostgreSQL registry at {self._where()}: {exc}".strip()) from exc
        if not self._ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table + ":ddl",))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT NOT NULL, version INTEGER NOT NULL, "
                    "kind TEXT NOT NULL, fingerprint TEXT NOT NULL, definition JSONB NOT NULL, "
                    "created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (name, version))"
                )
            self._ready = True
        return conn

    def _where(self) -> str:
        return re.sub(r"password=\S+|:[^:@/]+@", ":***@", self.dsn)

    def _rows(self, name: str | None) -> list[tuple[str, int, str, str, Any, Any]]:
        with self._connect() as conn:
            sql = f"SELECT name, version, kind, fingerprint, definition, created_at FROM {self.table}"
            if name:
                cur = conn.execute(sql + " WHERE name = %s ORDER BY version", (name,))
            else:
                cur = conn.execute(sql + " ORDER BY name, version")
            return list(cur.fetchall())

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            yield conn

    def _latest_in(self, conn: Any, name: str) -> tuple[int, str] | None:
        row = conn.execute(
            f"SELECT version, fingerprint FROM {self.table} WHERE name = %s ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def _insert(self, conn: Any, view: FeatureView | EmbeddingView, version: int, fingerprint: str) -> None:
        conn.execute(
            f"INSERT INTO {self.table} (name, version, kind, fingerprint, definition) VALUES (%s, %s, %s, %s, %s::jsonb)",
            (view.name, version, view.kind, fingerprint, _definition(view)),
        )


def open_registry(config: SQLiteRegistryConfig | PostgresRegistryConfig, workspace: Path) -> FeatureRegistry:
    """The registry a config names.

    Args:
        config: the backend config.
        workspace: where the embedded default lives (``<workspace>/features/registry.sqlite``).

    Returns:
        The registry.
    """
    if isinstance(config, PostgresRegistryConfig):
        return PostgresRegistry(config.dsn, config.table)
    return SQLiteRegistry(config.path or workspace / "features" / "registry.sqlite")
