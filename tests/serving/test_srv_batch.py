"""Batch mode: ``aisle recommend-batch`` precomputes lists; the service serves them and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from aisle.cli._serve import recommend_batch, registry
from aisle.serving import ServingSettings, create_app


def test_recommend_batch_then_serve_in_batch_mode(settings: ServingSettings, workspace: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISLE_WORKSPACE", str(workspace))
    out = CliRunner().invoke(recommend_batch, ["-k", "20", "--json"])
    assert out.exit_code == 0, out.output
    with TestClient(create_app(settings.model_copy(update={"mode": "batch"}))) as client:
        user = sorted(client.app.state.engine.model.known_users)[0]  # type: ignore[attr-defined]
        body = client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
        assert body["mode"] == "batch" and body["items"][0]["source"] == "batch"
        cold = client.get("/v1/recommendations/nobody", params={"k": 5}).json()
        assert cold["mode"] == "realtime" and len(cold["items"]) == 5


def test_registry_cli_list_promote_rollback(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from aisle.registry import open_registry

    monkeypatch.setenv("AISLE_WORKSPACE", str(workspace))
    reg = open_registry(None, workspace=workspace)
    v1 = reg.production("default")
    assert v1 is not None
    copy = workspace / "v2"
    shutil.copytree(v1.artifact, copy)
    reg.register("default", copy)
    runner = CliRunner()
    assert '"stage": "production"' in runner.invoke(registry, ["list", "--json"]).output
    assert runner.invoke(registry, ["promote", "2"]).exit_code == 0
    assert reg.production("default").version == 2  # type: ignore[union-attr]
    assert runner.invoke(registry, ["rollback"]).exit_code == 0
    assert reg.production("default").version == 1  # type: ignore[union-attr]
