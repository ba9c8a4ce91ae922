"""The profiler and advisor on the shared real datasets (needs ``aisle.datasets``)."""

from __future__ import annotations

import json

import pytest

from aisle.datasets import load_dataset
from aisle.profile import profile

pytestmark = pytest.mark.realdata


def test_movielens_100k_is_collaborative() -> None:
    p = profile(load_dataset("movielens-100k"))
    assert (p.n_users, p.n_items, p.n_events) == (943, 1682, 100_000)
    assert p.activity.density == pytest.approx(100_000 / (943 * 1682))  # 6.3 %
    assert p.activity.events_per_user.min >= 20  # every user has at least 20 ratings
    assert p.feedback.kind == "explicit" and p.feedback.n_ratings == 100_000
    assert p.sessions.source == "derived" and not p.sessions.anonymous_sessions
    assert p.cold_start.applicable and p.time_span.days == pytest.approx(214.8, abs=0.5)
    assert p.strategy.name == "collaborative", p.strategy.reasons
    assert p.strategy.figures["rich_metadata"] is False  # titles and genres only
    assert "median user has 65 events" in p.strategy.reasons[0]
    assert p.latency_budget.batch_precompute_fits
    json.dumps(p.to_dict(), allow_nan=False)


def test_yoochoose_sample_is_session_based() -> None:
    p = profile(load_dataset("yoochoose-sample"))
    assert p.sessions.anonymous_sessions
    assert p.sessions.single_session_user_share == 1.0
    assert p.sessions.length is not None and p.sessions.length.median <= 5
    assert not p.metadata.has_catalog
    assert p.feedback.kind == "implicit"
    assert p.strategy.name == "session-based", p.strategy.reasons
    assert "anonymous (user_id = session_id)" in p.strategy.reasons[0]
    assert p.latency_budget.mode == "real-time"
    json.dumps(p.to_dict(), allow_nan=False)
