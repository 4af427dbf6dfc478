"""`oct-srgan evaluate` refusals: one of --data or --benchmark, a missing dataset in one line."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import evaluate


def test_data_or_benchmark_is_required(tiny_generator_file: Path) -> None:
    result = evaluate("--model", str(tiny_generator_file))
    assert result.exit_code == 2 and "exactly one of --data" in result.output


def test_missing_dataset_is_one_line(tiny_generator_file: Path, tmp_path: Path) -> None:
    result = evaluate("--model", str(tiny_generator_file), "--data", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: dataset folder not found (create it with 'oct-srgan preprocess ... --out {tmp_path / 'nope'}')"
    ]
