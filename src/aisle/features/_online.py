"""The online store: encoded tile states per entity, read as feature values in one round trip.

Values are computed at read time from the stored tiles (:mod:`aisle.features._aggregates`), so
a read is correct as of the moment it is made, not as of the last write: a 1-hour count decays
to zero an hour after the last event without anyone rewriting it.

Backends sit behind :class:`OnlineBackend` and are chosen by a typed config:

* :class:`SQLiteOnlineConfig` (``type: sqlite``, the default; one file, no server);
* :class:`RedisOnlineConfig` (``type: redis``): one ``MGET`` per read of any number of
  entities across any number of views; writes and stream commits are pipelined, commits are
  ``MULTI``/``EXEC`` transactions.

Both also keep what the stream needs to be idempotent: the ids of applied events (per
consumer namespace, trimmed after a horizon), progress counters and small metadata (the
materialization watermark), and the catalog's item-to-category map used to find an item's
prior group.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from aisle.errors import ConfigError, DataError, ServiceError, require

from ._aggregates import Plan, RowLayout, TileTable, compile_plan, evaluate_states, to_ns
from ._definitions import EmbeddingView, FeatureView, encode_key
from ._fastread import available as fast_available
from ._fastread import evaluate_fast

__all__ = [
    "FeatureFrame",
    "OnlineBackend",
    "OnlineConfig",
    "OnlineStore",
    "RedisOnline",
    "RedisOnlineConfig",
    "SQLiteOnline",
    "SQLiteOnlineConfig",
    "open_online",
]

T = TypeVar("T")
Key = str | Sequence[str]
Track = Callable[[Iterable[Any], str, int], Iterable[Any]]


class SQLiteOnlineConfig(BaseModel):
    """The embedded online store: one SQLite file (default ``<workspace>/features/online.sqlite``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sqlite"] = "sqlite"
    path: Path | None = None


class RedisOnlineConfig(BaseModel):
    """The online store in Redis (``pip install 'aisle[redis]'``).

    Attributes:
        url: the server, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: the prefix of every key aisle writes.
        socket_timeout: seconds before a call fails with :class:`~aisle.errors.ServiceError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "aisle"
    socket_timeout: float = 5.0


OnlineConfig = Annotated[SQLiteOnlineConfig | RedisOnlineConfig, Field(discriminator="type")]


# ----------------------------------------------------------------------------- backends
class OnlineBackend(ABC):
    """Storage of encoded states and the stream's bookkeeping. Keys are plain strings."""

    @abstractmethod
    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` (``None`` where absent), in one round trip."""

    @abstractmethod
    async def aget(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get` for asyncio callers."""

    def get_bulk(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get` for large key sets (the stream's state loads); may use a cheaper encoding."""
        return self.get(keys)

    @abstractmethod
    def put(self, items: Sequence[tuple[str, bytes]], ttl_s: float | None) -> None:
        """Write values (pipelined), expiring ``ttl_s`` seconds after the write."""

    @abstractmethod
    def seen(self, namespace: str, ids: Sequence[str], horizon_s: float = 7 * 86_400) -> NDArray[np.bool_]:
        """Which event ids were applied in ``namespace`` (ids are remembered at least
        ``horizon_s`` seconds, at most twice that)."""

    @abstractmethod
    def commit(
        self,
        items: Sequence[tuple[str, bytes, float | None]],
        *,
        namespace: str,
        ids: Sequence[str],
        counters: Mapping[str, int],
        meta: Mapping[str, str],
        horizon_s: float = 7 * 86_400,
    ) -> None:
        """Atomically write ``(key, value, ttl_s)`` states, record applied event ids, add to
        counters and set metadata: after a crash either all of it is stored or none."""

    @abstractmethod
    def counters(self, namespace: str) -> dict[str, int]:
        """The progress counters of a namespace."""

    @abstractmethod
    def trim_dedup(self, namespace: str, keep_s: float) -> int:
        """Forget applied ids recorded more than ``keep_s`` seconds ago; returns how many
        (a no-op where ids expire by themselves)."""

    @abstractmethod
    def get_meta(self, names: Sequence[str]) -> dict[str, str | None]:
        """Small metadata values."""

    @abstractmethod
    def set_meta(self, values: Mapping[str, str]) -> None:
        """Set small metadata values."""

    @abstractmethod
    def catalog(self, items: Sequence[str] | None = None) -> dict[str, str]:
        """Item id -> category (all of it, or only ``items``)."""

    @abstractmethod
    def put_catalog(self, mapping: Mapping[str, str]) -> None:
        """Add or replace item categories."""

    @abstractmethod
    def scan(self, prefix: str, limit: int = 1000) -> list[str]:
        """Up to ``limit`` keys starting with ``prefix``."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; returns how many."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SQLiteOnline(OnlineBackend):
    """The online store in one SQLite file (WAL mode; safe across threads and processes).

    Args:
        path: the database file (``":memory:"`` for a private in-process store).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        with self._lock:
            c = self._conn
            if self.path != ":memory:":
                c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL) WITHOUT ROWID")
            c.execute("CREATE TABLE IF NOT EXISTS dedup (ns TEXT NOT NULL, event_id TEXT NOT NULL, at REAL NOT NULL, "
                      "PRIMARY KEY (ns, event_id)) WITHOUT ROWID")
            c.execute("CREATE TABLE IF NOT EXISTS counters (ns TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, "
                      "PRIMARY KEY (ns, name)) WITHOUT ROWID")
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
            c.execute("CREATE TABLE IF NOT EXISTS catalog (item_id TEXT PRIMARY KEY, category TEXT NOT NULL) WITHOUT ROWID")

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, value FROM kv WHERE key IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)",
                    (*part, now),
                ).fetchall()
                found.update(rows)
        return [found.get(k) for k in keys]

    async def aget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await asyncio.to_thread(self.get, keys)

    def _write(self, items: Iterable[tuple[str, bytes, float | None]]) -> None:
        now = time.time()
        self._conn.executemany(
            "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
            ((k, v, None if ttl is None else now + ttl) for k, v, ttl in items),
        )

    def put(self, items: Sequence[tuple[str, bytes]], ttl_s: float | None) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._write((k, v, ttl_s) for k, v in items)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def seen(self, namespace: str, ids: Sequence[str], horizon_s: float = 7 * 86_400) -> NDArray[np.bool_]:
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT event_id FROM dedup WHERE ns = ? AND event_id IN ({marks})", (namespace, *part)
                ).fetchall()
                found.update(r[0] for r in rows)
        return np.array([i in found for i in ids], dtype=bool)

    def commit(
        self,
        items: Sequence[tuple[str, bytes, float | None]],
        *,
        namespace: str,
        ids: Sequence[str],
        counters: Mapping[str, int],
        meta: Mapping[str, str],
        horizon_s: float = 7 * 86_400,
    ) -> None:
        now = time.time()
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                self._write(items)
                c.executemany("INSERT OR IGNORE INTO dedup (ns, event_id, at) VALUES (?, ?, ?)", ((namespace, i, now) for i in ids))
                c.executemany(
                    "INSERT INTO counters (ns, name, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (ns, name) DO UPDATE SET value = value + excluded.value",
                    ((namespace, k, int(v)) for k, v in counters.items()),
                )
                c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def counters(self, namespace: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT name, value FROM counters WHERE ns = ?", (namespace,)).fetchall()
        return {str(k): int(v) for k, v in rows}

    def trim_dedup(self, namespace: str, keep_s: float) -> int:
        with self._lock:
            cur = self._conn.execute("DELETE FROM dedup WHERE ns = ? AND at < ?", (namespace, time.time() - keep_s))
            return int(cur.rowcount)

    def get_meta(self, names: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            marks = ",".join("?" * len(names))
            rows = dict(self._conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})", tuple(names)).fetchall())
        return {n: rows.get(n) for n in names}

    def set_meta(self, values: Mapping[str, str]) -> None:
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def catalog(self, items: Sequence[str] | None = None) -> dict[str, str]:
        with self._lock:
            if items is None:
                return dict(self._conn.execute("SELECT item_id, category FROM catalog").fetchall())
            out: dict[str, str] = {}
            for start in range(0, len(items), 500):
                part = items[start : start + 500]
                marks = ",".join("?" * len(part))
                out.update(self._conn.execute(f"SELECT item_id, category FROM catalog WHERE item_id IN ({marks})", tuple(part)).fetchall())
            return out

    def put_catalog(self, mapping: Mapping[str, str]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO catalog (item_id, category) VALUES (?, ?)", mapping.items())
            self._conn.execute("COMMIT")

    def scan(self, prefix: str, limit: int = 1000) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM kv WHERE key >= ? AND key < ? LIMIT ?", (prefix, prefix + "\U0010ffff", limit)
            ).fetchall()
        return [r[0] for r in rows]

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            cur = self._conn.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff"))
            return int(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Lua scripts: each runs atomically inside Redis as one command, so a large commit costs one
# command to encode and one reply to parse instead of one per key.
_LUA_SPLIT = """
local function split(lens, data)
  local out = {}
  local pos = 1
  for n in string.gmatch(lens, '[^,]+') do
    local len = tonumber(n)
    if len < 0 then
      out[#out + 1] = false
    else
      out[#out + 1] = string.sub(data, pos, pos + len - 1)
      pos = pos + len
    end
  end
  return out
end
"""
_LUA_SEEN = _LUA_SPLIT + """
local ids = split(ARGV[1], ARGV[2])
local out = {}
for i = 1, #ids do out[i] = '0' end
for _, key in ipairs(KEYS) do
  for s = 1, #ids, 4000 do
    local e = math.min(s + 3999, #ids)
    local res = redis.call('SMISMEMBER', key, unpack(ids, s, e))
    for j = 1, #res do
      if res[j] == 1 then out[s + j - 1] = '1' end
    end
  end
end
return table.concat(out)
"""
_LUA_COMMIT = _LUA_SPLIT + """
local prefix = ARGV[1]
local keys = split(ARGV[2], ARGV[3])
local i = 0
for ttl in string.gmatch(ARGV[4], '[^,]+') do
  i = i + 1
  local ms = tonumber(ttl)
  if ms > 0 then redis.call('PEXPIRE', prefix .. keys[i], ms) end
end
local ids = split(ARGV[5], ARGV[6])
for s = 1, #ids, 4000 do
  redis.call('SADD', KEYS[1], unpack(ids, s, math.min(s + 3999, #ids)))
end
if #ids > 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7])) end
local nc = tonumber(ARGV[8])
local p = 8
for j = 1, nc do redis.call('HINCRBY', KEYS[2], ARGV[p + 2 * j - 1], ARGV[p + 2 * j]) end
p = p + 2 * nc
local nm = tonumber(ARGV[p + 1])
p = p + 1
for j = 1, nm do redis.call('HSET', KEYS[3], ARGV[p + 2 * j - 1], ARGV[p + 2 * j]) end
return i
"""


def _resp(args: Sequence[bytes | str]) -> bytes:
    """One command in the Redis protocol (RESP)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


def _pack(parts: Sequence[bytes] | Sequence[str]) -> tuple[str, bytes]:
    """Length-prefixed encoding for the Lua scripts: ``"3,5,..."`` and the concatenated bytes."""
    if not parts:
        return "", b""
    if isinstance(parts[0], bytes):
        blobs = parts
    else:
        joined = "".join(parts)  # type: ignore[arg-type]
        if joined.isascii():
            return ",".join(map(str, map(len, parts))), joined.encode()
        blobs = [str(p).encode() for p in parts]
    return ",".join(map(str, map(len, blobs))), b"".join(blobs)  # type: ignore[arg-type]


class RedisOnline(OnlineBackend):
    """The online store in Redis over a real connection (``pip install 'aisle[redis]'``).

    Reads are one ``MGET``. A stream commit is one ``MULTI``/``EXEC`` transaction holding an
    ``MSET`` of the states and a Lua script that sets their expiry, records the applied ids
    and updates counters and metadata: a client that dies mid-commit leaves all of it or none
    of it. (Redis does not roll back a command that fails inside a transaction; that only
    happens if another program writes keys of another type under aisle's prefix.) Redis
    Cluster is not supported (the keys of a commit span slots).

    Args:
        url: the server.
        prefix: prefix of every key.
        socket_timeout: seconds before a call fails.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", prefix: str = "aisle", socket_timeout: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.socket_timeout = socket_timeout
        self._redis: Any = cast(Any, require("redis", "redis"))
        self.client: Any = self._redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._async: dict[int, Any] = {}
        self._seen_script = self.client.register_script(_LUA_SEEN)

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._redis.exceptions.ConnectionError as exc:
            raise ServiceError(f"cannot reach Redis at {self.url}: {exc}; is redis-server running?") from exc
        except self._redis.exceptions.RedisError as exc:
            raise ServiceError(f"Redis at {self.url} answered with an error: {exc}") from exc

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        full = [f"{self.prefix}:{k}" for k in keys]
        if len(full) <= 10_000:
            return self._call(lambda: self.client.execute_command("MGET", *full))  # type: ignore[no-any-return]

        def chunked() -> list[bytes | None]:
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(full), 10_000):
                pipe.execute_command("MGET", *full[start : start + 10_000])
            return [v for part in pipe.execute() for v in part]

        return self._call(chunked)

    async def aget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        loop = asyncio.get_running_loop()
        client = self._async.get(id(loop))
        if client is None:
            client = self._redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout
            )
            self._async[id(loop)] = client
        try:
            return await client.execute_command("MGET", *[f"{self.prefix}:{k}" for k in keys])  # type: ignore[no-any-return]
        except self._redis.exceptions.ConnectionError as exc:
            raise ServiceError(f"cannot reach Redis at {self.url}: {exc}") from exc

    def put(self, items: Sequence[tuple[str, bytes]], ttl_s: float | None) -> None:
        prefix = self.prefix + ":"
        extra: list[bytes | str] = [] if ttl_s is None else ["PX", str(max(1, int(ttl_s * 1000)))]
        for start in range(0, len(items), 5000):
            commands = [_resp(["SET", prefix + k, v, *extra]) for k, v in items[start : start + 5000]]
            self._call(lambda commands=commands: self._send(commands))  # type: ignore[misc]

    def _dedup_keys(self, namespace: str, horizon_s: float) -> list[str]:
        """The current and previous generation sets of applied ids (each spans the horizon)."""
        gen = int(time.time() // max(horizon_s, 1.0))
        return [self._k(f"dedup:{namespace}:{gen}"), self._k(f"dedup:{namespace}:{gen - 1}")]

    def seen(self, namespace: str, ids: Sequence[str], horizon_s: float = 7 * 86_400) -> NDArray[np.bool_]:
        if not len(ids):
            return np.zeros(0, dtype=bool)
        keys = self._dedup_keys(namespace, horizon_s)
        lens, data = _pack(ids)
        flags = self._call(lambda: self._seen_script(keys=keys, args=[lens, data]))
        return np.asarray(np.frombuffer(flags, dtype=np.uint8) == ord("1"), dtype=bool)

    def commit(
        self,
        items: Sequence[tuple[str, bytes, float | None]],
        *,
        namespace: str,
        ids: Sequence[str],
        counters: Mapping[str, int],
        meta: Mapping[str, str],
        horizon_s: float = 7 * 86_400,
    ) -> None:
        keys = [self._dedup_keys(namespace, horizon_s)[0], self._k(f"counters:{namespace}"), self._k("meta")]
        prefix = self.prefix + ":"
        key_lens, key_data = _pack([k for k, _, _ in items])
        ttls = ",".join([str(0 if ttl is None else max(1, int(ttl * 1000))) for _, _, ttl in items])
        id_lens, id_data = _pack(ids)
        args: list[Any] = [prefix, key_lens, key_data, ttls, id_lens, id_data, int(2 * max(horizon_s, 1.0)) + 60,
                           len(counters)]
        for name, value in counters.items():
            args.extend((name, int(value)))
        args.append(len(meta))
        for name, text in meta.items():
            args.extend((name, text))

        commands: list[bytes] = [_resp([b"MULTI"])]
        for start in range(0, len(items), 10_000):
            flat: list[bytes | str] = ["MSET"]
            for k, v, _ in items[start : start + 10_000]:
                flat.append(prefix + k)
                flat.append(v)
            commands.append(_resp(flat))
        commands.append(_resp(["EVAL", _LUA_COMMIT, str(len(keys)), *keys, *(a if isinstance(a, bytes) else str(a) for a in args)]))
        commands.append(_resp([b"EXEC"]))
        self._call(lambda: self._transaction(commands))

    def _send(self, commands: list[bytes]) -> list[Any]:
        """Send commands packed by hand in one write (redis-py's per-argument packing costs more
        than the commands themselves) and read one reply per command."""
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(commands)
            replies = [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def _transaction(self, commands: list[bytes]) -> None:
        """Send ``MULTI`` ... ``EXEC`` (see :meth:`_send`) and check every reply."""
        results = self._send(commands)[-1]
        if results is None:
            raise self._redis.exceptions.RedisError("the commit transaction was aborted (EXEC returned nil)")
        for r in results:
            if isinstance(r, Exception):
                raise self._redis.exceptions.RedisError(f"a command of the commit failed: {r}")

    def counters(self, namespace: str) -> dict[str, int]:
        raw = self._call(lambda: self.client.hgetall(self._k(f"counters:{namespace}")))
        return {k.decode(): int(v) for k, v in raw.items()}

    def trim_dedup(self, namespace: str, keep_s: float) -> int:
        return 0  # generation sets expire by themselves

    def get_meta(self, names: Sequence[str]) -> dict[str, str | None]:
        values = self._call(lambda: self.client.hmget(self._k("meta"), list(names)))
        return {n: (None if v is None else v.decode()) for n, v in zip(names, values, strict=True)}

    def set_meta(self, values: Mapping[str, str]) -> None:
        if values:
            self._call(lambda: self.client.hset(self._k("meta"), mapping=dict(values)))

    def catalog(self, items: Sequence[str] | None = None) -> dict[str, str]:
        key = self._k("catalog")
        if items is None:
            raw = self._call(lambda: self.client.hgetall(key))
            return {k.decode(): v.decode() for k, v in raw.items()}
        if not items:
            return {}
        values = self._call(lambda: self.client.hmget(key, list(items)))
        return {i: v.decode() for i, v in zip(items, values, strict=True) if v is not None}

    def put_catalog(self, mapping: Mapping[str, str]) -> None:
        pairs = list(mapping.items())

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(pairs), 5000):
                pipe.hset(self._k("catalog"), mapping=dict(pairs[start : start + 5000]))
            pipe.execute()

        if pairs:
            self._call(run)

    def scan(self, prefix: str, limit: int = 1000) -> list[str]:
        out: list[str] = []
        cut = len(self.prefix) + 1
        for key in self._call(lambda: list(self.client.scan_iter(match=self._k(prefix) + "*", count=1000))):
            out.append(key.decode()[cut:])
            if len(out) >= limit:
                break
        return out

    def delete_prefix(self, prefix: str) -> int:
        def run() -> int:
            n = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self._k(prefix) + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    n += int(self.client.delete(*batch))
                    batch = []
            if batch:
                n += int(self.client.delete(*batch))
            return n

        return self._call(run)

    async def aclose(self) -> None:
        """Close the asyncio client of the running loop."""
        client = self._async.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        self.client.close()
        self._async.clear()  # asyncio clients close with their loop (use aclose inside it)


def open_online(config: SQLiteOnlineConfig | RedisOnlineConfig, workspace: Path) -> OnlineBackend:
    """The backend a config names.

    Args:
        config: the backend config.
        workspace: where the embedded default lives (``<workspace>/features/online.sqlite``).
    """
    if isinstance(config, RedisOnlineConfig):
        return RedisOnline(config.url, config.prefix, config.socket_timeout)
    return SQLiteOnline(config.path or workspace / "features" / "online.sqlite")


# ----------------------------------------------------------------------------- reads
@dataclass(frozen=True)
class FeatureFrame:
    """Feature values of some entities of one view, as of one time.

    Attributes:
        view: the view's name.
        version: the view's registry version (``None`` if not registered).
        keys: the entity keys, in request order (composite keys joined by ``|``).
        names: the feature names (columns).
        values: (entities, features) float64; NaN only where a missing-value policy leaves it.
        absent: whether each entity had no event within the view's TTL.
        as_of: the time (epoch ns, exclusive) the values hold for.
    """

    view: str
    version: int | None
    keys: list[str]
    names: list[str]
    values: NDArray[np.float64]
    absent: NDArray[np.bool_]
    as_of: int

    def to_pandas(self) -> pd.DataFrame:
        """The values as a frame indexed by entity key."""
        return pd.DataFrame(self.values, index=pd.Index(self.keys, name="entity"), columns=self.names)

    def to_dicts(self) -> list[dict[str, float | None]]:
        """One ``{feature: value}`` per entity (NaN as ``None``, JSON-ready)."""
        out = []
        for row in self.values.tolist():
            out.append({n: (None if v != v else v) for n, v in zip(self.names, row, strict=True)})
        return out

    def row(self, key: Key) -> dict[str, float]:
        """The features of one entity.

        Raises:
            KeyError: the key was not requested.
        """
        i = self.keys.index(encode_key(key))
        return dict(zip(self.names, self.values[i].tolist(), strict=True))


@dataclass
class _Prepared:
    view: FeatureView | EmbeddingView
    plan: Plan | None
    keys: list[str]
    layout: RowLayout | None
    start: int
    stop: int


class OnlineStore:
    """Feature reads and state writes over an :class:`OnlineBackend`.

    Args:
        backend: where the states live.
        utc_offset: shift of tile alignment from UTC (leave ``None``). A non-zero value
            reproduces windows computed in local time, which the skew validator catches.
        catalog_refresh_s: how long an unknown item's missing category is remembered before
            the store asks the backend again.
        compiled: compute values with the compiled kernel (``pip install 'aisle[fast]'``; the
            same bits as the numpy path, several times faster); default: when numba is installed.
    """

    def __init__(
        self, backend: OnlineBackend, *, utc_offset: timedelta | None = None, catalog_refresh_s: float = 60.0,
        compiled: bool | None = None,
    ) -> None:
        self.backend = backend
        self.utc_offset = utc_offset
        self._compiled = fast_available() if compiled is None else compiled
        self.catalog_refresh_s = catalog_refresh_s
        self._catalog: dict[str, str] | None = None
        self._unknown: dict[str, float] = {}

    # ------------------------------------------------------------------ keys
    def plan(self, view: FeatureView) -> Plan:
        """The compiled plan of a view under this store's alignment."""
        return compile_plan(view, self.utc_offset)

    @staticmethod
    def state_key(plan: Plan, kind: str, key: str) -> str:
        """The storage key of an entity (``kind="e"``) or prior group (``"g"``) state."""
        return f"f:{plan.namespace}:{kind}:{key}"

    @staticmethod
    def embedding_key(view: EmbeddingView, key: str) -> str:
        """The storage key of an entity's vector."""
        return f"v:{view.name}:{view.fingerprint[:12]}:{key}"

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> dict[str, str]:
        """The item-to-category map (loaded once, then cached)."""
        if self._catalog is None:
            self._catalog = self.backend.catalog()
        return self._catalog

    def _resolve_items(self, items: Iterable[str]) -> list[str]:
        cat = self.catalog()
        now = time.monotonic()
        return [
            i for i in items
            if i not in cat and self._unknown.get(i, -1e18) < now - self.catalog_refresh_s
        ]

    def _learn_items(self, asked: Sequence[str], found: Mapping[str, str]) -> None:
        cat = self.catalog()
        cat.update(found)
        now = time.monotonic()
        for i in asked:
            if i not in found:
                self._unknown[i] = now

    def put_catalog(self, mapping: Mapping[str, str]) -> None:
        """Store item categories (used to smooth item rates toward their category)."""
        clean = {str(k): str(v) for k, v in mapping.items() if v is not None and v == v and str(v)}
        self.backend.put_catalog(clean)
        self.catalog().update(clean)

    # ------------------------------------------------------------------ reads
    def _prepare(
        self, requests: Sequence[tuple[FeatureView | EmbeddingView, Sequence[Key]]]
    ) -> tuple[list[_Prepared], list[str], list[str]]:
        prepared: list[_Prepared] = []
        storage: list[str] = []
        item_lookups: list[str] = []
        for view, keys in requests:
            enc = [encode_key(k) for k in keys]
            start = len(storage)
            if isinstance(view, EmbeddingView):
                storage.extend(self.embedding_key(view, k) for k in enc)
                prepared.append(_Prepared(view, None, enc, None, start, len(storage)))
                continue
            if not isinstance(view, FeatureView):
                raise ConfigError(f"expected a FeatureView or EmbeddingView, got {type(view).__name__}")
            plan = self.plan(view)
            if plan.group_mode == "category" and "category" not in view.entity.keys:
                item_lookups.extend(self._resolve_items(enc))
            prepared.append(_Prepared(view, plan, enc, None, start, start))
        return prepared, storage, item_lookups

    def _finish_keys(self, prepared: list[_Prepared], storage: list[str]) -> None:
        catalog = self.catalog() if any(p.plan is not None and p.plan.group_mode == "category" for p in prepared) else None
        for p in prepared:
            if p.plan is None:
                continue
            plan = p.plan
            p.layout = RowLayout.build(plan, p.keys, catalog)
            p.start = len(storage)
            prefix = f"f:{plan.namespace}:"
            storage.extend([prefix + "e:" + k for k in p.keys])
            storage.extend([prefix + "g:" + g for g in p.layout.group_keys])
            p.stop = len(storage)

    def _evaluate(self, prepared: list[_Prepared], blobs: list[bytes | None], as_of_ns: int) -> list[FeatureFrame]:
        frames = []
        for p in prepared:
            part = blobs[p.start : p.stop]
            if p.plan is None:
                view = p.view
                assert isinstance(view, EmbeddingView)
                values = np.full((len(p.keys), view.dim), np.nan)
                absent = np.ones(len(p.keys), dtype=bool)
                for i, b in enumerate(part):
                    if b is not None:
                        values[i] = np.frombuffer(b, dtype="<f4")
                        absent[i] = False
                frames.append(FeatureFrame(view.name, view.version, p.keys, view.feature_names(), values, absent, as_of_ns))
                continue
            assert p.layout is not None
            if self._compiled:
                values, absent = evaluate_fast(p.plan, p.plan.join(part), p.layout, as_of_ns)
            else:
                values, absent = evaluate_states(p.plan, p.plan.decode(part), p.layout, as_of_ns)
            frames.append(FeatureFrame(p.view.name, p.view.version, p.keys, p.plan.names, values, absent, as_of_ns))
        return frames

    def read_many(
        self, requests: Sequence[tuple[FeatureView | EmbeddingView, Sequence[Key]]], *, as_of: Any = None
    ) -> list[FeatureFrame]:
        """Features of many entities across many views in one round trip.

        Args:
            requests: ``(view, entity keys)`` pairs; a composite key is a tuple (or ``a|b``).
            as_of: the time the values hold for (default: now). Values are exact for times at
                or after the latest event the store has seen.

        Returns:
            One :class:`FeatureFrame` per request.
        """
        as_of_ns = time.time_ns() if as_of is None else to_ns(as_of)
        prepared, storage, lookups = self._prepare(requests)
        if lookups:
            self._learn_items(lookups, self.backend.catalog(lookups))
        self._finish_keys(prepared, storage)
        return self._evaluate(prepared, self.backend.get(storage), as_of_ns)

    def read(self, view: FeatureView | EmbeddingView, keys: Sequence[Key], *, as_of: Any = None) -> FeatureFrame:
        """Features of some entities of one view (see :meth:`read_many`)."""
        if not self._compiled or not isinstance(view, FeatureView):
            return self.read_many([(view, keys)], as_of=as_of)[0]
        # The serving hot path: read_many's steps for one view, with less bookkeeping.
        as_of_ns = time.time_ns() if as_of is None else to_ns(as_of)
        plan = compile_plan(view, self.utc_offset)
        enc = [k if isinstance(k, str) else encode_key(k) for k in keys]
        catalog = None
        if plan.group_mode == "category":
            catalog = self.catalog()
            if "category" not in view.entity.keys:
                lookups = self._resolve_items(enc)
                if lookups:
                    self._learn_items(lookups, self.backend.catalog(lookups))
        layout = RowLayout.build(plan, enc, catalog)
        prefix = f"f:{plan.namespace}:"
        storage = [prefix + "e:" + k for k in enc]
        if layout.group_keys:
            storage += [prefix + "g:" + g for g in layout.group_keys]
        buffer = plan.join(self.backend.get(storage))
        values, absent = evaluate_fast(plan, buffer, layout, as_of_ns)
        return FeatureFrame(view.name, view.version, enc, plan.names, values, absent, as_of_ns)

    async def aread_many(
        self, requests: Sequence[tuple[FeatureView | EmbeddingView, Sequence[Key]]], *, as_of: Any = None
    ) -> list[FeatureFrame]:
        """:meth:`read_many` for asyncio callers (one awaited round trip)."""
        as_of_ns = time.time_ns() if as_of is None else to_ns(as_of)
        prepared, storage, lookups = self._prepare(requests)
        if lookups:
            found = await asyncio.to_thread(self.backend.catalog, lookups)
            self._learn_items(lookups, found)
        self._finish_keys(prepared, storage)
        return self._evaluate(prepared, await self.backend.aget(storage), as_of_ns)

    async def aread(self, view: FeatureView | EmbeddingView, keys: Sequence[Key], *, as_of: Any = None) -> FeatureFrame:
        """:meth:`read` for asyncio callers."""
        return (await self.aread_many([(view, keys)], as_of=as_of))[0]

    # ------------------------------------------------------------------ writes
    def write_table(
        self, table: TileTable, *, rows: NDArray[np.intp] | None = None, chunk: int = 5000, track: Track | None = None
    ) -> int:
        """Write tile states (all rows, or ``rows``) to the backend.

        Returns:
            How many states were written.
        """
        plan = table.plan
        rows = np.arange(len(table), dtype=np.intp) if rows is None else rows
        ttl = plan.ttl_ns / 1e9
        starts: Iterable[int] = range(0, rows.shape[0], chunk)
        if track is not None:
            starts = track(starts, f"Writing {plan.view.name}", (rows.shape[0] + chunk - 1) // chunk)
        for start in starts:
            part = rows[start : start + chunk]
            blobs = table.blobs(part)
            items = [(self.state_key(plan, *table.row_keys[r]), b) for r, b in zip(part.tolist(), blobs, strict=True)]
            self.backend.put(items, ttl)
        return int(rows.shape[0])

    def write_embeddings(self, view: EmbeddingView, keys: Sequence[Key], vectors: NDArray[Any]) -> int:
        """Store one vector per entity (float32).

        Raises:
            DataError: the vectors are not (len(keys), view.dim).
        """
        arr = np.asarray(vectors, dtype="<f4")
        if arr.shape != (len(keys), view.dim):
            raise DataError(f"embedding view {view.name!r} needs vectors of shape ({len(keys)}, {view.dim}), got {arr.shape}")
        items = [(self.embedding_key(view, encode_key(k)), arr[i].tobytes()) for i, k in enumerate(keys)]
        self.backend.put(items, None)
        return len(items)

    def watermarks(self, view: FeatureView) -> dict[str, int | None]:
        """``materialized``: the time the last materialization covered (events before it are in
        the state); ``latest``: the latest event time the state holds (epoch ns)."""
        ns = self.plan(view).namespace
        raw = self.backend.get_meta([f"wm:{ns}", f"hw:{ns}"])
        return {
            "materialized": None if raw[f"wm:{ns}"] is None else int(raw[f"wm:{ns}"] or 0),
            "latest": None if raw[f"hw:{ns}"] is None else int(raw[f"hw:{ns}"] or 0),
        }

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()
