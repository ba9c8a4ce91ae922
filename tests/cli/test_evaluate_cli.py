"""`aisle evaluate`: JSON shape, reports, configs, fixed splits in the sequences format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisle.cli import main


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


@pytest.fixture
def sequences(tmp_path: Path) -> tuple[Path, Path]:
    """A published-style split: one user per line; two taste groups."""
    train, test = [], []
    for u in range(80):
        items = list(range(0, 15)) if u % 2 == 0 else list(range(15, 30))
        seq = [items[(u * 7 + j) % 15] for j in range(8)]
        train.append(" ".join([f"u{u}", *(f"i{i}" for i in seq)]))
        test.append(f"u{u} i{items[(u * 7 + 8) % 15]}")
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    return tmp_path / "train.txt", tmp_path / "test.txt"


def test_fixed_split_sequences_json(sequences: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    train, test = sequences
    out = run_json(["evaluate", "--train", str(train), "--test", str(test), "--format", "sequences",
                    "--models", "ease,ials", "--metrics", "recall@20,ndcg@20", "--out", str(tmp_path / "r"),
                    "--json"], capsys)
    assert [r["model"] for r in out["results"]] == ["ease", "ials"]
    for r in out["results"]:
        assert list(r["metrics"]) == ["recall@20", "ndcg@20"]  # keys exactly as asked
        assert r["fit_seconds"] >= 0 and r["predict_seconds"] >= 0
    proto = out["protocol"]
    assert proto["split"]["name"] == "fixed" and len(proto["dataset_sha256"]) == 64
    assert proto["candidates"].startswith("full ranking") and proto["code_version"]
    assert (tmp_path / "r" / "report.md").read_text().startswith("# Evaluation")
    assert (tmp_path / "r" / "metric_vs_k.png").stat().st_size > 1000
    # the two taste groups are learnable: EASE finds the held-out item often
    assert out["results"][0]["metrics"]["recall@20"] > 0.5


def test_config_files_and_tune_output(sequences: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    train, test = sequences
    (tmp_path / "ease.json").write_text(json.dumps({"l2": 5.0}))
    (tmp_path / "tuned.json").write_text(json.dumps({"model": "pop", "config": {"by": "weight"}}))
    out = run_json(["evaluate", "--train", str(train), "--test", str(test), "--format", "sequences",
                    "--models", "ease,pop", "--config", f"ease={tmp_path / 'ease.json'}",
                    "--config", str(tmp_path / "tuned.json"), "--out", str(tmp_path / "r"), "--json"], capsys)
    params = {r["model"]: r["params"] for r in out["results"]}
    assert params["ease"]["l2"] == 5.0 and params["pop"]["by"] == "weight"


def test_bad_metric_and_model_names(sequences: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = sequences
    base = ["evaluate", "--train", str(train), "--test", str(test), "--format", "sequences"]
    with pytest.raises(SystemExit) as info:
        main([*base, "--metrics", "ndgc@10"])
    assert info.value.code == 2 and "unknown metric 'ndgc'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*base, "--models", "ease,ialss"])
    assert info.value.code == 2 and "Did you mean 'ials'" in capsys.readouterr().err


def test_sampled_protocol_baseline_and_segments(sequences: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    train, test = sequences
    out = run_json(["evaluate", "--train", str(train), "--test", str(test), "--format", "sequences",
                    "--models", "ease", "--baseline", "pop", "--protocol", "sampled", "--negatives", "10",
                    "--segments", "--metrics", "ndcg@10", "--out", str(tmp_path / "r"), "--json"], capsys)
    assert out["protocol"]["candidates"].startswith("sampled")
    (cmp,) = out["comparisons"]
    assert cmp["model"] == "ease" and cmp["baseline"] == "pop" and cmp["diff"]["ci_low"] <= cmp["diff"]["mean"]
    assert {s["segmentation"] for s in out["segments"]} >= {"activity", "item-pop"}
