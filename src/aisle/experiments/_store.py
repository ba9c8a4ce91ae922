"""Where experiment definitions, assignments, exposures, analyses and canary decisions live.

:class:`ExperimentStore` is the small abstract interface; :class:`SQLiteExperimentStore` is the
embedded default (one file in the workspace, ``<workspace>/experiments.sqlite``). A
PostgreSQL store implements the same methods; :func:`open_store` picks one from a typed
:class:`StoreConfig`.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from aisle.errors import ConfigError, NotFoundError, StateError

from ._assignment import allocate_buckets
from ._spec import ExperimentSpec, HoldoutSpec

__all__ = ["ExperimentStore", "SQLiteExperimentStore", "StoreConfig", "open_store"]


class StoreConfig(BaseModel):
    """Which experiment store to open.

    Attributes:
        type: ``sqlite`` (the embedded default; PostgreSQL is a planned backend).
        path: the SQLite file (default: ``<workspace>/experiments.sqlite``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sqlite"] = "sqlite"
    path: Path | None = None


class ExperimentStore(ABC):
    """The storage interface of the experimentation stage."""

    # -- definitions -------------------------------------------------------------------------
    @abstractmethod
    def _put_spec(self, spec: ExperimentSpec, *, replace: bool) -> None: ...

    @abstractmethod
    def list_experiments(self) -> list[ExperimentSpec]:
        """Every stored experiment, oldest first."""

    @abstractmethod
    def get_holdout(self) -> HoldoutSpec | None:
        """The global holdout, if one is set."""

    @abstractmethod
    def set_holdout(self, holdout: HoldoutSpec) -> None:
        """Set the global holdout (refused once experiments exist with a different one)."""

    def create_experiment(self, spec: ExperimentSpec, *, replace: bool = False) -> ExperimentSpec:
        """Store a new experiment, allocating a free bucket range of its layer.

        Args:
            spec: the definition (``bucket_range`` is filled in when missing).
            replace: overwrite an experiment of the same name (its assignments are kept).

        Returns:
            The stored definition, with its bucket range and creation time.

        Raises:
            ConfigError: if the name is taken (and not ``replace``) or the layer is full.
        """
        existing = self.list_experiments()
        if not replace and any(e.name == spec.name for e in existing):
            raise ConfigError(
                f"experiment {spec.name!r} already exists; pick another name or replace it"
            )
        others = [e for e in existing if e.name != spec.name]
        rng = spec.bucket_range or allocate_buckets(spec, others)
        stored = spec.model_copy(
            update={
                "bucket_range": rng,
                "created_at": spec.created_at or datetime.now(UTC).replace(microsecond=0),
            }
        )
        # validate (overlap in a layer) before writing
        from ._assignment import Assigner

        Assigner([*others, stored])
        self._put_spec(ExperimentSpec.model_validate(stored.model_dump()), replace=replace)
        return stored

    def get_experiment(self, name: str) -> ExperimentSpec:
        """One experiment by name.

        Raises:
            NotFoundError: if there is none; the message lists the stored names.
        """
        for spec in self.list_experiments():
            if spec.name == name:
                return spec
        names = [e.name for e in self.list_experiments()]
        raise NotFoundError(
            f"no experiment {name!r} in the store; known: {', '.join(names) or 'none'} "
            "(create one with `aisle experiment create`)"
        )

    # -- assignments and exposures ----------------------------------------------------------
    @abstractmethod
    def save_assignments(self, name: str, assignments: pd.DataFrame) -> int:
        """Store assignments (``unit_id``, ``variant``, ``reason``, ``bucket``); returns rows."""

    @abstractmethod
    def load_assignments(self, name: str) -> pd.DataFrame:
        """The stored assignments of an experiment."""

    @abstractmethod
    def log_exposures(self, name: str, exposures: pd.DataFrame) -> int:
        """Record exposures (``unit_id``, ``variant``, ``exposed_at``); the first one per unit
        is kept, and the count of exposures grows. Returns rows written."""

    @abstractmethod
    def load_exposures(self, name: str) -> pd.DataFrame:
        """``unit_id``, ``variant``, ``exposed_at`` (UTC), ``n_exposures``."""

    # -- analyses and canary decisions -------------------------------------------------------
    @abstractmethod
    def save_analysis(self, name: str, result: dict[str, Any]) -> None:
        """Keep an analysis result (a look) of an experiment."""

    @abstractmethod
    def analyses(self, name: str) -> list[dict[str, Any]]:
        """Every stored analysis of an experiment, oldest first."""

    def latest_analysis(self, name: str) -> dict[str, Any]:
        """The latest analysis.

        Raises:
            StateError: if the experiment has not been analyzed yet.
        """
        found = self.analyses(name)
        if not found:
            raise StateError(
                f"experiment {name!r} has no analysis yet; run `aisle experiment analyze {name}` first"
            )
        return found[-1]

    @abstractmethod
    def record_decision(self, run_id: str, decision: dict[str, Any]) -> None:
        """Record one canary decision with its numbers."""

    @abstractmethod
    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        """The recorded decisions of a canary run, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    experiment TEXT NOT NULL, unit_id TEXT NOT NULL, variant TEXT, reason TEXT NOT NULL,
    bucket INTEGER NOT NULL, PRIMARY KEY (experiment, unit_id));
CREATE TABLE IF NOT EXISTS exposures (
    experiment TEXT NOT NULL, unit_id TEXT NOT NULL, variant TEXT NOT NULL,
    exposed_at_us INTEGER NOT NULL, n_exposures INTEGER NOT NULL,
    PRIMARY KEY (experiment, unit_id));
CREATE TABLE IF NOT EXISTS analyses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL, at TEXT NOT NULL,
    result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS canary_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, decision TEXT NOT NULL);
"""


class SQLiteExperimentStore(ExperimentStore):
    """The embedded store: one SQLite file.

    Args:
        path: the database file (created with its folder when missing); ``":memory:"`` for a
            throwaway store.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(str(self.path))
        self._con.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteExperimentStore({str(self.path)!r})"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._con:
            yield self._con

    def close(self) -> None:
        self._con.close()

    def _put_spec(self, spec: ExperimentSpec, *, replace: bool) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self._tx() as con:
            con.execute(
                f"{verb} INTO experiments (name, spec, created_at) VALUES (?, ?, ?)",
                (
                    spec.name,
                    spec.model_dump_json(),
                    (spec.created_at or datetime.now(UTC)).isoformat(),
                ),
            )

    def list_experiments(self) -> list[ExperimentSpec]:
        rows = self._con.execute(
            "SELECT spec FROM experiments ORDER BY created_at, name"
        ).fetchall()
        return [ExperimentSpec.model_validate_json(r[0]) for r in rows]

    def get_holdout(self) -> HoldoutSpec | None:
        row = self._con.execute("SELECT value FROM settings WHERE key = 'holdout'").fetchone()
        return None if row is None else HoldoutSpec.model_validate_json(row[0])

    def set_holdout(self, holdout: HoldoutSpec) -> None:
        current = self.get_holdout()
        if current is not None and current != holdout and self.list_experiments():
            raise ConfigError(
                f"the global holdout is already {current.fraction:.1%} (salt {current.salt!r}); "
                "changing it while experiments exist would move units between experiments"
            )
        with self._tx() as con:
            con.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('holdout', ?)",
                (holdout.model_dump_json(),),
            )

    def save_assignments(self, name: str, assignments: pd.DataFrame) -> int:
        self.get_experiment(name)
        var = assignments["variant"].astype(object).where(assignments["variant"].notna(), None)
        rows = zip(
            [name] * len(assignments),
            assignments["unit_id"].astype(str).tolist(),
            var.tolist(),
            assignments["reason"].astype(str).tolist(),
            assignments["bucket"].to_numpy(dtype=np.int64).tolist(),
            strict=True,
        )
        with self._tx() as con:
            con.executemany(
                "INSERT OR REPLACE INTO assignments (experiment, unit_id, variant, reason, bucket) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(assignments)

    def load_assignments(self, name: str) -> pd.DataFrame:
        self.get_experiment(name)
        frame = pd.read_sql_query(
            "SELECT unit_id, variant, reason, bucket FROM assignments WHERE experiment = ? ORDER BY unit_id",
            self._con,
            params=(name,),
        )
        return frame.astype(
            {"unit_id": "str", "variant": "str", "reason": "str", "bucket": "int64"}
        )

    def log_exposures(self, name: str, exposures: pd.DataFrame) -> int:
        self.get_experiment(name)
        missing = [c for c in ("unit_id", "variant", "exposed_at") if c not in exposures.columns]
        if missing:
            raise ConfigError(
                f"exposures need columns unit_id, variant, exposed_at; missing {missing}"
            )
        ts = pd.to_datetime(exposures["exposed_at"], utc=True)
        us = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "us")).astype("int64").tolist()
        n = (
            exposures["n_exposures"].astype(int).tolist()
            if "n_exposures" in exposures.columns
            else [1] * len(exposures)
        )
        rows = zip(
            [name] * len(exposures),
            exposures["unit_id"].astype(str).tolist(),
            exposures["variant"].astype(str).tolist(),
            us,
            n,
            strict=True,
        )
        with self._tx() as con:
            con.executemany(
                "INSERT INTO exposures (experiment, unit_id, variant, exposed_at_us, n_exposures) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment, unit_id) DO UPDATE SET "
                "exposed_at_us = min(exposed_at_us, excluded.exposed_at_us), "
                "n_exposures = n_exposures + excluded.n_exposures",
                rows,
            )
        return len(exposures)

    def load_exposures(self, name: str) -> pd.DataFrame:
        self.get_experiment(name)
        frame = pd.read_sql_query(
            "SELECT unit_id, variant, exposed_at_us, n_exposures FROM exposures WHERE experiment = ? "
            "ORDER BY exposed_at_us, unit_id",
            self._con,
            params=(name,),
        )
        us = frame.pop("exposed_at_us").to_numpy(dtype=np.int64)
        frame.insert(2, "exposed_at", pd.to_datetime(us, unit="us", utc=True))
        return frame.astype({"unit_id": "str", "variant": "str", "n_exposures": "int64"})

    def save_analysis(self, name: str, result: dict[str, Any]) -> None:
        self.get_experiment(name)
        with self._tx() as con:
            con.execute(
                "INSERT INTO analyses (experiment, at, result) VALUES (?, ?, ?)",
                (name, datetime.now(UTC).isoformat(), json.dumps(result, default=str)),
            )

    def analyses(self, name: str) -> list[dict[str, Any]]:
        rows = self._con.execute(
            "SELECT result FROM analyses WHERE experiment = ? ORDER BY id", (name,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def record_decision(self, run_id: str, decision: dict[str, Any]) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT INTO canary_decisions (run_id, decision) VALUES (?, ?)",
                (run_id, json.dumps(decision, default=str)),
            )

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._con.execute(
            "SELECT decision FROM canary_decisions WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]


def open_store(
    config: StoreConfig | None = None, *, workspace: str | Path | None = None
) -> ExperimentStore:
    """Open the experiment store a config names (default: SQLite in the workspace).

    Args:
        config: the store config; ``None`` for the default.
        workspace: the workspace folder (default: ``AISLE_WORKSPACE`` or ``./.aisle``).
    """
    cfg = config or StoreConfig()
    if cfg.type == "sqlite":
        if cfg.path is not None:
            return SQLiteExperimentStore(cfg.path)
        from aisle.settings import get_settings

        return SQLiteExperimentStore(
            get_settings(workspace=workspace).workspace / "experiments.sqlite"
        )
    raise ConfigError(
        f"unknown experiment store type {cfg.type!r}; valid: sqlite"
    )  # pragma: no cover
