"""The training-serving skew validator: silent when both sides agree, loud on injected skew."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aisle.features import (
    FeatureView,
    MemorySource,
    OfflineStore,
    OnlineStore,
    SkewError,
    SQLiteOnline,
    StreamProcessor,
    default_repository,
    validate_skew,
)

VIEW = default_repository().view("item_stats")
assert isinstance(VIEW, FeatureView)


def _streamed(offline: OfflineStore, catalog: dict[str, str], path: Path, utc_offset: timedelta | None) -> OnlineStore:
    online = OnlineStore(SQLiteOnline(path), utc_offset=utc_offset)
    online.put_catalog(catalog)
    source = MemorySource(batch_entries=20)
    events = offline.events()
    for start in range(0, len(events), 500):
        source.put(events.iloc[start : start + 500])
    StreamProcessor([VIEW], online).run(source, until_idle=0.1)
    return online


def test_no_skew_when_both_sides_use_utc(offline: OfflineStore, catalog_map: dict[str, str], tmp_path: Path) -> None:
    online = _streamed(offline, catalog_map, tmp_path / "utc.sqlite", None)
    report = validate_skew(VIEW, online, offline, sample=150, seed=1)
    assert report.ok and report.max_rate == 0.0 and report.n_entities == 150
    assert [f.name for f in report.features] == VIEW.feature_names()


def test_windows_in_local_time_online_are_caught(offline: OfflineStore, catalog_map: dict[str, str], tmp_path: Path) -> None:
    # The classic bug: the stream job aligns its tiles in local time (UTC+5:30), the batch in UTC.
    online = _streamed(offline, catalog_map, tmp_path / "local.sqlite", timedelta(hours=5, minutes=30))
    with pytest.raises(SkewError, match="training-serving skew") as info:
        validate_skew(VIEW, online, offline, sample=150, seed=1, threshold=0.01)
    (report,) = info.value.reports
    failing = {f.name for f in report.failed}
    # 5-minute tiles (the 1 h window) line up in both clocks; hour and day tiles do not.
    assert "count_view_1h" not in failing
    assert {"count_view_30d", "count_view_7d"} <= failing
    assert report.failed[0].examples and report.failed[0].examples[0]["online"] != report.failed[0].examples[0]["offline"]
    assert "count_view_30d" in str(info.value) and report.to_dict()["ok"] is False
    # Without raising, the same report comes back for inspection.
    again = validate_skew(VIEW, online, offline, sample=150, seed=1, raise_on_failure=False)
    assert not again.ok and again.max_rate > 0.01
