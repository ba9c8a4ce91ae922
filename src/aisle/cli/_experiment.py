"""``aisle experiment``: create, assign, analyze, report and validate online experiments.

The lead registers the group in ``_main.py`` with ``cli.add_command(experiment)``; errors are
aisle errors, mapped to exit codes by ``aisle.cli.main``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.table import Table

from aisle.cli._ui import UI
from aisle.errors import ConfigError, DatasetNotFoundError

__all__ = ["experiment"]

_json = click.option(
    "--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else."
)
_workspace = click.option(
    "--workspace",
    type=click.Path(file_okay=False),
    default=None,
    help="Artifact folder holding experiments.sqlite (default: AISLE_WORKSPACE or ./.aisle).",
)


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        if "=" not in v:
            raise ConfigError(f"{option} expects NAME=VALUE, got {v!r}")
        key, value = v.split("=", 1)
        out.append((key.strip(), value.strip()))
    return out


def _store(workspace: str | None) -> Any:
    from aisle.experiments import open_store

    return open_store(workspace=workspace)


def _read_table(path: str) -> Any:
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"{p} does not exist")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return pd.read_csv(
            p,
            sep="\t" if p.suffix.lower() == ".tsv" else ",",
            dtype={"unit_id": str, "user_id": str},
        )
    raise ConfigError(f"{p}: give a .csv, .tsv or .parquet file")


@click.group()
def experiment() -> None:
    """Online experiments: assignment, analysis with guardrails, reports, validation."""


# ------------------------------------------------------------------------------------ create
@experiment.command()
@click.argument("name")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME=WEIGHT",
    help="An arm and its weight (repeatable; default control=1 treatment=1). The first is control unless --control.",
)
@click.option("--control", default=None, help="The control arm (default: the first variant).")
@click.option(
    "--model-version",
    "versions",
    multiple=True,
    metavar="ARM=VERSION",
    help="The model version the service serves to an arm (repeatable).",
)
@click.option(
    "--unit", type=click.Choice(["user", "session", "account"]), default="user", show_default=True
)
@click.option(
    "--layer",
    default="default",
    show_default=True,
    help="Experiments in one layer are mutually exclusive; layers are orthogonal.",
)
@click.option(
    "--allocation",
    type=float,
    default=1.0,
    show_default=True,
    help="Share of the layer's traffic (0-1].",
)
@click.option("--salt", default=None, help="Salt of the variant hash (default: the name).")
@click.option(
    "--primary",
    "primary",
    default="conversion_rate",
    show_default=True,
    help="The decision metric.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="A secondary metric (repeatable; default: revenue_per_user, ctr, aov, add_to_cart_rate).",
)
@click.option(
    "--window-days",
    type=float,
    default=7.0,
    show_default=True,
    help="Observation window after exposure.",
)
@click.option(
    "--monitoring",
    type=click.Choice(["fixed_horizon", "msprt"]),
    default="fixed_horizon",
    show_default=True,
)
@click.option(
    "--duration-days",
    type=float,
    default=14.0,
    show_default=True,
    help="Planned duration (fixed horizon).",
)
@click.option(
    "--planned-units", type=int, default=None, help="Planned mature exposed units (fixed horizon)."
)
@click.option(
    "--mde",
    type=float,
    default=None,
    help="Relative minimum detectable effect: plan the units with the power calculator.",
)
@click.option(
    "--baseline",
    type=float,
    default=None,
    help="Baseline of the primary metric (a rate for proportions) for --mde.",
)
@click.option(
    "--baseline-sd",
    type=float,
    default=None,
    help="Per-unit sd of the primary metric (default for rates: sqrt(p(1-p))).",
)
@click.option(
    "--power", "power_target", type=float, default=0.8, show_default=True, help="Power for --mde."
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--correction", type=click.Choice(["bh", "holm"]), default="bh", show_default=True)
@click.option(
    "--global-holdout",
    type=float,
    default=None,
    help="Set the global holdout share (0-0.5) for every experiment.",
)
@click.option("--replace", is_flag=True, help="Overwrite an experiment of the same name.")
@_workspace
@_json
def create(
    name: str,
    variants: tuple[str, ...],
    control: str | None,
    versions: tuple[str, ...],
    unit: str,
    layer: str,
    allocation: float,
    salt: str | None,
    primary: str,
    metrics: tuple[str, ...],
    window_days: float,
    monitoring: str,
    duration_days: float,
    planned_units: int | None,
    mde: float | None,
    baseline: float | None,
    baseline_sd: float | None,
    power_target: float,
    alpha: float,
    correction: str,
    global_holdout: float | None,
    replace: bool,
    workspace: str | None,
    json_mode: bool,
) -> None:
    """Define an experiment and allocate its buckets in its layer."""
    from pydantic import ValidationError as PydanticError

    from aisle.experiments import ExperimentSpec, HoldoutSpec, Variant, get_metric, sample_size

    ui = UI(json_mode)
    arms = [(n, float(w)) for n, w in _pairs(variants, "--variant")] or [
        ("control", 1.0),
        ("treatment", 1.0),
    ]
    model = dict(_pairs(versions, "--model-version"))
    if mde is not None:
        if baseline is None:
            raise ConfigError("--mde needs --baseline (the primary metric's current value)")
        kind = get_metric(primary).kind
        sd = (
            baseline_sd
            if baseline_sd is not None
            else (math.sqrt(baseline * (1 - baseline)) if kind == "proportion" else None)
        )
        if sd is None:
            raise ConfigError(f"--mde on a {kind} metric needs --baseline-sd")
        per_arm = sample_size(baseline * mde, sd, power_target=power_target, alpha=alpha)
        planned_units = per_arm * len(arms)
    try:
        spec = ExperimentSpec(
            name=name,
            variants=tuple(Variant(name=n, weight=w, model_version=model.get(n)) for n, w in arms),
            control=control,
            unit=unit,
            layer=layer,
            allocation=allocation,
            salt=salt,
            primary_metric=primary,
            metrics=tuple(metrics) if metrics else ExperimentSpec.model_fields["metrics"].default,
            window_days=window_days,
            monitoring=monitoring,
            duration_days=duration_days,
            planned_units=planned_units,
            alpha=alpha,
            correction=correction,
        )
    except PydanticError as exc:
        raise ConfigError(f"invalid experiment: {exc}") from exc
    unknown = set(model) - {n for n, _ in arms}
    if unknown:
        raise ConfigError(f"--model-version names arms that do not exist: {sorted(unknown)}")
    with _store(workspace) as store:
        if global_holdout is not None:
            store.set_holdout(HoldoutSpec(fraction=global_holdout))
        stored = store.create_experiment(spec, replace=replace)
        holdout = store.get_holdout()
    payload = {
        "experiment": stored.model_dump(mode="json"),
        "holdout": holdout.model_dump() if holdout else None,
        "store": str(getattr(store, "path", "")),
    }
    table = Table(title=f"Experiment {stored.name}")
    table.add_column("setting")
    table.add_column("value")
    lo, hi = stored.bucket_range or (0, 0)
    for k, v in (
        (
            "arms",
            ", ".join(
                f"{x.name} ({x.weight:g}{', ' + x.model_version if x.model_version else ''})"
                for x in stored.variants
            ),
        ),
        ("control", stored.control_name),
        ("unit", stored.unit),
        ("layer / buckets", f"{stored.layer} / [{lo}, {hi}) of 10,000"),
        ("primary metric", stored.primary_metric),
        ("secondary metrics", ", ".join(stored.metrics)),
        (
            "guardrails",
            ", ".join(
                f"{g.metric} ({'+' + format(g.margin, '.0%') if g.relative else '+' + format(g.margin, 'g')})"
                for g in stored.guardrails
            ),
        ),
        (
            "monitoring",
            f"{stored.monitoring}"
            + (f", {stored.duration_days:g} days" if stored.monitoring == "fixed_horizon" else ""),
        ),
        ("planned units", f"{stored.planned_units:,}" if stored.planned_units else "-"),
        ("global holdout", f"{holdout.fraction:.1%}" if holdout else "none"),
    ):
        table.add_row(k, str(v))
    ui.emit(payload, table)


# ------------------------------------------------------------------------------------ assign
@experiment.command()
@click.argument("name")
@click.option(
    "--units",
    "units_path",
    type=click.Path(dir_okay=False),
    help="A CSV/Parquet file of unit ids to assign.",
)
@click.option(
    "--column",
    default="unit_id",
    show_default=True,
    help="The unit id column of --units / --exposures.",
)
@click.option(
    "--exposures",
    "exposures_path",
    type=click.Path(dir_okay=False),
    help="A CSV/Parquet file of exposure events (unit id and timestamp) to log.",
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Assign the users of a simulated shop and simulate the experiment's traffic.",
)
@click.option(
    "--users", "n_users", type=int, default=5_000, show_default=True, help="Simulated users."
)
@click.option(
    "--items", "n_items", type=int, default=500, show_default=True, help="Simulated items."
)
@click.option(
    "--pre-days",
    type=int,
    default=28,
    show_default=True,
    help="Simulated history before the experiment.",
)
@click.option("--days", type=int, default=14, show_default=True, help="Simulated experiment days.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="ARM=POLICY",
    help="Policy per arm: popularity, oracle, oracle-purchase or random (default: control popularity, others oracle).",
)
@click.option(
    "--latency-factor",
    "latency",
    multiple=True,
    metavar="ARM=FACTOR",
    help="Inject a latency regression into an arm.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write assignments (and simulated traffic).",
)
@_workspace
@_json
def assign(
    name: str,
    units_path: str | None,
    column: str,
    exposures_path: str | None,
    simulate: bool,
    n_users: int,
    n_items: int,
    pre_days: int,
    days: int,
    seed: int,
    policies: tuple[str, ...],
    latency: tuple[str, ...],
    out: str | None,
    workspace: str | None,
    json_mode: bool,
) -> None:
    """Assign units (a file, or simulated traffic) and log their exposures."""
    import pandas as pd

    from aisle.experiments import assign_variants, first_exposures

    ui = UI(json_mode)
    if simulate == bool(units_path):
        raise ConfigError("give exactly one of --units FILE or --simulate")
    with _store(workspace) as store:
        spec = store.get_experiment(name)
        holdout = store.get_holdout()
        payload: dict[str, Any] = {"experiment": name}
        if simulate:
            from aisle.data import Dataset
            from aisle.experiments._simulated import simulate_experiment

            with ui.step(
                f"Simulating {n_users:,} users: {pre_days} days of history, then {days} days of the experiment"
            ):
                sx = simulate_experiment(
                    spec,
                    policies=dict(_pairs(policies, "--policy")),
                    n_users=n_users,
                    n_items=n_items,
                    pre_days=pre_days,
                    days=days,
                    seed=seed,
                    holdout=holdout,
                    latency_factor={k: float(v) for k, v in _pairs(latency, "--latency-factor")},
                )
            assignments, exposures = sx.assignments, sx.exposures
            folder = (
                Path(out)
                if out
                else Path(getattr(store, "path", ".")).parent / "experiments" / name / "traffic"
            )
            with ui.step(f"Writing the simulated traffic to {folder}"):
                meta = {
                    "generator": "aisle.experiments.simulate_experiment",
                    "experiment": name,
                    "seed": seed,
                    "start": sx.start.isoformat(),
                    "as_of": sx.end.isoformat(),
                    "summary": sx.summaries,
                }
                Dataset(name=f"simulated-{name}", events=sx.events, meta=meta).save(folder)
                sx.requests.to_parquet(folder / "requests.parquet", index=False)
                exposures.to_parquet(folder / "exposures.parquet", index=False)
                assignments.to_parquet(folder / "assignments.parquet", index=False)
            store.create_experiment(
                spec.model_copy(update={"start": sx.start.to_pydatetime()}), replace=True
            )
            payload.update(
                traffic=str(folder),
                events=len(sx.events),
                start=sx.start.isoformat(),
                end=sx.end.isoformat(),
            )
        else:
            assert units_path is not None
            frame = _read_table(units_path)
            if column not in frame.columns:
                raise ConfigError(
                    f"{units_path} has no column {column!r} (columns: {list(frame.columns)}); use --column"
                )
            with ui.step(f"Assigning {len(frame):,} units"):
                assignments = assign_variants(
                    spec, frame[column].astype(str).unique(), holdout=holdout
                )
            exposures = pd.DataFrame(columns=["unit_id", "variant", "exposed_at"])
            if exposures_path:
                ev = _read_table(exposures_path)
                if "timestamp" not in ev.columns or column not in ev.columns:
                    raise ConfigError(f"{exposures_path} needs columns {column!r} and 'timestamp'")
                exposures = first_exposures(ev, assignments, unit_col=column)
            if out:
                Path(out).mkdir(parents=True, exist_ok=True)
                assignments.to_csv(Path(out) / "assignments.csv", index=False)
                payload["written_to"] = str(Path(out) / "assignments.csv")
        with ui.step(f"Storing {len(assignments):,} assignments and {len(exposures):,} exposures"):
            store.save_assignments(name, assignments)
            if len(exposures):
                store.log_exposures(name, exposures)
        counts = (
            assignments["reason"]
            .where(assignments["reason"] != "assigned", assignments["variant"])
            .value_counts()
        )
        exp_counts = exposures["variant"].value_counts() if len(exposures) else pd.Series(dtype=int)
    payload["assigned"] = {str(k): int(v) for k, v in counts.items()}
    payload["exposed"] = {str(k): int(v) for k, v in exp_counts.items()}
    table = Table(title=f"Assignment of {name}")
    table.add_column("arm / reason")
    table.add_column("assigned units", justify="right")
    table.add_column("exposed units", justify="right")
    for k, v in payload["assigned"].items():
        table.add_row(k, f"{v:,}", f"{payload['exposed'].get(k, 0):,}")
    ui.emit(payload, table)


# ------------------------------------------------------------------------------------ analyze
@experiment.command()
@click.argument("name")
@click.option(
    "--events",
    "events_path",
    type=click.Path(),
    required=True,
    help="The event log: a saved dataset folder (e.g. from `assign --simulate`) or a Parquet file.",
)
@click.option(
    "--requests",
    "requests_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Serving request log (unit_id, timestamp, latency_ms, error, fallback); default: requests.parquet in the dataset folder.",
)
@click.option(
    "--accounts",
    "accounts_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="user_id,account_id file for account units.",
)
@click.option(
    "--as-of",
    default=None,
    help="The instant the data describe (default: the dataset's as_of, else the last event).",
)
@_workspace
@_json
def analyze(
    name: str,
    events_path: str,
    requests_path: str | None,
    accounts_path: str | None,
    as_of: str | None,
    workspace: str | None,
    json_mode: bool,
) -> None:
    """Analyze an experiment: checks, metrics, guardrails, verdict (stored for `report`)."""
    from aisle.experiments import analyze as run_analysis

    ui = UI(json_mode)
    src = Path(events_path)
    if not src.exists():
        raise DatasetNotFoundError(
            f"{src} does not exist; give a saved dataset folder or a Parquet file"
        )
    requests: Any = requests_path
    if src.is_dir():
        info = src / "dataset.json"
        if as_of is None and info.exists():
            as_of = json.loads(info.read_text()).get("meta", {}).get("as_of")
        if requests is None and (src / "requests.parquet").exists():
            requests = str(src / "requests.parquet")
    with _store(workspace) as store:
        spec = store.get_experiment(name)
        exposures = store.load_exposures(name)
        if exposures.empty:
            raise ConfigError(
                f"experiment {name!r} has no exposures yet; log them with `aisle experiment assign`"
            )
        with ui.step(f"Analyzing {name} ({len(exposures):,} exposed units) with DuckDB"):
            result = run_analysis(
                spec,
                str(src),
                exposures,
                requests=requests,
                accounts=_read_table(accounts_path) if accounts_path else None,
                as_of=as_of,
            )
        d = result.to_dict()
        store.save_analysis(name, d)
    ui.emit(d, _render_analysis(d))


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.1f} %" if pct else f"{x:.4g}"


def _render_analysis(d: dict[str, Any]) -> Any:
    color = {"ship": "green", "no_ship": "red", "blocked": "red"}.get(d["verdict"], "yellow")
    head = Table.grid()
    head.add_row(
        f"[bold]Verdict: [{color}]{d['verdict']}[/{color}][/bold]"
        + (f" → {d['winner']}" if d.get("winner") else "")
    )
    for r in d["reasons"]:
        head.add_row(f"  • {r}")
    srm = d["srm"]
    head.add_row(
        f"SRM: p = {srm['p_value']:.3g} ({'passed' if srm['passed'] else 'FAILED'}); tracking: "
        f"{'passed' if d['tracking']['passed'] else 'FAILED'}; exposed {d['exposed']}, mature {d['mature']}"
    )
    corr = d["spec"]["correction"]
    metrics = Table(
        title=f"Metrics (mature units; p adjusted by {'Benjamini-Hochberg' if corr == 'bh' else 'Holm'})"
    )
    for c in (
        "metric",
        "arm",
        "control",
        "treatment",
        "relative",
        "interval",
        "p adj.",
        "significant",
    ):
        metrics.add_column(c)
    for m in d["metrics"]:
        metrics.add_row(
            m["metric"],
            m["variant"],
            _f(m["control_value"]),
            _f(m["treatment_value"]),
            _f(m["relative"], True),
            f"{_f(m['relative_ci_low'], True)} to {_f(m['relative_ci_high'], True)}",
            _f(m["p_bh"] if corr == "bh" else m["p_holm"]),
            "yes" if m["significant"] else "no",
        )
    guards = Table(title="Guardrails (non-inferiority)")
    for c in ("metric", "arm", "harm [CI]", "margin", "status"):
        guards.add_column(c)
    for g in d["guardrails"]:
        rel = bool(g["relative"])
        guards.add_row(
            g["metric"],
            g["variant"],
            f"{_f(g['harm'], rel)} [{_f(g['harm_ci_low'], rel)}, {_f(g['harm_ci_high'], rel)}]",
            _f(g["margin"], rel),
            g["status"],
        )
    return Group(head, metrics, guards)


# ------------------------------------------------------------------------------------ report
@experiment.command()
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for report.html, report.json and the plots (default: <workspace>/experiments/NAME).",
)
@_workspace
@_json
def report(name: str, out: str | None, workspace: str | None, json_mode: bool) -> None:
    """Write the latest analysis as HTML (with plots) and JSON."""
    from aisle.experiments import write_report

    ui = UI(json_mode)
    with _store(workspace) as store:
        store.get_experiment(name)
        d = store.latest_analysis(name)
        folder = (
            Path(out) if out else Path(getattr(store, "path", ".")).parent / "experiments" / name
        )
    with ui.step(f"Rendering the report of {name}"):
        paths = write_report(d, folder)
    payload = {
        "experiment": name,
        "verdict": d["verdict"],
        "winner": d.get("winner"),
        "files": {k: str(v) for k, v in paths.items()},
    }
    table = Table(title=f"Report of {name}: {d['verdict']}")
    table.add_column("file")
    table.add_column("path")
    for k, v in paths.items():
        table.add_row(k, str(v))
    ui.emit(payload, table)


# ------------------------------------------------------------------------------------ validate
@experiment.command()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--aa-tests", type=int, default=1_000, show_default=True)
@click.option("--ab-tests", type=int, default=1_000, show_default=True)
@click.option("--fdr-repetitions", type=int, default=1_000, show_default=True)
@click.option(
    "--users",
    "n_users",
    type=int,
    default=20_000,
    show_default=True,
    help="Users of the simulated shop.",
)
@click.option(
    "--details",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write every figure with targets and details as JSON here.",
)
@_json
def validate(
    seed: int,
    aa_tests: int,
    ab_tests: int,
    fdr_repetitions: int,
    n_users: int,
    details: str | None,
    json_mode: bool,
) -> None:
    """Check the statistics by simulation: A/A false positives, power, BH, CUPED, canary."""
    from pydantic import ValidationError as PydanticError

    from aisle.experiments import ValidationConfig, run_validation

    ui = UI(json_mode)
    try:
        cfg = ValidationConfig(
            seed=seed,
            aa_tests=aa_tests,
            ab_tests=ab_tests,
            fdr_repetitions=fdr_repetitions,
            n_users=n_users,
        )
    except PydanticError as exc:
        raise ConfigError(f"invalid validation settings: {exc}") from exc
    ui.info(f"Simulating a shop of {n_users:,} users (seed {seed}), then re-randomizing its users")
    result = run_validation(
        cfg, track=lambda items, desc, total: ui.track(items, desc, total=total)
    )
    if details:
        Path(details).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    ui.emit(dict(result.figures), _render_validation(result, seed, details))


def _render_validation(result: Any, seed: int, details: str | None) -> Any:
    """The validation figures with their targets and MET / MISSED."""
    verdict_all = "all targets MET" if result.all_met else "some targets MISSED"
    table = Table(title=f"Validation by simulation (seed {seed}): {verdict_all}")
    for c in ("figure", "measured", "target", "verdict"):
        table.add_column(c)
    for check in result.checks:
        verdict = (
            "-"
            if check.met is None
            else ("[green]MET[/green]" if check.met else "[red]MISSED[/red]")
        )
        table.add_row(
            check.key, "-" if check.value is None else f"{check.value:g}", check.target, verdict
        )
    secs = result.details.get("seconds", {})
    foot = Table.grid()
    foot.add_row(
        f"seconds: {', '.join(f'{k} {v:g}' for k, v in secs.items())}"
        + (f"; details in {details}" if details else "")
    )
    return Group(table, foot)
