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
@click.option("--simulate", "simulate_events", type=int, default=None, metavar="EVENTS",
              help="Use a simulated shop of about EVENTS events (seeded by --seed) instead of a dataset; "
                   "its ground truth gives the expected margin of --objective.")
@click.option("--objective", default=None, metavar="SPEC",
              help="Also rerank by relevance + λ·business value and report the trade-off curve: margin, revenue, "
                   "inventory, availability, with weights, e.g. margin or margin=1,inventory=0.5 (docs/ranking.md).")
@click.option("--lambdas", default="0,0.1,0.2,0.5,1,2,5", show_default=True,
              help="The λ grid of the trade-off (with --objective; inf = business value only).")
@click.option("--normalize", "normalization", type=click.Choice(["minmax", "rank", "softmax"]), default="minmax",
              show_default=True, help="Per-list relevance normalisation of the trade-off.")
@click.option("--max-per-brand", type=int, default=None, help="Brand cap per reranked list (with --objective).")
@click.option("--overfetch", type=int, default=5, show_default=True,
              help="The trade-off reranks k × OVERFETCH model candidates down to k.")
@click.option("--tradeoff-k", type=int, default=10, show_default=True, help="List length k of the trade-off.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: the workspace).")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
def evaluate_command(split_name: str | None, models: str, configs: tuple[str, ...], metrics: str, protocol: str,
                     negatives: int, seed: int, baseline: str | None, segments: bool, simulate_events: int | None,
                     objective: str | None, lambdas: str, normalization: str, max_per_brand: int | None,
                     overfetch: int, tradeoff_k: int, out: str | None, json_mode: bool, **options: Any) -> None:
    """Fit and evaluate models on the same split, with the protocol recorded beside every number.

    With --objective, each model's candidates are also reranked by relevance + λ·business value
    for every λ of --lambdas: NDCG@k against expected margin per list (tradeoff.png and a
    section in report.md).
    """
    from aisle.evaluation import paired_comparison, segment_results
    from aisle.evaluation._report import write_report
    from aisle.evaluation._runner import (
        load_model_configs,
        make_split,
        parse_metrics,
        run_evaluation,
    )
    from aisle.settings import get_settings

    ui = UI(json_mode)
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("no models given; e.g. --models pop,ease")
    metric_names = parse_metrics(metrics)
    model_configs = load_model_configs(configs)
    if baseline and baseline not in names:
        names = [baseline, *names]
    tradeoff_setup = _tradeoff_setup(objective, lambdas, normalization, max_per_brand, overfetch, tradeoff_k, protocol)
    shop = None
    if simulate_events is not None:
        if any(options.get(key) for key in ("dataset", "dataset_opt", "data_path", "train_path", "test_path")):
            raise ConfigError("give either --simulate EVENTS or a dataset / data files, not both")
        from aisle.simulate import simulate

        with ui.step(f"Simulating a shop of about {simulate_events:,} events (seed {seed})"):
            shop = simulate(simulate_events, seed=seed)
        ds = shop.dataset
    else:
        with ui.step("Loading data"):
            ds = dataset_from_options(**options)
    split = make_split(ds, split_name, seed=seed)
    run = run_evaluation(ds, names, metric_names, split=split, configs=model_configs,
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
    if tradeoff_setup is not None:
        run.extra["tradeoff"] = _run_tradeoff(run, ds, split, shop, tradeoff_setup, ui)
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
    if "tradeoff" in run.extra and not json_mode:
        ui.out.print(_tradeoff_table(run.extra["tradeoff"]))
    if not json_mode:
        plots = files["plot"] + (f"  Trade-off: {files['tradeoff_plot']}" if "tradeoff_plot" in files else "")
        ui.info(f"Report: {files['markdown']}  Plot: {plots}")


def _tradeoff_setup(objective: str | None, lambdas: str, normalization: str, max_per_brand: int | None,
                    overfetch: int, k: int, protocol: str) -> dict[str, Any] | None:
    """Validated trade-off options (before any work is done), or ``None`` without --objective."""
    if objective is None:
        return None
    from aisle.ranking import RankerConfig, parse_lambdas, parse_objectives

    if protocol != "full":
        raise ConfigError("--objective needs --protocol full: the trade-off reranks full-ranking candidates")
    if k < 1:
        raise ConfigError(f"--tradeoff-k must be >= 1, got {k}")
    try:
        config = RankerConfig(objectives=parse_objectives(objective), normalization=normalization,  # type: ignore[arg-type]
                              max_per_brand=max_per_brand, overfetch=overfetch)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid trade-off options: {exc}") from exc
    return {"config": config, "lambdas": parse_lambdas(lambdas), "k": k}


def _run_tradeoff(run: Any, ds: Any, split: Any, shop: Any, setup: dict[str, Any], ui: UI) -> dict[str, Any]:
    """Rerank every model's candidates over the λ grid; the payload the report reads."""
    from aisle.ranking import MultiObjectiveRanker, TradeoffResult, catalog_at, tradeoff_curve

    if ds.items is None or len(ds.items) == 0:
        raise ConfigError(f"--objective needs a catalog with price, margin (rate) and stock; dataset {ds.name!r} has "
                          "none. Give --catalog FILE or use --simulate EVENTS")
    now = split.train["timestamp"].max() if ds.has_timestamps and len(split.train) else None
    catalog = ds.items
    if shop is not None and now is not None:  # stock as it was when the lists are served
        catalog = catalog_at(catalog, shop.stock_ledger, now)
    ranker = MultiObjectiveRanker.from_catalog(catalog, setup["config"], events=split.train, now=now)
    combined: TradeoffResult | None = None
    for r in run.results:
        if r.evaluation is None or r.fitted is None:
            continue
        with ui.step(f"Trade-off of {r.model} over {len(setup['lambdas'])} values of λ"):
            res = tradeoff_curve(r.fitted, r.evaluation, ranker, setup["lambdas"], k=setup["k"],
                                 history=split.fold_in, truth=shop.truth if shop is not None else None, at=now)
        combined = res if combined is None else combined.extend(res)
    if combined is None:
        raise ConfigError("no model could be evaluated for the trade-off")
    if shop is None:
        combined.notes.append("no ground truth on this dataset: expected margin is not reported; hit_margin "
                              "(margin-weighted DCG of held-out hits) is the offline proxy")
    payload = combined.to_dict()
    payload["served_at"] = None if now is None else str(now)
    return payload


def _tradeoff_table(trade: dict[str, Any]) -> Table:
    objectives = ", ".join(f"{o['kind']}={o['weight']:g}" for o in trade["objectives"])
    table = Table(title=f"Trade-off at k={trade['k']}: relevance + λ · business value ({objectives})")
    for col in ("model", "policy", f"ndcg@{trade['k']}", "exp. margin/list", "exp. revenue/list", "hit margin",
                "coverage", "unavailable"):
        table.add_column(col, justify="left" if col in ("model", "policy") else "right")
    for p in trade["points"]:
        def fmt(v: Any, spec: str = ".4f") -> str:
            return "-" if v is None else format(v, spec)
        table.add_row(p["model"], p["policy"], fmt(p["ndcg"]), fmt(p["expected_margin"], ".3f"),
                      fmt(p["expected_revenue"], ".3f"), fmt(p["hit_margin"], ".3f"), fmt(p["coverage"], ".3f"),
                      fmt(p["unavailable_share"], ".1%"))
    return table


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
