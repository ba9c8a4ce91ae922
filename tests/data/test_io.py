"""Readers: CSV/TSV/Parquet with mappings, sequences, pairs, fixed two-file splits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from aisle.data import Dataset, load_data, read_events, read_split
from aisle.errors import ConfigError, DataError, DatasetNotFoundError, ValidationError

ShopCsv = Callable[..., Path]


def test_csv_error_names_both_bad_rows(tmp_path: Path, shop_csv: ShopCsv) -> None:
    src = shop_csv(tmp_path / "shop.csv", bad={57: "timestamp", 90: "item_id"})
    with pytest.raises(ValidationError) as info:
        read_events(src)
    msg = str(info.value)
    assert "data rows 57, 90" in msg
    assert "data row 57, column 'timestamp'" in msg and "data row 90, column 'item_id'" in msg
    assert str(src) in msg


def test_csv_quarantine_loads_every_other_row(tmp_path: Path, shop_csv: ShopCsv) -> None:
    src = shop_csv(tmp_path / "shop.csv", bad={57: "timestamp", 90: "item_id"})
    q = tmp_path / "bad.csv"
    with pytest.warns(UserWarning, match="2 of 120 rows were quarantined"):
        events, report, _ = read_events(src, on_error="quarantine", quarantine_path=q)
    assert report.n_loaded == 118 and len(events) == 118
    assert set(events["event_id"]) == {f"e{i}" for i in range(1, 121)} - {"e57", "e90"}
    assert pd.read_csv(q)["_row"].tolist() == [57, 90]


def test_blank_line_is_reported_not_skipped(tmp_path: Path) -> None:
    src = tmp_path / "gap.csv"
    src.write_text("user_id,item_id,event_type,timestamp\nu1,a,view,2024-01-01\n\nu2,b,view,2024-01-02\n")
    with pytest.raises(ValidationError, match="data rows 2"):
        read_events(src)


def test_parquet_and_tsv_with_mapping(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": ["u1", "u2"], "sku": ["a", "b"], "kind": ["view", "click"],
                          "when": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)})
    frame.to_parquet(tmp_path / "e.parquet")
    frame.to_csv(tmp_path / "e.tsv", sep="\t", index=False)
    mapping = {"user_id": "uid", "item_id": "sku", "event_type": "kind", "timestamp": "when"}
    a, _, _ = read_events(tmp_path / "e.parquet", mapping=mapping)
    b, _, _ = read_events(tmp_path / "e.tsv", mapping=mapping)
    assert a["event_id"].tolist() == b["event_id"].tolist()
    assert a["event_type"].tolist() == ["view", "click"]


def test_sequences_format_keeps_order_and_flags_no_timestamps(tmp_path: Path) -> None:
    src = tmp_path / "seq.txt"
    src.write_text("1 5 3 9\n2 3 4\n")
    ds = load_data(src, format="sequences")
    assert not ds.has_timestamps
    user1 = ds.events[ds.events["user_id"] == "1"].sort_values("timestamp")
    assert user1["item_id"].tolist() == ["5", "3", "9"]
    assert ds.n_events == 5 and ds.n_users == 2


def test_pairs_format_with_rating_and_timestamp(tmp_path: Path) -> None:
    src = tmp_path / "u.data"
    src.write_text("1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n")
    ds = load_data(src)  # sniffed: no header -> pairs
    assert set(ds.events["event_type"]) == {"rating"}
    assert ds.events["value"].tolist() == [5.0, 3.0, 4.0]
    assert ds.has_timestamps


def test_pairs_without_timestamps(tmp_path: Path) -> None:
    src = tmp_path / "pairs.txt"
    src.write_text("a x\na y\nb x\n")
    ds = load_data(src, format="pairs")
    assert not ds.has_timestamps and set(ds.events["event_type"]) == {"click"}


def test_fixed_split_two_sequence_files(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("1 5 3\n2 3 4\n")
    (tmp_path / "test.txt").write_text("1 9\n2 7\n")
    ds = load_data(train=tmp_path / "train.txt", test=tmp_path / "test.txt", format="sequences")
    assert ds.fixed_split is not None
    train, test = ds.fixed_split
    assert len(train) == 4 and len(test) == 2
    # test events come after each user's train events
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    assert (first_test > last_train).all()
    assert len(ds.sources) == 2 and all(len(s.sha256) == 64 for s in ds.sources)


def test_fixed_split_csv(tmp_path: Path, shop_csv: ShopCsv) -> None:
    shop_csv(tmp_path / "a.csv", n=30)
    shop_csv(tmp_path / "b.csv", n=10)
    ds = read_split(tmp_path / "a.csv", tmp_path / "b.csv")
    assert ds.n_events == 40 and ds.events["event_id"].is_unique


def test_errors_for_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        read_events(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="format must be one of"):
        read_events(tmp_path / "x.csv", format="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="both --train and --test"):
        load_data(train=tmp_path / "a.csv")
    (tmp_path / "wide.txt").write_text("1 2 3 4 5\n")
    with pytest.raises(DataError, match="2 to 4 columns"):
        read_events(tmp_path / "wide.txt", format="pairs")


def test_dataset_save_load_roundtrip(tmp_path: Path, shop_csv: ShopCsv) -> None:
    src = shop_csv(tmp_path / "shop.csv", n=20)
    ds = load_data(src)
    ds.save(tmp_path / "saved")
    back = Dataset.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(back.events, ds.events)
    assert back.sources == ds.sources and back.name == ds.name
