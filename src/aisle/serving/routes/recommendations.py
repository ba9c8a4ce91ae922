"""``/v1/recommendations``: lists for a user (GET and POST), and a batch endpoint.

``GET /v1/recommendations/{user_id}`` is the hot path. :func:`fast_get` answers well-formed
requests to it straight from the ASGI scope, without FastAPI's routing, dependency and parameter
machinery (about a third of a cache hit's CPU time otherwise): it accepts exactly what the
FastAPI route accepts and returns the same body and headers; a request it does not fully
understand (a value needing validation, a repeated parameter, anything unusual) is left to the
FastAPI route, which answers it or names the invalid field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

import pydantic
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from aisle.errors import AisleError, ConfigError
from aisle.serving._deps import EngineDep, render, render_batch, render_body
from aisle.serving._errors import http_status_for
from aisle.serving._pipeline import Engine, RecQuery
from aisle.serving._proto import PROTO_MEDIA_TYPE, RecommendRequestPB
from aisle.serving._schemas import (
    BatchRequest,
    BatchResponse,
    RecommendationsResponse,
    RecommendRequest,
)

__all__ = ["fast_get", "router"]

log = logging.getLogger("aisle.serving")

router = APIRouter(prefix="/v1/recommendations", tags=["recommendations"])

_NEGOTIATED: dict[int | str, dict[str, Any]] = {
    200: {"content": {PROTO_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "JSON, or aisle.serving.v1.Recommendations with Accept: application/x-protobuf"},
}


def _query(engine: Engine, body: RecommendRequest) -> RecQuery:
    if body.k > engine.settings.max_k:
        raise RequestValidationError([{"type": "less_than_equal", "loc": ("body", "k"),
                                       "msg": f"Input should be less than or equal to {engine.settings.max_k}",
                                       "input": body.k}])
    return RecQuery(user_id=body.user_id, k=body.k, page=body.page, category=body.category, device=body.device,
                    segment=body.segment, filter_category=body.filter_category, min_price=body.min_price,
                    max_price=body.max_price, exclude_items=tuple(body.exclude_items))


@router.get("/{user_id}", response_model=RecommendationsResponse, responses=_NEGOTIATED)
async def recommend_get(
    request: Request,
    engine: EngineDep,
    user_id: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=256)],
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    page: Annotated[str, Query(max_length=64)] = "",
    category: Annotated[str, Query(max_length=256)] = "",
    device: Annotated[str, Query(max_length=32)] = "",
    segment: Annotated[str, Query(max_length=64)] = "",
    filter_category: Annotated[str, Query(max_length=256)] = "",
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    exclude: Annotated[str, Query(max_length=10_000, description="Comma-separated item ids to leave out.")] = "",
) -> Response:
    """Top-k items for a user; context and filters as query parameters."""
    if k > engine.settings.max_k:
        raise RequestValidationError([{"type": "less_than_equal", "loc": ("query", "k"),
                                       "msg": f"Input should be less than or equal to {engine.settings.max_k}",
                                       "input": k}])
    q = RecQuery(user_id=user_id, k=k, page=page, category=category, device=device, segment=segment,
                 filter_category=filter_category, min_price=min_price, max_price=max_price,
                 exclude_items=tuple(x for x in exclude.split(",") if x))
    result = await engine.recommend(q)
    engine.metrics.requests_recommendations.inc()
    return render(request, result)


@router.post("", response_model=RecommendationsResponse, responses=_NEGOTIATED, openapi_extra={
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/RecommendRequest"}},
        PROTO_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
async def recommend_post(request: Request, engine: EngineDep) -> Response:
    """Top-k items for a user; the body is JSON or ``aisle.serving.v1.RecommendRequest`` (protobuf)."""
    raw = await request.body()
    try:
        if request.headers.get("content-type", "").startswith(PROTO_MEDIA_TYPE):
            pb = RecommendRequestPB.FromString(raw)
            data: Any = {"user_id": pb.user_id, "k": pb.k or 10, "page": pb.page, "category": pb.category,
                         "device": pb.device, "segment": pb.segment, "filter_category": pb.filter_category,
                         "exclude_items": list(pb.exclude_items)}
            for f in ("min_price", "max_price"):
                if pb.HasField(f):
                    data[f] = getattr(pb, f)
        else:
            data = json.loads(raw)
    except Exception as exc:
        raise ConfigError(f"request body is neither valid JSON nor a RecommendRequest message: {type(exc).__name__}") from None
    try:
        body = RecommendRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None
    result = await engine.recommend(_query(engine, body))
    engine.metrics.requests_recommendations.inc()
    return render(request, result)


@router.post("/batch", response_model=BatchResponse, responses=_NEGOTIATED)
async def recommend_batch(request: Request, engine: EngineDep, body: BatchRequest) -> Response:
    """Several lists in one call (at most ``max_batch`` requests)."""
    if len(body.requests) > engine.settings.max_batch:
        raise RequestValidationError([{"type": "too_long", "loc": ("body", "requests"),
                                       "msg": f"at most {engine.settings.max_batch} requests per batch",
                                       "input": len(body.requests)}])
    queries = [_query(engine, r) for r in body.requests]
    results = await asyncio.gather(*(engine.recommend(q) for q in queries))
    engine.metrics.requests.labels("batch", "200").inc()
    return render_batch(request, list(results))


# ---------------------------------------------------------------------------------- fast path
PREFIX = "/v1/recommendations/"
_MAX_LEN = {"page": 64, "category": 256, "device": 32, "segment": 64, "filter_category": 256, "exclude": 10_000}
_NAMES = frozenset({"k", "min_price", "max_price", *_MAX_LEN})
_K = re.compile(r"[1-9][0-9]{0,3}\Z")
_PRICE = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?\Z")
_PROTO = PROTO_MEDIA_TYPE.encode()

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def parse_fast(path: str, query_string: bytes, max_k: int) -> RecQuery | None:
    """The query of a well-formed GET, or ``None`` when FastAPI should parse and validate it."""
    user_id = path[len(PREFIX):]
    if not user_id or len(user_id) > 256 or "/" in user_id:
        return None
    v: dict[str, str] = {}
    if query_string:
        qs = query_string.decode("latin-1")
        pairs: Any = parse_qsl(qs, keep_blank_values=True) if ("%" in qs or "+" in qs) else \
            (p.partition("=")[::2] for p in qs.split("&") if p)
        for name, value in pairs:
            if name in _NAMES:
                if name in v:
                    return None  # repeated: FastAPI's rules decide
                v[name] = value
    k = 10
    if "k" in v:
        if not _K.match(v["k"]):
            return None
        k = int(v["k"])
        if k > max_k or k > 1000:
            return None
    prices: list[float | None] = [None, None]
    for n, name in enumerate(("min_price", "max_price")):
        if name in v:
            if not _PRICE.match(v[name]):
                return None
            prices[n] = float(v[name])
    for name, limit in _MAX_LEN.items():
        if len(v.get(name, "")) > limit:
            return None
    exclude = v.get("exclude", "")
    return RecQuery(user_id=user_id, k=k, page=v.get("page", ""), category=v.get("category", ""),
                    device=v.get("device", ""), segment=v.get("segment", ""),
                    filter_category=v.get("filter_category", ""), min_price=prices[0], max_price=prices[1],
                    exclude_items=tuple(x for x in exclude.split(",") if x) if exclude else ())


async def fast_get(engine: Engine, scope: MutableMapping[str, Any], send: Send) -> bool:
    """Answer ``GET /v1/recommendations/{user_id}`` from the scope; False: not handled, nothing sent."""
    q = parse_fast(scope["path"], scope.get("query_string", b""), engine.settings.max_k)
    if q is None:
        return False
    protobuf = False
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            protobuf = _PROTO in value
            break
    status = 200
    try:
        result = await engine.recommend(q)
        engine.metrics.requests_recommendations.inc()
        body, media = render_body(result, protobuf)
    except AisleError as exc:
        status = http_status_for(exc)
        body = json.dumps({"error": type(exc).__name__, "detail": str(exc)}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        media = "application/json"
    except Exception:
        log.exception("unhandled error on %s", scope["path"])
        status = 500
        body, media = b'{"error":"InternalError","detail":"internal error; see the service log"}', "application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", media.encode())]})
    await send({"type": "http.response.body", "body": body})
    return True
