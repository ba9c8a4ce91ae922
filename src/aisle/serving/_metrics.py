"""Prometheus metrics of one service instance (its own registry, so apps do not collide).

The per-request metrics are cheap on the request path: the stage and request-latency
histograms are plain Python bucket counters (one ``bisect`` and two additions per observation,
no lock: they are only written from the event loop) exported by a collector at scrape time, and
the counters touched on every request are pre-bound label children.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["FastHistogram", "ServiceMetrics"]

_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _HistogramChild:
    """One label value of a :class:`FastHistogram`."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        """Record one observation (seconds)."""
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class FastHistogram(Collector):
    """A labelled histogram with ``prometheus_client``'s ``labels(...).observe(x)`` surface.

    Observations are single-threaded by design (the event loop); a rare concurrent observation
    from another thread can at worst lose one count, never corrupt the exposition.
    """

    def __init__(self, name: str, documentation: str, label: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.buckets = tuple(sorted(buckets))
        self._children: dict[str, _HistogramChild] = {}
        registry.register(self)

    def labels(self, value: str) -> _HistogramChild:
        """The child of one label value (created on first use)."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _HistogramChild(self.buckets)
        return child

    def observe(self, value: str, amount: float) -> None:
        """``labels(value).observe(amount)`` in one call."""
        child = self._children.get(value)
        if child is None:
            child = self.labels(value)
        child.counts[bisect_left(self.buckets, amount)] += 1
        child.sum += amount

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=[self.label])]

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in list(self._children.items()):
            counts = list(child.counts)
            cum, buckets = 0, []
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                cum += n
                buckets.append((floatToGoString(bound), float(cum)))  # type: ignore[no-untyped-call]
            fam.add_metric([value], buckets, child.sum)
        yield fam


class ServiceMetrics:
    """The counters, gauges and histograms the service exports on ``/metrics``.

    The cache hit ratio is ``aisle_cache_requests_total{result!="miss"} / aisle_cache_requests_total``;
    ``aisle_cache_hit_ratio`` also exports it directly (computed at scrape time).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("aisle_requests_total", "Answered requests.", ["endpoint", "status"], registry=r)
        self.fallbacks = Counter("aisle_fallbacks_total", "Responses served by a fallback.", ["fallback", "reason"], registry=r)
        self.errors = Counter("aisle_errors_total", "Errors caught in the pipeline (not shown to clients).", ["stage"], registry=r)
        self.cache = Counter("aisle_cache_requests_total", "Top-N cache lookups.", ["result"], registry=r)
        self.cache_ratio = Gauge("aisle_cache_hit_ratio", "Top-N cache hits / lookups since start.", registry=r)
        self.stage = FastHistogram("aisle_stage_seconds", "Time per pipeline stage.", "stage", _STAGE_BUCKETS, r)
        self.latency = FastHistogram("aisle_request_seconds", "Time per recommendation.", "endpoint", _STAGE_BUCKETS, r)
        self.swaps = Counter("aisle_model_swaps_total", "Model versions swapped in.", registry=r)
        self.load_failures = Counter("aisle_model_load_failures_total", "Model versions refused (corrupt, unloadable).", registry=r)
        self.model_info = Gauge("aisle_model_version_info", "The version being served (value 1).", ["version"], registry=r)
        self.redis_errors = Counter("aisle_redis_errors_total", "Failed Redis calls.", ["op"], registry=r)
        self.events = Counter("aisle_events_total", "Ingested events.", registry=r)
        self.impressions_dropped = Counter("aisle_impressions_dropped_total", "Impressions not logged (queue full).", registry=r)
        # pre-bound children of the per-request series
        self.requests_recommendations = self.requests.labels("recommendations", "200")
        self._cache_children = {k: self.cache.labels(k) for k in ("memory", "redis", "miss")}
        self._fallback_children: dict[tuple[str, str], object] = {}
        self._hits = 0
        self._lookups = 0
        self.cache_ratio.set_function(lambda: self._hits / self._lookups if self._lookups else 0.0)

    def cache_result(self, result: str) -> None:
        """Count a lookup (``memory``, ``redis`` or ``miss``)."""
        child = self._cache_children.get(result)
        if child is None:
            child = self._cache_children[result] = self.cache.labels(result)
        child.inc()
        self._lookups += 1
        if result != "miss":
            self._hits += 1

    def fallback(self, name: str, reason: str) -> None:
        """Count a response served by a fallback."""
        key = (name, reason)
        child = self._fallback_children.get(key)
        if child is None:
            child = self._fallback_children[key] = self.fallbacks.labels(name, reason)
        child.inc()  # type: ignore[attr-defined]

    def serving(self, version: str) -> None:
        """Mark the version now served."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)

