"""The HTTP API: lists, cold start, feedback, events, validation, admin, wire formats, logs."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from aisle.serving import RecommendationsPB, create_app
from aisle.serving._proto import BatchRecommendationsPB, RecommendRequestPB


def _known_user(client: TestClient) -> str:
    sm = client.app.state.engine.model  # type: ignore[attr-defined]
    return sorted(sm.known_users)[3]


def test_known_user_gets_model_list_with_version_and_timings(client: TestClient) -> None:
    r = client.get(f"/v1/recommendations/{_known_user(client)}", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "default:1" and len(body["items"]) == 7
    assert body["fallback"] is None and body["items"][0]["source"] == "model"
    assert {"features", "model", "rank", "rules", "rerank", "total"} <= set(body["timings_ms"])
    assert len({i["item_id"] for i in body["items"]}) == 7


def test_cold_start_user_gets_a_real_answer(client: TestClient) -> None:
    body = client.get("/v1/recommendations/brand-new-user", params={"k": 5, "segment": "premium"}).json()
    assert len(body["items"]) == 5
    assert body["fallback"] == "segment-popular" and body["fallback_reason"] == "cold_start"
    plain = client.get("/v1/recommendations/another-new-user", params={"k": 5}).json()
    assert plain["fallback"] == "popular" and len(plain["items"]) == 5


def test_not_interested_hides_item_brand_and_category(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    cat = engine.model.catalog
    user = _known_user(client)
    first = client.get(f"/v1/recommendations/{user}", params={"k": 10}).json()["items"]
    top = first[0]["item_id"]
    assert client.post("/v1/feedback", json={"user_id": user, "kind": "item", "value": top}).status_code == 200
    second = client.get(f"/v1/recommendations/{user}", params={"k": 10}).json()
    assert second["cache"] == "miss" and top not in [i["item_id"] for i in second["items"]]
    brand = cat.brand[cat.index[second["items"][0]["item_id"]]]
    client.post("/v1/feedback", json={"user_id": user, "kind": "brand", "value": brand})
    category = cat.category[cat.index[second["items"][1]["item_id"]]].split("/")[0]
    client.post("/v1/feedback", json={"user_id": user, "kind": "category", "value": category})
    third = client.get(f"/v1/recommendations/{user}", params={"k": 10}).json()["items"]
    assert third and all(cat.brand[cat.index[i["item_id"]]] != brand for i in third)
    assert all(not cat.category[cat.index[i["item_id"]]].startswith(category + "/") for i in third)


def test_cache_hits_and_event_invalidation(client: TestClient) -> None:
    user = _known_user(client)
    a = client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
    b = client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
    assert (a["cache"], b["cache"]) == ("miss", "memory") and a["items"] == b["items"]
    assert client.get(f"/v1/recommendations/{user}", params={"k": 5, "page": "cart"}).json()["cache"] == "miss"
    item = a["items"][0]["item_id"]
    r = client.post("/v1/events", json={"events": [{"user_id": user, "item_id": item, "event_type": "purchase"}]})
    assert r.json() == {"accepted": 1}
    c = client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
    assert c["cache"] == "miss" and item not in [i["item_id"] for i in c["items"]]
    metrics = client.get("/metrics").text
    assert 'aisle_cache_requests_total{result="memory"}' in metrics and "aisle_cache_hit_ratio" in metrics


def test_events_fold_in_a_new_user_and_feed_coview(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    item = engine.model.popular[0]
    client.post("/v1/events", json={"events": [{"user_id": "fresh", "item_id": item, "event_type": "view"}]})
    body = client.get("/v1/recommendations/fresh", params={"k": 5}).json()
    assert body["fallback"] is None and {i["source"] for i in body["items"]} <= {"fold-in", "co-view", "trending", "new-arrivals"}


def test_filters_and_exclusions(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    cat = engine.model.catalog
    top_level = cat.category[0].split("/")[0]
    user = _known_user(client)
    body = client.post("/v1/recommendations", json={"user_id": user, "k": 5, "filter_category": top_level,
                                                     "max_price": 80.0}).json()
    for i in body["items"]:
        r = cat.index[i["item_id"]]
        assert cat.category[r].startswith(top_level) and cat.price[r] <= 80.0 and cat.stock[r] > 0
    first = body["items"][0]["item_id"]
    again = client.get(f"/v1/recommendations/{user}", params={"k": 5, "filter_category": top_level, "max_price": 80,
                                                               "exclude": first}).json()
    assert first not in [i["item_id"] for i in again["items"]]


def test_similar_items_and_unknown_item(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    item = engine.model.popular[0]
    body = client.get(f"/v1/items/{item}/similar", params={"k": 4}).json()
    assert len(body["items"]) == 4 and item not in [i["item_id"] for i in body["items"]]
    missing = client.get("/v1/items/no-such-item/similar")
    assert missing.status_code == 404 and "Traceback" not in missing.text


def test_validation_names_the_field_and_limits(client: TestClient) -> None:
    r = client.get("/v1/recommendations/u1", params={"k": 101})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
    r = client.post("/v1/recommendations", json={"user_id": "u1", "k": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "k"]
    r = client.post("/v1/recommendations", json={"k": 3})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "user_id"]
    r = client.post("/v1/feedback", json={"user_id": "u", "kind": "colour", "value": "red"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    big = {"events": [{"user_id": "u" * 200, "item_id": "i" * 200}] * 900}
    r = client.post("/v1/events", content=json.dumps(big), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/recommendations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text


def test_admin_routes_need_the_token(client: TestClient) -> None:
    assert client.post("/v1/admin/reload").status_code == 401
    assert client.post("/v1/admin/reload", headers={"authorization": "Bearer nope"}).status_code == 401
    ok = client.post("/v1/admin/reload", headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["model_version"] == "default:1"
    versions = client.get("/v1/admin/versions", headers={"authorization": "Bearer s3cret"}).json()
    assert versions[0]["served"] is True


def test_protobuf_by_content_negotiation(client: TestClient) -> None:
    user = _known_user(client)
    r = client.get(f"/v1/recommendations/{user}", params={"k": 5}, headers={"accept": "application/x-protobuf"})
    assert r.headers["content-type"] == "application/x-protobuf"
    msg = RecommendationsPB.FromString(r.content)
    assert msg.model_version == "default:1" and [i.position for i in msg.items] == [1, 2, 3, 4, 5]
    req = RecommendRequestPB(user_id=user, k=3, max_price=500.0)
    r = client.post("/v1/recommendations", content=req.SerializeToString(),
                    headers={"content-type": "application/x-protobuf", "accept": "application/x-protobuf"})
    assert len(RecommendationsPB.FromString(r.content).items) == 3
    r = client.post("/v1/recommendations/batch", json={"requests": [{"user_id": user, "k": 2}, {"user_id": "x", "k": 2}]},
                    headers={"accept": "application/x-protobuf"})
    assert [len(x.items) for x in BatchRecommendationsPB.FromString(r.content).results] == [2, 2]


def test_health_ready_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["model"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recommendations/{user_id}", "/v1/recommendations/batch", "/v1/events", "/v1/feedback",
            "/v1/items/{item_id}/similar"} <= set(paths)


def test_impression_log_is_pseudonymous(settings: object, workspace: Path) -> None:
    with TestClient(create_app(settings)) as c:  # type: ignore[arg-type]
        body = c.get("/v1/recommendations/alice", params={"k": 3}).json()
    lines = (workspace / "impressions").glob("impressions-*.jsonl")
    records = [json.loads(x) for f in lines for x in f.read_text().splitlines()]
    rec = next(r for r in records if r["request_id"] == body["request_id"])
    assert rec["user"] != "alice" and len(rec["user"]) == 16
    assert rec["items"] == [i["item_id"] for i in body["items"]] and rec["positions"] == [1, 2, 3]
    assert rec["propensities"] == [1.0, 1.0, 1.0] and rec["model_version"] == "default:1"


def test_unexpected_errors_do_not_leak_stack_traces(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("secret internals")

    engine.similar = boom
    r = client.get("/v1/items/x/similar")
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
