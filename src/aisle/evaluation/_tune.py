"""Hyperparameter tuning with Optuna over a validation split carved from training data.

The split is made with ``validation=True`` (see :func:`aisle.evaluation._runner.make_split`): the
validation part comes from the training side without look-ahead (the latest training period for
time-based splits), so the test set is never looked at while tuning. Each trial fits on the
training part and is scored on the validation part; the best config is written as
``{"model": ..., "config": {...}, ...}``, which ``aisle evaluate --config FILE`` reads back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aisle.data._dataset import Dataset
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.errors import ConfigError, DataError, require
from aisle.evaluation._evaluate import evaluate
from aisle.evaluation._runner import dataset_checksum, make_split, parse_metrics
from aisle.models._base import CategoricalParam, FloatParam, IntParam, SearchSpace
from aisle.models._registry import get_model_class

__all__ = ["TuneResult", "tune"]


@dataclass
class TuneResult:
    """The outcome of a tuning run."""

    model: str
    metric: str
    best_value: float
    best_config: dict[str, Any]
    default_value: float
    trials: pd.DataFrame
    split: dict[str, Any]
    dataset: str
    dataset_sha256: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "config": self.best_config,
            "metric": self.metric,
            "best_value": self.best_value,
            "default_value": self.default_value,
            "n_trials": len(self.trials),
            "split": self.split,
            "dataset": self.dataset,
            "dataset_sha256": self.dataset_sha256,
            "seconds": round(self.seconds, 2),
        }

    def save(self, directory: Path) -> dict[str, str]:
        """``best_config.json`` (readable by ``aisle evaluate --config``) and ``trials.csv``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "best_config.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
        self.trials.to_csv(directory / "trials.csv", index=False)
        return {"best_config": str(directory / "best_config.json"), "trials": str(directory / "trials.csv")}


def _suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, FloatParam):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, IntParam):
            params[name] = trial.suggest_int(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, CategoricalParam):
            params[name] = trial.suggest_categorical(name, list(spec.choices))
    return params


def tune(
    ds: Dataset,
    model: str,
    *,
    metric: str = "ndcg@10",
    n_trials: int = 20,
    timeout: float | None = None,
    split_name: str | None = None,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    feedback: FeedbackConfig | None = None,
    on_trial: Callable[[int, float, dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Search the model's declared space on a validation split; the default config is trial 0.

    Args:
        ds: the dataset.
        model: short model name.
        metric: the metric to maximise, e.g. ``"ndcg@10"``.
        n_trials: trials after the default-config trial.
        timeout: stop starting new trials after this many seconds.
        split_name: the outer split whose training side is carved (see ``make_split``).
        seed: the sampler's seed (TPE) and the split's.
        fixed: config values held fixed (not searched).
        feedback: feedback rules.
        on_trial: called after each trial with (number, value, params), e.g. for progress.
    """
    optuna: Any = require("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (name,) = parse_metrics([metric])
    klass = get_model_class(model)
    space = {k: v for k, v in klass.search_space.items() if k not in (fixed or {})}
    if not space:
        raise ConfigError(f"model '{model}' declares no search space; nothing to tune")
    k = int(name.partition("@")[2])
    cfg = feedback or FeedbackConfig()
    split = make_split(ds, split_name, seed=seed, validation=True)
    if split.validation is None or len(split.validation) == 0:
        raise DataError(f"the {split.name} split left no validation data to tune on")
    train = build_interactions(split.train, cfg)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []

    def score(params: dict[str, Any]) -> float:
        fitted = klass(**{**(fixed or {}), **params}).fit(train, catalog=ds.items, users=ds.users, events=split.train)
        res = evaluate(fitted, split.validation, ks=(k,), history=split.validation_fold_in)  # type: ignore[arg-type]
        return float(res.metrics[name])

    default_value = score({})
    rows.append({"trial": 0, "value": default_value, "params": "defaults", "seconds": time.perf_counter() - started})
    if on_trial:
        on_trial(0, default_value, {})

    def objective(trial: Any) -> float:
        t0 = time.perf_counter()
        params = _suggest(trial, space)
        value = score(params)
        rows.append({"trial": trial.number + 1, "value": value, "params": json.dumps(params), "seconds": time.perf_counter() - t0})
        if on_trial:
            on_trial(trial.number + 1, value, params)
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    best_params = dict(study.best_params) if study.best_trial.value is not None else {}
    if study.best_value >= default_value:
        best_value, best_config = float(study.best_value), {**(fixed or {}), **best_params}
    else:  # the defaults won: say so by returning them
        best_value, best_config = default_value, dict(fixed or {})
    full = klass.Config(**best_config).model_dump(mode="json")
    return TuneResult(model, name, best_value, full, default_value, pd.DataFrame(rows),
                      {"name": split.name, **{kk: str(v) for kk, v in split.params.items()},
                       "train_events": len(split.train), "validation_events": len(split.validation)},
                      ds.name, dataset_checksum(ds), time.perf_counter() - started)
