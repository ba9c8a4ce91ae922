"""``aisle cold-start``: how models do on items or users that training never saw."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from aisle.cli._data_options import data_options, dataset_from_options
from aisle.cli._ui import UI
from aisle.errors import ConfigError

__all__ = ["cold_start_command"]

DEFAULT_MODELS = {"items": "content-cf,content,pop,random", "users": "onboarding,pop,content,content-cf,random"}


@click.command("cold-start")
@data_options
@click.option("--items", "kind", flag_value="items", default=True,
              help="Hold out items entirely; rank them for the users who interacted with them (default).")
@click.option("--users", "kind", flag_value="users", help="Hold out users entirely; rank for them after 0, 1, 3 ... events.")
@click.option("--models", default=None,
              help=f"Comma-separated names (items default: {DEFAULT_MODELS['items']}; users default: {DEFAULT_MODELS['users']}). "
                   "'pop' is attribute popularity for new items; 'onboarding' is the questionnaire baseline for new users.")
@click.option("--fraction", type=float, default=0.2, show_default=True, help="Share of the items (or users) held out.")
@click.option("--candidates", type=click.Choice(["cold", "all"]), default="cold", show_default=True,
              help="--items: rank the held-out items only, or every item.")
@click.option("--history-sizes", default="0,1,3,5", show_default=True, help="--users: events given as fold-in history.")
@click.option("--config", "configs", multiple=True, metavar="[MODEL=]FILE", help="Model config file (JSON/TOML/YAML; repeatable).")
@click.option("--metrics", default="ndcg@10,recall@20,hr@10", show_default=True, help="Comma-separated metrics with cut-offs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
def cold_start_command(kind: str, models: str | None, fraction: float, candidates: str, history_sizes: str,
                       configs: tuple[str, ...], metrics: str, seed: int, json_mode: bool, **options: Any) -> None:
    """Cold-start protocols: new items (content → factors vs attribute popularity) or new users."""
    from aisle.evaluation._cold_start import cold_start_items, cold_start_users
    from aisle.evaluation._runner import load_model_configs, parse_metrics

    ui = UI(json_mode)
    names = [m.strip() for m in (models or DEFAULT_MODELS[kind]).split(",") if m.strip()]
    if not names:
        raise ConfigError("no models given; e.g. --models content-cf,pop")
    metric_names = parse_metrics(metrics)
    model_configs = load_model_configs(configs)
    with ui.step("Loading data"):
        ds = dataset_from_options(**options)
    if kind == "items":
        result = cold_start_items(ds, names, item_fraction=fraction, candidates=candidates,  # type: ignore[arg-type]
                                  metrics=metric_names, seed=seed, configs=model_configs, progress=ui.step)
        title = (f"{ds.name}: {result.protocol['n_held_out_items']} items held out, "
                 f"{result.protocol['test_users']} users, candidates: {result.protocol['candidates']}")
    else:
        try:
            sizes = [int(x) for x in history_sizes.split(",") if x.strip()]
        except ValueError as exc:
            raise ConfigError(f"--history-sizes takes integers, e.g. 0,1,3,5; got {history_sizes!r}") from exc
        result = cold_start_users(ds, names, user_fraction=fraction, history_sizes=sizes, metrics=metric_names,
                                  seed=seed, configs=model_configs, progress=ui.step)
        title = f"{ds.name}: {result.protocol['n_held_out_users']} users held out ({result.protocol['test_users']} evaluated)"
    table = Table(title=title)
    table.add_column("model")
    if kind == "users":
        table.add_column("events", justify="right")
    for m in metric_names:
        table.add_column(m, justify="right")
    table.add_column("fit s", justify="right")
    for row in result.rows:
        cells = [str(row["model"])]
        if kind == "users":
            cells.append(str(row["history_events"]))
        cells += [f"{row[m]:.4f}" for m in metric_names]
        cells.append(f"{row['fit_seconds']:.1f}")
        table.add_row(*cells)
    ui.emit(result.to_dict(), table)
    if not json_mode and kind == "items":
        ui.info(f"pop: {result.protocol['baselines']['pop']}")
