"""The service's settings: one typed object, read from ``AISLE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aisle.settings import Settings

__all__ = ["ServingSettings"]


class ServingSettings(BaseModel):
    """Everything :func:`aisle.serving.create_app` needs.

    Attributes:
        workspace: the workspace folder (registry, impression log, batch lists).
        model_name: the registered model name to serve.
        model_path: serve this saved model folder directly instead of the registry's production version.
        registry_url: ``postgresql://...`` for the PostgreSQL registry; empty: ``<workspace>/registry.db``.
        redis_url: a Redis URL for the shared top-N cache, batch lists and feedback; empty: in-process only.
        admin_token: the bearer token of the admin routes; empty disables them.
        mode: ``realtime`` computes every list; ``batch`` serves lists precomputed by
            ``aisle recommend-batch`` when there is one (else real time).
        max_k: the largest k a request may ask for.
        max_batch: the most requests in one batch call.
        max_body_bytes: the largest request body.
        n_candidates: the least candidates asked from the model and co-view (see ``candidate_factor``).
        candidate_factor: candidates asked from the model: ``max(n_candidates, candidate_factor × k)``
            (× the rerank hook's ``pool_factor``); the business rules are applied to the model's
            scores before its top-n is taken, so every candidate is eligible.
        max_per_brand: per-brand cap in one list (0: no cap).
        model_budget_ms: time the model may take before the fallback chain answers.
        cache_ttl_s: top-N cache time to live.
        cache_size: in-process top-N cache entries.
        poll_interval_s: how often the registry is checked for a newly promoted version (0: never).
        curated_items: the last-resort list (empty: the catalog's best-stocked items).
        impression_log: write the impression log (JSON lines under ``<workspace>/impressions``).
        pseudonym_key: the key of the user-id pseudonyms in the impression log (empty: a key
            generated once and kept in the workspace).
        redis_timeout_ms: socket timeout of Redis calls.
        fast_path: answer well-formed ``GET /v1/recommendations/{user_id}`` requests without
            FastAPI's routing and parameter machinery (same validation, body and headers; any
            request it does not fully understand goes through FastAPI).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: Path = Path(".aisle")
    model_name: str = "default"
    model_path: Path | None = None
    registry_url: str = ""
    redis_url: str = ""
    admin_token: str = ""
    mode: Literal["realtime", "batch"] = "realtime"
    max_k: int = Field(100, ge=1, le=1000)
    max_batch: int = Field(100, ge=1)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    n_candidates: int = Field(30, ge=10)
    candidate_factor: int = Field(3, ge=1)
    max_per_brand: int = Field(0, ge=0)
    model_budget_ms: float = Field(100.0, gt=0)
    cache_ttl_s: float = Field(300.0, ge=0)
    cache_size: int = Field(100_000, ge=0)
    poll_interval_s: float = Field(2.0, ge=0)
    curated_items: tuple[str, ...] = ()
    impression_log: bool = True
    pseudonym_key: str = ""
    redis_timeout_ms: float = Field(50.0, gt=0)
    fast_path: bool = True
    #: BLAS threads per process. Requests already run concurrently; multi-threaded BLAS on a
    #: single user's small product costs more in thread wake-ups than it saves (measured: 0.43 ms
    #: vs 5-13 ms per recommendation on 2 busy cores). 0 leaves the library's default.
    blas_threads: int = Field(1, ge=0)

    @classmethod
    def from_env(cls, base: Settings | None = None, **overrides: object) -> ServingSettings:
        """Settings from ``AISLE_WORKSPACE``, ``AISLE_MODEL``, ``AISLE_REGISTRY_URL``, ``AISLE_REDIS_URL``,
        ``AISLE_ADMIN_TOKEN`` and ``AISLE_SERVE_MODE``, then ``overrides`` (``None`` values are ignored).
        """
        env = os.environ
        values: dict[str, object] = {
            "workspace": base.workspace if base else Path(env.get("AISLE_WORKSPACE", ".aisle")),
            "model_name": env.get("AISLE_MODEL", "default"),
            "registry_url": env.get("AISLE_REGISTRY_URL", ""),
            "redis_url": env.get("AISLE_REDIS_URL", ""),
            "admin_token": env.get("AISLE_ADMIN_TOKEN", ""),
            "mode": env.get("AISLE_SERVE_MODE", "realtime"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
