"""The analysis pipeline: attribution windows, maturity, SRM and tracking blocks, guardrails,
monitoring, proxies and reports, on a small simulated experiment and on hand-made logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.errors import ConfigError, SchemaError
from aisle.experiments import (
    ExperimentSpec,
    analyze,
    tracking_counts,
    unit_metrics,
    write_report,
)
from aisle.experiments._simulated import SimulatedExperiment, simulate_experiment

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def _ev(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """(user, event_type, day offset, price) rows -> a canonical-ish event table."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": "i1",
            "event_type": [r[1] for r in rows],
            "timestamp": [T0 + pd.Timedelta(days=r[2]) for r in rows],
            "price": [r[3] for r in rows],
            "quantity": 1.0,
            "session_id": [f"{r[0]}-{int(r[2])}" for r in rows],
        }
    )


def test_unit_metrics_attributes_events_to_the_observation_window() -> None:
    events = _ev(
        [
            ("a", "purchase", -3.0, 10.0),  # pre-period
            ("a", "view", 0.5, 0.0),
            ("a", "click", 0.6, 0.0),
            ("a", "add_to_cart", 0.7, 0.0),
            ("a", "purchase", 2.0, 30.0),  # in window
            ("a", "purchase", 8.0, 99.0),  # after the 7-day window: not attributed
            ("b", "view", 1.0, 0.0),
            ("b", "add_to_cart", 3.0, 0.0),  # cart after the 1-day proxy window
            ("c", "view", 9.0, 0.0),
            ("c", "purchase", 9.5, 5.0),  # exposed late: immature
            ("z", "purchase", 1.0, 50.0),  # never exposed
        ]
    )
    exposures = pd.DataFrame(
        {
            "unit_id": ["a", "b", "c"],
            "variant": ["control", "treatment", "control"],
            "exposed_at": [T0 + pd.Timedelta(days=d) for d in (0.5, 1.0, 9.0)],
        }
    )
    table = unit_metrics(
        events,
        exposures,
        window_days=7,
        proxy_window_days=1,
        pre_period_days=28,
        as_of=T0 + pd.Timedelta(days=10),
    )
    f = table.frame.set_index("unit_id")
    assert list(f.index) == ["a", "b", "c"]
    assert f.loc["a", ["views", "clicks", "carts", "purchases", "revenue"]].tolist() == [
        1,
        1,
        1,
        1,
        30.0,
    ]
    assert f.loc[
        "a", ["pre_purchases", "pre_revenue", "pre_converted", "early_carts"]
    ].tolist() == [1, 10.0, 1.0, 1]
    assert f.loc["b", "carts"] == 1 and f.loc["b", "early_carts"] == 0
    assert f.loc["a", "mature"] and f.loc["b", "mature"] and not f.loc["c", "mature"]
    assert f.loc["c", "purchases"] == 1  # partial counts of an immature unit are kept, flagged
    assert len(table.mature) == 2
    # session units: the exposure table names sessions
    sx = pd.DataFrame(
        {"unit_id": ["a-0"], "variant": ["control"], "exposed_at": [T0 + pd.Timedelta(days=0.5)]}
    )
    s = unit_metrics(events, sx, unit="session", as_of=T0 + pd.Timedelta(days=10)).frame
    assert s["views"].tolist() == [1] and s["purchases"].tolist() == [0]
    # account units through an accounts table
    acc = pd.DataFrame({"user_id": ["a", "b"], "account_id": ["acme", "acme"]})
    ax = pd.DataFrame(
        {"unit_id": ["acme"], "variant": ["control"], "exposed_at": [T0 + pd.Timedelta(days=0.5)]}
    )
    a = unit_metrics(
        events, ax, unit="account", accounts=acc, as_of=T0 + pd.Timedelta(days=10)
    ).frame
    assert a["views"].tolist() == [2] and a["carts"].tolist() == [2]
    with pytest.raises(ConfigError, match="account"):
        unit_metrics(events, ax, unit="account")
    with pytest.raises(SchemaError, match="exposed_at"):
        unit_metrics(events, ax.drop(columns=["exposed_at"]))


@pytest.fixture(scope="module")
def sim() -> SimulatedExperiment:
    spec = ExperimentSpec(name="sim-test")
    return simulate_experiment(
        spec,
        n_users=3000,
        n_items=300,
        pre_days=14,
        days=14,
        seed=1,
        latency_factor={"treatment": 1.0},
    )


@pytest.fixture(scope="module")
def spec(sim: SimulatedExperiment) -> ExperimentSpec:
    return ExperimentSpec(name="sim-test", start=sim.start.to_pydatetime())


def test_a_clear_winner_ships(sim: SimulatedExperiment, spec: ExperimentSpec) -> None:
    res = analyze(spec, sim.events, sim.exposures, requests=sim.requests, as_of=sim.end)
    assert res.srm.passed and res.tracking.passed
    assert res.verdict == "ship" and res.winner == "treatment", res.reasons
    primary = res.metric("conversion_rate")
    assert primary.significant and primary.method == "cuped_welch" and primary.relative > 0
    assert primary.cuped_variance_ratio is not None and primary.cuped_variance_ratio < 1
    assert res.metric("ctr").method == "delta_method_z"
    assert {g.metric: g.status for g in res.guardrails}["latency_p99"] == "pass"
    # immature cohorts are excluded from the metrics and flagged
    assert sum(res.mature.values()) < sum(res.exposed.values())
    assert primary.n_treatment + primary.n_control == sum(res.mature.values())
    assert any(not c["mature"] for c in res.maturity) and res.maturity[0]["mature"]
    # the early proxy is reported with its measured correlation to conversion
    (proxy,) = res.proxies
    assert 0 < proxy.correlation <= 1 and proxy.proxy_result.n_treatment > primary.n_treatment
    d = json.loads(res.to_json())
    assert d["verdict"] == "ship" and d["cumulative"]


def test_srm_blocks_the_verdict(sim: SimulatedExperiment, spec: ExperimentSpec) -> None:
    x = sim.exposures
    rng = np.random.default_rng(0)
    lost = (x["variant"] == "treatment").to_numpy() & (rng.random(len(x)) < 0.15)
    res = analyze(spec, sim.events, x[~lost], requests=sim.requests, as_of=sim.end)
    assert not res.srm.passed
    assert res.verdict == "blocked" and res.winner is None
    assert any("sample ratio mismatch" in r for r in res.reasons)


def test_a_missing_event_type_in_one_arm_blocks_the_verdict(
    sim: SimulatedExperiment, spec: ExperimentSpec
) -> None:
    treated = set(sim.exposures.loc[sim.exposures["variant"] == "treatment", "unit_id"])
    ev = sim.events
    broken = ev[
        ~(
            (ev["event_type"] == "add_to_cart")
            & ev["user_id"].isin(treated)
            & (ev["timestamp"] >= sim.start)
        )
    ]
    res = analyze(spec, broken, sim.exposures, as_of=sim.end)
    assert res.srm.passed and not res.tracking.passed
    assert res.verdict == "blocked"
    assert any("'add_to_cart' is missing in arm 'treatment'" in r for r in res.reasons)


def test_a_double_fired_event_blocks_the_verdict(
    sim: SimulatedExperiment, spec: ExperimentSpec
) -> None:
    treated = set(sim.exposures.loc[sim.exposures["variant"] == "control", "unit_id"])
    ev = sim.events
    dup = ev[
        (ev["event_type"] == "click") & ev["user_id"].isin(treated) & (ev["timestamp"] >= sim.start)
    ]
    res = analyze(spec, pd.concat([ev, dup], ignore_index=True), sim.exposures, as_of=sim.end)
    assert not res.tracking.passed and res.verdict == "blocked"
    assert any("duplicated" in r for r in res.reasons)
    counts = tracking_counts(ev, sim.exposures, as_of=sim.end)
    assert (counts["n_duplicates"] <= 0.01 * counts["n_events"]).all()


def test_a_latency_regression_breaches_its_guardrail(
    sim: SimulatedExperiment, spec: ExperimentSpec
) -> None:
    treated = set(sim.exposures.loc[sim.exposures["variant"] == "treatment", "unit_id"])
    req = sim.requests.copy()
    req.loc[req["unit_id"].isin(treated), "latency_ms"] *= 1.6
    res = analyze(spec, sim.events, sim.exposures, requests=req, as_of=sim.end)
    lat = next(g for g in res.guardrails if g.metric == "latency_p99")
    assert lat.status == "breach" and lat.harm > lat.margin
    assert res.verdict == "no_ship"


def test_fixed_horizon_refuses_an_early_verdict_and_msprt_gives_one(
    sim: SimulatedExperiment, spec: ExperimentSpec
) -> None:
    early = sim.start + pd.Timedelta(days=9)
    ev = sim.events[sim.events["timestamp"] <= early]
    x = sim.exposures[sim.exposures["exposed_at"] <= early]
    res = analyze(spec, ev, x, as_of=early)
    assert res.verdict == "not_ready" and not res.monitoring["ready"]
    assert any("fixed horizon not reached" in r for r in res.reasons)
    seq = analyze(spec.model_copy(update={"monitoring": "msprt"}), ev, x, as_of=early)
    assert seq.monitoring["ready"] and seq.verdict == "ship"
    primary = seq.metric("conversion_rate")
    assert primary.always_valid_p is not None and primary.always_valid_p >= primary.p_value
    assert all("always_valid_p" in row for row in seq.cumulative)


def test_report_writes_html_with_plots_and_json(
    sim: SimulatedExperiment, spec: ExperimentSpec, tmp_path: Path
) -> None:
    res = analyze(spec, sim.events, sim.exposures, requests=sim.requests, as_of=sim.end)
    paths = write_report(res, tmp_path)
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "Verdict: ship" in page and "Benjamini" in page
    assert json.loads(paths["json"].read_text())["verdict"] == "ship"
    assert paths["effects_png"].read_bytes()[:4] == b"\x89PNG"


def test_the_last_cumulative_look_is_the_final_comparison(
    sim: SimulatedExperiment, spec: ExperimentSpec
) -> None:
    from aisle.experiments import compare_metric, cumulative_effects

    table = unit_metrics(sim.events, sim.exposures, as_of=sim.end)
    looks = cumulative_effects(table, spec)
    final = compare_metric(
        table.mature, "conversion_rate", control="control", treatment="treatment"
    )
    assert looks[-1]["n_treatment"] + looks[-1]["n_control"] == len(table.mature)
    assert looks[-1]["estimate"] == pytest.approx(final.estimate, rel=1e-9)
    assert looks[-1]["p_value"] == pytest.approx(final.p_value, rel=1e-6)
    assert [r["n_control"] for r in looks] == sorted(r["n_control"] for r in looks)
    plain = cumulative_effects(table, spec.model_copy(update={"cuped": False}))
    ref = compare_metric(
        table.mature, "conversion_rate", control="control", treatment="treatment", cuped=False
    )
    assert plain[-1]["p_value"] == pytest.approx(ref.p_value, rel=1e-9)


def test_sampled_tracking_counts_still_catch_a_missing_event(sim: SimulatedExperiment) -> None:
    from aisle.experiments import tracking_check

    treated = set(sim.exposures.loc[sim.exposures["variant"] == "treatment", "unit_id"])
    ev = sim.events
    broken = ev[
        ~(
            (ev["event_type"] == "purchase")
            & ev["user_id"].isin(treated)
            & (ev["timestamp"] >= sim.start)
        )
    ]
    counts = tracking_counts(broken, sim.exposures, as_of=sim.end, max_events=len(ev) // 4)
    assert counts["sample_fraction"].iloc[0] <= 0.25
    exposed = sim.exposures["variant"].value_counts().to_dict()
    result = tracking_check(counts, exposed, control="control")
    assert not result.passed and result.sample_fraction <= 0.25
    assert any("'purchase' is missing" in p for p in result.problems)
    full = tracking_counts(ev, sim.exposures, as_of=sim.end, max_events=None)
    assert tracking_check(full, exposed, control="control").passed
