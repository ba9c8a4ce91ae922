"""The ``aisle`` command: one subcommand per stage, errors mapped to exit codes in one place.

Exit codes (from :func:`aisle.errors.exit_code_for`): 0 success, 1 internal error, 2 usage or
configuration, 3 data, 4 not found, 5 wrong state, 6 missing optional dependency, 7 service.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from aisle import __version__
from aisle.cli._data_options import data_options, dataset_from_options
from aisle.cli._ui import UI
from aisle.errors import AisleError, exit_code_for

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="aisle")
def cli() -> None:
    """aisle: a recommendation engine for online stores.

    Start with `aisle quickstart` (no data needed), then `aisle profile --data events.csv`.
    """


json_option = click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")


# ---------------------------------------------------------------- datasets
@cli.group()
def datasets() -> None:
    """The public datasets under AISLE_DATA_HOME."""


@datasets.command("list")
@click.option("--verify", is_flag=True, help="Check every file's sha256 against the registry.")
@json_option
def datasets_list(verify: bool, json_mode: bool) -> None:
    """Which datasets are present, their sizes and checksums."""
    from aisle.datasets import list_datasets
    from aisle.settings import get_settings

    ui = UI(json_mode)
    with ui.step("Checking datasets" + (" (sha256)" if verify else "")):
        rows = list_datasets(verify=verify)
    entries: list[dict[str, Any]] = [r.to_dict() for r in rows]
    payload = {"data_home": str(get_settings().data_home), "datasets": entries}
    table = Table(title=f"Datasets in {get_settings().data_home}")
    for col in ("name", "present", "kind", "size", "checksums"):
        table.add_column(col)
    for r in entries:
        size = f"{r.get('bytes', 0) / 1e6:.1f} MB" if r.get("present") else "-"
        table.add_row(r["name"], "yes" if r.get("present") else "no", str(r.get("kind", "")), size,
                      str(r.get("checksums", "not checked")))
    ui.emit(payload, table)


@datasets.command("download")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even if the files are present.")
@click.option("--url", default=None, help="Download from this address instead of the registry's source.")
def datasets_download(name: str, force: bool, url: str | None) -> None:
    """Download a public dataset into AISLE_DATA_HOME (checksums verified)."""
    from aisle.datasets import download_dataset

    ui = UI()
    with ui.step(f"Downloading {name}"):
        path = download_dataset(name, force=force, url=url)
    ui.info(f"{name} is in {path}")


# ---------------------------------------------------------------- validate
@cli.command()
@data_options
@click.option("--out", type=click.Path(file_okay=False), help="Write the validated dataset (Parquet) here.")
@json_option
def validate(out: str | None, json_mode: bool, **options: Any) -> None:
    """Validate events (and a catalog): fail on bad rows, or quarantine them with --on-error quarantine."""
    ui = UI(json_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ui.step("Reading and validating"):
            ds = dataset_from_options(**options)
    reports = ds.meta.get("load_reports", [])
    payload = {"dataset": ds.name, "n_events": ds.n_events, "n_users": ds.n_users, "n_items": ds.n_items,
               "sources": reports}
    if out:
        ds.save(out)
        payload["written_to"] = str(out)
    table = Table(title=f"Validated {ds.name}")
    for col in ("source", "rows", "loaded", "quarantined", "quarantine file"):
        table.add_column(col)
    for r in reports:
        table.add_row(str(r["source"]), str(r["n_rows"]), str(r["n_loaded"]), str(r["n_quarantined"]),
                      str(r["quarantine_path"] or "-"))
    ui.emit(payload, table)


# ---------------------------------------------------------------- profile
@cli.command()
@data_options
@json_option
def profile(json_mode: bool, **options: Any) -> None:
    """Profile a shop's data and recommend a strategy, cold-start plan, KPIs and latency budget."""
    from aisle.profile import profile as run_profile

    ui = UI(json_mode)
    with ui.step("Loading data"):
        ds = dataset_from_options(**options)
    with ui.step(f"Profiling {ds.n_events:,} events"):
        result = run_profile(ds)
    ui.emit(result.to_dict(), result.render())


# ---------------------------------------------------------------- simulate
@cli.command()
@click.option("--events", "n_events", type=int, default=200_000, show_default=True, help="Approximate number of events.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the Parquet dataset.")
@json_option
def simulate(n_events: int, seed: int, out: str, json_mode: bool) -> None:
    """Generate a synthetic shop with known ground truth and write it as Parquet."""
    from aisle.simulate import simulate as run_simulation

    ui = UI(json_mode)
    with ui.step(f"Simulating about {n_events:,} events"):
        shop = run_simulation(n_events, seed=seed)
    ds = shop.dataset
    with ui.step(f"Writing {out}"):
        ds.save(out)
    counts = ds.events["event_type"].value_counts().to_dict()
    by_type = {str(k): int(v) for k, v in counts.items()}
    payload: dict[str, Any] = {"out": out, "n_events": ds.n_events, "n_users": ds.n_users,
                               "n_items": ds.n_items, "events_by_type": by_type, "seed": seed}
    table = Table(title=f"Simulated shop (seed {seed})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("n_events", "n_users", "n_items"):
        table.add_row(key, f"{payload[key]:,}")
    for k, v in by_type.items():
        table.add_row(f"events: {k}", f"{v:,}")
    ui.emit(payload, table)


# ---------------------------------------------------------------- quickstart
@cli.command()
@click.option("--dataset", default=None, help="Run on a public dataset instead of the simulator (e.g. movielens-100k).")
@click.option("--events", "n_events", type=int, default=150_000, show_default=True, help="Simulated events (simulator only).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workspace", type=click.Path(file_okay=False), default=None, help="Artifact folder (default: AISLE_WORKSPACE or ./.aisle).")
@json_option
def quickstart(dataset: str | None, n_events: int, seed: int, workspace: str | None, json_mode: bool) -> None:
    """Profile -> implicit feedback -> temporal split -> popularity and EASE -> evaluation."""
    from aisle.quickstart import render_quickstart, run_quickstart

    ui = UI(json_mode)
    result = run_quickstart(dataset=dataset, n_events=n_events, seed=seed,
                            workspace=Path(workspace) if workspace else None, ui=ui)
    ui.emit(result.to_dict(), render_quickstart(result))


def _register() -> None:
    """Commands that live in their own modules."""
    from aisle.cli._cold_start import cold_start_command
    from aisle.cli._evaluate import evaluate_command, tune_command
    from aisle.cli._experiment import experiment
    from aisle.cli._features import features
    from aisle.cli._ope import ope
    from aisle.cli._serve import recommend_batch, registry, serve

    cli.add_command(evaluate_command)
    cli.add_command(serve)
    cli.add_command(registry)
    cli.add_command(recommend_batch)
    cli.add_command(tune_command)
    cli.add_command(ope)
    cli.add_command(features)
    cli.add_command(experiment)
    cli.add_command(cold_start_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, map errors to exit codes, print errors on stderr."""
    ui = UI()
    try:
        cli.main(args=argv, prog_name="aisle", standalone_mode=False)
    except click.exceptions.Abort:
        ui.err.print("aborted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except AisleError as exc:
        ui.err.print(f"[red]error[/red] ({type(exc).__name__}): {escape(str(exc))}", highlight=False)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
