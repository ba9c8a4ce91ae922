"""``aisle experiment``: create → assign (simulated traffic) → analyze → report, validate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from aisle.cli._experiment import experiment
from aisle.errors import ConfigError, NotFoundError, StateError
from aisle.experiments import FIGURE_KEYS, open_store


def _run(args: list[str]) -> object:
    result = CliRunner().invoke(experiment, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return result
    assert result.exit_code == 0, result.output
    return result


def test_end_to_end_create_assign_analyze_report(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    out = _run(
        [
            "create",
            "new-ranker",
            "--model-version",
            "treatment=ials-v2",
            "--workspace",
            ws,
            "--json",
        ]
    )
    created = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert created["experiment"]["bucket_range"] == [0, 10000]
    out = _run(
        [
            "assign",
            "new-ranker",
            "--simulate",
            "--users",
            "2500",
            "--items",
            "300",
            "--pre-days",
            "14",
            "--workspace",
            ws,
            "--out",
            str(tmp_path / "traffic"),
            "--json",
        ]
    )
    assigned = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert set(assigned["exposed"]) == {"control", "treatment"}
    assert (tmp_path / "traffic" / "requests.parquet").exists()
    out = _run(
        [
            "analyze",
            "new-ranker",
            "--events",
            str(tmp_path / "traffic"),
            "--workspace",
            ws,
            "--json",
        ]
    )
    analysis = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert analysis["verdict"] == "ship" and analysis["winner"] == "treatment"
    assert analysis["monitoring"]["ready"] and analysis["srm"]["passed"]
    out = _run(["report", "new-ranker", "--workspace", ws, "--out", str(tmp_path / "report")])
    assert "Report of new-ranker: ship" in out.output  # type: ignore[attr-defined]
    assert (tmp_path / "report" / "report.html").read_text().count("data:image/png") == 2
    with open_store(workspace=ws) as store:
        assert store.get_experiment("new-ranker").start is not None
        assert len(store.analyses("new-ranker")) == 1


def test_assign_from_a_file_of_units(tmp_path: Path) -> None:
    ws = str(tmp_path)
    _run(
        [
            "create",
            "file-test",
            "--variant",
            "a=1",
            "--variant",
            "b=3",
            "--allocation",
            "0.5",
            "--workspace",
            ws,
        ]
    )
    units = tmp_path / "units.csv"
    pd.DataFrame({"user_id": [f"u{k}" for k in range(4000)]}).to_csv(units, index=False)
    seen = tmp_path / "seen.csv"
    pd.DataFrame(
        {"user_id": ["u1", "u2", "u3", "u1"], "timestamp": ["2024-01-01T00:00:00Z"] * 4}
    ).to_csv(seen, index=False)
    out = _run(
        [
            "assign",
            "file-test",
            "--units",
            str(units),
            "--column",
            "user_id",
            "--exposures",
            str(seen),
            "--out",
            str(tmp_path / "a"),
            "--workspace",
            ws,
            "--json",
        ]
    )
    payload = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert 0.45 < payload["assigned"]["not_allocated"] / 4000 < 0.55
    assert payload["assigned"]["b"] > 2 * payload["assigned"]["a"]
    assert (tmp_path / "a" / "assignments.csv").exists()
    with open_store(workspace=ws) as store:
        assert len(store.load_assignments("file-test")) == 4000


def test_bad_input_raises_aisle_errors(tmp_path: Path) -> None:
    ws = str(tmp_path)
    assert isinstance(
        _run(["create", "x", "--variant", "nonsense", "--workspace", ws]).exception, ConfigError
    )  # type: ignore[attr-defined]
    assert isinstance(
        _run(["create", "x", "--primary", "conversions", "--workspace", ws]).exception, ConfigError
    )  # type: ignore[attr-defined]
    assert isinstance(
        _run(["create", "x", "--mde", "0.05", "--workspace", ws]).exception, ConfigError
    )  # type: ignore[attr-defined]
    assert isinstance(
        _run(["assign", "ghost", "--simulate", "--workspace", ws]).exception, NotFoundError
    )  # type: ignore[attr-defined]
    _run(["create", "x", "--mde", "0.1", "--baseline", "0.05", "--workspace", ws])
    with open_store(workspace=ws) as store:
        planned = store.get_experiment("x").planned_units
    assert planned is not None and 55_000 < planned < 65_000
    assert isinstance(_run(["assign", "x", "--workspace", ws]).exception, ConfigError)  # type: ignore[attr-defined]
    assert isinstance(_run(["report", "x", "--workspace", ws]).exception, StateError)  # type: ignore[attr-defined]
    assert isinstance(
        _run(["analyze", "x", "--events", str(tmp_path / "none"), "--workspace", ws]).exception,
        FileNotFoundError,
    )  # type: ignore[attr-defined]


@pytest.mark.slow
def test_validate_json_has_exactly_the_six_figures(tmp_path: Path) -> None:
    details = tmp_path / "details.json"
    out = _run(
        [
            "validate",
            "--json",
            "--users",
            "2000",
            "--aa-tests",
            "60",
            "--ab-tests",
            "60",
            "--fdr-repetitions",
            "30",
            "--details",
            str(details),
        ]
    )
    figures = json.loads(out.stdout)  # type: ignore[attr-defined]
    assert tuple(figures) == FIGURE_KEYS
    assert figures["canary_rolled_back_at_step"] == 1
    assert 0 <= figures["aa_false_positive_rate"] <= 0.2
    assert 0 < figures["cuped_variance_ratio"] < 1.5  # 60 replicates: a smoke figure
    full = json.loads(details.read_text())
    assert {c["key"] for c in full["checks"]} == set(FIGURE_KEYS)
    assert full["details"]["canary"]["without_regression"]["status"] == "promoted"
    from rich.console import Console

    from aisle.cli._experiment import _render_validation
    from aisle.experiments import ValidationCheck, ValidationResult

    fake = ValidationResult(
        figures=dict(figures),
        checks=[
            ValidationCheck("aa_false_positive_rate", 0.2, "0.05 ± 0.015", False),
            ValidationCheck("power_predicted", 0.8, "calculator", None),
        ],
        details={"seconds": {"aa": 1.0}},
    )
    console = Console(width=120, record=True)
    console.print(_render_validation(fake, 0, None))
    text = console.export_text()
    assert "MISSED" in text and "some targets MISSED" in text and "aa 1" in text
