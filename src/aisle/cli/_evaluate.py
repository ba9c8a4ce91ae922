"""``aisle evaluate``: fit and evaluate models on one split; JSON, a Markdown report and a plot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from aisle.cli._data_options import data_options, dataset_from_options
from aisle.cli._ui import UI
from aisle.errors import ConfigError

__all__ = ["evaluate_command", "tune_command"]


@click.command("evaluate")
@data_options
@click.option("--split", "split_name", type=click.Choice(["temporal", "leave-last", "user-holdout", "random", "fixed", "session-next-item"]),
              default=None, help="How to hold out test data (default: fixed split if given, sessions, else temporal or leave-last).")
@click.option("--models", default="pop,ease", show_default=True, help="Comma-separated model names.")
@click.option("--config", "configs", multiple=True, metavar="[MODEL=]FILE",
              help="Model config file (JSON/TOML/YAML), e.g. ials=best.json or the output of `aisle tune` (repeatable).")
@click.option("--metrics", default="ndcg@10,recall@20", show_default=True, help="Comma-separated metrics with cut-offs.")
@click.option("--protocol", type=click.Choice(["full", "sampled"]), default="full", show_default=True, help="Candidate set.")
@click.option("--negatives", type=int, default=100, show_default=True, help="Negatives per user for --protocol sampled.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--baseline", default=None, help="Paired per-user test of every model against this one (e.g. pop).")
@click.option("--segments", is_flag=True, help="Per-segment results with bootstrap CIs.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: the workspace).")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
def evaluate_command(split_name: str | None, models: str, configs: tuple[str, ...], metrics: str, protocol: str,
                     negatives: int, seed: int, baseline: str | None, segments: bool, out: str | None,
                     json_mode: bool, **options: Any) -> None:
    """Fit and evaluate models on the same split, with the protocol recorded beside every number."""
    from aisle.evaluation import paired_comparison, segment_results
    from aisle.evaluation._report import write_report
    from aisle.evaluation._runner import load_model_configs, parse_metrics, run_evaluation
    from aisle.settings import get_settings

    ui = UI(json_mode)
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("no models given; e.g. --models pop,ease")
    metric_names = parse_metrics(metrics)
    model_configs = load_model_configs(configs)
    if baseline and baseline not in names:
        names = [baseline, *names]
    with ui.step("Loading data"):
        ds = dataset_from_options(**options)
    run = run_evaluation(ds, names, metric_names, split_name=split_name, configs=model_configs,
                         protocol=protocol, n_negatives=negatives, seed=seed, progress=ui.step)  # type: ignore[arg-type]
    by_name = {r.model: r for r in run.results}
    if baseline:
        base = by_name[baseline].evaluation
        comparisons = []
        for r in run.results:
            if r.model == baseline or base is None or r.evaluation is None:
                continue
            for m in metric_names:
                if m in base.per_user:
                    cmp = paired_comparison(base.users, base.per_user[m], r.evaluation.users, r.evaluation.per_user[m],
                                            metric=m, seed=seed)
                    comparisons.append({"model": r.model, "baseline": baseline, **cmp.to_dict()})
        run.extra["comparisons"] = comparisons
    if segments:
        rows = []
        with ui.step("Segment results with bootstrap CIs"):
            for r in run.results:
                if r.evaluation is not None and r.fitted is not None:
                    accuracy = [m for m in metric_names if m in r.evaluation.per_user]
                    rows += [{"model": r.model, **s} for s in segment_results(r.evaluation, r.fitted, metrics=accuracy, seed=seed)]
        run.extra["segments"] = rows
    folder = Path(out) if out else get_settings().runs_dir / f"evaluate-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{ds.name}"
    files = write_report(run, folder)
    payload = {**run.to_dict(), "report": files}
    table = Table(title=f"{ds.name}: {run.protocol.split['name']} split, {run.protocol.candidates}")
    table.add_column("model")
    for m in metric_names:
        table.add_column(m, justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("predict s", justify="right")
    for r in run.results:
        table.add_row(r.model, *(f"{r.metrics[m]:.4f}" for m in metric_names), f"{r.fit_seconds:.2f}", f"{r.predict_seconds:.2f}")
    ui.emit(payload, table)
    if not json_mode:
        ui.info(f"Report: {files['markdown']}  Plot: {files['plot']}")


@click.command("tune")
@data_options
@click.option("--model", "model_name", required=True, help="The model to tune (e.g. ials).")
@click.option("--metric", default="ndcg@10", show_default=True, help="The metric to maximise on the validation part.")
@click.option("--trials", "n_trials", type=int, default=20, show_default=True, help="Trials after the default-config trial.")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--split", "split_name", type=click.Choice(["temporal", "leave-last", "user-holdout", "random", "fixed", "session-next-item"]),
              default=None, help="Outer split; validation is carved from its training side without look-ahead.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for best_config.json and trials.csv.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
def tune_command(model_name: str, metric: str, n_trials: int, timeout: float | None, split_name: str | None,
                 seed: int, out: str | None, json_mode: bool, **options: Any) -> None:
    """Tune a model's hyperparameters with Optuna on a validation split; feed the result to `aisle evaluate --config`."""
    from aisle.evaluation._tune import tune
    from aisle.settings import get_settings

    ui = UI(json_mode)
    with ui.step("Loading data"):
        ds = dataset_from_options(**options)
    best = {"value": float("-inf")}
    progress = ui.track(range(n_trials + 1), f"Tuning {model_name} ({metric})", total=n_trials + 1)
    iterator = iter(progress)

    def on_trial(number: int, value: float, params: dict[str, Any]) -> None:
        best["value"] = max(best["value"], value)
        next(iterator, None)

    result = tune(ds, model_name, metric=metric, n_trials=n_trials, timeout=timeout, split_name=split_name,
                  seed=seed, on_trial=on_trial)
    for _ in iterator:  # close the bar when a timeout ended the search early
        pass
    folder = Path(out) if out else get_settings().runs_dir / f"tune-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{model_name}"
    files = result.save(folder)
    payload = {**result.to_dict(), "files": files}
    table = Table(title=f"Tuned {model_name} on {ds.name} ({result.split['name']} split, validation part)")
    table.add_column("")
    table.add_column(metric, justify="right")
    table.add_row("defaults", f"{result.default_value:.4f}")
    table.add_row("best", f"{result.best_value:.4f}")
    ui.emit(payload, table)
    if not json_mode:
        ui.info(f"Best config: {files['best_config']} (use: aisle evaluate ... --config {files['best_config']})")
