"""Options shared by every command that takes data: a dataset name, or files with a format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from aisle.data import FORMATS, Dataset, load_data
from aisle.errors import ConfigError

__all__ = ["data_options", "dataset_from_options", "parse_mapping"]


def parse_mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("user_id=userId", ...)`` -> ``{"user_id": "userId"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--map expects CANONICAL=SOURCE (e.g. user_id=userId); got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add DATASET and the file options to a command."""
    options = [
        click.argument("dataset", required=False),
        click.option("--dataset", "dataset_opt", default=None, metavar="NAME", help="A named dataset (same as the DATASET argument)."),
        click.option("--data", "data_path", type=click.Path(dir_okay=False), help="Events file (CSV, TSV, Parquet, sequences or pairs)."),
        click.option("--train", "train_path", type=click.Path(dir_okay=False), help="Train file of a fixed split (use with --test)."),
        click.option("--test", "test_path", type=click.Path(dir_okay=False), help="Test file of a fixed split (use with --train)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True, help="Input format."),
        click.option("--map", "mapping", multiple=True, metavar="CANONICAL=SOURCE", help="Rename a column, e.g. --map user_id=userId (repeatable)."),
        click.option("--event-type", default=None, help="Event type of every row when the file has no event_type column."),
        click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False), help="Catalog file (one row per item)."),
        click.option("--on-error", type=click.Choice(["raise", "quarantine"]), default="raise", show_default=True, help="What to do with invalid rows."),
        click.option("--quarantine", "quarantine_path", type=click.Path(dir_okay=False), help="Where quarantined rows go (default: the workspace)."),
        click.option("--sep", default=None, help="Delimiter of a CSV file (default: sniffed)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def dataset_from_options(
    dataset: str | None,
    dataset_opt: str | None,
    data_path: str | None,
    train_path: str | None,
    test_path: str | None,
    fmt: str,
    mapping: tuple[str, ...],
    event_type: str | None,
    catalog_path: str | None,
    on_error: str,
    quarantine_path: str | None,
    sep: str | None,
    **_: Any,
) -> Dataset:
    """Resolve the data options of a command into a :class:`Dataset`."""
    if dataset and dataset_opt and dataset != dataset_opt:
        raise ConfigError(f"two dataset names given: {dataset!r} and --dataset {dataset_opt!r}")
    dataset = dataset or dataset_opt
    given = [x for x in (dataset, data_path, train_path or test_path) if x]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one data source: a dataset name (see `aisle datasets list`), "
            "--data FILE, or --train FILE --test FILE"
        )
    if dataset:
        from aisle.datasets import load_dataset

        return load_dataset(dataset)
    return load_data(
        data_path,
        train=train_path,
        test=test_path,
        catalog=catalog_path,
        format=fmt,  # type: ignore[arg-type]
        mapping=parse_mapping(mapping),
        on_error=on_error,  # type: ignore[arg-type]
        quarantine_path=quarantine_path,
        event_type=event_type,
        sep=sep,
    )
