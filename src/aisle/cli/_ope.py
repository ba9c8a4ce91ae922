"""``aisle ope``: off-policy evaluation on the Open Bandit Dataset (see docs/ope.md).

The command is registered on the ``aisle`` group with ``cli.add_command(ope)``. Errors are aisle
errors (``ConfigError`` for a bad option or estimator name), so the entry point maps them to exit
codes; with ``--json`` stdout carries exactly one JSON document.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from aisle.cli._ui import UI
from aisle.errors import ConfigError

__all__ = ["ope"]


def _fmt(x: float | None, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(lo: float | None, hi: float | None, digits: int = 5) -> str:
    return "-" if lo is None or hi is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _run_table(run: dict[str, Any], level: float) -> Group:
    """One run as a rich table plus diagnostic lines."""
    pct = f"{level:.0%}"
    title = (
        f"OBD {run['campaign']}: value of {run['evaluation']} estimated from {run['behavior']} logs "
        f"(on-policy {_fmt(run['on_policy_value'])} {_ci(run['on_policy_ci_low'], run['on_policy_ci_high'])})"
    )
    table = Table(title=title)
    for col in ("estimator", "estimate", f"{pct} CI", "on-policy", "rel. error", f"rel. error {pct} CI", "ESS"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    has_mc = any(e.get("mc_standard_error") is not None for e in run["estimators"].values())
    if has_mc:
        table.add_column("MC s.e.", justify="right")
    for name, e in run["estimators"].items():
        row = [name, _fmt(e["estimate"]), _ci(e["ci_low"], e["ci_high"]), _fmt(e["on_policy_value"]),
               _fmt(e["relative_error"], 3), _ci(e["relative_error_ci_low"], e["relative_error_ci_high"], 3),
               f"{e['ess']:,.0f}" if e["ess"] is not None else "-"]
        if has_mc:
            row.append(_fmt(e.get("mc_standard_error"), 6))
        table.add_row(*row)
    d = run["diagnostics"]
    w = d["weights"]
    lines = [
        f"propensities {d['pscore_min']:.3g}..{d['pscore_max']:.3g}; the log shows {d['logged_pairs']} of "
        f"{d['total_pairs']} (item, slot) pairs; target mass on unshown pairs {d['unsupported_mass']:.2%}",
        f"importance weights: mean {w['mean']:.3f}, median {w['p50']:.3g}, p99 {w['p99']:.3g}, max {w['max']:.3g}, "
        f"top 1% of rows carry {w['top1pct_share']:.1%}; ESS {w['ess']:,.0f} ({w['ess_ratio']:.1%})",
    ]
    lines += [f"warning: {m}" for m in d["warnings"]]
    return Group(table, *(Text(line, style="dim" if not line.startswith("warning") else "yellow") for line in lines))


def _summary_table(runs: Sequence[dict[str, Any]], level: float) -> Table:
    """Every campaign and direction in one relative-error table."""
    pct = f"{level:.0%}"
    table = Table(title=f"OBD relative estimation error |V̂ − V_on| / V_on ({pct} bootstrap CIs)")
    for col in ("campaign", "direction", "estimator", "estimate", f"{pct} CI", "on-policy",
                "rel. error", f"rel. error {pct} CI", "ESS"):
        table.add_column(col, justify="left" if col in ("campaign", "direction", "estimator") else "right")
    for i, run in enumerate(runs):
        direction = f"{run['behavior']} → {run['evaluation']}"
        for j, (name, e) in enumerate(run["estimators"].items()):
            table.add_row(
                run["campaign"] if j == 0 else "", direction if j == 0 else "", name,
                _fmt(e["estimate"]), _ci(e["ci_low"], e["ci_high"]), _fmt(e["on_policy_value"]),
                _fmt(e["relative_error"], 3), _ci(e["relative_error_ci_low"], e["relative_error_ci_high"], 3),
                f"{e['ess']:,.0f}" if e["ess"] is not None else "-",
                end_section=j == len(run["estimators"]) - 1 and i < len(runs) - 1,
            )
    return table


@click.command("ope")
@click.option("--dataset", default="obd", show_default=True,
              help="Logged bandit data: 'obd' (the Open Bandit Dataset sample under AISLE_DATA_HOME).")
@click.option("--campaign", default="all", show_default=True, help="OBD campaign: all, men or women.")
@click.option("--behavior", default="random", show_default=True,
              help="The logging policy whose log is used: random or bts.")
@click.option("--evaluation", default="bts", show_default=True,
              help="The policy whose value is estimated: bts or random.")
@click.option("--estimators", default=None,
              help="Comma-separated estimators (default: all): dm, ips, clipped-ips, snips, dr, switch-dr, dr-os.")
@click.option("--all-campaigns", is_flag=True,
              help="Run every campaign in both directions: the full relative-error table.")
@click.option("--n-bootstrap", type=int, default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--ci-level", type=float, default=0.95, show_default=True, help="Interval coverage.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the BTS simulation and the bootstraps.")
@click.option("--bts-draws", type=int, default=None,
              help="Monte Carlo draws for the BTS distribution (default 20,000; obp used 100,000).")
@click.option("--clip", type=float, default=100.0, show_default=True, help="Weight cap of clipped-ips.")
@click.option("--switch-tau", type=float, default=100.0, show_default=True,
              help="Weight threshold of switch-dr.")
@click.option("--shrinkage", type=float, default=10_000.0, show_default=True, help="λ of dr-os.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, nothing else.")
def ope(
    dataset: str,
    campaign: str,
    behavior: str,
    evaluation: str,
    estimators: str | None,
    all_campaigns: bool,
    n_bootstrap: int,
    ci_level: float,
    seed: int,
    bts_draws: int | None,
    clip: float,
    switch_tau: float,
    shrinkage: float,
    json_mode: bool,
) -> None:
    """Off-policy evaluation: estimate one policy's value from another policy's logs.

    On the Open Bandit Dataset, estimates the Bernoulli-TS policy's click rate from the
    uniform-random logs (or the reverse) with each estimator, and compares it with the
    policy's on-policy value in its own log. Example:

        aisle ope --campaign all --behavior random --evaluation bts --estimators dm,ips,snips,dr --json
    """
    from aisle.evaluation.ope import (
        DEFAULT_BTS_DRAWS,
        DEFAULT_ESTIMATORS,
        UnsupportedActionWarning,
        compare_on_obd,
        make_config,
        obd_relative_error_table,
        parse_estimators,
    )

    if dataset != "obd":
        raise ConfigError(
            f"unknown dataset {dataset!r} for ope; valid datasets: obd. For your own impression log use "
            "the Python API (aisle.evaluation.ope.LoggedFeedback.from_impressions)"
        )
    names = parse_estimators(estimators) if estimators is not None else DEFAULT_ESTIMATORS
    cfg = make_config(n_bootstrap=n_bootstrap, ci_level=ci_level, seed=seed, clip=clip,
                      switch_tau=switch_tau, shrinkage=shrinkage)
    draws = DEFAULT_BTS_DRAWS if bts_draws is None else bts_draws
    ui = UI(json_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if all_campaigns:
            with ui.step("Estimating every campaign in both directions"):
                results = obd_relative_error_table(estimators=names, config=cfg, bts_draws=draws)
            runs = [r.to_dict() for r in results]
            payload: dict[str, Any] = {
                "dataset": "obd",
                "command": _command_line(names, cfg.model_dump(), draws, all_campaigns=True),
                "runs": runs,
            }
            render: Any = Group(_summary_table(runs, ci_level),
                                *(Text(f"warning ({r['campaign']}, {r['behavior']} → {r['evaluation']}): {m}",
                                       style="yellow") for r in runs for m in r["diagnostics"]["warnings"]))
        else:
            with ui.step(f"Estimating {evaluation} from {behavior} logs ({campaign})"):
                result = compare_on_obd(campaign, behavior, evaluation, names, config=cfg, bts_draws=draws)
            payload = result.to_dict()
            payload["command"] = _command_line(names, cfg.model_dump(), draws, campaign=campaign,
                                               behavior=behavior, evaluation=evaluation)
            render = _run_table(payload, ci_level)
    if not json_mode:
        for w in caught:
            # the support warning is part of the rendered diagnostics already
            if not issubclass(w.category, DeprecationWarning | UnsupportedActionWarning):
                ui.err.print(f"[yellow]{w.category.__name__}[/yellow]: {w.message}", highlight=False)
    ui.emit(payload, render)


def _command_line(names: Sequence[str], cfg: dict[str, Any], draws: int, *, all_campaigns: bool = False,
                  campaign: str = "all", behavior: str = "random", evaluation: str = "bts") -> str:
    """The command that reproduces this output."""
    scope = "--all-campaigns" if all_campaigns else (
        f"--campaign {campaign} --behavior {behavior} --evaluation {evaluation}")
    return (
        f"aisle ope --dataset obd {scope} --estimators {','.join(names)} --n-bootstrap {cfg['n_bootstrap']} "
        f"--ci-level {cfg['ci_level']} --seed {cfg['seed']} --bts-draws {draws} --clip {cfg['clip']:g} "
        f"--switch-tau {cfg['switch_tau']:g} --shrinkage {cfg['shrinkage']:g}"
    )
