"""Precomputed top-N lists (``aisle recommend-batch``): SQLite in the workspace, or Redis."""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aisle.serving._cache import RedisLayer

__all__ = ["BatchStore", "RedisBatchStore", "SQLiteBatchStore", "open_batch_store"]


class BatchStore(ABC):
    """Where batch lists live, keyed by model version and user."""

    @abstractmethod
    def put_many(self, version: str, lists: dict[str, list[tuple[str, float]]]) -> int:
        """Store lists for many users; returns how many were written."""

    @abstractmethod
    def get(self, version: str, user: str) -> list[tuple[str, float]] | None:
        """A user's list for a version, or ``None``."""


class SQLiteBatchStore(BatchStore):
    """Batch lists in ``<workspace>/topn.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS topn (version TEXT, user_id TEXT, items TEXT, computed_at TEXT, "
                         "PRIMARY KEY (version, user_id))")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, timeout=5)
        return conn

    def put_many(self, version: str, lists: dict[str, list[tuple[str, float]]]) -> int:
        now = datetime.now(UTC).isoformat()
        conn = self._conn()
        conn.executemany("INSERT OR REPLACE INTO topn VALUES (?, ?, ?, ?)",
                         [(version, u, json.dumps(v), now) for u, v in lists.items()])
        conn.commit()
        return len(lists)

    def get(self, version: str, user: str) -> list[tuple[str, float]] | None:
        row = self._conn().execute("SELECT items FROM topn WHERE version = ? AND user_id = ?", (version, user)).fetchone()
        return None if row is None else [(str(i), float(s)) for i, s in json.loads(row[0])]


class RedisBatchStore(BatchStore):
    """Batch lists in a Redis hash per version (``aisle:batch:<version>``)."""

    def __init__(self, redis: RedisLayer) -> None:
        self.redis = redis

    def put_many(self, version: str, lists: dict[str, list[tuple[str, float]]]) -> int:
        now = datetime.now(UTC).isoformat()
        key = f"aisle:batch:{version}"

        def write(c: Any) -> None:
            pipe = c.pipeline(transaction=False)
            items = list(lists.items())
            for start in range(0, len(items), 1000):
                pipe.hset(key, mapping={u: json.dumps({"items": v, "at": now}) for u, v in items[start:start + 1000]})
            pipe.execute()

        self.redis.client.ping()
        write(self.redis.client)
        return len(lists)

    def get(self, version: str, user: str) -> list[tuple[str, float]] | None:
        raw = self.redis.call("batch", lambda c: c.hget(f"aisle:batch:{version}", user))
        return None if raw is None else [(str(i), float(s)) for i, s in json.loads(raw)["items"]]


def open_batch_store(workspace: Path, redis: RedisLayer | None) -> BatchStore:
    """Redis when configured, else the workspace's SQLite file."""
    return RedisBatchStore(redis) if redis is not None else SQLiteBatchStore(Path(workspace) / "topn.db")
