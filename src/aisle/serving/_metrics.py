"""Prometheus metrics of one service instance (its own registry, so apps do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]

_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ServiceMetrics:
    """The counters, gauges and histograms the service exports on ``/metrics``.

    The cache hit ratio is ``aisle_cache_requests_total{result!="miss"} / aisle_cache_requests_total``;
    ``aisle_cache_hit_ratio`` also exports it directly.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("aisle_requests_total", "Answered requests.", ["endpoint", "status"], registry=r)
        self.fallbacks = Counter("aisle_fallbacks_total", "Responses served by a fallback.", ["fallback", "reason"], registry=r)
        self.errors = Counter("aisle_errors_total", "Errors caught in the pipeline (not shown to clients).", ["stage"], registry=r)
        self.cache = Counter("aisle_cache_requests_total", "Top-N cache lookups.", ["result"], registry=r)
        self.cache_ratio = Gauge("aisle_cache_hit_ratio", "Top-N cache hits / lookups since start.", registry=r)
        self.stage = Histogram("aisle_stage_seconds", "Time per pipeline stage.", ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.latency = Histogram("aisle_request_seconds", "Time per recommendation.", ["endpoint"], buckets=_STAGE_BUCKETS, registry=r)
        self.swaps = Counter("aisle_model_swaps_total", "Model versions swapped in.", registry=r)
        self.load_failures = Counter("aisle_model_load_failures_total", "Model versions refused (corrupt, unloadable).", registry=r)
        self.model_info = Gauge("aisle_model_version_info", "The version being served (value 1).", ["version"], registry=r)
        self.redis_errors = Counter("aisle_redis_errors_total", "Failed Redis calls.", ["op"], registry=r)
        self.events = Counter("aisle_events_total", "Ingested events.", registry=r)
        self.impressions_dropped = Counter("aisle_impressions_dropped_total", "Impressions not logged (queue full).", registry=r)
        self._hits = 0
        self._lookups = 0

    def cache_result(self, result: str) -> None:
        """Count a lookup (``memory``, ``redis`` or ``miss``)."""
        self.cache.labels(result).inc()
        self._lookups += 1
        if result != "miss":
            self._hits += 1
        self.cache_ratio.set(self._hits / self._lookups)

    def serving(self, version: str) -> None:
        """Mark the version now served."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)
