"""``/v1/events`` and ``/v1/feedback``: what users do, and what they do not want to see."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from aisle.serving._deps import EngineDep
from aisle.serving._schemas import EventsRequest, EventsResponse, FeedbackRequest, FeedbackResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventsResponse)
async def ingest(engine: EngineDep, body: EventsRequest) -> EventsResponse:
    """Ingest events: they feed fold-in, co-view candidates and exclusions, and invalidate cached lists."""
    now = datetime.now(UTC)
    n = engine.ingest([(e.user_id, e.item_id, e.event_type, e.timestamp or now) for e in body.events])
    return EventsResponse(accepted=n)


@router.post("/feedback", response_model=FeedbackResponse)
async def feedback(engine: EngineDep, body: FeedbackRequest) -> FeedbackResponse:
    """"Not interested": hide an item, brand or category from this user from now on."""
    engine.feedback(body.user_id, body.kind, body.value)
    h = engine.state.hidden(body.user_id)
    return FeedbackResponse(user_id=body.user_id, hidden={"items": sorted(h.items), "brands": sorted(h.brands),
                                                          "categories": sorted(h.categories)})
