"""``aisle serve``, ``aisle registry list|promote|rollback`` and ``aisle recommend-batch``.

The lead registers these with ``cli.add_command(serve)``, ``cli.add_command(registry)`` and
``cli.add_command(recommend_batch)``.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from aisle.cli._ui import UI

__all__ = ["recommend_batch", "registry", "serve"]

_json = click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
_name = click.option("--name", default="default", show_default=True, help="The registered model name.")


def _workspace() -> Path:
    from aisle.settings import get_settings

    return get_settings().workspace


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Serve this saved model folder instead of the registry's production version.")
@click.option("--name", default=None, help="The registered model name (default: AISLE_MODEL or 'default').")
@click.option("--mode", type=click.Choice(["realtime", "batch"]), default=None,
              help="Serve precomputed batch lists when present (batch) or always compute (realtime).")
@click.option("--redis-url", default=None, help="Redis for the shared cache, batch lists and feedback.")
@click.option("--registry-url", default=None, help="postgresql://... for the PostgreSQL registry.")
@click.option("--log-level", default="warning", show_default=True)
def serve(host: str, port: int, model_path: str | None, name: str | None, mode: str | None,
          redis_url: str | None, registry_url: str | None, log_level: str) -> None:
    """Start the recommendation service (FastAPI on uvicorn).

    Run where `aisle quickstart` ran, it serves the model the quickstart registered.
    """
    import uvicorn

    from aisle.serving import ServingSettings, create_app
    from aisle.serving._server import uvicorn_options
    from aisle.settings import get_settings

    settings = ServingSettings.from_env(get_settings(), model_path=Path(model_path) if model_path else None,
                                        model_name=name, mode=mode, redis_url=redis_url, registry_url=registry_url)
    opts = uvicorn_options()
    UI().info(f"aisle serve: http://{host}:{port}  (docs at /docs, metrics at /metrics; "
              f"{opts['http']} + {opts['loop']})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, **opts)


@click.group()
def registry() -> None:
    """The model registry: versions, stages, lineage."""


@registry.command("list")
@click.option("--name", default=None, help="Only this model name.")
@_json
def registry_list(name: str | None, json_mode: bool) -> None:
    """Every registered version with its stage and lineage."""
    import os

    from aisle.registry import open_registry

    reg = open_registry(os.environ.get("AISLE_REGISTRY_URL"), workspace=_workspace())
    versions = reg.list(name)
    table = Table(title=f"Model registry ({reg!r})")
    for col in ("name", "version", "stage", "artifact sha256", "data checksum", "metrics", "code", "created"):
        table.add_column(col)
    for v in versions:
        metrics = ", ".join(f"{k}={val:.4f}" if isinstance(val, float) else f"{k}={val}" for k, val in v.metrics.items())
        table.add_row(v.name, str(v.version), v.stage, v.artifact_sha256[:12], v.data_checksum[:12], metrics,
                      v.code_version, v.created_at[:19])
    UI(json_mode).emit({"versions": [v.to_dict() for v in versions]}, table)


@registry.command("promote")
@click.argument("version", type=int)
@_name
@click.option("--stage", type=click.Choice(["candidate", "shadow", "canary", "production", "archived"]),
              default="production", show_default=True)
@_json
def registry_promote(version: int, name: str, stage: str, json_mode: bool) -> None:
    """Move VERSION to a stage (production archives the current one; a running service swaps to it)."""
    import os

    from aisle.registry import open_registry

    reg = open_registry(os.environ.get("AISLE_REGISTRY_URL"), workspace=_workspace())
    v = reg.get(name, version)
    if stage == "production":
        v.verify()  # refuse a corrupt artifact before it reaches a service
    v = reg.promote(name, version, stage)  # type: ignore[arg-type]
    UI(json_mode).emit(v.to_dict(), f"{v.label} is now {v.stage}")


@registry.command("rollback")
@_name
@_json
def registry_rollback(name: str, json_mode: bool) -> None:
    """Put the previous production version back."""
    import os

    from aisle.registry import open_registry

    reg = open_registry(os.environ.get("AISLE_REGISTRY_URL"), workspace=_workspace())
    v = reg.rollback(name)
    UI(json_mode).emit(v.to_dict(), f"rolled back: {v.label} is production again")


@click.command("recommend-batch")
@_name
@click.option("-k", "k", type=int, default=50, show_default=True, help="List length per user.")
@click.option("--redis-url", default=None, help="Write to Redis instead of <workspace>/topn.db.")
@_json
def recommend_batch(name: str, k: int, redis_url: str | None, json_mode: bool) -> None:
    """Precompute top-k for every known user with the production model (served with --mode batch)."""
    import os

    from aisle.errors import NotFoundError
    from aisle.models import Recommender
    from aisle.registry import open_registry
    from aisle.serving import open_batch_store
    from aisle.serving._cache import RedisLayer

    ui = UI(json_mode)
    ws = _workspace()
    reg = open_registry(os.environ.get("AISLE_REGISTRY_URL"), workspace=ws)
    version = reg.production(name)
    if version is None:
        raise NotFoundError(f"model {name!r} has no production version; run `aisle quickstart` first")
    version.verify()
    model = Recommender.load(version.artifact)
    url = redis_url or os.environ.get("AISLE_REDIS_URL")
    store = open_batch_store(ws, RedisLayer(url, timeout_ms=2000) if url else None)
    users = [str(u) for u in model.users_.ids]
    written = 0
    for start in ui.track(range(0, len(users), 2048), f"Scoring {len(users):,} users", total=-(-len(users) // 2048)):
        recs = model.recommend(users[start:start + 2048], k)
        lists = {str(u): [(str(i), round(float(s), 6)) for i, s in zip(recs.items[r], recs.scores[r], strict=True) if i is not None]
                 for r, u in enumerate(recs.users)}
        written += store.put_many(version.label, lists)
    ui.emit({"model_version": version.label, "users": written, "k": k, "store": type(store).__name__},
            f"{written:,} lists of {k} from {version.label} written to {type(store).__name__}")
