"""Issue 9, options and small lines: bad option values, SIGTERM, exposed hosts and NIfTI files without pixels.

Each case ends in one ``error:`` (or ``warning:``) line that names the option or file, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from oct_srgan.pipelines.cli import app
from tests.paths import REPO


def _invalid(option: str, why: str) -> str:
    return f"error: Invalid value for '{option}': {why}"


BAD_OPTIONS = [
    (["serve", "--max-upload-mb", "nan"], _invalid("--max-upload-mb", "nan is not a positive finite number")),
    (["serve", "--max-upload-mb", "inf"], _invalid("--max-upload-mb", "inf is not a positive finite number")),
    (["serve", "--max-upload-mb", "0"], _invalid("--max-upload-mb", "0.0 is not a positive finite number")),
    (["serve", "--port", "99999"], _invalid("--port' / '-p", "Input should be less than or equal to 65535")),
    (["ui", "--port", "99999"], _invalid("--port' / '-p", "Input should be less than or equal to 65535")),
    (["ui", "--port", "0"], _invalid("--port' / '-p", "Input should be greater than or equal to 1")),
    (["serve", "--max-pixels", "-1"], _invalid("--max-pixels", "Input should be greater than or equal to 0")),
    (["enhance", "x.png", "--max-pixels", "-1"], _invalid("--max-pixels", "Input should be greater than or equal to 0")),
    (["serve", "--tile", "-1"], _invalid("--tile", "Input should be greater than or equal to 0")),
    (["enhance", "x.png", "--batch-size", "0"], _invalid("--batch-size", "Input should be greater than or equal to 1")),
    (["enhance", "x.png", "--tile", "-5"], _invalid("--tile", "Input should be greater than or equal to 0")),
    (["enhance", "x.png", "--tile", "64", "--overlap", "999"], _invalid("--overlap", "999 is over half of --tile 64 (32)")),
    (["enhance", "x.png", "--overlap", "999", "--tile", "64"], _invalid("--overlap", "999 is over half of --tile 64 (32)")),
    (["enhance", "x.png", "--overlap", "999"],
     _invalid("--overlap", "999 is over 256, the most with automatic tiles (or give --tile)")),
    (["evaluate", "--tile", "-5"], _invalid("--tile", "Input should be greater than or equal to 0")),
    (["evaluate", "--overlap", "999"], _invalid("--overlap", "999 is over half of --tile 128 (64)")),
    (["evaluate", "--limit", "-1"], _invalid("--limit", "Input should be greater than or equal to 0")),
]


@pytest.mark.parametrize(("args", "expected"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_values_are_one_line_before_any_work(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.output.strip().splitlines() == [expected], result.output
    assert "Traceback" not in result.output


def test_a_tile_under_twice_the_default_overlap_caps_the_overlap_instead_of_refusing() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--tile", "48"])  # parsed: the next check is the inputs
    assert result.output.strip().splitlines() == [
        "error: give exactly one of --data DIR, --benchmark set5|set14|PATH or --scans DIR_OR_FILES"]


def test_sigterm_while_the_command_line_is_parsed_exits_143_in_one_line() -> None:
    script = ("import os, signal, time\nfrom oct_srgan.pipelines.common import exit_on_sigterm\n"
              "exit_on_sigterm()\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 143 and done.stderr == "error: terminated (SIGTERM)\n", done.stderr


@pytest.mark.parametrize("command", ["serve", "ui"])
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_a_host_beyond_loopback_gets_one_warning_line(command: str, host: str, tiny_generator_file: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from oct_srgan import serving
    from oct_srgan.pipelines import ui
    from oct_srgan.processes import ChildResult

    listen = serving.listen
    monkeypatch.setattr(serving, "listen", lambda _host, _port: listen("127.0.0.1", 0))  # never bind the network
    monkeypatch.setattr(serving, "run", lambda web_app, sock: sock.close())
    monkeypatch.setattr(ui, "run_child", lambda cmd, env: ChildResult(code=0))
    args = ["serve", "--model", str(tiny_generator_file), "--device", "cpu"] if command == "serve" else ["ui"]
    result = CliRunner().invoke(app, [*args, "--host", host])
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert result.exit_code == 0, result.output
    what, risk = (("the review page", "upload scans and download the results") if command == "serve" else
                  ("the MLflow UI", "read and delete the runs"))
    expected = (f"warning: --host {host}: {what} is reachable from the network without authentication; "
                f"anyone who can reach this address can {risk}")
    assert warnings == ([expected] if host == "0.0.0.0" else [])


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("empty.nii", b"", "empty file"), ("empty.nii.gz", b"", "empty file"),
    ("no_bscans.nii.gz", "64x64x0", "no image data (the header declares 64x64x0 samples)"),
])
def test_a_nifti_without_pixels_is_one_line_naming_it(tmp_path: Path, tiny_generator_file: Path, name: str,
                                                      data: bytes | str, reason: str) -> None:
    path = tmp_path / name
    if isinstance(data, str):
        nib.Nifti1Image(np.zeros([int(n) for n in data.split("x")], np.uint8), np.eye(4)).to_filename(path)
    else:
        path.write_bytes(data)
    result = CliRunner().invoke(app, ["enhance", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_generator_file),
                                      "--no-progress"])
    assert result.exit_code == 1 and f"skipped: {path}: {reason}" in result.output.splitlines(), result.output
    assert "Traceback" not in result.output and "zero-size" not in result.output


def test_a_dicom_declaring_zero_frames_is_one_line_naming_it(tmp_path: Path, tiny_generator_file: Path) -> None:
    import pydicom

    from tests.paths import FORMATS

    ds = pydicom.dcmread(FORMATS / "oct_bscan16_s14.dcm")
    ds.NumberOfFrames = 0
    path = tmp_path / "zero_frames.dcm"
    ds.save_as(path)
    result = CliRunner().invoke(app, ["enhance", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_generator_file),
                                      "--no-progress"])
    expected = f"skipped: {path}: no image data (the header declares 0x{ds.Rows}x{ds.Columns}x1 samples)"
    assert result.exit_code == 1 and expected in result.output.splitlines(), result.output
    assert "reshape" not in result.output and "Traceback" not in result.output
