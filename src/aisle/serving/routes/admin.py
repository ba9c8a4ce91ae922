"""``/v1/admin``: promote, rollback, reload, cache and user deletion (bearer token required)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from aisle.errors import StateError
from aisle.serving._deps import AdminDep, EngineDep
from aisle.serving._schemas import HealthResponse, PromoteRequest, VersionOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _registry(engine: EngineDep) -> object:
    if engine.registry is None:
        raise StateError("this service serves a model folder, not the registry; restart without --model")
    return engine.registry


async def _swap(engine: EngineDep) -> HealthResponse:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: engine.holder.refresh())
    sm = engine.model
    return HealthResponse(status="ok", model_version=sm.label if sm else None)


@router.get("/versions", response_model=list[VersionOut])
async def versions(engine: EngineDep, _: AdminDep) -> list[VersionOut]:
    """The registry's versions of the served model name."""
    _registry(engine)
    assert engine.registry is not None
    served = engine.model.label if engine.model else None
    return [VersionOut(name=v.name, version=v.version, stage=v.stage, artifact_sha256=v.artifact_sha256,
                       served=v.label == served) for v in engine.registry.list(engine.settings.model_name)]


@router.post("/promote", response_model=HealthResponse)
async def promote(engine: EngineDep, _: AdminDep, body: PromoteRequest) -> HealthResponse:
    """Move a version to a stage; to production means the service swaps to it now (if its artifact is intact)."""
    _registry(engine)
    assert engine.registry is not None
    engine.registry.promote(engine.settings.model_name, body.version, body.stage)
    return await _swap(engine)


@router.post("/rollback", response_model=HealthResponse)
async def rollback(engine: EngineDep, _: AdminDep) -> HealthResponse:
    """Put the previous production version back and swap to it."""
    _registry(engine)
    assert engine.registry is not None
    engine.registry.rollback(engine.settings.model_name)
    return await _swap(engine)


@router.post("/reload", response_model=HealthResponse)
async def reload(engine: EngineDep, _: AdminDep) -> HealthResponse:
    """Check the registry now and swap if production changed."""
    return await _swap(engine)


@router.delete("/cache", response_model=HealthResponse)
async def clear_cache(engine: EngineDep, _: AdminDep) -> HealthResponse:
    """Drop the in-process top-N cache."""
    engine.cache.clear()
    return HealthResponse(status="ok")


@router.delete("/users/{user_id}", response_model=HealthResponse)
async def delete_user(engine: EngineDep, _: AdminDep,
                      user_id: Annotated[str, Path(min_length=1, max_length=256)]) -> HealthResponse:
    """Erase a user's online state and cached lists."""
    engine.forget(user_id)
    return HealthResponse(status="ok")
