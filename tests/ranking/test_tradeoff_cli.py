"""`aisle evaluate --objective`: the trade-off table in report.md, tradeoff.png, the JSON payload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisle.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_evaluate_writes_the_tradeoff_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code, stdout, err = _run(["evaluate", "--simulate", "15000", "--models", "ease", "--metrics", "ndcg@10",
                              "--objective", "margin=1,inventory=0.2", "--lambdas", "0,0.5,2",
                              "--max-per-brand", "3", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    payload = json.loads(stdout)
    trade = payload["tradeoff"]
    assert [o["kind"] for o in trade["objectives"]] == ["margin", "inventory"]
    assert trade["ground_truth"] and trade["max_per_brand"] == 3 and trade["k"] == 10
    policies = [p["policy"] for p in trade["points"]]
    assert policies == ["model", "λ=0", "λ=0.5", "λ=2", "margin only"]
    assert all(p["unavailable_share"] == 0 for p in trade["points"][1:])
    assert all(p["expected_margin"] > 0 for p in trade["points"])
    assert payload["report"]["tradeoff_plot"] == str(out / "tradeoff.png")
    assert (out / "tradeoff.png").stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "## Trade-off: relevance + λ · business value (k = 10)" in report
    assert "| ease | λ=0.5 |" in report and "![trade-off](tradeoff.png)" in report
    assert "expected margin per list = sum over list positions" in report
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["tradeoff"]["points"] == trade["points"]


def test_without_objective_the_report_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain"
    code, stdout, err = _run(["evaluate", "--simulate", "8000", "--models", "pop", "--metrics", "ndcg@10",
                              "--out", str(out), "--json"], capsys)
    assert code == 0, err
    assert "tradeoff" not in json.loads(stdout) and not (out / "tradeoff.png").exists()
    assert "Trade-off" not in (out / "report.md").read_text()


def test_tradeoff_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.csv").write_text(
        "user_id,item_id,event_type,timestamp\n" + "".join(
            f"u{u},i{(u * 3 + j) % 9},purchase,2024-01-{1 + j:02d}T00:00:00Z\n" for u in range(12) for j in range(6)))
    base = ["evaluate", "--models", "pop", "--metrics", "ndcg@5", "--out", str(tmp_path / "r")]
    code, _, err = _run([*base, "--data", str(tmp_path / "events.csv"), "--objective", "margin"], capsys)
    assert code == 2 and "needs a catalog with price, margin" in err
    code, _, err = _run([*base, "--simulate", "5000", "--objective", "profit"], capsys)
    assert code == 2 and "unknown objective 'profit'" in err
    code, _, err = _run([*base, "--simulate", "5000", "--objective", "margin", "--lambdas", "0,-1"], capsys)
    assert code == 2 and "must be >= 0" in err
    code, _, err = _run([*base, "--simulate", "5000", "--data", str(tmp_path / "events.csv")], capsys)
    assert code == 2 and "not both" in err
    code, _, err = _run([*base, "--simulate", "5000", "--objective", "margin", "--protocol", "sampled"], capsys)
    assert code == 2 and "--protocol full" in err
