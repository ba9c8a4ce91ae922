"""The model registry: versions, stages and lineage, in SQLite (default) or PostgreSQL.

A version is one saved model folder (see :meth:`aisle.models.Recommender.save`) with its
lineage: the sha256 of the artifact's files, the checksum of the training data, the
hyperparameters, the offline metrics and the code version. Versions move through the stages
``candidate -> shadow -> canary -> production -> archived``; at most one version of a model name
is in ``production`` at a time. Every stage change is appended to a history table, so
:meth:`ModelRegistry.rollback` can put the previous production version back with one call.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from aisle import __version__
from aisle.errors import ConfigError, DataError, NotFoundError, ServiceError, StateError, require

__all__ = [
    "STAGES",
    "ArtifactIntegrityError",
    "ModelRegistry",
    "ModelVersion",
    "PostgresRegistry",
    "SQLiteRegistry",
    "Stage",
    "artifact_sha256",
    "open_registry",
]

Stage = Literal["candidate", "shadow", "canary", "production", "archived"]
#: The stages a version can be in, in promotion order.
STAGES: Final[tuple[str, ...]] = ("candidate", "shadow", "canary", "production", "archived")


class ArtifactIntegrityError(DataError):
    """A model artifact's files no longer match the sha256 recorded when it was registered."""


def artifact_sha256(path: str | Path) -> str:
    """The sha256 of a model folder: every file's relative path and bytes, in sorted order.

    Args:
        path: a model folder (or a single file).

    Returns:
        The hex digest.
    """
    root = Path(path)
    if not root.exists():
        raise NotFoundError(f"model artifact {root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root) if root.is_dir() else f.name).encode())
        h.update(b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model and its lineage.

    Attributes:
        name: the model name (one service serves one name).
        version: 1, 2, ... per name.
        stage: one of :data:`STAGES`.
        artifact: the saved model folder.
        artifact_sha256: digest of the folder at registration (see :func:`artifact_sha256`).
        data_checksum: checksum of the training data.
        params: hyperparameters.
        metrics: offline metrics.
        code_version: the aisle version (or git revision) that trained it.
        extras: side files the service uses (``catalog``, ``events``, ``users`` parquet paths).
        created_at: registration time (UTC, ISO 8601).
    """

    name: str
    version: int
    stage: str
    artifact: str
    artifact_sha256: str
    data_checksum: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = __version__
    extras: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    @property
    def label(self) -> str:
        """``name:version``, as the service reports it."""
        return f"{self.name}:{self.version}"

    def verify(self) -> None:
        """Check the artifact against its recorded sha256.

        Raises:
            ArtifactIntegrityError: when the files changed or are missing.
        """
        try:
            digest = artifact_sha256(self.artifact)
        except NotFoundError as exc:
            raise ArtifactIntegrityError(f"{self.label}: {exc}") from exc
        if digest != self.artifact_sha256:
            raise ArtifactIntegrityError(
                f"{self.label}: artifact {self.artifact} has sha256 {digest[:12]}..., registered as "
                f"{self.artifact_sha256[:12]}...; it was modified or corrupted. Re-register it or roll back."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name, "version": self.version, "label": self.label, "stage": self.stage,
            "artifact": self.artifact, "artifact_sha256": self.artifact_sha256,
            "data_checksum": self.data_checksum, "params": self.params, "metrics": self.metrics,
            "code_version": self.code_version, "extras": self.extras, "created_at": self.created_at,
        }


_COLUMNS = ("name", "version", "stage", "artifact", "artifact_sha256", "data_checksum", "params",
            "metrics", "code_version", "extras", "created_at")


def _row_to_version(row: Sequence[Any]) -> ModelVersion:
    d = dict(zip(_COLUMNS, row, strict=True))
    return ModelVersion(
        name=d["name"], version=int(d["version"]), stage=d["stage"], artifact=d["artifact"],
        artifact_sha256=d["artifact_sha256"], data_checksum=d["data_checksum"] or "",
        params=json.loads(d["params"] or "{}"), metrics=json.loads(d["metrics"] or "{}"),
        code_version=d["code_version"] or "", extras=json.loads(d["extras"] or "{}"),
        created_at=str(d["created_at"]),
    )


class ModelRegistry(ABC):
    """Versions, stages and lineage. Subclasses provide a SQL connection and a placeholder."""

    #: The DB-API parameter placeholder.
    ph: str = "?"

    @abstractmethod
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor inside a transaction (committed on success)."""
        yield None  # pragma: no cover

    def _init_schema(self) -> None:
        with self._tx() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS aisle_model_versions ("
                "name TEXT NOT NULL, version INTEGER NOT NULL, stage TEXT NOT NULL, artifact TEXT NOT NULL, "
                "artifact_sha256 TEXT NOT NULL, data_checksum TEXT, params TEXT, metrics TEXT, "
                "code_version TEXT, extras TEXT, created_at TEXT NOT NULL, PRIMARY KEY (name, version))"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS aisle_stage_history ("
                "name TEXT NOT NULL, version INTEGER NOT NULL, from_stage TEXT, to_stage TEXT NOT NULL, "
                "at TEXT NOT NULL, reason TEXT)"
            )

    # ------------------------------------------------------------------ writes
    def register(
        self,
        name: str,
        artifact: str | Path,
        *,
        data_checksum: str = "",
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        code_version: str | None = None,
        extras: Mapping[str, str] | None = None,
        stage: Stage = "candidate",
    ) -> ModelVersion:
        """Add a new version (its artifact's sha256 is computed now).

        Args:
            name: the model name.
            artifact: the saved model folder.
            data_checksum: checksum of the training data.
            params: hyperparameters.
            metrics: offline metrics.
            code_version: defaults to the installed aisle version.
            extras: side files for serving (``catalog``, ``events``, ``users``).
            stage: the initial stage (not ``production``: use :meth:`promote`).

        Returns:
            The new version.
        """
        if stage not in STAGES or stage == "production":
            raise ConfigError(f"initial stage must be one of {[s for s in STAGES if s != 'production']}, got {stage!r}")
        path = Path(artifact).resolve()
        digest = artifact_sha256(path)
        now = datetime.now(UTC).isoformat()
        p = self.ph
        with self._tx() as cur:
            cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM aisle_model_versions WHERE name = {p}", (name,))
            version = int(cur.fetchone()[0]) + 1
            row = (name, version, stage, str(path), digest, data_checksum,
                   json.dumps(dict(params or {}), default=str), json.dumps(dict(metrics or {}), default=str),
                   code_version or __version__, json.dumps(dict(extras or {})), now)
            cur.execute(f"INSERT INTO aisle_model_versions ({', '.join(_COLUMNS)}) VALUES ({', '.join([p] * len(_COLUMNS))})", row)
            cur.execute(f"INSERT INTO aisle_stage_history VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                        (name, version, None, stage, now, "registered"))
        return self.get(name, version)

    def promote(self, name: str, version: int, stage: Stage = "production", *, reason: str = "") -> ModelVersion:
        """Move a version to a stage; promoting to production archives the current production version.

        Args:
            name: the model name.
            version: the version to move.
            stage: the target stage.
            reason: free text kept in the history.

        Returns:
            The version in its new stage.
        """
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        target = self.get(name, version)
        now = datetime.now(UTC).isoformat()
        p = self.ph
        with self._tx() as cur:
            if stage == "production":
                cur.execute(f"SELECT version FROM aisle_model_versions WHERE name = {p} AND stage = 'production'", (name,))
                for (old,) in cur.fetchall():
                    if int(old) == version:
                        continue
                    cur.execute(f"UPDATE aisle_model_versions SET stage = 'archived' WHERE name = {p} AND version = {p}", (name, old))
                    cur.execute(f"INSERT INTO aisle_stage_history VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                                (name, int(old), "production", "archived", now, f"replaced by {version}"))
            cur.execute(f"UPDATE aisle_model_versions SET stage = {p} WHERE name = {p} AND version = {p}", (stage, name, version))
            cur.execute(f"INSERT INTO aisle_stage_history VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                        (name, version, target.stage, stage, now, reason or "promoted"))
        return self.get(name, version)

    def rollback(self, name: str) -> ModelVersion:
        """Put back the version that was in production before the current one.

        Returns:
            The restored production version.

        Raises:
            StateError: when there is no earlier production version.
        """
        current = self.production(name)
        p = self.ph
        with self._tx() as cur:
            cur.execute(
                f"SELECT version FROM aisle_stage_history WHERE name = {p} AND to_stage = 'production' "
                f"ORDER BY at DESC", (name,))
            history = [int(r[0]) for r in cur.fetchall()]
        earlier = [v for v in history if current is None or v != current.version]
        if not earlier:
            raise StateError(f"model {name!r} has no earlier production version to roll back to")
        return self.promote(name, earlier[0], "production", reason=f"rollback from {current.version if current else None}")

    # ------------------------------------------------------------------ reads
    def get(self, name: str, version: int) -> ModelVersion:
        """One version.

        Raises:
            NotFoundError: when it is not registered.
        """
        p = self.ph
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM aisle_model_versions WHERE name = {p} AND version = {p}", (name, version))
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"model {name!r} has no version {version}; see `aisle registry list`")
        return _row_to_version(row)

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of one name, or of all), oldest first."""
        with self._tx() as cur:
            if name is None:
                cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM aisle_model_versions ORDER BY name, version")
            else:
                cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM aisle_model_versions WHERE name = {self.ph} ORDER BY version", (name,))
            rows = cur.fetchall()
        return [_row_to_version(r) for r in rows]

    def production(self, name: str) -> ModelVersion | None:
        """The version in production, or ``None``."""
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM aisle_model_versions WHERE name = {self.ph} AND stage = 'production' "
                        "ORDER BY version DESC", (name,))
            row = cur.fetchone()
        return None if row is None else _row_to_version(row)

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """The stage changes of a model, oldest first."""
        with self._tx() as cur:
            cur.execute(f"SELECT version, from_stage, to_stage, at, reason FROM aisle_stage_history WHERE name = {self.ph} ORDER BY at", (name,))
            rows = cur.fetchall()
        return [dict(zip(("version", "from_stage", "to_stage", "at", "reason"), r, strict=True)) for r in rows]


class SQLiteRegistry(ModelRegistry):
    """The embedded registry: one SQLite file (default ``<workspace>/registry.db``)."""

    ph = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._init_schema()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            conn = sqlite3.connect(self.path, timeout=10)
            try:
                cur = conn.cursor()
                yield cur
                conn.commit()
            finally:
                conn.close()

    def __repr__(self) -> str:
        return f"SQLiteRegistry({str(self.path)!r})"


class PostgresRegistry(ModelRegistry):
    """The registry in PostgreSQL (``pip install 'aisle[postgres]'``)."""

    ph = "%s"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._psycopg: Any = require("psycopg", "postgres")
        self._init_schema()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        try:
            conn = self._psycopg.connect(self.dsn, connect_timeout=5)
        except self._psycopg.OperationalError as exc:
            raise ServiceError(f"cannot reach the PostgreSQL registry at {self.dsn}: {exc}") from exc
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"PostgresRegistry({self.dsn!r})"


def open_registry(url: str | None = None, *, workspace: str | Path = ".aisle") -> ModelRegistry:
    """The registry named by a URL, or the workspace's SQLite file.

    Args:
        url: ``postgresql://...``, ``sqlite:///path`` or ``None`` for ``<workspace>/registry.db``.
        workspace: the workspace folder.
    """
    if url is None or url == "":
        return SQLiteRegistry(Path(workspace) / "registry.db")
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresRegistry(url)
    if url.startswith("sqlite:///"):
        return SQLiteRegistry(url.removeprefix("sqlite:///"))
    raise ConfigError(f"registry URL must start with postgresql:// or sqlite:///, got {url!r}")
