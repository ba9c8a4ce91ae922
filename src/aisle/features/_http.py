"""HTTP ingestion of events: ``POST /events`` validates and hands them to a sink.

The sink is the Redis stream (when one is configured: the consumer group then applies them)
or, embedded, a stream processor applied in process. FastAPI is imported only when
:func:`create_ingest_app` is called (``pip install 'aisle[serve]'``); errors are mapped to HTTP
status codes in one place, :func:`status_for`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from aisle.data._conform import conform_events
from aisle.errors import (
    AisleError,
    ConfigError,
    DataError,
    NotFoundError,
    ServiceError,
    require,
)

from ._aggregates import EventBatch
from ._stream import StreamProcessor, events_to_columns, publish_events

__all__ = ["EventSink", "create_ingest_app", "processor_sink", "redis_stream_sink", "status_for"]

#: Receives validated events in the columnar wire format; returns how many it accepted.
EventSink = Callable[[Mapping[str, Sequence[Any]]], int]


def status_for(exc: BaseException) -> int:
    """The HTTP status of an error: the one place where domain errors become status codes."""
    if isinstance(exc, DataError):
        return 422
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ServiceError):
        return 503
    return 500


def redis_stream_sink(client: Any, stream: str, *, per_entry: int = 500) -> EventSink:
    """A sink appending events to a Redis stream (``client``: a redis client or URL)."""

    def sink(columns: Mapping[str, Sequence[Any]]) -> int:
        n = len(columns.get("event_id", []))
        records = [{c: v[i] for c, v in columns.items()} for i in range(n)]
        publish_events(client, stream, records, per_entry=per_entry)
        return n

    return sink


def processor_sink(processor: StreamProcessor) -> EventSink:
    """A sink applying events in process (the embedded stream), one batch at a time."""
    lock = threading.Lock()

    def sink(columns: Mapping[str, Sequence[Any]]) -> int:
        with lock:
            batch = EventBatch.from_columns(columns, processor.online.catalog())
            processor.process(batch)
        return len(batch)

    return sink


def create_ingest_app(sink: EventSink, *, max_events: int = 50_000) -> Any:
    """A FastAPI app with ``POST /events`` and ``GET /healthz``.

    ``POST /events`` takes a JSON list of events (or ``{"events": [...]}``) in the canonical
    columns; ``timestamp`` is ISO 8601 or epoch seconds/ms/us/ns, and a missing ``event_id``
    is derived from the event's content, so a client retrying a request does not double count.
    It answers 202 with ``{"accepted": n}``, 422 with the list of bad rows, or 503 when the
    stream is unreachable.

    Args:
        sink: where validated events go.
        max_events: the most events one request may carry.
    """
    require("fastapi", "serve")
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    app = FastAPI(title="aisle event ingestion", version="1")

    @app.exception_handler(AisleError)
    async def _aisle_error(_: Request, exc: AisleError) -> JSONResponse:
        return JSONResponse(status_code=status_for(exc), content={"error": type(exc).__name__, "detail": str(exc)})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/events", status_code=202)
    async def post_events(body: list[dict[str, Any]] | dict[str, Any]) -> dict[str, int]:
        records = body.get("events") if isinstance(body, dict) else body
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError("send a JSON list of event objects, or {\"events\": [...]}")
        if len(records) > max_events:
            raise DataError(f"a request may carry at most {max_events} events, got {len(records)}; split it")
        if not records:
            return {"accepted": 0}
        events, _ = conform_events(pd.DataFrame.from_records(records), source="POST /events")
        columns = events_to_columns(events)
        accepted = await run_in_threadpool(sink, columns)
        return {"accepted": int(accepted)}

    return app
