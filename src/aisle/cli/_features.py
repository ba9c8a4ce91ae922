"""``aisle features``: apply | materialize | get | stream | validate-skew.

Every command reads the store's backends from ``--config`` (YAML/TOML; see
:class:`aisle.features.FeatureStoreConfig`) or uses the embedded defaults under the workspace.
Progress goes to stderr; ``--json`` prints one JSON document on stdout.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click
import pandas as pd
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from aisle.cli._ui import UI
from aisle.errors import AisleError, ConfigError, exit_code_for, require

__all__ = ["features"]

json_option = click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")


def store_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config`` and ``--workspace`` to a command."""
    func = click.option(
        "--workspace", type=click.Path(file_okay=False), default=None,
        help="Folder of the embedded stores (default: AISLE_WORKSPACE or ./.aisle).",
    )(func)
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None,
        help="Feature store config (YAML/TOML): registry, online, offline and stream backends.",
    )(func)


def _store(config_path: str | None, workspace: str | None) -> Any:
    from aisle.features import FeatureStore, FeatureStoreConfig

    config = FeatureStoreConfig.load(config_path) if config_path else FeatureStoreConfig()
    return FeatureStore(config, workspace=workspace)


def _fmt(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


@click.group("features", context_settings={"help_option_names": ["-h", "--help"]})
def features() -> None:
    """Feature views, the offline and online stores, and the real-time stream.

    Start with `aisle features apply` (the built-in views), then
    `aisle features materialize --ingest DATASET_DIR` and `aisle features get item_stats ITEM`.
    """


# ---------------------------------------------------------------- apply
@features.command("apply")
@click.argument("repo", required=False, type=click.Path(dir_okay=False))
@store_options
@json_option
def apply_cmd(repo: str | None, config_path: str | None, workspace: str | None, json_mode: bool) -> None:
    """Register the views of a feature repository (a Python file), or the built-in views.

    A changed definition becomes a new version; older versions stay readable.
    """
    from aisle.features import FeatureRepository, default_repository

    ui = UI(json_mode)
    definitions = FeatureRepository.from_path(repo) if repo else default_repository()
    store = _store(config_path, workspace)
    try:
        with ui.step(f"Registering {len(definitions.views)} views from {definitions.source}"):
            results = store.apply(definitions)
    finally:
        store.close()
    rows = []
    for r in results:
        view = definitions.views[r.name]
        rows.append({**r.to_dict(), "kind": view.kind, "entity": view.entity.name, "features": len(view.feature_names())})
    table = Table(title=f"Feature views ({definitions.source})")
    for col in ("view", "version", "status", "entity", "features", "fingerprint"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], str(r["version"]), r["status"], r["entity"], str(r["features"]), r["fingerprint"][:12])
    ui.emit({"source": definitions.source, "views": rows}, table)


# ---------------------------------------------------------------- materialize
def _ingest(store: Any, path: str, catalog: str | None, ui: UI) -> dict[str, Any]:
    from aisle.data import Dataset, load_data

    p = Path(path)
    with ui.step(f"Reading {p}"):
        ds = Dataset.load(p) if p.is_dir() else load_data(str(p), catalog=catalog)
    with ui.step(f"Adding {ds.n_events:,} events to the offline store"):
        report = store.offline.ingest_dataset(ds)
    return dict(report.to_dict())


@features.command("materialize")
@click.option("--view", "views", multiple=True, help="View to materialize (repeatable; NAME or NAME:vN). Default: all.")
@click.option("--ingest", "ingest_path", type=click.Path(exists=True), default=None,
              help="First add these events to the offline store: a dataset folder (`aisle simulate --out`) or an events file.")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False), default=None, help="Catalog file for --ingest FILE.")
@click.option("--as-of", default=None, help="Watermark (ISO time); default: just after the latest event.")
@store_options
@json_option
def materialize_cmd(
    views: tuple[str, ...], ingest_path: str | None, catalog: str | None, as_of: str | None,
    config_path: str | None, workspace: str | None, json_mode: bool,
) -> None:
    """Replay the offline event history into the online store (the stream's own code)."""
    ui = UI(json_mode)
    store = _store(config_path, workspace)
    try:
        ingest = _ingest(store, ingest_path, catalog, ui) if ingest_path else None
        results = store.materialize(list(views) or None, as_of=as_of, track=ui.track)
    finally:
        store.close()
    payload: dict[str, Any] = {"ingest": ingest, "views": [r.to_dict() for r in results]}
    table = Table(title="Materialized")
    for col in ("view", "version", "events", "states", "as of", "seconds"):
        table.add_column(col)
    for r in results:
        when = pd.Timestamp(r.as_of, tz="UTC").isoformat() if r.as_of else "-"
        table.add_row(r.view, str(r.version), f"{r.n_events:,}", f"{r.n_states:,}", when, f"{r.seconds:.2f}")
    ui.emit(payload, table)


# ---------------------------------------------------------------- get
@features.command("get")
@click.argument("view")
@click.argument("keys", nargs=-1, required=True)
@click.option("--version", type=int, default=None, help="Read this version of the view (default: latest).")
@click.option("--as-of", default=None, help="Time the values hold for: ISO time, or 'latest' (just after the latest event online). Default: now.")
@store_options
@json_option
def get_cmd(
    view: str, keys: tuple[str, ...], version: int | None, as_of: str | None,
    config_path: str | None, workspace: str | None, json_mode: bool,
) -> None:
    """Read the online features of entities (composite keys as a|b, e.g. USER|CATEGORY)."""
    from aisle.features import FeatureView
    from aisle.features._definitions import decode_key

    ui = UI(json_mode)
    store = _store(config_path, workspace)
    try:
        definition = store.view(view, version)
        n_keys = len(definition.entity.keys)
        parsed = [decode_key(k, n_keys) for k in keys]
        latest = store.online.watermarks(definition)["latest"] if isinstance(definition, FeatureView) else None
        when: Any = as_of
        if as_of == "latest":
            if latest is None:
                raise ConfigError(f"view {view!r} has no online state yet; run `aisle features materialize`")
            when = latest + 1
        frame = store.online.read(definition, [p[0] if n_keys == 1 else p for p in parsed], as_of=when)
    finally:
        store.close()
    if as_of is None and latest is not None and frame.absent.all() and isinstance(definition, FeatureView):
        ttl_ns = int(definition.effective_ttl.total_seconds() * 1e9)
        if latest < frame.as_of - ttl_ns:
            ui.info(
                f"[yellow]note[/yellow]: the latest event online is from {pd.Timestamp(latest, tz='UTC').isoformat()}, "
                "older than the view's TTL; to read historical data as of then, pass --as-of latest"
            )
    entities = [
        {"key": k, "absent": bool(a), "features": f}
        for k, a, f in zip(frame.keys, frame.absent.tolist(), frame.to_dicts(), strict=True)
    ]
    payload = {
        "view": frame.view, "version": frame.version,
        "as_of": pd.Timestamp(frame.as_of, tz="UTC").isoformat(), "entities": entities,
    }
    table = Table(title=f"{frame.view} v{frame.version} as of {payload['as_of']}")
    table.add_column("feature")
    for e in entities:
        table.add_column(escape(e["key"]) + (" (absent)" if e["absent"] else ""), justify="right")
    for name in frame.names:
        table.add_row(name, *(_fmt(e["features"][name]) for e in entities))
    ui.emit(payload, table)


# ---------------------------------------------------------------- stream
@features.command("stream")
@click.option("--view", "views", multiple=True, help="View to keep up to date (repeatable). Default: all aggregate views.")
@click.option("--http", "http_addr", default=None, metavar="HOST:PORT",
              help="Serve POST /events instead of consuming (to the Redis stream when configured, else applied in process).")
@click.option("--consumer", default=None, help="Consumer name in the group (default: config, else host name).")
@click.option("--batch-entries", type=int, default=None, help="Stream entries per micro-batch.")
@click.option("--until-idle", type=float, default=None, help="Stop after this many seconds without new events.")
@click.option("--max-events", type=int, default=None, help="Stop after this many events.")
@store_options
@json_option
def stream_cmd(
    views: tuple[str, ...], http_addr: str | None, consumer: str | None, batch_entries: int | None,
    until_idle: float | None, max_events: int | None, config_path: str | None, workspace: str | None,
    json_mode: bool,
) -> None:
    """Consume events from the Redis stream into the online aggregates (or serve HTTP ingestion).

    Delivery is at-least-once and updates are idempotent by event_id: a killed consumer that is
    restarted with the same --consumer name ends with exactly the values of an uninterrupted run.
    """
    from aisle.features import RedisStreamConfig

    ui = UI(json_mode)
    store = _store(config_path, workspace)
    try:
        if http_addr:
            _serve_http(store, list(views), http_addr, ui)
            return
        if not isinstance(store.config.stream, RedisStreamConfig):
            raise ConfigError(
                "no stream to consume: set `stream: {type: redis, url: ...}` in --config, "
                "or serve HTTP ingestion with --http 127.0.0.1:8100"
            )
        processor = store.processor(list(views) or None)
        source = store.source(consumer=consumer, batch_entries=batch_entries)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        try:
            with Progress(*columns, console=ui.err, disable=ui.quiet) as progress:
                task = progress.add_task("consuming", total=None)
                done = {"events": 0, "applied": 0, "duplicates": 0}

                def on_batch(result: Any) -> None:
                    done["events"] += result.received
                    done["applied"] += result.applied
                    done["duplicates"] += result.duplicates
                    progress.update(task, description=(
                        f"{source.stream}: {done['events']:,} events ({done['applied']:,} applied, "
                        f"{done['duplicates']:,} duplicates skipped)"
                    ))

                try:
                    summary = processor.run(source, until_idle=until_idle, max_events=max_events, stop=stop, on_batch=on_batch)
                except KeyboardInterrupt:
                    stop.set()
                    raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            source.close()
    finally:
        store.close()
    payload = {"stream": source.stream, "group": source.group, "consumer": source.consumer, **summary.to_dict()}
    table = Table(title=f"Consumed {source.stream} as {source.group}/{source.consumer}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in summary.to_dict().items():
        table.add_row(k, "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v))
    ui.emit(payload, table)


def _serve_http(store: Any, views: list[str], address: str, ui: UI) -> None:
    from aisle.features import (
        RedisStreamConfig,
        create_ingest_app,
        processor_sink,
        redis_stream_sink,
    )

    uvicorn: Any = cast(Any, require("uvicorn", "serve"))

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--http expects HOST:PORT such as 127.0.0.1:8100, got {address!r}")
    cfg = store.config.stream
    if isinstance(cfg, RedisStreamConfig):
        sink = redis_stream_sink(cfg.url, cfg.stream)
        where = f"Redis stream {cfg.stream}"
    else:
        sink = processor_sink(store.processor(views or None))
        where = "the online store (in process)"
    ui.info(f"POST http://{host}:{port}/events -> {where}")
    uvicorn.run(create_ingest_app(sink), host=host, port=int(port), log_level="warning")


# ---------------------------------------------------------------- validate-skew
@features.command("validate-skew")
@click.option("--view", "views", multiple=True, help="View to check (repeatable). Default: all.")
@click.option("--sample", type=int, default=200, show_default=True, help="Entities sampled per view.")
@click.option("--threshold", type=float, default=0.01, show_default=True, help="Largest acceptable mismatch rate per feature.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--as-of", default=None, help="Time compared (default: just after the latest event online).")
@store_options
@json_option
def validate_skew_cmd(
    views: tuple[str, ...], sample: int, threshold: float, seed: int, as_of: str | None,
    config_path: str | None, workspace: str | None, json_mode: bool,
) -> None:
    """Compare online values with the offline recomputation; fail (exit 3) above the threshold."""
    from aisle.features import SkewError

    ui = UI(json_mode)
    store = _store(config_path, workspace)
    try:
        selected = store.views(list(views) or None)
        reports = []
        for view in ui.track(selected, "Comparing online with offline", total=len(selected)):
            reports.extend(store.validate_skew(
                [f"{view.name}:v{view.version}"], raise_on_failure=False, sample=sample, seed=seed,
                threshold=threshold, as_of=as_of,
            ))
    finally:
        store.close()
    payload = {"ok": all(r.ok for r in reports), "reports": [r.to_dict() for r in reports]}
    table = Table(title=f"Training-serving skew (threshold {threshold:.1%})")
    for col in ("view", "entities", "features", "failing", "worst rate", "verdict"):
        table.add_column(col)
    for r in reports:
        table.add_row(r.view, str(r.n_entities), str(len(r.features)), str(len(r.failed)), f"{r.max_rate:.1%}",
                      "[green]ok[/green]" if r.ok else "[red]SKEW[/red]")
    ui.emit(payload, table)
    if not payload["ok"]:
        raise SkewError(reports)


def main(argv: list[str] | None = None) -> None:
    """Run the group on its own (``python -m aisle.cli._features``), errors mapped to exit codes."""
    ui = UI()
    try:
        features.main(args=argv, prog_name="aisle features", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except AisleError as exc:
        ui.err.print(f"[red]error[/red] ({type(exc).__name__}): {escape(str(exc))}", highlight=False)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
