"""``/v1/recommendations``: lists for a user (GET and POST), and a batch endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from aisle.errors import ConfigError
from aisle.serving._deps import EngineDep, render, render_batch
from aisle.serving._pipeline import Engine, RecQuery
from aisle.serving._proto import PROTO_MEDIA_TYPE, RecommendRequestPB
from aisle.serving._schemas import (
    BatchRequest,
    BatchResponse,
    RecommendationsResponse,
    RecommendRequest,
)

__all__ = ["router"]

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
    engine.metrics.requests.labels("recommendations", "200").inc()
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
    engine.metrics.requests.labels("recommendations", "200").inc()
    return render(request, result)


@router.post("/batch", response_model=BatchResponse, responses=_NEGOTIATED)
async def recommend_batch(request: Request, engine: EngineDep, body: BatchRequest) -> Response:
    """Several lists in one call (at most ``max_batch`` requests)."""
    if len(body.requests) > engine.settings.max_batch:
        raise RequestValidationError([{"type": "too_long", "loc": ("body", "requests"),
                                       "msg": f"at most {engine.settings.max_batch} requests per batch",
                                       "input": len(body.requests)}])
    results = await asyncio.gather(*(engine.recommend(_query(engine, r)) for r in body.requests))
    engine.metrics.requests.labels("batch", "200").inc()
    return render_batch(request, list(results))
