"""The impression log: every response, written off the request path as JSON lines.

Records carry the request id, a pseudonymous user id (HMAC-SHA256 of the user id under a key
kept in the workspace), the model version, and per shown item its position, score, source and
propensity (1.0 under the deterministic policy), for later off-policy evaluation.

The request path only appends a tuple to a bounded deque (no lock, no thread wake-up); a writer
thread wakes every ``flush_interval_s``, builds the records (pseudonym, timestamp, JSON) and
appends them to the day's file. When the deque is full, records are dropped and counted, never
waited for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ImpressionLog", "pseudonymize"]


def pseudonymize(user_id: str, key: bytes) -> str:
    """A stable pseudonym of a user id (first 16 hex digits of its HMAC-SHA256)."""
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:16]


class ImpressionLog:
    """An append-only JSON-lines log fed through a bounded deque by a writer thread.

    Args:
        directory: the log folder (one file per UTC day), or ``None`` to keep nothing.
        key: the pseudonym key (``b""``: read or create ``<directory>/pseudonym.key``).
        max_queue: records waiting at most; beyond it records are dropped and counted.
        flush_interval_s: how often the writer drains the queue.
    """

    def __init__(self, directory: Path | None, key: bytes = b"", max_queue: int = 100_000,
                 flush_interval_s: float = 0.05) -> None:
        self.directory = directory
        self.dropped = 0
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self._queue: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pseudonyms: dict[str, str] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            key_file = directory / "pseudonym.key"
            if not key:
                if not key_file.exists():
                    key_file.write_text(secrets.token_hex(32))
                    key_file.chmod(0o600)
                key = bytes.fromhex(key_file.read_text().strip())
            self._thread = threading.Thread(target=self._run, name="aisle-impressions", daemon=True)
            self._thread.start()
        self.key = key or secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        """True while records are being written."""
        return self._thread is not None

    def log(self, request_id: str, user_id: str, model_version: str, items: list[str], scores: list[float],
            sources: list[str], *, context: dict[str, Any] | None = None, fallback: str | None = None) -> bool:
        """Queue one impression; returns False when it was dropped."""
        return self._put((request_id, user_id, model_version, None, items, scores, sources, context or {},
                          fallback, time.time()))

    def log_items(self, request_id: str, user_id: str, model_version: str, items: Sequence[Any],
                  context: dict[str, Any] | Callable[[], dict[str, Any]] | None, fallback: str | None) -> bool:
        """Queue one impression of ``items`` (objects with ``item_id``, ``score`` and ``source``,
        not modified afterwards), unpacked by the writer thread; ``context`` may be a function
        the writer calls. Returns False when it was dropped."""
        return self._put((request_id, user_id, model_version, items, None, None, None, context,
                          fallback, time.time()))

    def _put(self, entry: tuple[Any, ...]) -> bool:
        if self._thread is None:
            return True
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return False
        self._queue.append(entry)  # deque.append is atomic: no lock, the writer is not woken
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        with self._write_lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        q = self._queue
        while q:
            batch: list[tuple[Any, ...]] = []
            while q and len(batch) < 5000:
                batch.append(q.popleft())
            try:
                self._write(batch)
            except Exception:  # a full disk must not kill the writer; the records are lost
                self.dropped += len(batch)

    def _pseudonym(self, user_id: str) -> str:
        p = self._pseudonyms.get(user_id)
        if p is None:
            if len(self._pseudonyms) >= 100_000:
                self._pseudonyms.clear()
            p = self._pseudonyms[user_id] = pseudonymize(user_id, self.key)
        return p

    def _record(self, e: tuple[Any, ...]) -> bytes:
        rid, user, version, objs, items, scores, sources, context, fallback, at = e
        if callable(context):
            context = context()
        if objs is not None:
            items = [o.item_id for o in objs]
            scores = [o.score for o in objs]
            sources = [o.source for o in objs]
        n = len(items)
        return orjson.dumps({
            "request_id": rid, "at": datetime.fromtimestamp(at, UTC).isoformat(), "user": self._pseudonym(user),
            "model_version": version, "policy": "deterministic", "fallback": fallback,
            "items": items, "positions": list(range(1, n + 1)), "scores": scores,
            "sources": sources, "propensities": [1.0] * n, "context": context or {},
        }, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        assert self.directory is not None
        by_day: dict[str, list[bytes]] = {}
        for e in batch:
            by_day.setdefault(datetime.fromtimestamp(e[-1], UTC).strftime("%Y%m%d"), []).append(self._record(e))
        for day, lines in by_day.items():
            with (self.directory / f"impressions-{day}.jsonl").open("ab") as fh:
                fh.write(b"".join(lines))

    def flush(self) -> None:
        """Write what is queued now (from the calling thread)."""
        if self._thread is not None:
            self._drain()

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop the writer."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
