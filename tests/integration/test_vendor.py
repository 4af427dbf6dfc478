"""Scanner exports made from real Duke B-scans in the published layouts (Heidelberg .vol, Bioptigen
.oct): read through oct-srgan with their pixels and spacing, enhanced into derived DICOM OPT by the
CLI, accepted by preprocess, and their patient fields never logged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import tifffile

from oct_srgan.io import read_scan
from tests.helpers.cli import enhance, preprocess
from tests.helpers.serving import call, upload, wait_done
from tests.helpers.vendor_files import PATIENT_ID, write_bioptigen_oct, write_heidelberg_vol
from tests.paths import DUKE

# Duke Bioptigen sampling (axial, lateral, between B-scans) in mm.
SPACING = (0.0032, 0.00667, 0.05)


def _duke(subject: str, names: tuple[str, ...] = ("1", "2")) -> np.ndarray:
    """B-scans of one Duke subject, cropped to the retina so the CLI runs stay short: [N, 96, 160] uint8."""
    return np.stack([tifffile.imread(DUKE / subject / f"{name}.tif")[150:246, 300:460] for name in names])


@pytest.fixture(scope="module")
def vendor_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    root = tmp_path_factory.mktemp("vendor")
    pixels = _duke("subject14")
    vol = write_heidelberg_vol(root / "scan.vol", pixels, SPACING)
    h, w = pixels.shape[1:]
    oct_file = write_bioptigen_oct(root / "scan.oct", pixels.astype(np.uint16), depth_mm=SPACING[0] * h,
                                   length_mm=SPACING[1] * w, elevation_mm=SPACING[2])
    return vol, oct_file, pixels


def test_duke_pixels_and_spacing_come_back_from_both_layouts(vendor_files: tuple[Path, Path, np.ndarray]) -> None:
    vol, oct_file, pixels = vendor_files
    for path in (vol, oct_file):
        scan = read_scan(path)
        assert scan.bit_depth == 8
        np.testing.assert_array_equal(np.rint(scan.pixels * 255).astype(np.uint8), pixels)
        g = scan.geometry
        assert (g.row_spacing, g.col_spacing, g.slice_spacing) == pytest.approx(SPACING)


def test_enhance_cli_writes_derived_dicom_opt_at_a_quarter_of_the_spacing(
        vendor_files: tuple[Path, Path, np.ndarray], tmp_path: Path, tiny_generator_file: Path) -> None:
    vol, oct_file, pixels = vendor_files
    for path in (vol, oct_file):
        out = tmp_path / path.suffix[1:]
        result = enhance(str(path), "-o", str(out), "--model", str(tiny_generator_file))
        assert result.exit_code == 0, result.output
        ds = pydicom.dcmread(out / "scan_sr.dcm")
        assert ds.Modality == "OPT" and ds.ImageType[0] == "DERIVED"
        assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (2, 4 * pixels.shape[1], 4 * pixels.shape[2])
        back = read_scan(out / "scan_sr.dcm")
        assert back.geometry.row_spacing == pytest.approx(SPACING[0] / 4)
        assert back.geometry.col_spacing == pytest.approx(SPACING[1] / 4)
        assert back.geometry.slice_spacing == pytest.approx(SPACING[2])


def test_enhance_cli_writes_nifti_when_the_output_name_asks(vendor_files: tuple[Path, Path, np.ndarray],
                                                            tmp_path: Path, tiny_generator_file: Path) -> None:
    result = enhance(str(vendor_files[0]), "-o", str(tmp_path / "out.nii.gz"), "--model", str(tiny_generator_file))
    assert result.exit_code == 0, result.output
    back = read_scan(tmp_path / "out.nii.gz")
    assert back.source_format == "nifti" and back.pixels.shape == (2, 4 * 96, 4 * 160)
    assert back.geometry.col_spacing == pytest.approx(SPACING[1] / 4)


def test_preprocess_takes_vendor_files_and_logs_no_patient_field(tmp_path: Path, mlflow_store: Path) -> None:
    src = tmp_path / "in"
    for subject in ("subject03", "subject09"):
        (src / subject).mkdir(parents=True)
        write_heidelberg_vol(src / subject / "scan.vol", _duke(subject), SPACING)
        write_bioptigen_oct(src / subject / "scan2.oct", _duke(subject, ("3",)).astype(np.uint16), 0.3, 1.0, 0.0)
    result = preprocess(str(src), "--out", str(tmp_path / "ds"), "--val-fraction", "0", "--test-fraction", "0.5")
    assert result.exit_code == 0, result.output
    m = pd.read_csv(tmp_path / "ds" / "manifest.csv")
    assert sorted(m["source_format"].unique()) == ["bioptigen_oct", "heidelberg_vol"] and len(m) == 6
    assert not (tmp_path / "ds" / "skipped.csv").exists() or pd.read_csv(tmp_path / "ds" / "skipped.csv").empty
    needle = PATIENT_ID.encode()
    for path in (p for p in mlflow_store.rglob("*") if p.is_file() and p.name != "mlflow.db"):
        assert needle not in path.read_bytes(), path
    db = sqlite3.connect(mlflow_store / "mlflow.db")
    dump = "\n".join(db.iterdump()).encode()
    db.close()
    assert needle not in dump and b"n_bscans" in dump


def test_serve_enhances_an_uploaded_vol_into_a_dicom_download(vendor_files: tuple[Path, Path, np.ndarray],
                                                              server, tmp_path: Path) -> None:
    base, _ = server
    status, scan = upload(base, vendor_files[0].read_bytes())
    assert status == 200 and (scan["format"], scan["suffix"], scan["n_bscans"]) == ("heidelberg_vol", ".dcm", 2)
    assert call(base, "POST", f"/api/scans/{scan['id']}/process?mode=enhance")[0] == 202
    assert wait_done(base, scan["id"])["state"] == "done"
    status, headers, body = call(base, "GET", f"/api/scans/{scan['id']}/download")
    assert status == 200 and headers["content-type"] == "application/dicom"
    assert headers["content-disposition"].endswith('_sr.dcm"')
    (tmp_path / "down.dcm").write_bytes(body)
    ds = pydicom.dcmread(tmp_path / "down.dcm")
    assert ds.Modality == "OPT" and (ds.Rows, ds.Columns) == (4 * 96, 4 * 160) and ds.PatientID == PATIENT_ID
