"""Dependencies shared by the routers (``Annotated[..., Depends(...)]`` aliases)."""

from __future__ import annotations

import hmac
from typing import Annotated

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import Response

from aisle.serving._errors import AdminAuthError
from aisle.serving._pipeline import Engine, RecResult
from aisle.serving._proto import (
    PROTO_MEDIA_TYPE,
    BatchRecommendationsPB,
    RecommendationsPB,
    ScoredItemPB,
)

__all__ = ["AdminDep", "EngineDep", "render", "render_batch", "render_body"]


async def get_engine(request: Request) -> Engine:
    """The app's engine (async: no thread-pool hop per request)."""
    engine: Engine = request.app.state.engine
    return engine


async def require_admin(engine: Annotated[Engine, Depends(get_engine)],
                  authorization: Annotated[str | None, Header()] = None) -> None:
    """Admin routes need ``Authorization: Bearer <AISLE_ADMIN_TOKEN>``."""
    token = engine.settings.admin_token
    if not token:
        raise AdminAuthError("admin routes are disabled: start the service with AISLE_ADMIN_TOKEN set")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AdminAuthError("missing or wrong admin token (send Authorization: Bearer <token>)")


EngineDep = Annotated[Engine, Depends(get_engine)]
AdminDep = Annotated[None, Depends(require_admin)]


def wants_protobuf(request: Request) -> bool:
    """Content negotiation: protobuf when the Accept header asks for it."""
    return PROTO_MEDIA_TYPE in request.headers.get("accept", "")


def to_pb(r: RecResult) -> object:
    """A result as a protobuf message."""
    return RecommendationsPB(
        request_id=r.request_id, user_id=r.user_id, model_version=r.model_version,
        items=[ScoredItemPB(item_id=i.item_id, score=i.score, source=i.source, position=n)
               for n, i in enumerate(r.items, start=1)],
        fallback=r.fallback or "", mode=r.mode, cache=r.cache)


def render_body(r: RecResult, protobuf: bool) -> tuple[bytes, str]:
    """The encoded answer and its media type."""
    if protobuf:
        return to_pb(r).SerializeToString(), PROTO_MEDIA_TYPE  # type: ignore[attr-defined]
    return r.to_json(), "application/json"


def render(request: Request, r: RecResult) -> Response:
    """JSON or protobuf, as the client asked."""
    body, media = render_body(r, wants_protobuf(request))
    return Response(body, media_type=media)


def render_batch(request: Request, results: list[RecResult]) -> Response:
    """A batch answer, JSON or protobuf."""
    if wants_protobuf(request):
        msg = BatchRecommendationsPB(results=[to_pb(r) for r in results])
        return Response(msg.SerializeToString(), media_type=PROTO_MEDIA_TYPE)
    body = orjson.dumps({"results": [orjson.Fragment(r.to_json()) for r in results]})
    return Response(body, media_type="application/json")
