"""A real consumer process killed with SIGKILL mid-stream and restarted ends with exactly the
values of an uninterrupted run: no event lost, none counted twice (Redis on loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import yaml

from aisle.features import (
    FeatureStore,
    FeatureStoreConfig,
    FeatureView,
    OfflineStore,
    OnlineStore,
    RedisOnline,
    RedisStreamSource,
    StreamProcessor,
    default_repository,
    publish_events,
)

pytestmark = pytest.mark.services

REDIS_URL = "redis://127.0.0.1:6379/0"
VIEWS = [v for v in default_repository().views.values() if isinstance(v, FeatureView)]


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    out = {"stream": f"aisle-kill-{tag}", "group": f"kill-{tag}", "prefix": f"aisle-kill-{tag}",
           "ref_group": f"ref-{tag}", "ref_prefix": f"aisle-ref-{tag}"}
    yield out
    redis.Redis.from_url(REDIS_URL).delete(out["stream"], out["stream"] + ":dead")
    for prefix in (out["prefix"], out["ref_prefix"]):
        RedisOnline(REDIS_URL, prefix=prefix).delete_prefix("")


def test_sigkill_mid_stream_then_restart(
    offline: OfflineStore, catalog_map: dict[str, str], end_of_shop: int, tmp_path: Path,
    names: dict[str, str], active_entities: Callable[..., list[Any]],
) -> None:
    config = {
        "workspace": str(tmp_path / "ws"),
        "online": {"type": "redis", "url": REDIS_URL, "prefix": names["prefix"]},
        "stream": {"type": "redis", "url": REDIS_URL, "stream": names["stream"], "group": names["group"],
                   "batch_entries": 2, "block_ms": 100},
    }
    config_path = tmp_path / "features.yaml"
    config_path.write_text(yaml.safe_dump(config))
    store = FeatureStore(FeatureStoreConfig.load(config_path))
    store.apply(default_repository())
    store.online.put_catalog(catalog_map)

    # The stream: every event once, with a producer's retries of 400 of them mid-stream.
    client = redis.Redis.from_url(REDIS_URL)
    events = offline.events()
    half = len(events) // 2
    publish_events(client, names["stream"], events.iloc[:half], per_entry=25)
    publish_events(client, names["stream"], events.iloc[:half].sample(400, random_state=1).sort_index(), per_entry=20)
    publish_events(client, names["stream"], events.iloc[half:], per_entry=25)
    published = len(events) + 400

    command = [sys.executable, "-m", "aisle.cli._features", "stream", "--config", str(config_path),
               "--consumer", "worker-1", "--until-idle", "1.0", "--json"]
    namespace = f"p:{names['group']}"
    backend = store.online.backend
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while backend.counters(namespace).get("received", 0) < 0.15 * published:
            assert worker.poll() is None, "the consumer exited before it could be killed"
            assert time.monotonic() < deadline, "the consumer made no progress"
            time.sleep(0.005)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    at_kill = backend.counters(namespace)
    assert 0 < at_kill["applied"] < len(events), at_kill  # killed mid-stream

    restarted = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    summary = json.loads(restarted.stdout)
    final = backend.counters(namespace)
    assert final["applied"] == len(events)  # every distinct event exactly once
    assert final["received"] >= published and summary["applied"] == len(events) - at_kill["applied"]
    assert client.xpending(names["stream"], names["group"])["pending"] == 0

    # The uninterrupted run: another consumer group reading the same stream in one go.
    reference = OnlineStore(RedisOnline(REDIS_URL, prefix=names["ref_prefix"]))
    reference.put_catalog(catalog_map)
    source = RedisStreamSource(REDIS_URL, names["stream"], names["ref_group"], "ref", batch_entries=50, block_ms=100)
    StreamProcessor(VIEWS, reference, name=names["ref_group"]).run(source, until_idle=0.3)

    killed = OnlineStore(RedisOnline(REDIS_URL, prefix=names["prefix"]))
    for view in VIEWS:
        keys = active_entities(offline, view, end_of_shop)
        want = reference.read(view, keys, as_of=end_of_shop).values
        got = killed.read(view, keys, as_of=end_of_shop).values
        assert np.array_equal(want, got, equal_nan=True), view.name
