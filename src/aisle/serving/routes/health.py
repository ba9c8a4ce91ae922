"""``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aisle.serving._deps import EngineDep
from aisle.serving._schemas import HealthResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def readyz(engine: EngineDep) -> Response:
    """Ready when a model is loaded and the configured stores answer."""
    checks: dict[str, str] = {}
    sm = engine.model
    checks["model"] = "ok" if sm is not None else f"not loaded: {engine.holder.last_error}"
    if engine.redis is not None:
        checks["redis"] = "ok" if engine.redis.ping() else "unreachable"
    if engine.registry is not None:
        try:
            engine.registry.production(engine.settings.model_name)
            checks["registry"] = "ok"
        except Exception:
            checks["registry"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    body = HealthResponse(status="ready" if ready else "not ready", model_version=sm.label if sm else None, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(engine: EngineDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)
