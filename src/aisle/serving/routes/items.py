"""``/v1/items``: similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from aisle.serving._deps import EngineDep
from aisle.serving._schemas import ItemOut, SimilarResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/items", tags=["items"])


@router.get("/{item_id}/similar", response_model=SimilarResponse)
async def similar(engine: EngineDep, item_id: Annotated[str, Path(min_length=1, max_length=256)],
                  k: Annotated[int, Query(ge=1, le=1000)] = 10) -> SimilarResponse:
    """Items similar to an item (co-view neighbours, then the model's item vectors), in stock."""
    if k > engine.settings.max_k:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError([{"type": "less_than_equal", "loc": ("query", "k"),
                                       "msg": f"Input should be less than or equal to {engine.settings.max_k}", "input": k}])
    label, items = engine.similar(item_id, k)
    return SimilarResponse(item_id=item_id, model_version=label,
                           items=[ItemOut(item_id=i.item_id, score=i.score, source=i.source) for i in items])
