"""The `aisle` command: version, JSON-only stdout, exit codes, validation and quarantine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from aisle import __version__
from aisle.cli import main

ShopCsv = Callable[..., Path]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["profile", "--no-such-flag"], capsys)
    assert code == 2 and "no-such-flag" in err


def test_validate_fails_naming_both_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str], shop_csv: ShopCsv) -> None:
    src = shop_csv(tmp_path / "shop.csv", bad={57: "timestamp", 90: "item_id"})
    code, out, err = run(["validate", "--data", str(src)], capsys)
    assert code == 3  # data error
    assert out == ""
    flat = " ".join(err.split())
    assert "data rows 57, 90" in flat and "column 'timestamp'" in flat and "column 'item_id'" in flat


def test_validate_quarantine_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], shop_csv: ShopCsv) -> None:
    src = shop_csv(tmp_path / "shop.csv", bad={57: "timestamp", 90: "item_id"})
    q = tmp_path / "quarantine.csv"
    code, out, _ = run(["validate", "--data", str(src), "--on-error", "quarantine", "--quarantine", str(q),
                        "--out", str(tmp_path / "valid"), "--json"], capsys)
    assert code == 0
    payload = json.loads(out)  # stdout is exactly one JSON document
    (report,) = payload["sources"]
    assert report["n_rows"] == 120 and report["n_loaded"] == 118 and report["n_quarantined"] == 2
    assert pd.read_csv(q)["_row"].tolist() == [57, 90]
    assert len(pd.read_parquet(tmp_path / "valid" / "events.parquet")) == 118


def test_data_source_must_be_single(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate"], capsys)
    assert code == 2 and "exactly one data source" in err


def test_missing_file_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate", "--data", str(tmp_path / "absent.csv")], capsys)
    assert code == 4 and "does not exist" in err


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "aisle"
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and __version__ in done.stdout
