"""The quickstart on the simulator: runs end to end, writes its artifacts, EASE beats popularity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisle.cli import main
from aisle.models import Recommender
from aisle.quickstart import run_quickstart


def test_quickstart_cli_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--events", "40000", "--workspace", str(tmp_path)])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "recall@20" in out and "coverage@20" in out
    assert "pop" in out and "ease" in out and "Artifacts:" in out


def test_quickstart_artifacts_and_quality(tmp_path: Path) -> None:
    result = run_quickstart(n_events=60_000, seed=3, workspace=tmp_path)
    run_dir = Path(result.run_dir)
    assert json.loads((tmp_path / "quickstart.json").read_text())["run_dir"] == str(run_dir)
    saved = json.loads((run_dir / "quickstart.json").read_text())
    assert saved["lineage"]["seed"] == 3
    assert (run_dir / "profile.json").exists()
    model = Recommender.load(run_dir / "models" / "ease")
    assert model.name == "ease"
    ease, pop = result.models["ease"]["metrics"], result.models["pop"]["metrics"]
    # the simulator has real taste structure: a collaborative model must beat popularity
    assert ease["ndcg@10"] > pop["ndcg@10"]
    assert ease["coverage@20"] > pop["coverage@20"]
