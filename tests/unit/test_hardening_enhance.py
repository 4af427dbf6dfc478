"""Issue 9, enhance: exclusive outputs, failed writes fail, pixel limits, bad options in one line."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oct_srgan.io import raster as scan_io
from oct_srgan.inference import enhance_files
from oct_srgan.pipelines.cli import app
from tests.helpers.scans import bomb_png


def grey_png(path: Path, side: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)).save(path)
    return path


def test_output_created_meanwhile_by_another_run_is_not_clobbered(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = grey_png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    target = out / "a_sr.png"

    def other_run_writes_first(path: Path, done: int, total: int) -> None:
        if done == 1:  # while this run computes (the steps after it count writing)
            target.write_bytes(b"the other run's result")

    report = enhance_files([src], out, str(tiny_generator_file), tile=None, progress=other_run_writes_first)
    assert report.written == []
    assert "already exists" in report.skipped[0][1]
    assert target.read_bytes() == b"the other run's result"
    assert sorted(p.name for p in out.iterdir()) == ["a_sr.png"]


def test_full_disk_fails_in_one_line_and_leaves_nothing(tmp_path: Path, tiny_generator_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = grey_png(tmp_path / "in" / "a.png")
    grey_png(tmp_path / "in" / "b.png")
    out = tmp_path / "out"

    def disk_full(scan, target: Path, derivation) -> None:  # half a file, then ENOSPC, as a full disk does
        target.write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scan_io, "_write_raster", disk_full)
    result = CliRunner().invoke(app, ["enhance", str(src.parent), "-o", str(out), "--model", str(tiny_generator_file),
                                      "--no-progress"])
    assert result.exit_code != 0
    errors = [line for line in result.output.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in result.output
    assert "Traceback" not in result.output and list(out.iterdir()) == []


def test_bomb_png_is_refused_before_decoding(tmp_path: Path, tiny_generator_file: Path) -> None:
    bomb = tmp_path / "in" / "bomb.png"
    bomb.parent.mkdir()
    bomb.write_bytes(bomb_png(12000, 12000))
    result = CliRunner().invoke(app, ["enhance", str(bomb), "-o", str(tmp_path / "out"), "--model",
                                      str(tiny_generator_file), "--no-progress"])
    assert result.exit_code == 1
    assert "12000x12000" in result.output and "limit of 67.1 M" in result.output
    small = CliRunner().invoke(app, ["enhance", str(grey_png(tmp_path / "s" / "s.png")), "-o", str(tmp_path / "o2"),
                                     "--model", str(tiny_generator_file), "--no-progress", "--max-pixels", "100"])
    assert small.exit_code == 1 and "over the limit of 0.0 M" in small.output
