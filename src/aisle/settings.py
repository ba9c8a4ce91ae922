"""Where aisle finds datasets and writes its artifacts, from the environment.

``AISLE_DATA_HOME``
    The folder holding the real datasets by name (default ``~/.cache/aisle/data``).
``AISLE_WORKSPACE``
    The folder where commands write artifacts: models, reports, quarantine files, the registry
    (default ``.aisle`` in the current directory, so ``aisle serve`` finds what ``aisle quickstart``
    wrote when run in the same directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "get_settings"]


@dataclass(frozen=True)
class Settings:
    """Resolved locations. Build with :func:`get_settings` to read the environment."""

    data_home: Path
    workspace: Path

    @property
    def quarantine_dir(self) -> Path:
        return self.workspace / "quarantine"

    @property
    def runs_dir(self) -> Path:
        return self.workspace / "runs"


def get_settings(*, data_home: str | Path | None = None, workspace: str | Path | None = None) -> Settings:
    """Settings from explicit arguments, else the environment, else the defaults."""
    dh = data_home or os.environ.get("AISLE_DATA_HOME") or Path.home() / ".cache" / "aisle" / "data"
    ws = workspace or os.environ.get("AISLE_WORKSPACE") or ".aisle"
    return Settings(data_home=Path(dh).expanduser(), workspace=Path(ws).expanduser())
