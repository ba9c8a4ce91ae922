"""The dataset registry, name resolution, error messages and loaders on small files (no real data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aisle.datasets import (
    DATASETS,
    DatasetStatus,
    get_dataset_info,
    list_datasets,
    load_bandit_log,
    load_dataset,
    load_sampled_negatives,
)
from aisle.datasets._loaders import _LOADERS
from aisle.errors import ConfigError, DatasetNotFoundError, DataWarning


def test_every_dataset_has_a_loader_and_a_well_formed_entry() -> None:
    assert set(_LOADERS) == set(DATASETS)
    for name, info in DATASETS.items():
        assert info.name == name and info.kind in ("ratings", "sequences", "sessions", "bandit")
        assert info.description and info.license and info.download.origin
        paths = [f.path for f in info.files]
        assert len(paths) == len(set(paths))
        for f in info.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256), (name, f.path)
        for _, path in info.download.members:
            info.file(path)  # every downloaded member is a registered file
        if info.download.supported:
            assert {p for _, p in info.download.members} == set(paths)


def test_names_resolve_from_aliases_and_folders() -> None:
    assert get_dataset_info("ml-100k").name == "movielens-100k"
    assert get_dataset_info("ML_100K").name == "movielens-100k"
    assert get_dataset_info("yoochoose-clicks-100k-sample").name == "yoochoose-sample"
    assert get_dataset_info("diginetica-sample-srgnn").name == "diginetica-sample"
    assert get_dataset_info("open-bandit-dataset-small").name == "obd"
    with pytest.raises(ConfigError, match="s3rec-beauty, s3rec-lastfm"):
        get_dataset_info("seq-s3rec")  # a folder holding two datasets is ambiguous


def test_unknown_name_lists_valid_names_and_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("movielens-100")
    message = str(err.value)
    assert "unknown dataset 'movielens-100'" in message
    assert "Did you mean 'movielens-100k'?" in message
    for name in DATASETS:
        assert name in message
    assert isinstance(err.value, ValueError)
    with pytest.raises(ConfigError, match="Valid names") as err:
        load_dataset("zzzz")
    assert "Did you mean" not in str(err.value)


def test_missing_folder_names_the_folder_the_setting_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISLE_DATA_HOME", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("movielens-100k")
    message = str(err.value)
    assert str(tmp_path / "movielens-100k") in message
    assert f"AISLE_DATA_HOME={tmp_path}" in message
    assert "aisle datasets download movielens-100k" in message
    assert isinstance(err.value, FileNotFoundError)

    monkeypatch.delenv("AISLE_DATA_HOME")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("diginetica-sample", data_home=tmp_path)
    message = str(err.value)
    assert "AISLE_DATA_HOME is not set" in message
    assert "cannot download" in message and "CRIPAC-DIG/SR-GNN" in message


def test_incomplete_folder_names_the_missing_files(tmp_path: Path) -> None:
    (tmp_path / "movielens-100k").mkdir()
    (tmp_path / "movielens-100k" / "u.data").write_text("1\t1\t5\t881250949\n")
    with pytest.raises(DatasetNotFoundError, match=r"incomplete: u\.item, u\.genre, u\.user missing"):
        load_dataset("movielens-100k", data_home=tmp_path)


def test_bad_split_and_options_fail_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid splits: one of u1, u2, u3, u4, u5, ua, ub"):
        load_dataset("movielens-100k", split="u9", data_home=tmp_path)
    with pytest.raises(ConfigError, match="no published split"):
        load_dataset("diginetica-sample", split="u1", data_home=tmp_path)
    with pytest.raises(ConfigError, match="valid options: campaign, policy"):
        load_dataset("obd", colour="red", data_home=tmp_path)
    with pytest.raises(ConfigError, match="campaign='kids' is not one of all, men, women"):
        load_dataset("obd", campaign="kids", data_home=tmp_path)
    with pytest.raises(ConfigError, match="policy must be one of random, bts"):
        load_bandit_log("all", "greedy", data_home=tmp_path)
    with pytest.raises(ConfigError, match="no sampled negatives"):
        load_sampled_negatives("s3rec-beauty", data_home=tmp_path)


def test_list_datasets_on_an_empty_home(tmp_path: Path) -> None:
    statuses = list_datasets(tmp_path, verify=True)
    assert [s.name for s in statuses] == list(DATASETS)
    for s in statuses:
        assert isinstance(s, DatasetStatus)
        assert not s.present and s.bytes_on_disk == 0 and s.verified is None
        assert s.folder == tmp_path / DATASETS[s.name].folder
        assert s.to_dict()["checksums"] == "not checked"


def test_list_datasets_detects_a_changed_file(tmp_path: Path) -> None:
    folder = tmp_path / "diginetica-sample-srgnn"
    folder.mkdir()
    (folder / "sample_train-item-views.csv").write_text("session_id;user_id;item_id;timeframe;eventdate\n")
    status = {s.name: s for s in list_datasets(tmp_path, verify=True)}["diginetica-sample"]
    assert status.present and status.verified is False
    assert status.mismatched == ("sample_train-item-views.csv",)
    assert status.files[0].size_ok is False and status.files[0].sha256_ok is False
    assert status.to_dict()["checksums"] == "mismatch"


def _write_diginetica(home: Path) -> None:
    folder = home / "diginetica-sample-srgnn"
    folder.mkdir(parents=True)
    (folder / "sample_train-item-views.csv").write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n"
        "2;7;9654;900000;2016-05-31\n"
        "2;7;32118;950000;2016-06-01\n"  # the session crossed midnight
        "2;7;32119;1000;2016-05-31\n"
    )


def test_a_changed_file_loads_with_a_warning(tmp_path: Path) -> None:
    _write_diginetica(tmp_path)
    with pytest.warns(DataWarning, match="differs from the registered diginetica-sample file"):
        ds = load_dataset("diginetica", data_home=tmp_path)
    assert ds.name == "diginetica-sample" and ds.anonymous_sessions
    assert ds.n_events == 5 and ds.n_users == 2
    assert (ds.events["user_id"] == ds.events["session_id"]).all()
    assert set(ds.events["event_type"]) == {"view"}
    # within a session the order is timeframe's, even across midnight
    s2 = ds.events[ds.events["session_id"] == "2"]
    assert s2["item_id"].tolist() == ["32119", "9654", "32118"]
    assert ds.meta["n_rows_with_user_id"] == 3 and ds.meta["n_sessions_with_user_id"] == 1
    assert ds.sources[0].path.endswith("sample_train-item-views.csv") and ds.sources[0].bytes > 0
