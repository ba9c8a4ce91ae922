"""The top-N cache: an in-process LRU with TTL in front of an optional Redis.

Entries are keyed by (model version, user, context); a user's entries are dropped together when
new events or feedback for that user arrive. The in-process layer keeps values as they are
(decoded, ready to answer from); Redis keeps them encoded (``encode`` / ``decode``). Redis errors never fail a request: the layer is
skipped for a short back-off, counted, and retried, so the service reconnects when Redis returns.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["LRUCache", "RedisLayer", "TopNCache"]


class LRUCache:
    """A thread-safe LRU with a time to live, indexed by user for invalidation."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._data: OrderedDict[tuple[str, str, str], tuple[float, Any]] = OrderedDict()
        self._by_user: dict[str, set[tuple[str, str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Any:
        """The value, or ``None`` when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: tuple[str, str, str], value: Any) -> None:
        """Store a value (evicting the least recently used beyond ``size``)."""
        if self.size <= 0 or self.ttl_s <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + self.ttl_s, value)
            self._data.move_to_end(key)
            self._by_user.setdefault(key[1], set()).add(key)
            while len(self._data) > self.size:
                old, _ = self._data.popitem(last=False)
                self._forget(old)

    def _forget(self, key: tuple[str, str, str]) -> None:
        keys = self._by_user.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[key[1]]

    def _drop(self, key: tuple[str, str, str]) -> None:
        self._data.pop(key, None)
        self._forget(key)

    def invalidate_user(self, user: str) -> None:
        """Drop every entry of a user."""
        with self._lock:
            for key in list(self._by_user.get(user, ())):
                self._drop(key)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()
            self._by_user.clear()

    def __len__(self) -> int:
        return len(self._data)


class RedisLayer:
    """Best-effort Redis calls with a circuit breaker.

    Args:
        url: the Redis URL.
        timeout_ms: socket timeout.
        on_error: called with the operation name on every failure (metrics).
        backoff_s: how long to skip Redis after a failure.
    """

    def __init__(self, url: str, *, timeout_ms: float = 50.0, on_error: Callable[[str], None] | None = None,
                 backoff_s: float = 0.5) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout_ms / 1000,
                                                 socket_connect_timeout=timeout_ms / 1000)
        self.on_error = on_error or (lambda op: None)
        self.backoff_s = backoff_s
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        """False while backing off after a failure."""
        return time.monotonic() >= self._down_until

    def call(self, op: str, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(client)``; on failure count it, back off and return ``None``."""
        if not self.available:
            return None
        try:
            return fn(self.client)
        except Exception:  # redis errors of every kind: the cache is optional
            self._down_until = time.monotonic() + self.backoff_s
            self.on_error(op)
            return None

    def ping(self) -> bool:
        """True when Redis answers now (ignores the back-off)."""
        try:
            ok = bool(self.client.ping())
        except Exception:
            self.on_error("ping")
            return False
        self._down_until = 0.0
        return ok


class TopNCache:
    """The two cache layers behind one interface.

    Args:
        size: in-process entries.
        ttl_s: time to live (both layers).
        redis: the Redis layer, or ``None``.
        encode: value -> bytes for Redis (default: values are bytes already).
        decode: bytes from Redis -> value (default: the bytes).
    """

    def __init__(self, size: int, ttl_s: float, redis: RedisLayer | None = None, *,
                 encode: Callable[[Any], bytes] | None = None, decode: Callable[[bytes], Any] | None = None) -> None:
        self.local = LRUCache(size, ttl_s)
        self.redis = redis
        self.ttl_s = ttl_s
        self.encode: Callable[[Any], bytes] = encode or (lambda v: v)
        self.decode: Callable[[bytes], Any] = decode or (lambda b: b)

    @staticmethod
    def _rkey(version: str, user: str) -> str:
        return f"aisle:topn:{version}:{user}"

    def get(self, version: str, user: str, context: str) -> tuple[Any, str]:
        """The cached value and the layer that had it (``"memory"``, ``"redis"`` or ``"miss"``)."""
        key = (version, user, context)
        value = self.local.get(key)
        if value is not None:
            return value, "memory"
        if self.redis is not None:
            remote = self.redis.call("get", lambda c: c.hget(self._rkey(version, user), context))
            if remote is not None:
                try:
                    value = self.decode(bytes(remote))
                except Exception:  # an entry this version cannot read: recompute it
                    return None, "miss"
                self.local.put(key, value)
                return value, "redis"
        return None, "miss"

    def put(self, version: str, user: str, context: str, value: Any) -> None:
        """Store a value in both layers."""
        self.local.put((version, user, context), value)
        if self.redis is not None and self.ttl_s > 0:
            rkey = self._rkey(version, user)
            ttl = max(1, int(self.ttl_s))
            raw = self.encode(value)

            def write(c: Any) -> None:
                pipe = c.pipeline(transaction=False)
                pipe.hset(rkey, context, raw)
                pipe.expire(rkey, ttl)
                pipe.execute()

            self.redis.call("put", write)

    def invalidate_user(self, version: str, user: str) -> None:
        """Drop a user's entries (new events or feedback arrived)."""
        self.local.invalidate_user(user)
        if self.redis is not None:
            self.redis.call("invalidate", lambda c: c.delete(self._rkey(version, user)))

    def clear(self) -> None:
        """Drop the in-process layer (Redis entries expire with their TTL or the version changes)."""
        self.local.clear()
