"""``create_app(settings)``: the FastAPI application, built on demand (nothing at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from aisle import __version__
from aisle.registry import ModelRegistry
from aisle.serving._errors import install_error_handlers
from aisle.serving._pipeline import Engine, Reranker
from aisle.serving._settings import ServingSettings
from aisle.serving.routes import admin, events, health, items, recommendations

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServiceApp(FastAPI):
    """The FastAPI app, with the hot ``GET /v1/recommendations/{user_id}`` answered before FastAPI's
    routing when ``settings.fast_path`` is on (see :func:`recommendations.fast_get`).

    The fast path steps aside (the request goes through FastAPI) behind a ``root_path``, while
    FastAPI's OpenTelemetry instrumentation is active (traced requests stay traced), and once
    middleware or dependency overrides are added to the app after :func:`create_app` (an added
    authentication middleware, say, sees every request).
    """

    _fast_engine: Engine | None = None
    _fast_middleware = 0
    _telemetry_checked = 0.0
    _telemetry_on = False

    def _otel_active(self) -> bool:
        now = time.monotonic()
        if now - self._telemetry_checked > 1.0:
            native = getattr(self, "_native_telemetry", None)
            try:
                self._telemetry_on = bool(native is not None and native.enabled())
            except Exception:
                self._telemetry_on = True
            self._telemetry_checked = now
        return self._telemetry_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        engine = self._fast_engine
        if engine is not None and scope["type"] == "http" and scope["method"] == "GET" \
                and scope["path"].startswith(recommendations.PREFIX) and not scope.get("root_path") \
                and not self.root_path and len(self.user_middleware) == self._fast_middleware \
                and not self.dependency_overrides and not self._otel_active() \
                and await recommendations.fast_get(engine, scope, send):
            return
        await super().__call__(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 (pure ASGI: no per-request overhead)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"error":"RequestTooLarge","detail":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: ServingSettings | None = None,
    *,
    reranker: Reranker | None = None,
    registry: ModelRegistry | None = None,
) -> FastAPI:
    """Build the recommendation service.

    Args:
        settings: the service settings (default: from the environment).
        reranker: the rerank hook (default: keep the ranking).
        registry: a registry object (default: the one the settings name).

    Returns:
        The FastAPI app; its ``state.engine`` holds the pipeline, caches and metrics.
    """
    settings = settings or ServingSettings.from_env()
    engine = Engine(settings, reranker=reranker, registry=registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, engine.start)
        watcher = asyncio.create_task(engine.watch())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            engine.close()

    app = ServiceApp(title="aisle recommendation service", version=__version__, lifespan=lifespan,
                  description="Recommendations, similar items, events and feedback. JSON by default; "
                              "Protobuf (aisle/serving/aisle_serving.proto) with Accept: application/x-protobuf.")
    app.state.engine = engine
    app._fast_engine = engine if settings.fast_path else None
    install_error_handlers(app)
    for module in (recommendations, items, events, health, admin):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)  # type: ignore[arg-type]
    app._fast_middleware = len(app.user_middleware)
    return app
