"""The model registry: versions with stages and lineage, in SQLite or PostgreSQL."""

from aisle.registry._quickstart import DEFAULT_MODEL_NAME, register_run
from aisle.registry._registry import (
    STAGES,
    ArtifactIntegrityError,
    ModelRegistry,
    ModelVersion,
    PostgresRegistry,
    SQLiteRegistry,
    Stage,
    artifact_sha256,
    open_registry,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "STAGES",
    "ArtifactIntegrityError",
    "ModelRegistry",
    "ModelVersion",
    "PostgresRegistry",
    "SQLiteRegistry",
    "Stage",
    "artifact_sha256",
    "open_registry",
    "register_run",
]
