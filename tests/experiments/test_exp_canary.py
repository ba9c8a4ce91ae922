"""The canary controller: rollback at the first guardrail check, promotion without a regression."""

from __future__ import annotations

import numpy as np
import pytest

from aisle.experiments import (
    CanaryConfig,
    CanaryController,
    GuardrailSpec,
    SimulatedTraffic,
    SQLiteExperimentStore,
    canary_route,
)


def test_a_latency_regression_is_rolled_back_at_the_first_checked_step() -> None:
    store = SQLiteExperimentStore(":memory:")
    result = CanaryController(store=store).run(
        SimulatedTraffic(candidate_latency_factor=1.5, seed=3), run_id="r1"
    )
    assert result.status == "rolled_back" and result.final_fraction == 0.0
    assert result.first_checked_step == 1 and result.rolled_back_at_step == 1
    (decision,) = result.decisions
    assert decision.action == "rollback" and decision.fraction == 0.01
    lat = next(g for g in decision.guardrails if g["metric"] == "latency_p99")
    assert lat["status"] == "breach" and lat["harm"] > lat["margin"] and lat["n_treatment"] > 0
    assert "latency_p99" in decision.reason and "margin" in decision.reason
    stored = store.decisions("r1")
    assert len(stored) == 1 and stored[0]["action"] == "rollback"
    assert stored[0]["guardrails"][0]["control_value"] == pytest.approx(
        decision.guardrails[0]["control_value"]
    )


def test_a_clean_candidate_ramps_to_full_traffic() -> None:
    store = SQLiteExperimentStore(":memory:")
    result = CanaryController(store=store).run(SimulatedTraffic(seed=3), run_id="r2")
    assert (
        result.status == "promoted"
        and result.final_fraction == 1.0
        and result.rolled_back_at_step is None
    )
    assert sorted({d.fraction for d in result.decisions}) == [0.01, 0.05, 0.25, 0.5]
    assert [d.action for d in result.decisions][-1] == "promote"
    assert all(d.action in {"advance", "extend", "promote"} for d in result.decisions)
    # from 25 % on, every guardrail was shown non-inferior before advancing
    for d in result.decisions:
        if d.fraction >= 0.25 and d.action != "extend":
            assert {g["status"] for g in d.guardrails} == {"pass"}
    assert len(store.decisions("r2")) == len(result.decisions)


def test_an_error_rate_regression_is_rolled_back() -> None:
    traffic = SimulatedTraffic(candidate_error_rate=0.03, seed=5)
    result = CanaryController().run(traffic)
    assert result.status == "rolled_back"
    assert "error_rate" in result.decisions[-1].reason


def test_unproven_non_inferiority_is_extended_then_rolled_back() -> None:
    config = CanaryConfig(
        guardrails=(GuardrailSpec(metric="error_rate", margin=0.0001),), max_extensions=1
    )
    result = CanaryController(config).run(SimulatedTraffic(requests_per_step=20_000, seed=1))
    actions = [d.action for d in result.decisions]
    assert "extend" in actions and actions[-1] == "rollback"
    last = result.decisions[-1]
    assert last.fraction >= 0.25 and "non-inferiority not shown" in last.reason
    assert (
        result.decisions[-2].action == "extend" and result.decisions[-2].fraction == last.fraction
    )


def test_the_canary_ramp_is_monotone() -> None:
    ids = [f"u{k}" for k in range(20_000)]
    at5 = canary_route(ids, 0.05) == "candidate"
    at25 = canary_route(ids, 0.25) == "candidate"
    assert not (at5 & ~at25).any()
    assert abs(at5.mean() - 0.05) < 0.01 and abs(at25.mean() - 0.25) < 0.015
    assert np.array_equal(canary_route(ids, 0.05, salt="other") == "candidate", at5) is False


def test_config_rejects_bad_ramps() -> None:
    with pytest.raises(ValueError, match="steps"):
        CanaryConfig(steps=(0.5, 0.1, 1.0))
    with pytest.raises(ValueError, match="steps"):
        CanaryConfig(steps=(0.1, 0.5))
