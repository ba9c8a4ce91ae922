"""Every command and Python block of docs/experiments.md runs (validate: see test_exp_cli)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from aisle.cli._experiment import experiment

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def here(text: str) -> str:
        return text.replace("/tmp/aisle-demo", str(tmp_path / "demo"))

    commands = [
        here(line) for block in _blocks("bash") for line in block.splitlines() if line.strip()
    ]
    assert any(c.startswith("aisle experiment analyze") for c in commands)
    verdicts = []
    for line in commands:
        if line.startswith("export "):
            key, value = line.removeprefix("export ").split("=", 1)
            monkeypatch.setenv(key, value)
            continue
        args = shlex.split(line)
        assert args[:2] == ["aisle", "experiment"], line
        if args[2] == "validate":  # 1,000 tests take a minute; test_exp_cli runs it small
            continue
        result = CliRunner().invoke(experiment, [*args[2:], "--json"])
        assert result.exception is None, (line, result.output)
        if args[2] in ("analyze", "report"):
            verdicts.append(result.stdout.split('"verdict": "')[1].split('"')[0])
    assert verdicts == ["ship", "ship"]
    for block in _blocks("python"):
        exec(compile(here(block), str(DOC), "exec"), {})
