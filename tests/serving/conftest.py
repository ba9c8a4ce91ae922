"""A small registered shop for the serving tests (built once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.models import make_model
from aisle.registry import register_run
from aisle.serving import ServingSettings, create_app
from aisle.simulate import simulate


def build_workspace(root: Path, n_events: int = 20_000) -> Path:
    """Simulate a shop, fit EASE, save it as a quickstart run and promote it to production."""
    ds = simulate(n_events, seed=1).dataset
    train = build_interactions(ds.events, FeedbackConfig())
    run = root / "runs" / "r1"
    model = make_model("ease", l2=100.0).fit(train)
    model.save(run / "models" / "ease")
    register_run(root, run, "ease", train_events=ds.events, catalog=ds.items, users=ds.users,
                 params=model.config.model_dump(), metrics={"ndcg@10": 0.1})
    return root


@pytest.fixture(scope="session")
def shop_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one production model (do not modify: copy it)."""
    return build_workspace(tmp_path_factory.mktemp("shop"))


@pytest.fixture
def workspace(shop_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the shop workspace (registry paths still point at the shared artifacts)."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(shop_workspace, ws)
    return ws


@pytest.fixture
def settings(workspace: Path) -> ServingSettings:
    return ServingSettings(workspace=workspace, poll_interval_s=0, admin_token="s3cret")


@pytest.fixture
def client(settings: ServingSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
