"""Registering the quickstart's model so that ``aisle serve`` finds it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from aisle.registry._registry import ModelVersion, open_registry

__all__ = ["DEFAULT_MODEL_NAME", "register_run"]

#: The model name the service serves unless told otherwise.
DEFAULT_MODEL_NAME = "default"


def _frame_checksum(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def register_run(
    workspace: Path,
    run_dir: Path,
    model: str,
    *,
    train_events: pd.DataFrame,
    catalog: pd.DataFrame | None,
    users: pd.DataFrame | None,
    params: dict[str, Any],
    metrics: dict[str, Any],
    name: str = DEFAULT_MODEL_NAME,
    registry_url: str | None = None,
) -> ModelVersion:
    """Write the serving side files of a run, register ``run_dir/models/<model>`` and promote it.

    Args:
        workspace: the workspace (holds ``registry.db``).
        run_dir: the run folder with ``models/<model>``.
        model: which saved model to register (``"ease"``).
        train_events: the training events (trending, co-view, data checksum).
        catalog: the catalog (stock, brand, category, price for business rules).
        users: the users table (segments).
        params: the model's hyperparameters.
        metrics: its offline metrics.
        name: the registered model name.
        registry_url: a registry URL (default: the workspace's SQLite file).

    Returns:
        The version, now in production.
    """
    side = run_dir / "serving"
    side.mkdir(parents=True, exist_ok=True)
    extras: dict[str, str] = {}
    train_events.to_parquet(side / "events.parquet", index=False)
    extras["events"] = str((side / "events.parquet").resolve())
    if catalog is not None:
        catalog.to_parquet(side / "catalog.parquet", index=False)
        extras["catalog"] = str((side / "catalog.parquet").resolve())
    if users is not None:
        users.to_parquet(side / "users.parquet", index=False)
        extras["users"] = str((side / "users.parquet").resolve())
    reg = open_registry(registry_url, workspace=workspace)
    version = reg.register(name, run_dir / "models" / model, data_checksum=_frame_checksum(train_events),
                           params=params, metrics=metrics, extras=extras)
    return reg.promote(name, version.version, "production", reason="quickstart")
