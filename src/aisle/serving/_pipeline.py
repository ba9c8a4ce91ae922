"""The recommendation pipeline and its fallback chain.

features -> candidates (model, co-view item-kNN, trending, new arrivals) -> merge and dedupe
-> rank (weighted reciprocal-rank fusion) -> business rules (stock, exclusions, hidden, filters,
per-brand cap) -> rerank hook -> top k. Each stage is timed.

When the model fails or runs past its budget, the first non-empty of: the user's last served
list -> segment popularity -> global popularity -> curated rules takes its place, and the
response names it. Whatever happens, a request gets a list: the final fill walks global
popularity and the curated list.

The request path works on integer item positions (see :mod:`aisle.serving._fast`): the business
rules are one boolean mask over the item space, applied to the model's scores before its top-n
is taken (so every model candidate is eligible) and to the fused list; only the final items
become :class:`RecItem` objects. Model code runs in a thread pool under the time budget, so a
model that fails or hangs is answered by the fallback chain; factor models whose scores are
checked at load to be a plain product of their factor matrices are scored inline by the serving
layer (one matrix-vector product over fixed-size arrays, which cannot hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from aisle.errors import ConfigError, NotFoundError
from aisle.models import Recommender
from aisle.registry import ArtifactIntegrityError, ModelRegistry, ModelVersion, open_registry
from aisle.serving._assets import ServingModel, load_serving_model
from aisle.serving._batch import BatchStore, open_batch_store
from aisle.serving._cache import RedisLayer, TopNCache
from aisle.serving._fast import (
    SOURCE_WEIGHTS,
    FastIndex,
    build_fast_index,
    ordered_max,
    source_code,
    source_name,
    source_weight,
)
from aisle.serving._impressions import ImpressionLog
from aisle.serving._kernels import apply_rules, fuse, have_numba, select_top
from aisle.serving._metrics import ServiceMetrics
from aisle.serving._online import Hidden, OnlineState
from aisle.serving._settings import ServingSettings

__all__ = ["SOURCE_WEIGHTS", "Engine", "RecItem", "RecQuery", "RecResult", "Reranker"]

_MODEL = source_code("model")
_COVIEW = source_code("co-view")
_CO_W = source_weight(_COVIEW)
_BATCH = source_code("batch")
_POPULAR = source_code("popular")
_CURATED = source_code("curated")
_EMPTY = np.zeros(0, dtype=np.int64)
_NEG_INF = float("-inf")


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


@dataclass(frozen=True, slots=True)
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
        items_json: the JSON array of ``items`` when already rendered (``None``: render it).
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
    items_json: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON response body."""
        return {
            "request_id": self.request_id, "user_id": self.user_id, "model_version": self.model_version,
            "items": [{"item_id": it.item_id, "score": it.score, "source": it.source} for it in self.items],
            "fallback": self.fallback, "fallback_reason": self.reason, "mode": self.mode, "cache": self.cache,
            "timings_ms": self.timings_ms,
        }

    def to_json(self) -> bytes:
        """The JSON response body, encoded (the items array reused when already rendered)."""
        items: Any = orjson.Fragment(self.items_json) if self.items_json is not None else \
            [{"item_id": it.item_id, "score": it.score, "source": it.source} for it in self.items]
        return orjson.dumps({
            "request_id": self.request_id, "user_id": self.user_id, "model_version": self.model_version,
            "items": items, "fallback": self.fallback, "fallback_reason": self.reason, "mode": self.mode,
            "cache": self.cache, "timings_ms": self.timings_ms,
        })


_new = object.__new__
_set_id = RecItem.__dict__["item_id"].__set__  # the slots' descriptors
_set_score = RecItem.__dict__["score"].__set__
_set_source = RecItem.__dict__["source"].__set__


def _item(item_id: str, score: float, source: str) -> RecItem:
    """``RecItem(item_id, score, source)`` at half the cost of the frozen dataclass's ``__init__``."""
    it = _new(RecItem)
    _set_id(it, item_id)
    _set_score(it, score)
    _set_source(it, source)
    return it


def _items_json(ids: tuple[str, ...], scores: tuple[float, ...], sources: tuple[str, ...]) -> bytes:
    return orjson.dumps([{"item_id": i, "score": s, "source": c} for i, s, c in zip(ids, scores, sources, strict=True)])


# A cached answer is one tuple of atoms (strings, floats, bytes and tuples of them), so the garbage
# collector stops tracking it: a cache of 100,000 answers adds nothing to full-collection pauses.
# (version, user, ids, scores, sources, fallback, reason, mode, items_json)
_Entry = tuple[str, str, tuple[str, ...], tuple[float, ...], tuple[str, ...], "str | None", "str | None", str, bytes]


def _entry(r: RecResult) -> _Entry:
    ids = tuple([i.item_id for i in r.items])
    scores = tuple([i.score for i in r.items])
    sources = tuple([i.source for i in r.items])
    return (r.model_version, r.user_id, ids, scores, sources, r.fallback, r.reason, r.mode,
            _items_json(ids, scores, sources))


def _encode(e: _Entry) -> bytes:
    """The Redis form (the format of earlier versions, so their entries stay readable)."""
    return orjson.dumps({"v": e[0], "i": [[a, b, c] for a, b, c in zip(e[2], e[3], e[4], strict=True)],
                         "f": e[5], "r": e[6], "m": e[7], "u": e[1]})


def _decode(raw: bytes) -> _Entry:
    d = orjson.loads(raw)
    ids = tuple(str(i[0]) for i in d["i"])
    scores = tuple(float(i[1]) for i in d["i"])
    sources = tuple(str(i[2]) for i in d["i"])
    return (d["v"], d["u"], ids, scores, sources, d["f"], d["r"], d["m"], _items_json(ids, scores, sources))


class Reranker(Protocol):
    """The rerank hook: reorder or trim a ranked list (diversity, fairness, business value ...).

    A hook with an integer attribute ``pool_factor`` is given ``k × pool_factor`` items that
    passed the business rules (default 1: the top k); its answer is cut to k.
    """

    def __call__(self, items: list[RecItem], query: RecQuery, model: ServingModel) -> list[RecItem]: ...


def _identity(items: list[RecItem], query: RecQuery, model: ServingModel) -> list[RecItem]:
    return items


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
            _prepare(new)
            self.current = new
            self.last_error = None
            self.metrics.swaps.inc()
            self.metrics.serving(new.label)
            gc.freeze()  # the new version's many long-lived objects leave the collector's scans
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


def _prepare(sm: ServingModel) -> FastIndex:
    """The model version's fast index (built once; kept on the frozen ServingModel)."""
    fx: FastIndex | None = getattr(sm, "fast", None)
    if fx is None:
        fx = build_fast_index(sm)
        object.__setattr__(sm, "fast", fx)
    return fx


def _uses_base_recommend(model: Recommender) -> bool:
    return type(model).recommend is Recommender.recommend and "recommend" not in vars(model)


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
        self.cache = TopNCache(settings.cache_size, settings.cache_ttl_s, self.redis, encode=_encode, decode=_decode)
        self.state = OnlineState(ws / "online", self.redis)
        self.batch: BatchStore = open_batch_store(ws, self.redis)
        key = bytes.fromhex(settings.pseudonym_key) if settings.pseudonym_key else b""
        self.impressions = ImpressionLog(ws / "impressions" if settings.impression_log else None, key)
        self.holder = ModelHolder(settings, registry, self.metrics)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aisle-model")
        self._max_inflight = 4 * 4
        self._inflight = 0
        self._last_good: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._rid_prefix = secrets.token_hex(8)
        self._rid_counter = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Limit BLAS threads (see ``ServingSettings.blas_threads``) and load the model (does not
        raise: ``/readyz`` reports a failure)."""
        if self.settings.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(self.settings.blas_threads, user_api="blas")  # process-wide, kept
        self.holder.load_initial()
        self._warm_up()
        gc.collect()
        gc.freeze()  # model, catalog and lists stay out of the collector's full scans (tail latency)

    def _warm_up(self) -> None:
        """One recommendation before the first request, so compiled kernels (numba) are ready and
        the first real requests do not spend their time budget compiling."""
        sm = self.holder.current
        if sm is None or not sm.known_users:
            return
        try:
            user = next(iter(sm.known_users))
            sm.model.recommend([user], self.settings.n_candidates, unknown_users="empty")
            fx = _prepare(sm)
            row = fx.user_row.get(user)
            if have_numba():  # compile (or load from numba's disk cache) the request path's kernels now
                ranked, _, _ = fuse(_EMPTY, _MODEL, 1.0, _EMPTY, _COVIEW, _CO_W, fx.static_idx, fx.static_w,
                                    fx.static_src)
                apply_rules(ranked, fx.eligible, fx.brand, fx.in_catalog, len(fx.brand_code), 1, 10)
                apply_rules(ranked, fx.eligible, fx.brand, fx.in_catalog, len(fx.brand_code), 0, 10)
            if row is not None:
                self._top(fx, self._score(sm, fx, row), row, fx.eligible, self.settings.n_candidates)
            if sm.popular:  # and a fold-in, so the first new user's events are not answered by a timeout
                from datetime import UTC, datetime

                state = OnlineState(None)
                state.add_events([("aisle-warm-up", sm.popular[0], "view", datetime.now(UTC))])
                sm.model.recommend(["aisle-warm-up"], self.settings.n_candidates, unknown_users="empty",
                                   history=state.history_frame("aisle-warm-up"))
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

    def _request_id(self) -> str:
        return f"{self._rid_prefix}{next(self._rid_counter):016x}"

    async def recommend(self, q: RecQuery) -> RecResult:
        """Answer one request; never raises for pipeline failures (the fallback chain answers)."""
        if q.k < 1 or q.k > self.settings.max_k:
            raise ConfigError(f"k must be between 1 and {self.settings.max_k}, got {q.k}")
        perf = time.perf_counter
        t0 = perf()
        ms: dict[str, float] = {}
        rid = self._request_id()
        sm = self.holder.current
        label = sm.label if sm is not None else "none"
        ckey = q.cache_key()
        cached, layer = self.cache.get(label, q.user_id, ckey)
        t1 = perf()
        ms["cache"] = round((t1 - t0) * 1000, 3)
        metrics = self.metrics
        metrics.stage.observe("cache", t1 - t0)
        metrics.cache_result(layer)
        if cached is not None:
            version, cuser, ids, scores, sources, fallback, reason, mode, items_json = cached
            result = RecResult(rid, cuser, version, list(map(_item, ids, scores, sources)), fallback, reason,
                               mode, layer, items_json=items_json)
        else:
            result = await self._compute(q, sm, ms, rid)
            entry = _entry(result)
            result.items_json = entry[8]
            if result.reason not in _TRANSIENT:  # a degraded answer is not kept: the next request retries
                self.cache.put(label, q.user_id, ckey, entry)
        items = tuple(result.items)
        dt = perf() - t0
        ms["total"] = round(dt * 1000, 3)
        result.timings_ms = ms
        if result.fallback:
            metrics.fallback(result.fallback, result.reason or "")
        metrics.latency.observe("recommendations", dt)
        if not self.impressions.log_items(rid, q.user_id, result.model_version, items, q.context, result.fallback):
            metrics.impressions_dropped.inc()
        return result

    # ------------------------------------------------------------------ the pipeline
    async def _compute(self, q: RecQuery, sm: ServingModel | None, ms: dict[str, float], rid: str) -> RecResult:
        if sm is None:
            items = [RecItem(i, 0.0, "curated") for i in self.settings.curated_items[: q.k]]
            return RecResult(rid, q.user_id, "none", items, "curated", "no_model_loaded")
        perf = time.perf_counter
        observe = self.metrics.stage.observe
        t = perf()
        fx = _prepare(sm)
        user = q.user_id
        events = self.state.recent(user)
        recent = list(dict.fromkeys(e.item_id for e in events)) if events else []
        hidden = self.state.hidden(user)
        row = fx.user_row.get(user)
        history = self.state.history_frame(user) if (events and row is None) else None
        pool = q.k * max(1, int(getattr(self.reranker, "pool_factor", 1)))
        n = max(self.settings.n_candidates, self.settings.candidate_factor * pool)
        mask = _request_mask(fx, q, hidden, recent)
        t = _stage(ms, observe, "features", t)
        mode = "realtime"
        reason: str | None = None
        primary = _EMPTY
        primary_src = _MODEL
        if self.settings.mode == "batch":
            stored = self.batch.get(sm.label, user)
            if stored:
                primary = fx.positions([i for i, _ in stored if i not in recent])
                primary_src = _BATCH
                mode = "batch"
            t = _stage(ms, observe, "batch", t)
        answered = False  # the model ranked for this user (its eligible list may still be empty)
        if not primary.size:
            primary, primary_src, reason, answered = await self._model_candidates(sm, fx, user, row, recent,
                                                                                 history, mask, n)
            t = _stage(ms, observe, "model", t)
        co = _EMPTY
        if recent:
            rows = fx.positions(recent[-5:][::-1])
            if rows.size:
                nb = fx.coview_nb[rows].ravel()
                sim = fx.coview_sim[rows].ravel()
                keep = (nb >= 0) & (sim > 0)
                co = ordered_max(nb[keep], sim[keep])[:self.settings.n_candidates]
        t = _stage(ms, observe, "candidates", t)
        fallback: str | None = None
        if not primary.size and not answered:
            if reason is None:
                reason = "cold_start"
            segment = q.segment or sm.user_segment.get(user, "")
            fallback, primary = self._fallback_chain(fx, user, segment, reason, mask)
            primary_src = source_code(fallback)
            t = _stage(ms, observe, "fallback", t)
        ranked, scores, sources = fuse(primary, primary_src, source_weight(primary_src), co, _COVIEW, _CO_W,
                                       fx.static_idx, fx.static_w, fx.static_src)
        t = _stage(ms, observe, "rank", t)
        take = apply_rules(ranked, mask, fx.brand, fx.in_catalog, len(fx.brand_code), self.settings.max_per_brand,
                           pool)
        kept = _items(fx, ranked, scores, sources, take)
        t = _stage(ms, observe, "rules", t)
        try:
            kept = self.reranker(kept, q, sm)
        except Exception:
            self.metrics.errors.labels("rerank").inc()
        t = _stage(ms, observe, "rerank", t)
        kept = kept[: q.k]
        if len(kept) < q.k:
            kept += self._fill(fx, kept, q.k - len(kept), mask)
            t = _stage(ms, observe, "fill", t)
        if reason is None:
            self._remember(user, kept)
        return RecResult(rid, user, sm.label, kept[: q.k], fallback, reason, mode)

    async def _model_candidates(self, sm: ServingModel, fx: FastIndex, user: str, row: int | None,
                                recent: list[str], history: Any, mask: np.ndarray,
                                n: int) -> tuple[np.ndarray, int, str | None, bool]:
        """Model candidates as positions, their source code, the failure reason (or ``None``), and
        whether the model ranked for this user (False: nothing to rank, a cold start)."""
        model = sm.model
        base = _uses_base_recommend(model)
        if row is not None and base:
            if fx.kernel is not None and "_batch_scores" not in vars(model):
                try:  # serving-owned numpy on fixed-size arrays: inline
                    return self._top(fx, fx.kernel(row), row, mask, n), _MODEL, None, True
                except Exception:
                    self.metrics.errors.labels("model_error").inc()
                    return _EMPTY, _MODEL, "model_error", False

            def run() -> tuple[np.ndarray, int, bool]:
                return self._top(fx, self._score(sm, fx, row), row, mask, n), _MODEL, True
        elif row is None and history is None and base:
            return _EMPTY, _MODEL, None, False  # an unknown user without events: the base model has nothing
        else:
            def run() -> tuple[np.ndarray, int, bool]:
                recs = model.recommend([user], n, exclude_seen=True, exclude=recent or None, history=history,
                                       unknown_users="empty")
                label = str(recs.sources[0])
                if label == "empty":
                    return _EMPTY, _MODEL, False
                return fx.positions([str(i) for i in recs.items[0] if i is not None]), source_code(label), True
        got = await self._in_executor(run)
        if isinstance(got, str):
            return _EMPTY, _MODEL, got, False
        return got[0], got[1], None, got[2]

    async def _in_executor(self, fn: Any) -> Any:
        """``fn()`` in the model pool, or the failure reason (``model_timeout``, ``model_error``,
        ``model_overloaded``). A late result is dropped; the slot is freed when the call ends."""
        if self._inflight >= self._max_inflight:
            self.metrics.errors.labels("model_overloaded").inc()
            return "model_overloaded"
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.executor, fn)
        waiter = loop.create_future()
        self._inflight += 1

        def done(f: asyncio.Future[Any]) -> None:
            self._inflight -= 1
            if not f.cancelled():
                f.exception()  # a late failure is counted by no one, but must not be logged as unretrieved
            if not waiter.done():
                waiter.set_result(None)

        fut.add_done_callback(done)
        timer = loop.call_later(self.settings.model_budget_ms / 1000, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
        if not fut.done():
            self.metrics.errors.labels("model_timeout").inc()
            return "model_timeout"
        try:
            return fut.result()
        except Exception:
            self.metrics.errors.labels("model_error").inc()
            return "model_error"

    @staticmethod
    def _score(sm: ServingModel, fx: FastIndex, row: int) -> np.ndarray:
        """A known user's scores over the model's items, by the model's own scoring call."""
        model: Any = sm.model
        if fx.kernel is not None and "_batch_scores" not in vars(model):
            return fx.kernel(row)
        out: np.ndarray = model._batch_scores([sm.model.users_.ids[row]], fx.user_rows(row),
                                              np.array([row], dtype=np.int64), None)
        return out

    @staticmethod
    def _top(fx: FastIndex, scores: np.ndarray, row: int, mask: np.ndarray, n: int) -> np.ndarray:
        """The n best eligible model items for a known user (training items left out), best first;
        ties go to the lower column, as in ``Recommender.recommend``."""
        s = np.asarray(scores).reshape(-1)
        if s.shape[0] != fx.n_model:
            raise ValueError(f"scores over {s.shape[0]} items, the model has {fx.n_model}")
        return select_top(s, fx.seen(row), mask, n)

    def _remember(self, user: str, items: list[RecItem]) -> None:
        self._last_good[user] = tuple([i.item_id for i in items])
        self._last_good.move_to_end(user)
        while len(self._last_good) > max(self.settings.cache_size, 1):
            self._last_good.popitem(last=False)

    def _fallback_chain(self, fx: FastIndex, user: str, segment: str, reason: str,
                        mask: np.ndarray) -> tuple[str, np.ndarray]:
        chain: list[tuple[str, np.ndarray]] = []
        if reason != "cold_start":
            last = self._last_good.get(user)
            if last:
                chain.append(("cached", fx.positions(last)))
        if segment and segment in fx.segment_popular:
            chain.append(("segment-popular", fx.segment_popular[segment]))
        chain.append(("popular", fx.popular))
        chain.append(("curated", fx.curated))
        for name, idx in chain:
            if idx.size and mask[idx].any():
                return name, idx
        return "curated", _EMPTY

    def _fill(self, fx: FastIndex, kept: list[RecItem], need: int, mask: np.ndarray) -> list[RecItem]:
        """Popular, then curated items the rules allow and the list lacks (brand cap counted over the list)."""
        have = fx.positions([i.item_id for i in kept])
        cand = np.concatenate([fx.popular, fx.curated])
        src = np.concatenate([np.full(fx.popular.size, _POPULAR), np.full(fx.curated.size, _CURATED)])
        ok = mask[cand]
        if have.size:
            ok &= ~np.isin(cand, have)
        cand, src = cand[ok], src[ok]
        _, first = np.unique(cand, return_index=True)
        first.sort()
        cand, src = cand[first], src[first]
        brands: dict[int, int] = {}
        cap = self.settings.max_per_brand
        if cap:
            for p in have.tolist():
                if fx.in_catalog[p]:
                    b = int(fx.brand[p])
                    brands[b] = brands.get(b, 0) + 1
        allowed = np.ones(len(fx.ids), dtype=bool)  # the mask was applied above
        return _items(fx, cand, None, src, apply_rules(cand, allowed, fx.brand, fx.in_catalog, len(fx.brand_code),
                                                       cap, need, brands))


_TRANSIENT = frozenset({"model_error", "model_timeout", "model_overloaded"})


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _stage(ms: dict[str, float], observe: Any, name: str, t: float) -> float:
    now = time.perf_counter()
    ms[name] = round((now - t) * 1000, 3)
    observe(name, now - t)
    return now


def _request_mask(fx: FastIndex, q: RecQuery, hidden: Hidden, recent: list[str]) -> np.ndarray:
    """Which positions the business rules allow for this request (``fx.eligible`` itself when
    nothing but stock applies: do not modify the result)."""
    filters = bool(q.filter_category) or q.min_price is not None or q.max_price is not None
    excluded = [*q.exclude_items, *hidden.items, *recent] if (q.exclude_items or hidden.items or recent) else ()
    if not (filters or excluded or hidden.brands or hidden.categories):
        return fx.eligible
    m = fx.eligible.copy()
    if excluded:
        m[fx.positions(excluded)] = False
    if hidden.brands:
        lut = fx.brand_lut(hidden.brands)
        if lut is not None:
            m &= ~lut[fx.brand]
    if hidden.categories:
        hide = np.zeros(len(fx.categories) + 1, dtype=bool)
        for c in hidden.categories:
            hide |= fx.category_lut(c)
        m &= ~hide[fx.category]
    if filters:
        m &= fx.in_catalog
        if q.filter_category:
            m &= fx.category_lut(q.filter_category)[fx.category]
        if q.min_price is not None:
            m &= fx.price >= q.min_price
        if q.max_price is not None:
            m &= fx.price <= q.max_price
    return m


def _items(fx: FastIndex, cand: np.ndarray, scores: np.ndarray | None, sources: np.ndarray,
           take: np.ndarray) -> list[RecItem]:
    """The chosen candidates as items (scores rounded to 6 decimals; ``None``: 0.0)."""
    ids = fx.ids[cand[take]].tolist()
    src = [source_name(c) for c in sources[take].tolist()]
    if scores is None:
        return [_item(i, 0.0, s) for i, s in zip(ids, src, strict=True)]
    return [_item(i, round(v, 6), s) for i, v, s in zip(ids, scores[take].tolist(), src, strict=True)]


def make_query(user_id: str, k: int, **kwargs: Any) -> RecQuery:
    """A :class:`RecQuery` from keyword arguments (``None`` values take the defaults)."""
    return RecQuery(user_id=user_id, k=k, **{a: b for a, b in kwargs.items() if b is not None})
