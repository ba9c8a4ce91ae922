"""The fast request path: same answers as the FastAPI route, vectorised fusion and rules, the
factor-model kernel, the model pool's budget, GC-free cache entries, the impression queue."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aisle.serving import RecommendationsPB, ServingSettings, create_app
from aisle.serving._fast import SOURCE_WEIGHTS, source_code, source_name, source_weight
from aisle.serving._impressions import ImpressionLog
from aisle.serving._kernels import apply_rules, fuse, have_numba, select_top
from aisle.serving._pipeline import Engine, _decode, _encode

#: The compiled kernels and their numpy twins must agree: test both (compiled only with numba).
IMPLEMENTATIONS = [False, pytest.param(True, marks=pytest.mark.skipif(not have_numba(), reason="numba missing"))]


def _metric(client: TestClient, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in client.get("/metrics").text.splitlines()
               if line.startswith(prefix))


def _strip(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("request_id", "timings_ms")}


# ------------------------------------------------------------------------------ fast path == route
@pytest.fixture
def both(settings: ServingSettings) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as fast, \
            TestClient(create_app(settings.model_copy(update={"fast_path": False})),
                       raise_server_exceptions=False) as slow:
        yield fast, slow


def test_fast_path_answers_exactly_like_the_fastapi_route(both: tuple[TestClient, TestClient]) -> None:
    fast, slow = both
    engine = fast.app.state.engine  # type: ignore[attr-defined]
    users = sorted(engine.model.known_users)
    top = engine.model.catalog.category[0].split("/")[0]
    queries: list[tuple[str, str]] = [
        (users[0], "k=5"), (users[1], ""), (users[2], f"k=7&filter_category={top}&max_price=80"),
        (users[3], "k=4&min_price=10.5&page=home&device=mobile&category=x"),
        (users[4], "k=6&exclude=" + "%2C".join(engine.model.popular[:3])), ("cold-user", "k=5&segment=premium"),
        ("cold user+plus", "k=3&unknown=1"), ("caf%C3%A9", "k=2"), (users[5], "k=5&page=a+b"),
    ]
    for user, qs in queries:
        a = fast.get(f"/v1/recommendations/{user}?{qs}")
        b = slow.get(f"/v1/recommendations/{user}?{qs}")
        assert a.status_code == b.status_code == 200, (user, qs, a.text)
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        assert _strip(a.json()) == _strip(b.json()), (user, qs)
    pb = {"accept": "application/x-protobuf"}
    a = fast.get(f"/v1/recommendations/{users[6]}?k=4", headers=pb)
    b = slow.get(f"/v1/recommendations/{users[6]}?k=4", headers=pb)
    assert a.headers["content-type"] == b.headers["content-type"] == "application/x-protobuf"
    ma, mb = RecommendationsPB.FromString(a.content), RecommendationsPB.FromString(b.content)
    assert [(i.item_id, i.position) for i in ma.items] == [(i.item_id, i.position) for i in mb.items]
    # what needs validation is FastAPI's, on both apps: the same status and the same error body
    for qs in ("k=0", "k=abc", "k=101", "k=1001", "k=05", "min_price=-1", "max_price=1e400", "page=" + "x" * 65,
               "k=5&k=7", "min_price=", "k=%35", "exclude=" + "a," * 6000):
        a = fast.get(f"/v1/recommendations/{users[0]}?{qs}")
        b = slow.get(f"/v1/recommendations/{users[0]}?{qs}")
        assert a.status_code == b.status_code, qs
        if a.status_code == 200:
            assert _strip(a.json()) == _strip(b.json()), qs
        else:
            assert a.json() == b.json(), qs
    assert _metric(fast, 'aisle_requests_total{endpoint="recommendations",status="200"}') >= 10


# ------------------------------------------------------------------------------ fusion
def _reference_fuse(sources: list[list[tuple[str, str]]]) -> list[tuple[str, float, str]]:
    """The pipeline's fusion before it was vectorised (per-item Python loop)."""
    score: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for items in sources:
        for rank, (item, src) in enumerate(items):
            w = SOURCE_WEIGHTS.get(src, 0.1) / (20.0 + rank + 1)
            score[item] = score.get(item, 0.0) + w
            if item not in best or best[item][0] < w:
                best[item] = (w, src)
    order = sorted(score, key=lambda i: -score[i])
    return [(i, round(score[i], 6), best[i][1]) for i in order]


@pytest.mark.parametrize("compiled", IMPLEMENTATIONS)
def test_fusion_matches_the_reference(compiled: bool) -> None:
    rng = np.random.default_rng(0)
    names = ["model", "co-view", "trending", "new-arrivals", "popular"]
    for _ in range(300):
        lists = []
        for name in rng.choice(names, size=rng.integers(1, 5), replace=False):
            n = int(rng.integers(0, 40))
            lists.append([(f"i{j}", str(name)) for j in rng.choice(60, size=n, replace=False)])
        want = _reference_fuse(lists)
        pos = [np.array([int(i[1:]) for i, _ in lst], dtype=np.int64) for lst in lists]
        codes = [source_code(lst[0][1]) if lst else 0 for lst in lists]
        # the first list is the primary, the second co-view-like, the rest the static entries
        primary, co = pos[0], pos[1] if len(pos) > 1 else np.zeros(0, dtype=np.int64)
        rest = pos[2:]
        static_idx = np.concatenate(rest) if rest else np.zeros(0, dtype=np.int64)
        static_w = np.concatenate([source_weight(c) / (21.0 + np.arange(p.size)) for c, p in zip(codes[2:], rest, strict=True)]) \
            if rest else np.zeros(0)
        static_src = np.concatenate([np.full(p.size, c) for c, p in zip(codes[2:], rest, strict=True)]) \
            if rest else np.zeros(0, dtype=np.int64)
        c1 = codes[1] if len(codes) > 1 else 0
        items, scores, sources = fuse(primary, codes[0], source_weight(codes[0]), co, c1, source_weight(c1),
                                      static_idx, static_w, static_src.astype(np.int64), compiled=compiled)
        got = [(f"i{i}", round(float(s), 6), source_name(int(c))) for i, s, c in zip(items, scores, sources, strict=True)]
        assert got == want


@pytest.mark.parametrize("compiled", IMPLEMENTATIONS)
def test_rules_keep_the_mask_and_the_brand_cap(compiled: bool) -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        n_items, n_brands = 50, 6
        items = rng.permutation(n_items)[: int(rng.integers(0, n_items))].astype(np.int64)
        mask = rng.random(n_items) < 0.7
        in_catalog = rng.random(n_items) < 0.8
        brand = np.where(in_catalog, rng.integers(0, n_brands, n_items), -1).astype(np.int64)
        cap, limit = int(rng.integers(0, 3)), int(rng.integers(1, 20))
        want: list[int] = []
        counts: dict[int, int] = {}
        for j, p in enumerate(items.tolist()):
            if not mask[p]:
                continue
            if cap and in_catalog[p]:
                if counts.get(brand[p], 0) >= cap:
                    continue
                counts[brand[p]] = counts.get(brand[p], 0) + 1
            want.append(j)
            if len(want) >= limit:
                break
        got = apply_rules(items, mask, brand, in_catalog, n_brands, cap, limit, compiled=compiled)
        assert got.tolist() == want


# ------------------------------------------------------------------------------ factor kernel
@pytest.fixture(scope="module")
def ials_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aisle.data._feedback import FeedbackConfig, build_interactions
    from aisle.models import make_model
    from aisle.simulate import simulate

    ds = simulate(20_000, seed=3).dataset
    model = make_model("ials", factors=16, iterations=3).fit(build_interactions(ds.events, FeedbackConfig()))
    folder = tmp_path_factory.mktemp("ials") / "runs" / "r" / "models" / "ials"
    model.save(folder)
    side = folder.parent.parent / "serving"
    side.mkdir(parents=True)
    for name, frame in (("catalog", ds.items), ("events", ds.events), ("users", ds.users)):
        assert frame is not None
        frame.to_parquet(side / f"{name}.parquet")
    return folder


def test_factor_models_are_scored_inline_and_match_recommend(ials_folder: Path, shop_workspace: Path) -> None:
    from aisle.registry import open_registry
    from aisle.serving import load_serving_model

    sm = load_serving_model(ials_folder)
    fx = sm.fast
    assert fx.kernel is not None
    everything = np.ones(len(fx.ids), dtype=bool)
    for user in sorted(sm.known_users)[:30]:
        row = fx.user_row[user]
        top = Engine._top(fx, fx.kernel(row), row, everything, 20)
        recs = sm.model.recommend([user], 20, exclude_seen=True)
        want = [str(i) for i in recs.items[0] if i is not None]
        got = [str(fx.ids[p]) for p in top]
        assert np.allclose(np.sort(recs.scores[0][: len(want)]), np.sort(fx.kernel(row)[top]), rtol=1e-5)
        assert len(set(got) & set(want)) >= len(want) - 1  # equal up to ties at the cut
    ease = open_registry(None, workspace=shop_workspace).production("default")
    assert ease is not None and load_serving_model(ease.artifact, version=ease).fast.kernel is None


def test_factor_model_service_and_an_instrumented_scorer_goes_through_the_pool(ials_folder: Path,
                                                                               tmp_path: Path) -> None:
    s = ServingSettings(workspace=tmp_path, model_path=ials_folder, poll_interval_s=0, model_budget_ms=30.0)
    with TestClient(create_app(s)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        users = sorted(engine.model.known_users)
        body = client.get(f"/v1/recommendations/{users[0]}", params={"k": 5}).json()
        assert body["fallback"] is None and body["items"][0]["source"] == "model"
        stop = threading.Event()

        def hang(*a: object, **k: object) -> None:
            stop.wait(2.0)

        engine.model.model._batch_scores = hang  # an instance override is honoured: model code, in the pool
        t = time.perf_counter()
        slow = client.get(f"/v1/recommendations/{users[1]}", params={"k": 5}).json()
        elapsed = time.perf_counter() - t
        stop.set()
        assert slow["fallback_reason"] == "model_timeout" and len(slow["items"]) == 5
        assert elapsed < 1.0


def test_a_hanging_scorer_is_answered_by_a_fallback_within_the_budget(settings: ServingSettings) -> None:
    with TestClient(create_app(settings.model_copy(update={"model_budget_ms": 30.0}))) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        assert engine.model.fast.kernel is None  # EASE: scored by its own code, in the pool
        users = sorted(engine.model.known_users)
        stop = threading.Event()

        def hang(*a: object, **k: object) -> None:
            stop.wait(2.0)

        engine.model.model._batch_scores = hang
        answers = []
        for u in users[:3]:
            t = time.perf_counter()
            answers.append(client.get(f"/v1/recommendations/{u}", params={"k": 5}).json())
            assert time.perf_counter() - t < 1.0
        stop.set()
        assert {a["fallback_reason"] for a in answers} == {"model_timeout"}
        assert all(len(a["items"]) == 5 for a in answers)
        # a degraded answer is not cached: the model is asked again next time
        del engine.model.model._batch_scores
        again = client.get(f"/v1/recommendations/{users[0]}", params={"k": 5}).json()
        assert again["cache"] == "miss" and again["fallback"] is None


# ------------------------------------------------------------------------------ rules
def test_brand_cap_and_a_filter_that_leaves_nothing(settings: ServingSettings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_per_brand": 1}))) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        cat = engine.model.catalog
        for user in sorted(engine.model.known_users)[:5]:
            items = client.get(f"/v1/recommendations/{user}", params={"k": 8}).json()["items"]
            brands = [cat.brand[cat.index[i["item_id"]]] for i in items if i["item_id"] in cat.index]
            assert len(brands) == len(set(brands))
        user = sorted(engine.model.known_users)[0]
        body = client.get(f"/v1/recommendations/{user}", params={"k": 5, "filter_category": "no-such-category"}).json()
        assert body["items"] == [] and body["fallback"] is None  # the model answered; nothing is eligible


# ------------------------------------------------------------------------------ cache, log, metrics
def test_cache_entries_leave_the_garbage_collector_alone_and_redis_format_is_unchanged(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for user in sorted(engine.model.known_users)[:20]:
        client.get(f"/v1/recommendations/{user}", params={"k": 5})
    gc.collect()
    gc.collect()
    entries = [v for _, v in engine.cache.local._data.values()]
    assert entries and not any(gc.is_tracked(e) for e in entries)
    e = entries[0]
    assert _decode(_encode(e)) == e
    old = json.dumps({"v": e[0], "i": [[a, b, c] for a, b, c in zip(e[2], e[3], e[4], strict=True)], "f": e[5],
                      "r": e[6], "m": e[7], "u": e[1]}).encode()  # what earlier versions wrote to Redis
    assert _decode(old) == e


def test_impression_queue_never_blocks_and_counts_drops(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path, max_queue=5, flush_interval_s=60.0)
    t = time.perf_counter()
    ok = [log.log(f"r{i}", "alice", "m:1", ["a", "b"], [0.5, 0.25], ["model", "model"], context={"page": "home"})
          for i in range(12)]
    assert time.perf_counter() - t < 0.5
    assert ok.count(True) == 5 and log.dropped == 7
    log.close()
    records = [json.loads(x) for f in tmp_path.glob("impressions-*.jsonl") for x in f.read_text().splitlines()]
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(5)]
    assert records[0]["user"] != "alice" and records[0]["positions"] == [1, 2] and records[0]["context"] == {"page": "home"}


def test_metrics_keep_their_names(client: TestClient) -> None:
    user = sorted(client.app.state.engine.model.known_users)[0]  # type: ignore[attr-defined]
    client.get(f"/v1/recommendations/{user}", params={"k": 5})
    client.get(f"/v1/recommendations/{user}", params={"k": 5})
    text = client.get("/metrics").text
    assert 'aisle_stage_seconds_bucket{le="0.0001",stage="model"}' in text
    assert _metric(client, 'aisle_request_seconds_count{endpoint="recommendations"}') == 2
    assert _metric(client, "aisle_cache_hit_ratio") == 0.5


def test_fast_path_steps_aside_for_added_middleware(settings: ServingSettings) -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    seen: list[str] = []

    async def spy(request: Any, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    app = create_app(settings)
    app.add_middleware(BaseHTTPMiddleware, dispatch=spy)
    with TestClient(app) as client:
        assert client.get("/v1/recommendations/someone", params={"k": 3}).status_code == 200
    assert seen == ["/v1/recommendations/someone"]


@pytest.mark.parametrize("compiled", IMPLEMENTATIONS)
def test_top_n_matches_a_full_sort_with_ties_and_exclusions(compiled: bool) -> None:
    rng = np.random.default_rng(1)
    for trial in range(2000):
        m, n = int(rng.integers(1, 60)), int(rng.integers(1, 70))
        s = rng.integers(0, 6, size=m).astype(np.float32) if trial % 2 else rng.standard_normal(m).astype(np.float32)
        if trial % 7 == 0:
            s[rng.integers(0, m)] = np.nan
        seen = rng.choice(m, size=int(rng.integers(0, m + 1)), replace=False).astype(np.int64)
        eligible = rng.random(m) < rng.random()
        got = select_top(s.copy(), seen, eligible, n, compiled=compiled)
        ref = s.astype(np.float64)
        ref[seen] = -np.inf
        ref[~eligible] = -np.inf
        want = sorted((j for j in range(m) if np.isfinite(ref[j])), key=lambda j: (-ref[j], j))[:n]
        assert got.tolist() == want, trial


def test_the_service_answers_the_same_without_numba(settings: ServingSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import aisle.serving._kernels as kernels

    def lists(client: TestClient) -> list[Any]:
        users = sorted(client.app.state.engine.model.known_users)[:8]  # type: ignore[attr-defined]
        return [_strip(client.get(f"/v1/recommendations/{u}", params={"k": 6, "max_price": 90}).json()) for u in users]

    with TestClient(create_app(settings.model_copy(update={"max_per_brand": 2}))) as client:
        compiled = lists(client)
    monkeypatch.setattr(kernels, "_COMPILED", {"ok": False})
    with TestClient(create_app(settings.model_copy(update={"max_per_brand": 2}))) as client:
        assert lists(client) == compiled
