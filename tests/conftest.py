"""Shared test setup."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

#: The shared real datasets sit next to the repository: <repo>/../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Point ``AISLE_DATA_HOME`` at the shared datasets unless it is already set."""
    os.environ.setdefault("AISLE_DATA_HOME", str(SHARED_DATA))


def write_shop_csv(path: Path, n: int = 120, bad: dict[int, str] | None = None) -> Path:
    """A shop log with n data rows; ``bad`` maps a data row to the field to break."""
    bad = bad or {}
    lines = ["event_id,user_id,item_id,event_type,timestamp,price"]
    for row in range(1, n + 1):
        ts = f"2024-03-{1 + row % 28:02d}T10:{row % 60:02d}:00Z"
        item = f"sku-{row % 17}"
        if bad.get(row) == "timestamp":
            ts = "2024-13-45 99:99"
        if bad.get(row) == "item_id":
            item = ""
        lines.append(f"e{row},user-{row % 11},{item},{'view' if row % 3 else 'purchase'},{ts},{row % 50}.99")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def shop_csv() -> Callable[..., Path]:
    """Write a small shop events CSV, optionally with broken rows (see :func:`write_shop_csv`)."""
    return write_shop_csv
