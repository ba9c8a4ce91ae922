"""The model registry: versions, stages, lineage, rollback, integrity; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aisle.errors import NotFoundError, StateError
from aisle.registry import (
    ArtifactIntegrityError,
    ModelRegistry,
    SQLiteRegistry,
    artifact_sha256,
    open_registry,
)


def _artifact(root: Path, name: str, content: str = "x") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(content)
    (d / "state.npz").write_bytes(content.encode() * 10)
    return d


def _exercise(reg: ModelRegistry, root: Path, name: str) -> None:
    a1 = _artifact(root, f"{name}-a1", "one")
    a2 = _artifact(root, f"{name}-a2", "two")
    v1 = reg.register(name, a1, data_checksum="d1", params={"l2": 1.0}, metrics={"ndcg@10": 0.2})
    assert (v1.version, v1.stage, v1.artifact_sha256) == (1, "candidate", artifact_sha256(a1))
    assert reg.production(name) is None
    reg.promote(name, 1)
    v2 = reg.register(name, a2)
    reg.promote(name, 2, "canary")
    assert reg.get(name, 2).stage == "canary"
    reg.promote(name, 2)
    assert reg.production(name).version == 2  # type: ignore[union-attr]
    assert reg.get(name, 1).stage == "archived"
    back = reg.rollback(name)
    assert back.version == 1 and back.stage == "production"
    assert reg.get(name, 2).stage == "archived"
    assert [v.version for v in reg.list(name)] == [1, 2]
    assert reg.get(name, 1).params == {"l2": 1.0} and reg.get(name, 1).metrics == {"ndcg@10": 0.2}
    assert any(h["reason"].startswith("rollback") for h in reg.history(name))
    v2.verify()
    (a2 / "state.npz").write_bytes(b"corrupt")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        reg.get(name, 2).verify()
    with pytest.raises(NotFoundError):
        reg.get(name, 99)


def test_sqlite_registry_lifecycle(tmp_path: Path) -> None:
    _exercise(SQLiteRegistry(tmp_path / "registry.db"), tmp_path, "m")


def test_rollback_without_history_is_a_state_error(tmp_path: Path) -> None:
    reg = open_registry(None, workspace=tmp_path)
    reg.register("m", _artifact(tmp_path, "a"))
    reg.promote("m", 1)
    with pytest.raises(StateError, match="no earlier production"):
        reg.rollback("m")


def test_sha256_covers_names_and_bytes(tmp_path: Path) -> None:
    a = _artifact(tmp_path, "a", "same")
    b = _artifact(tmp_path, "b", "same")
    assert artifact_sha256(a) == artifact_sha256(b)
    (b / "config.json").rename(b / "other.json")
    assert artifact_sha256(a) != artifact_sha256(b)


@pytest.mark.services
def test_postgres_registry_lifecycle(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not reachable")
    _exercise(open_registry(dsn), tmp_path, f"pg-{uuid.uuid4().hex[:8]}")
