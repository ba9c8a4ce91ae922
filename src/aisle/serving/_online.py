"""Online per-user state: recent events and "not interested" feedback.

Kept in process (bounded per user) and mirrored to Redis when configured; every accepted event
and feedback is also appended to a JSON-lines log in the workspace, so nothing is lost when
Redis is away.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from aisle.serving._cache import RedisLayer

__all__ = ["Hidden", "OnlineState", "RecentEvent"]


@dataclass(frozen=True)
class RecentEvent:
    """One ingested event."""

    item_id: str
    event_type: str
    timestamp: datetime


@dataclass
class Hidden:
    """What a user said they are not interested in."""

    items: set[str] = field(default_factory=set)
    brands: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.items or self.brands or self.categories)


class OnlineState:
    """Recent events and feedback per user.

    Args:
        log_dir: where the events and feedback logs are appended (``None``: no log).
        redis: the Redis layer for sharing feedback across processes, or ``None``.
        max_events: events kept per user.
    """

    def __init__(self, log_dir: Path | None, redis: RedisLayer | None = None, max_events: int = 100) -> None:
        self.log_dir = log_dir
        self.redis = redis
        self.max_events = max_events
        self._events: dict[str, deque[RecentEvent]] = {}
        self._hidden: dict[str, Hidden] = {}
        self._lock = threading.Lock()
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, name: str, records: list[dict[str, Any]]) -> None:
        if self.log_dir is None or not records:
            return
        with self._lock, (self.log_dir / name).open("a") as fh:
            fh.write("".join(json.dumps(r, default=str) + "\n" for r in records))

    def add_events(self, events: list[tuple[str, str, str, datetime]]) -> set[str]:
        """Record ``(user, item, event_type, timestamp)`` tuples; returns the users touched."""
        users: set[str] = set()
        with self._lock:
            for user, item, etype, ts in events:
                q = self._events.get(user)
                if q is None:
                    q = self._events[user] = deque(maxlen=self.max_events)
                q.append(RecentEvent(item, etype, ts))
                users.add(user)
        self._append("events.jsonl", [{"user_id": u, "item_id": i, "event_type": e, "timestamp": t.isoformat()}
                                      for u, i, e, t in events])
        return users

    def recent(self, user: str) -> list[RecentEvent]:
        """The user's ingested events, oldest first."""
        q = self._events.get(user)
        return list(q) if q else []

    def history_frame(self, user: str) -> pd.DataFrame | None:
        """The user's ingested events as a canonical frame for model fold-in (``None`` if none)."""
        events = self.recent(user)
        if not events:
            return None
        return pd.DataFrame({
            "user_id": [user] * len(events),
            "item_id": [e.item_id for e in events],
            "event_type": [e.event_type for e in events],
            "timestamp": pd.to_datetime([e.timestamp for e in events], utc=True),
        })

    def hide(self, user: str, kind: str, value: str) -> None:
        """Hide an item, brand or category from a user from now on."""
        with self._lock:
            h = self._hidden.setdefault(user, Hidden())
            {"item": h.items, "brand": h.brands, "category": h.categories}[kind].add(value)
        if self.redis is not None:
            self.redis.call("feedback", lambda c: c.sadd(f"aisle:hidden:{user}", f"{kind}\t{value}"))
        self._append("feedback.jsonl", [{"user_id": user, "kind": kind, "value": value,
                                         "at": datetime.now(UTC).isoformat()}])

    def hidden(self, user: str) -> Hidden:
        """What the user hid (merged with Redis when configured)."""
        h = self._hidden.get(user) or Hidden()
        if self.redis is not None:
            remote = self.redis.call("feedback", lambda c: c.smembers(f"aisle:hidden:{user}"))
            if remote:
                h = Hidden(set(h.items), set(h.brands), set(h.categories))
                for raw in remote:
                    kind, _, value = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("\t")
                    {"item": h.items, "brand": h.brands, "category": h.categories}.get(kind, set()).add(value)
        return h

    def forget(self, user: str) -> None:
        """Erase a user's online state (privacy erasure)."""
        with self._lock:
            self._events.pop(user, None)
            self._hidden.pop(user, None)
        if self.redis is not None:
            self.redis.call("forget", lambda c: c.delete(f"aisle:hidden:{user}"))
