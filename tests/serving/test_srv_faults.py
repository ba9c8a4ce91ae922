"""Faults: the model raises, times out, Redis goes away and comes back, a corrupt artifact, hot swap."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aisle.registry import open_registry
from aisle.serving import ServingSettings, create_app


def _metric(client: TestClient, prefix: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _users(client: TestClient, n: int) -> list[str]:
    return sorted(client.app.state.engine.model.known_users)[:n]  # type: ignore[attr-defined]


def test_model_raises_every_request_gets_a_fallback(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    users = _users(client, 6)
    warm = client.get(f"/v1/recommendations/{users[0]}", params={"k": 5}).json()  # a last good list
    client.delete("/v1/admin/cache", headers={"authorization": "Bearer s3cret"})

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("model exploded")

    engine.model.model.recommend = broken
    answers = [client.get(f"/v1/recommendations/{u}", params={"k": 5}) for u in users]
    assert all(r.status_code == 200 and len(r.json()["items"]) == 5 for r in answers)
    assert all(r.json()["fallback_reason"] == "model_error" for r in answers)
    assert answers[0].json()["fallback"] == "cached"
    from_cache = [i["item_id"] for i in answers[0].json()["items"] if i["source"] == "cached"]
    assert from_cache and set(from_cache) <= {i["item_id"] for i in warm["items"]}
    assert {r.json()["fallback"] for r in answers[1:]} <= {"segment-popular", "popular"}
    assert _metric(client, 'aisle_errors_total{stage="model_error"}') == len(users)
    assert _metric(client, "aisle_fallbacks_total") >= len(users)


def test_model_timeout_answers_within_the_budget(settings: ServingSettings) -> None:
    with TestClient(create_app(settings.model_copy(update={"model_budget_ms": 30.0}))) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        stop = threading.Event()

        def slow(*a: object, **k: object) -> None:
            stop.wait(2.0)

        engine.model.model.recommend = slow
        answers = [client.get(f"/v1/recommendations/{u}", params={"k": 5}) for u in _users(client, 4)]
        stop.set()
        assert all(r.status_code == 200 and len(r.json()["items"]) == 5 for r in answers)
        assert {r.json()["fallback_reason"] for r in answers} == {"model_timeout"}
        assert _metric(client, 'aisle_errors_total{stage="model_timeout"}') == 4


def test_corrupt_artifact_is_refused_and_the_old_version_keeps_serving(client: TestClient, workspace: Path,
                                                                      tmp_path: Path) -> None:
    reg = open_registry(None, workspace=workspace)
    v1 = reg.production("default")
    assert v1 is not None
    copy = tmp_path / "v2"
    shutil.copytree(v1.artifact, copy)
    v2 = reg.register("default", copy, extras=v1.extras)
    (copy / "state.npz").write_bytes((copy / "state.npz").read_bytes()[:-10] + b"0123456789")
    r = client.post("/v1/admin/promote", json={"version": v2.version}, headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 422 and "sha256" in r.json()["detail"]
    body = client.get("/v1/recommendations/anyone", params={"k": 3})
    assert body.status_code == 200 and body.json()["model_version"] == "default:1"
    assert _metric(client, "aisle_model_load_failures_total") == 1


def test_hot_swap_on_promotion_drops_no_request(settings: ServingSettings, workspace: Path, tmp_path: Path) -> None:
    reg = open_registry(None, workspace=workspace)
    v1 = reg.production("default")
    assert v1 is not None
    copy = tmp_path / "v2"
    shutil.copytree(v1.artifact, copy)
    v2 = reg.register("default", copy, extras=v1.extras)
    with TestClient(create_app(settings.model_copy(update={"poll_interval_s": 0.05, "cache_ttl_s": 0}))) as client:
        users = _users(client, 50)
        seen: list[tuple[int, str]] = []
        for n, u in enumerate(users):
            if n == 10:
                reg.promote("default", v2.version)
            r = client.get(f"/v1/recommendations/{u}", params={"k": 3})
            seen.append((r.status_code, r.json()["model_version"]))
            time.sleep(0.005)
        deadline = time.monotonic() + 5
        while client.app.state.engine.model.label != "default:2" and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.02)
        assert all(code == 200 for code, _ in seen)
        assert seen[0][1] == "default:1" and client.get("/readyz").json()["model_version"] == "default:2"
        r = client.post("/v1/admin/rollback", headers={"authorization": "Bearer s3cret"})
        assert r.json()["model_version"] == "default:1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    yield _free_port(), tmp_path


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


@pytest.mark.services
def test_redis_goes_away_mid_load_and_comes_back(settings: ServingSettings, private_redis: tuple[int, Path]) -> None:
    port, folder = private_redis
    proc = _start_redis(port, folder)
    try:
        s = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0", "cache_size": 0})
        with TestClient(create_app(s)) as client:
            engine = client.app.state.engine  # type: ignore[attr-defined]
            users = _users(client, 30)
            codes: list[int] = []
            for u in users[:10]:
                codes.append(client.get(f"/v1/recommendations/{u}", params={"k": 5}).status_code)
            assert client.get(f"/v1/recommendations/{users[0]}", params={"k": 5}).json()["cache"] == "redis"
            proc.terminate()
            proc.wait(5)
            accepted = 0
            for u in users[10:20]:
                codes.append(client.get(f"/v1/recommendations/{u}", params={"k": 5}).status_code)
                accepted += client.post("/v1/events", json={"events": [{"user_id": u, "item_id": "i00001"}]}).json()["accepted"]
            assert accepted == 10  # nothing lost: events are in process and in the workspace log
            assert client.get("/readyz").status_code == 503
            assert _metric(client, "aisle_redis_errors_total") >= 1
            proc = _start_redis(port, folder)
            time.sleep(engine.redis.backoff_s + 0.1)
            for u in users[20:]:
                codes.append(client.get(f"/v1/recommendations/{u}", params={"k": 5}).status_code)
            assert client.get(f"/v1/recommendations/{users[25]}", params={"k": 5}).json()["cache"] == "redis"
            assert client.get("/readyz").status_code == 200
            assert codes == [200] * 30
            log = (s.workspace / "online" / "events.jsonl").read_text().splitlines()
            assert len(log) == 10
    finally:
        proc.kill()
        proc.wait(5)
