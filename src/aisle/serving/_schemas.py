"""Request and response bodies of the HTTP API (request and response schemas kept apart)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchRequest", "BatchResponse", "EventIn", "EventsRequest", "EventsResponse", "FeedbackRequest",
    "FeedbackResponse", "HealthResponse", "ItemOut", "PromoteRequest", "RecommendRequest",
    "RecommendationsResponse", "SimilarResponse", "VersionOut",
]

_Id = Field(min_length=1, max_length=256)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Strict):
    """A recommendation request."""

    user_id: str = Field(min_length=1, max_length=256, description="The user (unknown users get a cold-start answer).")
    k: int = Field(10, ge=1, description="List length (at most the service's max_k).")
    page: str = Field("", max_length=64, description="Context: page type (home, product, cart ...).")
    category: str = Field("", max_length=256, description="Context: the category being browsed.")
    device: str = Field("", max_length=32, description="Context: device.")
    segment: str = Field("", max_length=64, description="The user's segment, when known to the caller.")
    filter_category: str = Field("", max_length=256, description="Only items under this category path.")
    min_price: float | None = Field(None, ge=0, description="Only items at or above this price.")
    max_price: float | None = Field(None, ge=0, description="Only items at or below this price.")
    exclude_items: list[str] = Field(default_factory=list, max_length=1000, description="Never these items.")


class BatchRequest(_Strict):
    """Several recommendation requests in one call."""

    requests: list[RecommendRequest] = Field(min_length=1, max_length=1000)


class ItemOut(BaseModel):
    """One recommended item."""

    item_id: str
    score: float
    source: str = Field(description="What produced it: model, fold-in, batch, co-view, trending, new-arrivals, "
                                    "cached, segment-popular, popular or curated.")


class RecommendationsResponse(BaseModel):
    """A ranked list with how it was made."""

    request_id: str
    user_id: str
    model_version: str
    items: list[ItemOut]
    fallback: str | None = Field(None, description="The fallback that replaced the model, if any.")
    fallback_reason: str | None = None
    mode: Literal["realtime", "batch"] = "realtime"
    cache: Literal["memory", "redis", "miss"] = "miss"
    timings_ms: dict[str, float] = Field(default_factory=dict)


class BatchResponse(BaseModel):
    """Answers of a batch call, in request order."""

    results: list[RecommendationsResponse]


class SimilarResponse(BaseModel):
    """Items similar to one item."""

    item_id: str
    model_version: str
    items: list[ItemOut]


class EventIn(_Strict):
    """One shop event."""

    user_id: str = _Id
    item_id: str = _Id
    event_type: Literal["view", "click", "add_to_cart", "purchase", "return", "search", "rating"] = "view"
    timestamp: datetime | None = Field(None, description="When (default: now).")


class EventsRequest(_Strict):
    """Events to ingest."""

    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventsResponse(BaseModel):
    """How many events were accepted."""

    accepted: int


class FeedbackRequest(_Strict):
    """A "not interested" signal: the item, brand or category is hidden for this user from now on."""

    user_id: str = _Id
    kind: Literal["item", "brand", "category"]
    value: str = Field(min_length=1, max_length=256)


class FeedbackResponse(BaseModel):
    """Acknowledgement."""

    user_id: str
    hidden: dict[str, list[str]]


class HealthResponse(BaseModel):
    """Liveness or readiness."""

    status: str
    model_version: str | None = None
    checks: dict[str, str] = Field(default_factory=dict)


class PromoteRequest(_Strict):
    """Promote a version."""

    version: int = Field(ge=1)
    stage: Literal["candidate", "shadow", "canary", "production", "archived"] = "production"


class VersionOut(BaseModel):
    """A registry version."""

    name: str
    version: int
    stage: str
    artifact_sha256: str
    served: bool = False
