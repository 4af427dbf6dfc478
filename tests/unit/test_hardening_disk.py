"""Issue 19 items 8 and 9: a full disk is "disk full: PATH", SIGTERM leaves no temp file (and a rerun
removes what a killed run left), serve answers 507 when its temp folder is full, and the small lines:
a FIFO as input, a float DICOM named by its input, a zero-size NIfTI, truncated uploads."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from oct_srgan import checkpoint, serving
from oct_srgan.errors import DiskFullError, ScanError
from oct_srgan.io import read_scan, readwrite, write_scan
from oct_srgan.pipelines.cli import app
from tests.helpers.serving import tiny_model, upload

FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full")


@contextlib.contextmanager
def onto_full_disk(target: Path, exclusive: bool = False) -> Iterator[Path]:
    """``atomic_path`` whose temporary file lies on a full disk."""
    yield FULL


def grey_png(path: Path, side: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)).save(path)
    return path


@needs_dev_full
def test_checkpoint_on_a_full_disk_says_disk_full_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "atomic_path", onto_full_disk)
    target = tmp_path / "ckpt" / "step_0000010.pt"
    with pytest.raises(DiskFullError) as caught:
        checkpoint.save_checkpoint(target, {"weights": torch.zeros(256, 256)})
    assert str(caught.value) == f"disk full: {target}"  # not torch's "[enforce fail ...] unexpected pos"


@needs_dev_full
def test_scan_written_to_a_full_disk_says_disk_full_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = read_scan(grey_png(tmp_path / "a.png"))
    monkeypatch.setattr(readwrite, "atomic_path", onto_full_disk)
    with pytest.raises(ScanError, match=f"^disk full: {tmp_path / 'out.png'}"):
        write_scan(scan, tmp_path / "out.png")


SIGTERM_MID_WRITE = """
import os, signal, sys
from oct_srgan.io import raster
from oct_srgan.pipelines.cli import main
def killed_mid_write(scan, target, derivation):
    target.write_bytes(b"half a scan")
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
raster._write_raster = killed_mid_write
sys.argv = ["oct-srgan", "enhance", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3], "--no-progress"]
main()
"""


def test_sigterm_while_enhance_writes_leaves_no_temp_file(tmp_path: Path, tiny_generator_file: Path) -> None:
    src, out = grey_png(tmp_path / "in" / "a.png"), tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE, str(src), str(out), str(tiny_generator_file)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert done.returncode == 143, done.stderr[-500:]
    assert "Traceback" not in done.stderr and list(out.iterdir()) == []


def test_a_rerun_removes_what_a_killed_run_left_but_not_a_live_runs_temp(tmp_path: Path, tiny_generator_file: Path) -> None:
    src, out = grey_png(tmp_path / "in" / "a.png"), tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = out / f".a_sr.p{dead.stdout.strip()}-x1y2.tmp.png"
    left.write_bytes(b"a killed run's partial file")
    live = out / f".b_sr.p{os.getpid()}-x1y2.tmp.png"
    live.write_bytes(b"a running writer's file")
    result = CliRunner().invoke(app, ["enhance", str(src), "-o", str(out), "--model", str(tiny_generator_file),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(["a_sr.png", live.name])


def test_serve_answers_507_when_its_temp_folder_is_full(tmp_path: Path) -> None:
    web_app = serving.create_app(tiny_model(tmp_path / "tiny.pt"), tile=0)

    def full(*args: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    with serving.background(web_app) as base:
        web_app.state.service.new_part_file = full
        status, body = upload(base, grey_png(tmp_path / "a.png").read_bytes())
    assert status == 507 and "disk is full" in body["error"]


def test_fifo_as_input_is_one_line_not_no_such_file(tmp_path: Path, tiny_generator_file: Path) -> None:
    fifo = tmp_path / "scan.png"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["enhance", str(fifo), "-o", str(tmp_path / "o"), "--model",
                                      str(tiny_generator_file), "--no-progress"])
    assert result.exit_code != 0 and "not a regular file" in result.output and "no such file" not in result.output
    assert "Traceback" not in result.output


def test_float_dicom_refusal_names_the_input_not_a_temp_file(tmp_path: Path) -> None:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 16, 16, 1, "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.linspace(0, 1, 256, dtype="<f4").tobytes()
    ds.save_as(tmp_path / "float.dcm", enforce_file_format=True)
    scan = read_scan(tmp_path / "float.dcm")
    with pytest.raises(ScanError) as caught:
        write_scan(scan, tmp_path / "out" / "float_sr.dcm")
    assert str(caught.value).startswith(str(tmp_path / "float.dcm")) and ".tmp" not in str(caught.value)


@pytest.mark.parametrize("name", ["empty.nii", "empty.nii.gz"])
def test_zero_size_nifti_is_one_line(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ScanError, match="empty file"):
        read_scan(tmp_path / name)


@pytest.mark.parametrize(("name", "shape"), [("zero_rows.nii.gz", (0, 10, 3)), ("zero_cols.nii", (10, 0))])
def test_nifti_declaring_an_empty_axis_is_one_line(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), tmp_path / name)
    dims = "x".join(map(str, shape))
    with pytest.raises(ScanError, match=rf"^{tmp_path / name}: no image data \(the header declares {dims} samples\)$"):
        read_scan(tmp_path / name)
