"""The recommendation service: ``create_app(settings)``, its pipeline, caches and wire formats."""

from aisle.serving._app import create_app
from aisle.serving._assets import Catalog, ServingModel, load_serving_model
from aisle.serving._batch import BatchStore, open_batch_store
from aisle.serving._errors import http_status_for
from aisle.serving._impressions import ImpressionLog, pseudonymize
from aisle.serving._pipeline import Engine, RecItem, RecQuery, RecResult, Reranker
from aisle.serving._proto import PROTO_MEDIA_TYPE, RecommendationsPB, RecommendRequestPB
from aisle.serving._settings import ServingSettings

__all__ = [
    "PROTO_MEDIA_TYPE",
    "BatchStore",
    "Catalog",
    "Engine",
    "ImpressionLog",
    "RecItem",
    "RecQuery",
    "RecResult",
    "RecommendRequestPB",
    "RecommendationsPB",
    "Reranker",
    "ServingModel",
    "ServingSettings",
    "create_app",
    "http_status_for",
    "load_serving_model",
    "open_batch_store",
    "pseudonymize",
]
