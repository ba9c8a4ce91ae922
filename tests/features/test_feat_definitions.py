"""Feature definitions: validation, names, fingerprints, versions in the registry, repositories."""

from __future__ import annotations

import doctest
from datetime import timedelta
from pathlib import Path

import pytest

import aisle.features
import aisle.features._definitions
import aisle.features._encoders
from aisle.errors import ConfigError, NotFoundError
from aisle.features import (
    ITEM,
    USER,
    USER_CATEGORY,
    Count,
    EmbeddingView,
    FeatureRepository,
    FeatureView,
    Mean,
    Min,
    Rate,
    Recency,
    SQLiteRegistry,
    Sum,
    Window,
    default_repository,
)


@pytest.mark.parametrize("module", [aisle.features, aisle.features._definitions, aisle.features._encoders])
def test_doctests(module: object) -> None:
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert attempted > 0 and failures == 0


def test_windows_parse_with_default_hops() -> None:
    assert Window.parse("1h").hop == timedelta(minutes=5)
    assert Window.parse("1d").hop == timedelta(hours=1)
    assert Window.parse("30d").hop == timedelta(days=1)
    w = Window.parse("7d/1h")
    assert (w.name, w.n_tiles) == ("7d", 168)
    with pytest.raises(ConfigError, match="whole number of hops"):
        Window.parse("90m/1h")


def test_feature_names_follow_definitions() -> None:
    view = FeatureView(
        name="v", entity=USER, windows=("1d", "7d"),
        aggregations=(
            Count("view"), Sum("price", "purchase", name="spend", windows=("7d",)),
            Mean("price"), Min("price", windows="7d"),
            Rate("ctr", numerator="click", denominator="view", windows=("7d",)), Recency("purchase"),
        ),
    )
    assert view.feature_names() == [
        "count_view_1d", "count_view_7d", "spend_7d", "mean_price_events_1d", "mean_price_events_7d",
        "min_price_events_7d", "min_price_events_7d_absent", "ctr_7d",
        "seconds_since_purchase", "seconds_since_purchase_absent",
    ]
    assert view.effective_ttl == timedelta(days=7)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Count("viewed"), "unknown event type"),
        (lambda: Sum("margin"), "not one of price, quantity, value"),
        (lambda: FeatureView(name="Bad", entity=USER, aggregations=(Count(),)), "lower_snake_case"),
        (lambda: FeatureView(name="v", entity=USER, aggregations=()), "no aggregations"),
        (lambda: FeatureView(name="v", entity=USER, windows=("1d",), aggregations=(Count(windows=("7d",)),)), "does not have"),
        (lambda: FeatureView(name="v", entity=USER, aggregations=(Count(missing="prior"),)), "only mean and rate"),
        (lambda: FeatureView(name="v", entity=USER, aggregations=(Count("view"), Count("view"))), "defined twice"),
        (lambda: aisle.features.Entity(name="shop", keys=("shop_id",)), "not among"),
    ],
)
def test_invalid_definitions_raise_config_errors(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]


def test_fingerprint_ignores_description_and_version() -> None:
    view = default_repository().view("item_stats")
    assert isinstance(view, FeatureView)
    same = view.model_copy(update={"description": "other words", "version": 9, "tags": {"team": "x"}})
    assert same.fingerprint == view.fingerprint
    changed = FeatureView(**{**view.model_dump(), "windows": ("1d", "7d"),
                             "aggregations": (Count("view"),)})
    assert changed.fingerprint != view.fingerprint


def test_registry_versions_keep_old_definitions(tmp_path: Path) -> None:
    registry = SQLiteRegistry(tmp_path / "registry.sqlite")
    v1 = FeatureView(name="clicks", entity=ITEM, windows=("1d",), aggregations=(Count("click"),))
    assert [r.status for r in registry.apply([v1])] == ["created"]
    assert [(r.status, r.version) for r in registry.apply([v1])] == [("unchanged", 1)]
    v2 = FeatureView(name="clicks", entity=ITEM, windows=("1d", "7d"), aggregations=(Count("click"),))
    assert [(r.status, r.version) for r in registry.apply([v2])] == [("new_version", 2)]
    latest = registry.get("clicks")
    old = registry.get("clicks", version=1)
    assert latest.version == 2 and latest.feature_names() == ["count_click_1d", "count_click_7d"]
    assert old.version == 1 and old.feature_names() == ["count_click_1d"] and old.fingerprint == v1.fingerprint
    assert [e.version for e in registry.versions("clicks")] == [1, 2]
    with pytest.raises(NotFoundError, match="no version 3"):
        registry.get("clicks", version=3)
    with pytest.raises(NotFoundError, match="not registered"):
        registry.get("nothing")


def test_registry_round_trips_every_view_kind(tmp_path: Path) -> None:
    registry = SQLiteRegistry(tmp_path / "r.sqlite")
    emb = EmbeddingView(name="item_vectors", entity=ITEM, dim=8)
    views = [*default_repository().views.values(), emb]
    registry.apply(views)
    for view in views:
        back = registry.get(view.name)
        assert back.fingerprint == view.fingerprint and back.version == 1
        assert back.feature_names() == view.feature_names()


def test_repository_from_python_file(tmp_path: Path) -> None:
    path = tmp_path / "repo.py"
    path.write_text(
        "from aisle.features import FeatureView, ITEM, Count, Rate\n"
        "item_ctr = FeatureView(name='item_ctr', entity=ITEM, windows=('7d',),\n"
        "    aggregations=(Count('view'), Rate('ctr', numerator='click', denominator='view')))\n"
        "helper = 3\n"
    )
    repo = FeatureRepository.from_path(path)
    assert list(repo.views) == ["item_ctr"] and "item" in repo.entities
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no FeatureView"):
        FeatureRepository.from_path(tmp_path / "empty.py")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="boom"):
        FeatureRepository.from_path(tmp_path / "broken.py")


def test_default_repository_shapes() -> None:
    repo = default_repository()
    assert len(repo.view("item_stats").feature_names()) == 20
    assert repo.view("user_category_affinity").entity == USER_CATEGORY
    with pytest.raises(NotFoundError, match="views: "):
        repo.view("nope")
