"""``create_app(settings)``: the FastAPI application, built on demand (nothing at import time)."""

from __future__ import annotations

import asyncio
import contextlib
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

    app = FastAPI(title="aisle recommendation service", version=__version__, lifespan=lifespan,
                  description="Recommendations, similar items, events and feedback. JSON by default; "
                              "Protobuf (aisle/serving/aisle_serving.proto) with Accept: application/x-protobuf.")
    app.state.engine = engine
    install_error_handlers(app)
    for module in (recommendations, items, events, health, admin):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)  # type: ignore[arg-type]
    return app
