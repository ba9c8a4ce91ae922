"""The recommendation pipeline and its fallback chain.

features -> candidates (model, co-view item-kNN, trending, new arrivals) -> merge and dedupe
-> rank (weighted reciprocal-rank fusion) -> business rules (stock, exclusions, hidden, filters,
per-brand cap) -> rerank hook -> top k. Each stage is timed.

When the model fails or runs past its budget, the first non-empty of: the user's last served
list -> segment popularity -> global popularity -> curated rules takes its place, and the
response names it. Whatever happens, a request gets a list: the final fill walks global
popularity and the curated list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aisle.errors import ConfigError, NotFoundError
from aisle.registry import ArtifactIntegrityError, ModelRegistry, ModelVersion, open_registry
from aisle.serving._assets import ServingModel, load_serving_model
from aisle.serving._batch import BatchStore, open_batch_store
from aisle.serving._cache import RedisLayer, TopNCache
from aisle.serving._impressions import ImpressionLog
from aisle.serving._metrics import ServiceMetrics
from aisle.serving._online import Hidden, OnlineState
from aisle.serving._settings import ServingSettings

__all__ = ["Engine", "RecItem", "RecQuery", "RecResult", "Reranker"]

#: Weight of each candidate source in the fusion.
SOURCE_WEIGHTS: dict[str, float] = {
    "model": 1.0, "fold-in": 1.0, "batch": 1.0, "cached": 1.0, "segment-popular": 0.8, "popular": 0.7,
    "co-view": 0.6, "trending": 0.3, "new-arrivals": 0.2, "curated": 0.1,
}
_RRF_K = 20.0


@dataclass(frozen=True)
class RecQuery:
    """One recommendation request, after validation.

    Attributes:
        user_id: the user.
        k: list length.
        page: context: the page type.
        category: context: the category being browsed.
        device: context: the device.
        segment: the user's segment when the caller knows it (cold-start users).
        filter_category: only items under this category path.
        min_price: only items at or above this price.
        max_price: only items at or below this price.
        exclude_items: never these items.
    """

    user_id: str
    k: int = 10
    page: str = ""
    category: str = ""
    device: str = ""
    segment: str = ""
    filter_category: str = ""
    min_price: float | None = None
    max_price: float | None = None
    exclude_items: tuple[str, ...] = ()

    def cache_key(self) -> str:
        """The context part of the cache key (everything but the user)."""
        raw = f"{self.k}|{self.page}|{self.category}|{self.device}|{self.segment}|{self.filter_category}|" \
              f"{self.min_price}|{self.max_price}|{','.join(sorted(self.exclude_items))}"
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()

    def context(self) -> dict[str, Any]:
        """The context as logged."""
        return {k: v for k, v in (("page", self.page), ("category", self.category), ("device", self.device),
                                  ("segment", self.segment)) if v}


@dataclass(frozen=True)
class RecItem:
    """One recommended item."""

    item_id: str
    score: float
    source: str


@dataclass
class RecResult:
    """A recommendation response.

    Attributes:
        request_id: the id logged with the impression.
        user_id: the user.
        model_version: the model version that served (``name:version``).
        items: the ranked items with score and source.
        fallback: the fallback used instead of the model, or ``None``.
        reason: why a fallback was used (``model_error``, ``model_timeout``, ``cold_start`` ...).
        mode: ``realtime`` or ``batch``.
        cache: ``memory``, ``redis`` or ``miss``.
        timings_ms: milliseconds per stage.
    """

    request_id: str
    user_id: str
    model_version: str
    items: list[RecItem]
    fallback: str | None = None
    reason: str | None = None
    mode: str = "realtime"
    cache: str = "miss"
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON response body."""
        return {
            "request_id": self.request_id, "user_id": self.user_id, "model_version": self.model_version,
            "items": [{"item_id": it.item_id, "score": it.score, "source": it.source} for it in self.items],
            "fallback": self.fallback, "fallback_reason": self.reason, "mode": self.mode, "cache": self.cache,
            "timings_ms": self.timings_ms,
        }


class Reranker(Protocol):
    """The rerank hook: reorder or trim a ranked list (diversity, fairness ...)."""

    def __call__(self, items: list[RecItem], query: RecQuery, model: ServingModel) -> list[RecItem]: ...


def _identity(items: list[RecItem], query: RecQuery, model: ServingModel) -> list[RecItem]:
    return items


class _Timer:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            self.ms[name] = round(dt * 1000, 3)
            self.metrics.stage.labels(name).observe(dt)


class ModelHolder:
    """The served model version, swapped atomically; loads new versions off the request path."""

    def __init__(self, settings: ServingSettings, registry: ModelRegistry | None, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def load_initial(self) -> None:
        """Load the configured folder or the registry's production version (errors are kept, not raised)."""
        try:
            self.refresh(force=True)
        except Exception as exc:  # the service still starts and answers from the curated list
            self.last_error = str(exc)

    def refresh(self, *, force: bool = False) -> bool:
        """Swap to the registry's production version if it changed; True when a swap happened.

        Raises:
            ArtifactIntegrityError: the new version's artifact is corrupt (the old one keeps serving).
        """
        with self._lock:
            s = self.settings
            if s.model_path is not None:
                if self.current is not None and not force:
                    return False
                new = load_serving_model(s.model_path, curated=s.curated_items)
            else:
                if self.registry is None:
                    return False
                version = self.registry.production(s.model_name)
                if version is None:
                    if self.current is None:
                        self.last_error = (f"no production version of model {s.model_name!r} in the registry; "
                                           "run `aisle quickstart` or `aisle registry promote`")
                    return False
                if self.current is not None and self.current.version is not None and not force \
                        and self.current.version.label == version.label:
                    return False
                new = self._load_version(version)
            self.current = new
            self.last_error = None
            self.metrics.swaps.inc()
            self.metrics.serving(new.label)
            return True

    def _load_version(self, version: ModelVersion) -> ServingModel:
        try:
            return load_serving_model(version.artifact, version=version, curated=self.settings.curated_items)
        except ArtifactIntegrityError as exc:
            self.metrics.load_failures.inc()
            self.last_error = str(exc)
            raise
        except Exception:
            self.metrics.load_failures.inc()
            raise


class Engine:
    """Everything a running service holds: model, stores, caches, metrics, logs.

    Args:
        settings: the service settings.
        reranker: the rerank hook (default: keep the order).
        registry: a registry (default: the one the settings name; ``None`` with ``model_path``).
    """

    def __init__(self, settings: ServingSettings, *, reranker: Reranker | None = None,
                 registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.reranker: Reranker = reranker or _identity
        ws = Path(settings.workspace)
        if registry is None and settings.model_path is None:
            registry = open_registry(settings.registry_url or None, workspace=ws)
        self.registry = registry
        self.redis = (RedisLayer(settings.redis_url, timeout_ms=settings.redis_timeout_ms,
                                 on_error=lambda op: self.metrics.redis_errors.labels(op).inc())
                      if settings.redis_url else None)
        self.cache = TopNCache(settings.cache_size, settings.cache_ttl_s, self.redis)
        self.state = OnlineState(ws / "online", self.redis)
        self.batch: BatchStore = open_batch_store(ws, self.redis)
        key = bytes.fromhex(settings.pseudonym_key) if settings.pseudonym_key else b""
        self.impressions = ImpressionLog(ws / "impressions" if settings.impression_log else None, key)
        self.holder = ModelHolder(settings, registry, self.metrics)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aisle-model")
        self._inflight = 0
        self._last_good: OrderedDict[str, list[RecItem]] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Limit BLAS threads (see ``ServingSettings.blas_threads``) and load the model (does not
        raise: ``/readyz`` reports a failure)."""
        if self.settings.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(self.settings.blas_threads, user_api="blas")  # process-wide, kept
        self.holder.load_initial()
        self._warm_up()

    def _warm_up(self) -> None:
        """One recommendation before the first request, so compiled kernels (numba) are ready and
        the first real requests do not spend their time budget compiling."""
        sm = self.holder.current
        if sm is None or not sm.known_users:
            return
        try:
            sm.model.recommend([next(iter(sm.known_users))], self.settings.n_candidates, unknown_users="empty")
        except Exception:  # a broken model shows in /readyz and the fallbacks, not here
            self.metrics.errors.labels("warm_up").inc()

    def close(self) -> None:
        """Stop background work."""
        self.impressions.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def watch(self) -> None:
        """Poll the registry and hot-swap to newly promoted versions (runs until cancelled)."""
        interval = self.settings.poll_interval_s
        if interval <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # counted in load_failures; keep serving the old one
                await loop.run_in_executor(None, self.holder.refresh)

    @property
    def model(self) -> ServingModel | None:
        """The version being served."""
        return self.holder.current

    # ------------------------------------------------------------------ writes
    def ingest(self, events: list[tuple[str, str, str, Any]]) -> int:
        """Record events and drop the touched users' cached lists; returns how many were accepted."""
        users = self.state.add_events(events)
        version = self.model.label if self.model else "none"
        for u in users:
            self.cache.invalidate_user(version, u)
        self.metrics.events.inc(len(events))
        return len(events)

    def feedback(self, user: str, kind: str, value: str) -> None:
        """Hide an item, brand or category from a user and drop their cached lists."""
        self.state.hide(user, kind, value)
        self.cache.invalidate_user(self.model.label if self.model else "none", user)

    def forget(self, user: str) -> None:
        """Erase a user's online state and cached lists."""
        self.state.forget(user)
        self.cache.invalidate_user(self.model.label if self.model else "none", user)
        self._last_good.pop(user, None)

    # ------------------------------------------------------------------ reads
    def similar(self, item_id: str, k: int) -> tuple[str, list[RecItem]]:
        """Items similar to one item, in stock (co-view neighbours, else the model's item vectors).

        Raises:
            NotFoundError: the item is unknown.
        """
        sm = self.model
        if sm is None:
            raise NotFoundError("no model is loaded")
        out: list[RecItem] = [RecItem(i, round(s, 6), "co-view") for i, s in sm.coview.get(item_id, [])
                              if sm.catalog.in_stock(i)]
        if len(out) < k:
            try:
                recs = sm.model.similar_items([item_id], k + len(out))
            except KeyError as exc:
                if not out:
                    raise NotFoundError(f"item {item_id!r} is unknown to model {sm.label}") from exc
            else:
                have = {r.item_id for r in out}
                for it, s in zip(recs.items[0], recs.scores[0], strict=True):
                    if it is not None and it not in have and sm.catalog.in_stock(str(it)):
                        out.append(RecItem(str(it), round(float(s), 6), "model"))
        return sm.label, out[:k]

    async def recommend(self, q: RecQuery) -> RecResult:
        """Answer one request; never raises for pipeline failures (the fallback chain answers)."""
        if q.k < 1 or q.k > self.settings.max_k:
            raise ConfigError(f"k must be between 1 and {self.settings.max_k}, got {q.k}")
        t0 = time.perf_counter()
        timer = _Timer(self.metrics)
        rid = uuid.uuid4().hex
        sm = self.model
        label = sm.label if sm is not None else "none"
        ckey = q.cache_key()
        with timer.stage("cache"):
            cached, layer = self.cache.get(label, q.user_id, ckey)
        self.metrics.cache_result(layer)
        if cached is not None:
            result = self._from_cache(cached, rid, layer)
        else:
            result = await self._compute(q, sm, timer, rid)
            self.cache.put(label, q.user_id, ckey, self._to_cache(result))
        result.timings_ms = {**timer.ms, "total": round((time.perf_counter() - t0) * 1000, 3)}
        if result.fallback:
            self.metrics.fallbacks.labels(result.fallback, result.reason or "").inc()
        self.metrics.latency.labels("recommendations").observe(time.perf_counter() - t0)
        ok = self.impressions.log(rid, q.user_id, result.model_version, [i.item_id for i in result.items],
                                  [i.score for i in result.items], [i.source for i in result.items],
                                  context=q.context(), fallback=result.fallback)
        if not ok:
            self.metrics.impressions_dropped.inc()
        return result

    @staticmethod
    def _to_cache(r: RecResult) -> bytes:
        return json.dumps({"v": r.model_version, "i": [[i.item_id, i.score, i.source] for i in r.items],
                           "f": r.fallback, "r": r.reason, "m": r.mode, "u": r.user_id}).encode()

    @staticmethod
    def _from_cache(raw: bytes, rid: str, layer: str) -> RecResult:
        d = json.loads(raw)
        return RecResult(rid, d["u"], d["v"], [RecItem(a, b, c) for a, b, c in d["i"]], d["f"], d["r"], d["m"], layer)

    async def _model_candidates(self, q: RecQuery, sm: ServingModel, recent: list[str],
                                history: Any) -> tuple[list[RecItem], str | None]:
        """Model candidates, or ``([], reason)`` on error, timeout or overload."""
        if self._inflight >= 4 * (self.executor._max_workers or 1):
            self.metrics.errors.labels("model_overloaded").inc()
            return [], "model_overloaded"
        n = self.settings.n_candidates

        def run() -> list[RecItem]:
            recs = sm.model.recommend([q.user_id], n, exclude_seen=True, exclude=recent or None,
                                      history=history, unknown_users="empty")
            src = str(recs.sources[0])
            if src == "empty":
                return []
            return [RecItem(str(i), float(s), src) for i, s in zip(recs.items[0], recs.scores[0], strict=True)
                    if i is not None]

        loop = asyncio.get_running_loop()
        self._inflight += 1
        fut = loop.run_in_executor(self.executor, run)
        fut.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.settings.model_budget_ms / 1000), None
        except TimeoutError:
            self.metrics.errors.labels("model_timeout").inc()
            return [], "model_timeout"
        except Exception:
            self.metrics.errors.labels("model_error").inc()
            return [], "model_error"

    def _release(self) -> None:
        self._inflight -= 1

    async def _compute(self, q: RecQuery, sm: ServingModel | None, timer: _Timer, rid: str) -> RecResult:
        if sm is None:
            items = [RecItem(i, 0.0, "curated") for i in self.settings.curated_items[: q.k]]
            return RecResult(rid, q.user_id, "none", items, "curated", "no_model_loaded")
        with timer.stage("features"):
            events = self.state.recent(q.user_id)
            recent = list(dict.fromkeys(e.item_id for e in events))
            hidden = self.state.hidden(q.user_id)
            segment = q.segment or sm.user_segment.get(q.user_id, "")
            known = q.user_id in sm.known_users
            history = self.state.history_frame(q.user_id) if (events and not known) else None
        mode = "realtime"
        reason: str | None = None
        primary: list[RecItem] = []
        if self.settings.mode == "batch":
            with timer.stage("batch"):
                stored = self.batch.get(sm.label, q.user_id)
            if stored:
                primary = [RecItem(i, s, "batch") for i, s in stored if i not in recent]
                mode = "batch"
        if not primary:
            with timer.stage("model"):
                primary, reason = await self._model_candidates(q, sm, recent, history)
        fallback: str | None = None
        sources: list[list[RecItem]] = [primary]
        with timer.stage("candidates"):
            seen: dict[str, float] = {}
            for item in reversed(recent[-5:]):
                for nb, s in sm.coview.get(item, []):
                    seen[nb] = max(seen.get(nb, 0.0), s)
            coview = sorted(seen.items(), key=lambda t: -t[1])[: self.settings.n_candidates]
            sources.append([RecItem(i, s, "co-view") for i, s in coview])
            sources.append([RecItem(i, 0.0, "trending") for i in sm.trending[:50]])
            sources.append([RecItem(i, 0.0, "new-arrivals") for i in sm.new_arrivals[:20]])
        if not primary:
            if reason is None:
                reason = "cold_start"
            with timer.stage("fallback"):
                fallback, items = self._fallback_chain(q, sm, segment, reason, hidden, recent)
            sources[0] = items
        with timer.stage("rank"):
            ranked = self._fuse(sources)
        with timer.stage("rules"):
            kept = self._rules(ranked, q, sm, hidden, recent, q.k)
        with timer.stage("rerank"):
            try:
                kept = self.reranker(kept, q, sm)
            except Exception:
                self.metrics.errors.labels("rerank").inc()
        if len(kept) < q.k:
            with timer.stage("fill"):
                have = {i.item_id for i in kept}
                fill = [RecItem(i, 0.0, "popular") for i in sm.popular if i not in have] + \
                       [RecItem(i, 0.0, "curated") for i in sm.curated if i not in have]
                kept += self._rules(fill, q, sm, hidden, recent, q.k - len(kept), have)
        if reason is None:
            self._remember(q.user_id, kept)
        return RecResult(rid, q.user_id, sm.label, kept[: q.k], fallback, reason, mode)

    def _remember(self, user: str, items: list[RecItem]) -> None:
        self._last_good[user] = items
        self._last_good.move_to_end(user)
        while len(self._last_good) > max(self.settings.cache_size, 1):
            self._last_good.popitem(last=False)

    def _fallback_chain(self, q: RecQuery, sm: ServingModel, segment: str, reason: str, hidden: Hidden,
                        recent: list[str]) -> tuple[str, list[RecItem]]:
        chain: list[tuple[str, list[str]]] = []
        if reason != "cold_start":
            last = self._last_good.get(q.user_id)
            if last:
                chain.append(("cached", [i.item_id for i in last]))
        if segment and segment in sm.segment_popular:
            chain.append(("segment-popular", sm.segment_popular[segment]))
        chain.append(("popular", sm.popular))
        chain.append(("curated", sm.curated))
        for name, ids in chain:
            items = [RecItem(i, 0.0, name) for i in ids]
            if self._rules(items, q, sm, hidden, recent, 1):
                return name, items
        return "curated", []

    @staticmethod
    def _fuse(sources: list[list[RecItem]]) -> list[RecItem]:
        score: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for items in sources:
            for rank, it in enumerate(items):
                w = SOURCE_WEIGHTS.get(it.source, 0.1) / (_RRF_K + rank + 1)
                score[it.item_id] = score.get(it.item_id, 0.0) + w
                if it.item_id not in best or best[it.item_id][0] < w:
                    best[it.item_id] = (w, it.source)
        order = sorted(score, key=lambda i: -score[i])
        return [RecItem(i, round(score[i], 6), best[i][1]) for i in order]

    def _rules(self, items: list[RecItem], q: RecQuery, sm: ServingModel, hidden: Hidden, recent: list[str],
               k: int, already: set[str] | None = None) -> list[RecItem]:
        cat = sm.catalog
        cap = self.settings.max_per_brand
        brands: dict[str, int] = {}
        excluded = set(q.exclude_items) | hidden.items | set(recent) | (already or set())
        out: list[RecItem] = []
        for it in items:
            if it.item_id in excluded:
                continue
            r = cat.index.get(it.item_id)
            if r is not None:
                if cat.stock[r] <= 0:
                    continue
                brand, category, price = cat.brand[r], cat.category[r], cat.price[r]
                if brand in hidden.brands or (hidden.categories and any(
                        category == c or category.startswith(c + "/") for c in hidden.categories)):
                    continue
                if q.filter_category and not (category == q.filter_category or category.startswith(q.filter_category + "/")):
                    continue
                if q.min_price is not None and not (price >= q.min_price):
                    continue
                if q.max_price is not None and not (price <= q.max_price):
                    continue
                if cap:
                    if brands.get(brand, 0) >= cap:
                        continue
                    brands[brand] = brands.get(brand, 0) + 1
            elif q.filter_category or q.min_price is not None or q.max_price is not None:
                continue
            excluded.add(it.item_id)
            out.append(it)
            if len(out) >= k:
                break
        return out


def make_query(user_id: str, k: int, **kwargs: Any) -> RecQuery:
    """A :class:`RecQuery` from keyword arguments (``None`` values take the defaults)."""
    return RecQuery(user_id=user_id, k=k, **{a: b for a, b in kwargs.items() if b is not None})

