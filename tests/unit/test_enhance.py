"""`oct-srgan enhance` on small images the tests make: existing outputs, tiling, bad input and options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from oct_srgan.pipelines.cli import app
from tests.helpers.cli import enhance, one_error_line


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "in_sr.png").write_bytes(b"mine")
    result = enhance(str(src), "-o", str(out), "--model", str(tiny_generator_file))
    assert result.exit_code == 1
    assert "already exists" in result.output and (out / "in_sr.png").read_bytes() == b"mine"
    result = enhance(str(src), "-o", str(out), "--model", str(tiny_generator_file), "--overwrite", "--compare")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "in_sr.png").size == (240, 160)
    assert Image.open(out / "in_sr_compare.png").mode == "RGBA"


def test_image_smaller_than_tile_matches_untiled(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = tmp_path / "small.png"
    Image.fromarray((np.random.default_rng(1).random((20, 30)) * 65535).astype(np.uint16)).save(src)
    a, b = tmp_path / "a", tmp_path / "b"
    assert enhance(str(src), "-o", str(a), "--model", str(tiny_generator_file), "--tile", "64").exit_code == 0
    assert enhance(str(src), "-o", str(b), "--model", str(tiny_generator_file), "--tile", "0").exit_code == 0
    x = np.asarray(Image.open(a / "small_sr.png")).astype(int)
    y = np.asarray(Image.open(b / "small_sr.png")).astype(int)
    assert x.shape == (80, 120) and np.abs(x - y).max() <= 1


def test_corrupt_input_only_exits_nonzero_with_one_line(tmp_path: Path, tiny_generator_file: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICMnot really")
    result = enhance(str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert any(line.startswith("skipped: ") and "bad.dcm" in line for line in result.output.splitlines())
    assert list((tmp_path / "out").iterdir()) == []


def test_unknown_precision_is_refused_in_one_line_with_the_choices(tmp_path: Path) -> None:
    scan = tmp_path / "b.png"
    scan.write_bytes(b"not read")
    result = CliRunner().invoke(app, ["enhance", str(scan), "--precision", "fp16"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: Invalid value for '--precision'")
    assert "'fp16' is not one of 'auto', 'fp32', 'bf16'" in lines[0]


def test_version_option_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"oct-srgan {version('oct-srgan')}"


def test_suffix_names_the_outputs_in_a_folder(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    result = enhance(str(src), "-o", str(out), "--suffix", "_x4", "--model", str(tiny_generator_file), "--compare")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["in_x4.png", "in_x4_compare.png"]
    line = one_error_line(enhance(str(src), "-o", str(out), "--suffix", "a/b", "--model", str(tiny_generator_file)))
    assert "--suffix" in line


def test_output_never_replaces_its_input(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(src)
    before = src.read_bytes()
    result = enhance(str(src), "-o", str(src), "--model", str(tiny_generator_file), "--overwrite")
    assert result.exit_code == 1 and "would replace the input" in result.output
    assert src.read_bytes() == before


def test_existing_output_message_names_the_real_flag(tmp_path: Path, tiny_generator_file: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(src)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in_sr.png").write_bytes(b"mine")
    result = enhance(str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file))
    assert "use --overwrite to replace it" in result.output


def test_text_file_named_dcm_is_skipped_in_one_line_without_library_advice(tmp_path: Path,
                                                                           tiny_generator_file: Path) -> None:
    bad = tmp_path / "x.dcm"
    bad.write_text("just some text\n")
    result = enhance(str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file))
    assert result.exit_code == 1 and "Traceback" not in result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1 and "x.dcm" in skipped[0] and "not a DICOM file" in skipped[0]
    assert "force" not in result.output.lower()


def test_progress_counts_writing_after_the_bscans(tmp_path: Path, tiny_generator_file: Path) -> None:
    import tifffile

    from oct_srgan.inference import enhance_files

    src = tmp_path / "vol.tif"
    tifffile.imwrite(src, (np.random.default_rng(1).random((3, 20, 30)) * 255).astype(np.uint8), photometric="minisblack")
    target = tmp_path / "out" / "vol_sr.tif"
    starts: list[tuple[int, str]] = []
    calls: list[tuple[int, int, bool]] = []
    enhance_files([src], tmp_path / "out", str(tiny_generator_file), tile=0,
                  on_start=lambda path, total, unit: starts.append((total, unit)),
                  progress=lambda path, done, total: calls.append((done, total, target.exists())))
    assert starts == [(6, "B-scan")]  # 3 B-scans computed + 3 written
    assert calls == [(1, 6, False), (2, 6, False), (3, 6, False), (6, 6, True)]
