"""Off-policy evaluation on the Open Bandit Dataset sample: sanity properties, not figures."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from aisle.cli._ope import ope
from aisle.datasets import CAMPAIGNS, load_bandit_log, load_bts_prior
from aisle.evaluation.ope import (
    LoggedFeedback,
    UnsupportedActionWarning,
    compare_on_obd,
    diagnose,
    importance_weights,
    obd_bts_policy,
    obd_relative_error_table,
    relative_error_frame,
    uniform_policy,
)
from aisle.settings import get_settings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module", autouse=True)
def _needs_data() -> None:
    home = get_settings().data_home
    if not (home / "open-bandit-dataset-small").is_dir():
        pytest.skip(f"the Open Bandit Dataset sample is not under {home} (set AISLE_DATA_HOME)")


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_uniform_policy_reproduces_the_random_logs_propensities(campaign: str) -> None:
    log = LoggedFeedback.from_bandit_log(load_bandit_log(campaign, "random"))
    target = uniform_policy(log.n_actions, log.n_positions)
    np.testing.assert_allclose(target.probs[0, log.action, log.position], log.pscore, rtol=1e-12)
    np.testing.assert_allclose(log.pscore, 1.0 / log.n_actions)
    np.testing.assert_allclose(importance_weights(log, target), 1.0)


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_bts_distribution_from_the_prior(campaign: str) -> None:
    alpha, beta = load_bts_prior(campaign)
    a = obd_bts_policy(campaign, n_draws=5000, seed=1)
    assert a.n_actions == alpha.size and a.n_positions == 3
    np.testing.assert_allclose(a.probs[0].sum(axis=0), 1.0)
    assert (a.probs[0].sum(axis=1) <= 1.0 + 1e-12).all()  # an item fills at most one slot per list
    assert np.array_equal(a.probs, obd_bts_policy(campaign, n_draws=5000, seed=1).probs)
    b = obd_bts_policy(campaign, n_draws=5000, seed=2)
    se = math.sqrt(0.25 / 5000)
    assert np.abs(a.probs - b.probs).max() < 6 * math.sqrt(2) * se  # two independent simulations
    # items with the highest prior mean are the most likely first
    first = a.probs[0, :, 0]
    assert first.argmax() in np.argsort(-alpha / (alpha + beta))[:5]
    # the random log shows every item at every slot, so the BTS target is fully supported
    log = LoggedFeedback.from_bandit_log(load_bandit_log(campaign, "random"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedActionWarning)
        d = diagnose(log, a)
    assert d.unsupported_mass == 0.0 and d.logged_pairs == d.total_pairs


def _consistent(run: dict[str, object]) -> None:
    estimators = run["estimators"]
    assert isinstance(estimators, dict)
    for name, e in estimators.items():
        assert e["ci_low"] <= e["estimate"] <= e["ci_high"], name
        on = e["on_policy_value"]
        assert on == run["on_policy_value"]
        assert e["relative_error"] == pytest.approx(abs(e["estimate"] - on) / on)
        assert e["relative_error_ci_low"] <= e["relative_error"] <= e["relative_error_ci_high"], name
        assert 0 < e["ess"] <= run["n_rounds_behavior"]


def test_protocol_both_directions_on_one_campaign() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedActionWarning)
        forward = compare_on_obd("men", "random", "bts", config=None, n_bootstrap=200, bts_draws=5000)
        reverse = compare_on_obd("men", "bts", "random", n_bootstrap=200)
    bts_log, random_log = load_bandit_log("men", "bts"), load_bandit_log("men", "random")
    assert forward.on_policy_value == pytest.approx(bts_log.reward.mean())
    assert reverse.on_policy_value == pytest.approx(random_log.reward.mean())
    for run in (forward, reverse):
        payload = run.to_dict()
        _consistent(payload)
        assert run.on_policy_ci_low <= run.on_policy_value <= run.on_policy_ci_high
        # the support warning is raised exactly when the behavior log misses (item, slot) pairs
        d = run.diagnostics
        assert bool(d.warnings) == (d.unsupported_mass > 0) and d.unsupported_mass >= 0
    assert all(e.mc_standard_error is not None and e.mc_standard_error < e.std_error
               for e in forward.estimates.values())
    assert all(e.mc_standard_error is None for e in reverse.estimates.values())
    json.dumps(forward.to_dict(), allow_nan=False)


def test_cli_single_run_json() -> None:
    args = ["--dataset", "obd", "--campaign", "all", "--behavior", "random", "--evaluation", "bts",
            "--estimators", "dm,ips,snips,dr", "--n-bootstrap", "100", "--bts-draws", "2000", "--json"]
    result = CliRunner().invoke(ope, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload["estimators"]) == ["dm", "ips", "snips", "dr"]
    for e in payload["estimators"].values():
        assert {"estimate", "ci_low", "ci_high", "relative_error", "on_policy_value", "ess"} <= set(e)
    assert {"weights", "unsupported_mass", "target_coverage"} <= set(payload["diagnostics"])
    assert payload["target"]["policy"] == "bts" and payload["target"]["monte_carlo_draws"] == 2000
    assert "--bts-draws 2000" in payload["command"]
    _consistent(payload)


def test_cli_all_campaigns_table() -> None:
    args = ["--all-campaigns", "--estimators", "ips,dr", "--n-bootstrap", "50", "--bts-draws", "1000", "--json"]
    result = CliRunner().invoke(ope, args)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["campaign"], r["behavior"], r["evaluation"]) for r in runs] == [
        (c, b, e) for c in CAMPAIGNS for b, e in (("random", "bts"), ("bts", "random"))
    ]
    for run in runs:
        _consistent(run)
    table = CliRunner().invoke(ope, args[:-1])
    assert table.exit_code == 0 and "relative estimation error" in table.stdout


def test_relative_error_frame() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedActionWarning)
        runs = obd_relative_error_table(["women"], estimators="ips,snips", n_bootstrap=50, bts_draws=1000)
    frame = relative_error_frame(runs)
    assert len(frame) == 4 and set(frame["estimator"]) == {"ips", "snips"}
    np.testing.assert_allclose(
        frame["relative_error"], (frame["estimate"] - frame["on_policy_value"]).abs() / frame["on_policy_value"]
    )
