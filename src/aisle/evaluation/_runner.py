"""Evaluate several models on one dataset and split: the engine behind ``aisle evaluate``.

Everything a reader needs to trust a number is recorded in :class:`Protocol`: the dataset and
its checksum, the split and its parameters, the seed, the candidate set (full ranking or
sampled) and the code version.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from aisle import __version__
from aisle.data._dataset import Dataset
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.data._splits import Split, leave_last_k, split_by_name, temporal_split
from aisle.errors import ConfigError
from aisle.evaluation._evaluate import EvaluationResult, evaluate
from aisle.evaluation._metrics import ACCURACY_METRICS, BEYOND_ACCURACY_METRICS
from aisle.models._base import Recommender
from aisle.models._registry import get_model_class

__all__ = [
    "EvaluationRun",
    "ModelResult",
    "Protocol",
    "dataset_checksum",
    "make_split",
    "parse_metrics",
    "run_evaluation",
]

SPLIT_CHOICES = ("temporal", "leave-last", "user-holdout", "random", "fixed", "session-next-item")
PLOT_KS = (1, 5, 10, 20, 50, 100)
#: Temporal splits give users first seen after the cutoff half of their own events as history.
NEW_USER_FOLD_IN = 0.5


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """``"ndcg@10,recall@20"`` -> validated names; a typo lists the valid metric names."""
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    if not names:
        raise ConfigError("no metrics given; e.g. --metrics ndcg@10,recall@20")
    valid = (*ACCURACY_METRICS, *BEYOND_ACCURACY_METRICS, "ild")
    for name in names:
        base, sep, k = name.partition("@")
        if not sep or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"metric {name!r} needs a cut-off, e.g. {base or 'ndcg'}@10")
        if base not in valid:
            raise ConfigError(f"unknown metric {base!r} in {name!r}; valid: {', '.join(valid)}")
    return names


def dataset_checksum(ds: Dataset) -> str:
    """sha256 over the source files' checksums, or over the event table when there are no files."""
    h = hashlib.sha256()
    if ds.sources:
        for s in sorted(ds.sources, key=lambda s: s.path):
            h.update(s.sha256.encode())
    else:
        h.update(pd.util.hash_pandas_object(ds.events, index=False).to_numpy().tobytes())
    return h.hexdigest()


def code_version() -> str:
    """aisle's version, plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def make_split(ds: Dataset, name: str | None = None, *, seed: int = 0, test_fraction: float = 0.2,
               validation: bool = False) -> Split:
    """The split for a dataset: ``name`` or the natural default (fixed, session, time, order)."""
    if name is not None and name not in SPLIT_CHOICES:
        raise ConfigError(f"unknown split {name!r}; valid: {', '.join(SPLIT_CHOICES)}")
    vf = 0.1 if validation else None
    if name is None:
        if ds.anonymous_sessions:
            name = "session-next-item"
        elif ds.fixed_split is not None:
            name = "fixed"
        else:
            name = "temporal" if ds.has_timestamps else "leave-last"
    if name in ("temporal",) and not ds.has_timestamps:
        raise ConfigError(f"dataset {ds.name!r} has no real timestamps (order only); use --split leave-last")
    if name == "session-next-item":
        if ds.fixed_split is not None:
            train, test = ds.fixed_split
        else:
            outer = temporal_split(ds.events, test_fraction=test_fraction)
            train, test = outer.train, outer.test
        inner = leave_last_k(test, k=1, by="sequence")
        val = val_fold_in = None
        if validation:  # the same protocol inside the training period
            tv = temporal_split(train, test_fraction=0.1)
            val_inner = leave_last_k(tv.test, k=1, by="sequence")
            train, val, val_fold_in = tv.train, val_inner.test, val_inner.train
        return Split(train=train, test=inner.test, fold_in=inner.train, validation=val,
                     validation_fold_in=val_fold_in, name=name,
                     params={"target": "last event of each held-out session"})
    if name == "fixed":
        if ds.fixed_split is None:
            raise ConfigError(f"dataset {ds.name!r} has no fixed split; give --train and --test files")
        return split_by_name("fixed", ds.fixed_split[0], test=ds.fixed_split[1], validation_fraction=vf)
    if name == "leave-last":
        return split_by_name("leave-last", ds.events, k=1, by="time" if ds.has_timestamps else "sequence",
                             validation_k=1 if validation else 0)
    if name == "user-holdout":
        return split_by_name("user-holdout", ds.events, test_user_fraction=test_fraction, seed=seed,
                             validation_user_fraction=0.1 if validation else None)
    if name == "random":
        return split_by_name("random", ds.events, test_fraction=test_fraction, seed=seed, validation_fraction=vf)
    return split_by_name("temporal", ds.events, test_fraction=test_fraction, validation_fraction=vf,
                         new_user_fold_in=NEW_USER_FOLD_IN)


@dataclass
class Protocol:
    """How the numbers were obtained."""

    dataset: str
    dataset_sha256: str
    split: dict[str, Any]
    seed: int
    candidates: str
    relevance: dict[str, Any]
    code_version: str
    n_items: int
    n_test_users: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelResult:
    """One model's figures."""

    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float
    predict_seconds: float
    counts: dict[str, int]
    curve: dict[str, dict[int, float]] = field(default_factory=dict)
    evaluation: EvaluationResult | None = field(default=None, repr=False)
    fitted: Recommender | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params, "metrics": self.metrics,
                "fit_seconds": round(self.fit_seconds, 4), "predict_seconds": round(self.predict_seconds, 4),
                "counts": self.counts, "curve": {m: {str(k): v for k, v in c.items()} for m, c in self.curve.items()}}


@dataclass
class EvaluationRun:
    """All models on one protocol."""

    protocol: Protocol
    results: list[ModelResult]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol.to_dict(), "results": [r.to_dict() for r in self.results], **self.extra}


def load_model_configs(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Model configs from files: ``MODEL=FILE`` or a file keyed by model name, or one written by
    ``aisle tune`` (``{"model": ..., "config": {...}}``). JSON, TOML or YAML."""
    out: dict[str, dict[str, Any]] = {}
    for spec in paths:
        model, sep, path = spec.partition("=")
        if not sep:
            model, path = "", spec
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        text = p.read_text()
        if p.suffix in (".toml",):
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a model config must be a mapping")
        if "model" in data and "config" in data:  # written by aisle tune
            out[str(data["model"])] = dict(data["config"])
        elif model:
            out[model] = dict(data)
        else:
            for name, cfg in data.items():
                get_model_class(str(name))
                out[str(name)] = dict(cfg)
    return out


def run_evaluation(
    ds: Dataset,
    models: Sequence[str],
    metrics: Sequence[str],
    *,
    split: Split | None = None,
    split_name: str | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    feedback: FeedbackConfig | None = None,
    protocol: Literal["full", "sampled"] = "full",
    n_negatives: int = 100,
    seed: int = 0,
    curve_ks: Sequence[int] = PLOT_KS,
    progress: Any = None,
) -> EvaluationRun:
    """Fit and evaluate each model on the same split.

    Args:
        ds: the dataset.
        models: short model names.
        metrics: metric names with cut-offs (``ndcg@10`` ...).
        split: a ready split (else ``split_name`` or the dataset's default).
        split_name: see :func:`make_split`.
        configs: model name -> config overrides.
        feedback: feedback rules for training and relevance.
        protocol: ``full`` or ``sampled``.
        n_negatives: negatives per user (sampled protocol).
        seed: seed for splits and sampling.
        curve_ks: the cut-offs of the metric-vs-k curve.
        progress: a callable ``progress(description)`` returning a context manager (the CLI's
            ``UI.step``), or ``None``.
    """
    names = parse_metrics(metrics)
    classes = {m: get_model_class(m) for m in models}
    configs = dict(configs or {})
    unknown = sorted(set(configs) - set(classes))
    if unknown:
        raise ConfigError(f"configs given for models not being evaluated: {unknown}")
    cfg = feedback or FeedbackConfig()
    split = split or make_split(ds, split_name, seed=seed)
    step = progress or (lambda _d: nullcontext())
    with step("build implicit feedback"):
        train = build_interactions(split.train, cfg)
    asked_ks = sorted({int(m.partition("@")[2]) for m in names})
    all_ks = sorted({*asked_ks, *(k for k in curve_ks if k <= max(max(asked_ks), 20))})
    bases = sorted({m.partition("@")[0] for m in names})
    results: list[ModelResult] = []
    n_test_users = 0
    for name in models:
        model = classes[name](**configs.get(name, {}))
        with step(f"fit {name}"):
            started = time.perf_counter()
            model.fit(train, catalog=ds.items, users=ds.users, events=split.train)
            fit_s = time.perf_counter() - started
        with step(f"evaluate {name}"):
            ev = evaluate(model, split.test, ks=all_ks, history=split.fold_in, protocol=protocol,
                          n_negatives=n_negatives, seed=seed,
                          catalog=ds.items if "ild" in bases and ds.items is not None else None)
        missing = [m for m in names if m not in ev.metrics]
        if missing:
            raise ConfigError(f"metrics {missing} are not available under the {ev.protocol} protocol"
                              + (" (ild needs a catalog)" if any(m.startswith("ild") for m in missing) else ""))
        curve = {b: {k: ev.metrics[f"{b}@{k}"] for k in all_ks if f"{b}@{k}" in ev.metrics} for b in bases}
        n_test_users = max(n_test_users, ev.counts["users_evaluated"])
        results.append(ModelResult(name, model.config.model_dump(mode="json"), {m: ev.metrics[m] for m in names},
                                   fit_s, ev.seconds, ev.counts, curve, ev, model))
    candidates = (f"full ranking over {len(train.items)} training items" if protocol == "full"
                  else f"sampled: each user's relevant items among {n_negatives} seeded negatives (seed {seed})")
    proto = Protocol(
        dataset=ds.name, dataset_sha256=dataset_checksum(ds),
        split={"name": split.name, **{k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                                      for k, v in split.params.items()},
               "train_events": len(split.train), "test_events": len(split.test)},
        seed=seed, candidates=candidates, relevance=cfg.model_dump(mode="json"), code_version=code_version(),
        n_items=len(train.items), n_test_users=n_test_users,
    )
    return EvaluationRun(proto, results)

