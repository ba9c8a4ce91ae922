"""The ablation runner: switch off one component or feature group at a time and measure the change.

An :class:`Ablation` changes the model config (a component: ``reg_scaling="none"``,
``weighting="none"`` ...), the feedback rules (``weights={"view": 0}`` ...) or drops whole event
types from training (a feature group). Each variant is fitted on the same training events and
evaluated on the same test set with the *base* relevance rules, so only the training side
changes; the change against the base comes with a paired bootstrap CI and p-values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.errors import ConfigError
from aisle.evaluation._evaluate import EvaluationResult, evaluate
from aisle.evaluation._stats import paired_comparison
from aisle.models._registry import make_model

__all__ = ["Ablation", "AblationRow", "run_ablation"]


@dataclass(frozen=True)
class Ablation:
    """One variant: what is switched off.

    Attributes:
        name: a label for the report.
        model_params: config overrides of the model.
        feedback: overrides of the feedback rules (merged into the base rules; ``weights`` is
            merged key by key).
        drop_event_types: event types removed from the training events.
    """

    name: str
    model_params: dict[str, Any] = field(default_factory=dict)
    feedback: dict[str, Any] = field(default_factory=dict)
    drop_event_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class AblationRow:
    """The base or one variant, with its change against the base."""

    name: str
    metric: str
    value: float
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    relative_change: float | None
    t_pvalue: float | None
    fit_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _merge_feedback(base: FeedbackConfig, overrides: dict[str, Any]) -> FeedbackConfig:
    data = base.model_dump()
    for key, value in overrides.items():
        if key == "weights":
            data["weights"] = {**data["weights"], **value}
        else:
            data[key] = value
    return FeedbackConfig(**data)


def run_ablation(
    model: str,
    train_events: pd.DataFrame,
    test_events: pd.DataFrame,
    ablations: Sequence[Ablation],
    *,
    model_params: dict[str, Any] | None = None,
    feedback: FeedbackConfig | None = None,
    metric: str = "ndcg@10",
    history: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[AblationRow]:
    """Fit the base model and every variant; report the metric and its change with a CI.

    Args:
        model: short model name (``"ials"``, ``"itemknn"`` ...).
        train_events: training events.
        test_events: test events.
        ablations: the variants.
        model_params: the base model's config.
        feedback: the base feedback rules (also the relevance rules of every evaluation).
        metric: the metric compared, e.g. ``"ndcg@10"``.
        history: fold-in events for test users unknown to training.
        n_boot: bootstrap resamples for the CI of the difference.
        seed: bootstrap seed.
    """
    if not ablations:
        raise ConfigError("give at least one ablation")
    base_cfg = feedback or FeedbackConfig()
    base_params = dict(model_params or {})
    k = int(metric.partition("@")[2] or 10)

    def fit_eval(params: dict[str, Any], rules: FeedbackConfig, drop: Sequence[str]) -> tuple[EvaluationResult, float]:
        events = train_events[~train_events["event_type"].isin(list(drop))] if drop else train_events
        started = time.perf_counter()
        fitted = make_model(model, **params).fit(build_interactions(events, rules), events=events)
        seconds = time.perf_counter() - started
        res = evaluate(fitted, test_events, ks=(k,), relevance=base_cfg, history=history)
        return res, seconds

    base, base_fit = fit_eval(base_params, base_cfg, ())
    rows = [AblationRow("base", metric, base.metrics[metric], None, None, None, None, None, base_fit)]
    for ab in ablations:
        res, fit_s = fit_eval({**base_params, **ab.model_params}, _merge_feedback(base_cfg, ab.feedback),
                              ab.drop_event_types)
        cmp = paired_comparison(base.users, base.per_user[metric], res.users, res.per_user[metric],
                                metric=metric, n_boot=n_boot, seed=seed)
        rows.append(AblationRow(ab.name, metric, res.metrics[metric], cmp.diff.mean, cmp.diff.low, cmp.diff.high,
                                cmp.relative_change, cmp.t_pvalue, fit_s))
    return rows
