"""The README's Python tour runs as written (on a simulated shop saved as events.csv)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aisle.simulate import simulate

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    events = simulate(20_000, seed=1).dataset.events
    events = events.rename(columns={"user_id": "customer", "item_id": "sku"})
    events.loc[events["customer"] == events["customer"].iloc[0], "customer"] = "customer-42"
    events.to_csv(tmp_path / "events.csv", index=False)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
