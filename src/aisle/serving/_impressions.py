"""The impression log: every response, written off the request path as JSON lines.

Records carry the request id, a pseudonymous user id (HMAC-SHA256 of the user id under a key
kept in the workspace), the model version, and per shown item its position, score, source and
propensity (1.0 under the deterministic policy), for later off-policy evaluation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ImpressionLog", "pseudonymize"]


def pseudonymize(user_id: str, key: bytes) -> str:
    """A stable pseudonym of a user id (first 16 hex digits of its HMAC-SHA256)."""
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:16]


class ImpressionLog:
    """An append-only JSON-lines log fed through a bounded queue by a writer thread.

    Args:
        directory: the log folder (one file per UTC day), or ``None`` to keep nothing.
        key: the pseudonym key (``b""``: read or create ``<directory>/pseudonym.key``).
        max_queue: records waiting at most; beyond it records are dropped and counted.
    """

    def __init__(self, directory: Path | None, key: bytes = b"", max_queue: int = 100_000) -> None:
        self.directory = directory
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
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

    def log(self, request_id: str, user_id: str, model_version: str, items: list[str], scores: list[float],
            sources: list[str], *, context: dict[str, Any] | None = None, fallback: str | None = None) -> bool:
        """Queue one impression; returns False when it was dropped."""
        if self._thread is None:
            return True
        record = {
            "request_id": request_id, "at": datetime.now(UTC).isoformat(), "user": pseudonymize(user_id, self.key),
            "model_version": model_version, "policy": "deterministic", "fallback": fallback,
            "items": items, "positions": list(range(1, len(items) + 1)), "scores": scores,
            "sources": sources, "propensities": [1.0] * len(items), "context": context or {},
        }
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _run(self) -> None:
        assert self.directory is not None
        while True:
            rec = self._queue.get()
            if rec is None:
                return
            batch = [rec]
            while len(batch) < 1000:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(batch)
                    return
                batch.append(nxt)
            self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        assert self.directory is not None
        day = datetime.now(UTC).strftime("%Y%m%d")
        with (self.directory / f"impressions-{day}.jsonl").open("a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in batch))

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
