"""`aisle features` (the click group on its own): apply, materialize, get, validate-skew, stream."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from aisle.cli._features import features
from aisle.errors import ConfigError, NotFoundError
from aisle.features import SkewError
from aisle.simulate import SimulatedShop


def invoke(*args: str) -> Result:
    return CliRunner().invoke(features, list(args), catch_exceptions=True)


@pytest.fixture(scope="module")
def dataset_dir(shop: SimulatedShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.dataset.save(tmp_path_factory.mktemp("data") / "shop")


def test_apply_materialize_get_validate(dataset_dir: Path, shop: SimulatedShop, tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    applied = invoke("apply", "--workspace", ws, "--json")
    assert applied.exit_code == 0, applied.output
    views = json.loads(applied.stdout)["views"]
    assert {v["name"]: v["status"] for v in views} == {
        "user_activity": "created", "item_stats": "created", "user_category_affinity": "created", "session_activity": "created",
    }
    assert json.loads(invoke("apply", "--workspace", ws, "--json").stdout)["views"][0]["status"] == "unchanged"

    mat = invoke("materialize", "--ingest", str(dataset_dir), "--workspace", ws, "--json")
    assert mat.exit_code == 0, mat.output
    payload = json.loads(mat.stdout)
    assert payload["ingest"]["n_new"] == len(shop.events)
    assert {v["view"] for v in payload["views"]} == {v["name"] for v in views}
    assert all(v["n_states"] > 0 for v in payload["views"])

    item = str(shop.events["item_id"].iloc[-1])
    got = invoke("get", "item_stats", item, "nope", "--workspace", ws, "--as-of", "latest", "--json")
    assert got.exit_code == 0, got.output
    entities = json.loads(got.stdout)["entities"]
    assert [e["key"] for e in entities] == [item, "nope"]
    assert entities[0]["absent"] is False and entities[1]["absent"] is True
    assert len(entities[0]["features"]) == 20 and entities[0]["features"]["count_view_30d"] > 0

    user = str(shop.events["user_id"].iloc[-1])
    pair = invoke("get", "user_category_affinity", f"{user}|Nowhere", "--workspace", ws, "--as-of", "latest", "--json")
    assert pair.exit_code == 0 and json.loads(pair.stdout)["entities"][0]["key"] == f"{user}|Nowhere"
    table = invoke("get", "item_stats", item, "--workspace", ws)  # now: years after the simulated shop
    assert table.exit_code == 0 and "count_view_30d" in table.stdout and "--as-of latest" in table.stderr

    ok = invoke("validate-skew", "--workspace", ws, "--sample", "50", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True

    missing = invoke("get", "no_such_view", "x", "--workspace", ws)
    assert isinstance(missing.exception, NotFoundError)


def test_validate_skew_fails_on_a_stale_online_store(dataset_dir: Path, shop: SimulatedShop, tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    assert invoke("apply", "--workspace", ws).exit_code == 0
    end = shop.events["timestamp"].max()
    stale = (end - pd.Timedelta(days=3)).isoformat()
    assert invoke("materialize", "--ingest", str(dataset_dir), "--view", "item_stats", "--as-of", stale, "--workspace", ws).exit_code == 0
    result = invoke("validate-skew", "--view", "item_stats", "--as-of", (end + pd.Timedelta(seconds=1)).isoformat(),
                    "--workspace", ws, "--json")
    assert isinstance(result.exception, SkewError)
    report = json.loads(result.stdout)  # the report is printed before the failure
    assert report["ok"] is False and report["reports"][0]["max_mismatch_rate"] > 0.01


def test_apply_a_repository_file_and_a_new_version(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    repo = tmp_path / "repo.py"
    repo.write_text(
        "from aisle.features import FeatureView, USER, Count\n"
        "clicks = FeatureView(name='clicks', entity=USER, windows=('1d',), aggregations=(Count('click'),))\n"
    )
    first = json.loads(invoke("apply", str(repo), "--workspace", ws, "--json").stdout)
    repo.write_text(repo.read_text().replace("('1d',)", "('1d', '7d')"))
    second = json.loads(invoke("apply", str(repo), "--workspace", ws, "--json").stdout)
    assert first["views"][0]["version"] == 1 and second["views"][0] == {**second["views"][0], "status": "new_version", "version": 2}


def test_stream_needs_a_configured_stream(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    invoke("apply", "--workspace", ws)
    result = invoke("stream", "--workspace", ws)
    assert isinstance(result.exception, ConfigError) and "--http" in str(result.exception)


def test_bad_config_files_name_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "features.yaml"
    cfg.write_text("online:\n  type: memcached\n")
    result = invoke("apply", "--config", str(cfg))
    assert isinstance(result.exception, ConfigError) and "online" in str(result.exception)
