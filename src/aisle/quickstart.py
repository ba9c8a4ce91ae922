"""The quickstart: the whole offline loop on the simulator (or a public dataset) in one call.

profile -> implicit feedback -> split without look-ahead -> popularity and EASE -> evaluation
(NDCG@10, Recall@20, coverage) -> artifacts in the workspace.

The split is :func:`aisle.evaluation._runner.make_split`'s default for the data, the same one
``aisle evaluate`` uses: next item of held-out sessions for anonymous sessions, the published
split when one comes with the data, a global temporal split (new users folded in from half of
their own later events) when timestamps are real, else leave-last-one per user. Models and reports go to ``<workspace>/runs/quickstart-<time>/`` and the path of the
latest run is written to ``<workspace>/quickstart.json`` so later commands can find it.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from aisle import __version__
from aisle.data import Dataset
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.evaluation import evaluate
from aisle.evaluation._runner import make_split
from aisle.models import make_model
from aisle.settings import get_settings

__all__ = ["QuickstartResult", "render_quickstart", "run_quickstart"]

QUICKSTART_METRICS = ("ndcg@10", "recall@20", "coverage@20")


@dataclass
class QuickstartResult:
    """What the quickstart did and measured."""

    dataset: str
    n_users: int
    n_items: int
    n_events: int
    strategy: dict[str, Any]
    split: dict[str, Any]
    feedback: dict[str, Any]
    models: dict[str, dict[str, Any]]
    run_dir: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_events": self.n_events,
            "strategy": self.strategy,
            "split": self.split,
            "feedback": self.feedback,
            "models": self.models,
            "run_dir": self.run_dir,
            "seconds": round(self.seconds, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _load(dataset: str | None, n_events: int, seed: int) -> Dataset:
    if dataset is None:
        from aisle.simulate import simulate

        return simulate(n_events, seed=seed).dataset
    from aisle.datasets import load_dataset

    return load_dataset(dataset)


def run_quickstart(
    dataset: str | None = None,
    *,
    n_events: int = 150_000,
    seed: int = 0,
    workspace: Path | None = None,
    ui: Any = None,
    ease_l2: float = 200.0,
) -> QuickstartResult:
    """Run the offline loop end to end and write its artifacts.

    Args:
        dataset: a public dataset name, or ``None`` for the simulator.
        n_events: approximate simulated events (simulator only).
        seed: the simulator's seed.
        workspace: where artifacts go (default: the settings' workspace).
        ui: an :class:`aisle.cli._ui.UI` for progress; silent when ``None``.
        ease_l2: EASE's ridge penalty.
    """
    from aisle.cli._ui import UI
    from aisle.profile import profile

    ui = ui or UI(quiet=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        t = time.perf_counter()
        with ui.step(name):
            yield
        timings[name] = time.perf_counter() - t

    with timed("load data" if dataset else f"simulate a shop (~{n_events:,} events)"):
        ds = _load(dataset, n_events, seed)
    with timed("profile"):
        prof = profile(ds).to_dict()
    with timed("split without look-ahead"):
        split = make_split(ds)
    cfg = FeedbackConfig()
    with timed("build implicit feedback"):
        train = build_interactions(split.train, cfg)
    results: dict[str, dict[str, Any]] = {}
    ws = workspace or get_settings().workspace
    run_dir = ws / "runs" / f"quickstart-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{ds.name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, params in (("pop", {}), ("ease", {"l2": ease_l2})):
        model = make_model(name, **params)
        with timed(f"train {name}"):
            model.fit(train)
        with timed(f"evaluate {name}"):
            ev = evaluate(model, split.test, ks=(10, 20), history=split.fold_in)
        model.save(run_dir / "models" / name)
        results[name] = {
            "params": model.config.model_dump(mode="json"),
            "metrics": {m: ev.metrics[m] for m in QUICKSTART_METRICS},
            "all_metrics": ev.metrics,
            "counts": ev.counts,
            "protocol": ev.protocol,
            "artifact": str(run_dir / "models" / name),
        }
    strategy = prof.get("strategy", {})
    result = QuickstartResult(
        dataset=ds.name,
        n_users=int(prof["n_users"]),
        n_items=int(prof["n_items"]),
        n_events=int(prof["n_events"]),
        strategy={"name": strategy.get("name"), "reasons": strategy.get("reasons", [])},
        split={"name": split.name, **{k: str(v) for k, v in split.params.items()},
               "train_events": len(split.train), "test_events": len(split.test)},
        feedback=cfg.model_dump(mode="json"),
        models=results,
        run_dir=str(run_dir),
        seconds=time.perf_counter() - started,
        timings=timings,
    )
    lineage = {
        "aisle_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "seed": seed,
        "sources": [s.__dict__ for s in ds.sources],
    }
    (run_dir / "profile.json").write_text(json.dumps(prof, indent=2, default=str))
    (run_dir / "quickstart.json").write_text(json.dumps({**result.to_dict(), "lineage": lineage}, indent=2, default=str))
    (ws / "quickstart.json").write_text(json.dumps({"run_dir": str(run_dir), "dataset": ds.name}, indent=2))
    from aisle.registry import register_run  # so that `aisle serve` here serves the EASE model

    register_run(ws, run_dir, "ease", train_events=split.train, catalog=ds.items, users=ds.users,
                 params=results["ease"]["params"], metrics=results["ease"]["metrics"])
    return result


def render_quickstart(result: QuickstartResult) -> Group:
    """The short table the quickstart prints."""
    table = Table(title=f"aisle quickstart on {result.dataset} ({result.split['name']} split, full ranking)")
    table.add_column("model")
    for m in QUICKSTART_METRICS:
        table.add_column(m, justify="right")
    for name, res in result.models.items():
        table.add_row(name, *(f"{res['metrics'][m]:.4f}" for m in QUICKSTART_METRICS))
    strategy = result.strategy.get("name")
    reasons = result.strategy.get("reasons") or []
    lines: list[Text | Table] = [
        Text(f"{result.n_events:,} events, {result.n_users:,} users, {result.n_items:,} items; "
             f"recommended strategy: {strategy}"),
    ]
    if reasons:
        lines.append(Text(f"  because: {reasons[0]}", style="dim"))
    lines += [table, Text(f"Artifacts: {result.run_dir}  ({result.seconds:.1f} s in all)")]
    return Group(*lines)
