"""Tuning: Optuna over a validation split carved from training, result readable by evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aisle.data import Dataset, conform_events
from aisle.errors import ConfigError
from aisle.evaluation._runner import load_model_configs
from aisle.evaluation._tune import tune
from aisle.models import MODELS


@pytest.fixture(scope="module")
def shop() -> Dataset:
    rng = np.random.default_rng(4)
    rows = []
    for u in range(150):
        group = np.arange(0, 25) if u % 2 == 0 else np.arange(25, 50)
        for i in rng.choice(group, size=10, replace=False):
            rows.append((f"u{u}", f"i{i}", "purchase",
                         pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 2000)))))
    events = conform_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]))[0]
    return Dataset(name="two-groups", events=events)


def test_tune_never_reports_worse_than_defaults_and_is_seeded(shop: Dataset, tmp_path: Path) -> None:
    seen: list[int] = []
    a = tune(shop, "ease", metric="ndcg@10", n_trials=4, seed=1, on_trial=lambda n, v, p: seen.append(n))
    b = tune(shop, "ease", metric="ndcg@10", n_trials=4, seed=1)
    assert seen == [0, 1, 2, 3, 4]
    assert a.best_value >= a.default_value
    assert a.best_config == b.best_config  # TPE is seeded
    assert len(a.trials) == 5 and a.split["name"] == "temporal"
    files = a.save(tmp_path)
    configs = load_model_configs([files["best_config"]])
    assert configs == {"ease": a.best_config}
    assert json.loads(Path(files["best_config"]).read_text())["metric"] == "ndcg@10"


def test_every_tunable_model_declares_fields_of_its_config() -> None:
    for name, cls in MODELS.items():
        fields = set(cls.Config.model_fields)
        assert set(cls.search_space) <= fields, name


def test_nothing_to_tune(shop: Dataset) -> None:
    with pytest.raises(ConfigError, match="no search space"):
        tune(shop, "random", n_trials=1)
