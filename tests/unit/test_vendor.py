"""Scanner exports (Heidelberg .vol, Bioptigen .oct) built by the readers' own structs from small
made-up B-scans: read back with their spacing, written as derived DICOM OPT or the format -o names,
damaged files and a missing extra answered in one line, patient fields kept out of what is logged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from oct_srgan.errors import ScanError
from oct_srgan.io import detect_format, find_scans, read_scan, scan_meta, write_scan
from tests.helpers.cli import enhance
from tests.helpers.vendor_files import PATIENT_ID, write_bioptigen_oct, write_heidelberg_vol, write_topcon_fds

VOL_SPACING = (0.0039, 0.0113, 0.12)  # axial, lateral, between B-scans (mm)


def _bscans(dtype: type, top: int, shape: tuple[int, int, int] = (3, 24, 40)) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, top + 1, shape).astype(dtype)


@pytest.fixture
def vol(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pixels = _bscans(np.uint8, 255)
    return write_heidelberg_vol(tmp_path / "scan.vol", pixels, VOL_SPACING), pixels


@pytest.fixture
def bioptigen(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pixels = _bscans(np.uint16, 4095)
    return write_bioptigen_oct(tmp_path / "scan.oct", pixels, depth_mm=1.2, length_mm=4.0, elevation_mm=0.5), pixels


def test_heidelberg_vol_reads_its_bscans_and_spacing(vol: tuple[Path, np.ndarray]) -> None:
    path, pixels = vol
    scan = read_scan(path)
    assert scan.source_format == "heidelberg_vol" and scan.bit_depth == 8
    np.testing.assert_array_equal(np.rint(scan.pixels * 255).astype(np.uint8), pixels)
    g = scan.geometry
    assert (g.row_spacing, g.col_spacing, g.slice_spacing) == VOL_SPACING


def test_bioptigen_oct_reads_columns_as_ascans_and_spacing_from_scan_size(bioptigen: tuple[Path, np.ndarray]) -> None:
    path, pixels = bioptigen
    scan = read_scan(path)
    assert scan.source_format == "bioptigen_oct" and scan.pixels.shape == (3, 24, 40) and scan.bit_depth == 12
    np.testing.assert_array_equal(np.rint(scan.pixels * 4095).astype(np.uint16), pixels)
    g = scan.geometry
    assert g.row_spacing == pytest.approx(1.2 / 24) and g.col_spacing == pytest.approx(4.0 / 40)
    assert g.slice_spacing == pytest.approx(0.5 / 2)


def test_topcon_fds_reads_bscans_spacing_and_laterality_despite_current_numpy(tmp_path: Path) -> None:
    pixels = _bscans(np.uint16, 4095)
    scan = read_scan(write_topcon_fds(tmp_path / "scan.fds", pixels, x_mm=6.0, y_mm=6.0, z_um=2.6))
    assert scan.source_format == "topcon_fds" and scan.header.laterality == "L"
    np.testing.assert_array_equal(np.rint(scan.pixels * 4095).astype(np.uint16), pixels)
    g = scan.geometry
    assert (g.row_spacing, g.col_spacing, g.slice_spacing) == pytest.approx((0.0026, 6.0 / 40, 6.0 / 3))
    ds = pydicom.dcmread(write_scan(scan, tmp_path / "out.dcm"))
    assert (str(ds.PatientName), ds.PatientSex, ds.ImageLaterality) == ("Fixture^Jane", "F", "L")


def test_topcon_file_without_bscans_is_one_line(tmp_path: Path) -> None:
    path = write_topcon_fds(tmp_path / "scan.fds", _bscans(np.uint16, 4095), 6.0, 6.0, 2.6)
    path.write_bytes(path.read_bytes().replace(b"@IMG_SCAN_03", b"@IMG_OTHER_3"))
    with pytest.raises(ScanError, match=r"scan\.fds: no OCT B-scans in the file"):
        read_scan(path)


def test_vendor_files_are_found_and_recognised_by_their_first_bytes(vol, bioptigen, tmp_path: Path) -> None:
    assert find_scans([tmp_path]) == sorted([vol[0], bioptigen[0]])
    assert detect_format(vol[0]) == ("heidelberg_vol", ".vol")
    assert detect_format(bioptigen[0]) == ("bioptigen_oct", ".oct")


def test_written_as_derived_dicom_opt_with_patient_fields_and_same_pixels(vol, tmp_path: Path) -> None:
    path, pixels = vol
    out = write_scan(read_scan(path), tmp_path / "out.dcm", derivation="test x1")
    ds = pydicom.dcmread(out)
    assert ds.Modality == "OPT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and ds.DerivationDescription == "test x1"
    assert ds.PatientID == PATIENT_ID and ds.PatientBirthDate == "19510203" and ds.Laterality == "R"
    back = read_scan(out)
    np.testing.assert_array_equal(np.rint(back.pixels * 255).astype(np.uint8), pixels)
    assert (back.geometry.row_spacing, back.geometry.col_spacing, back.geometry.slice_spacing) == VOL_SPACING


def test_written_as_the_format_an_output_name_asks_for(bioptigen, tmp_path: Path) -> None:
    path, pixels = bioptigen
    scan = read_scan(path)
    back = read_scan(write_scan(scan, tmp_path / "out.nii.gz"))
    assert back.source_format == "nifti" and back.pixels.shape == pixels.shape
    np.testing.assert_allclose(back.pixels, scan.pixels, atol=1e-6)
    assert back.geometry.col_spacing == pytest.approx(0.1) and back.geometry.slice_spacing == pytest.approx(0.25)
    one = scan.with_pixels(scan.pixels[:1])
    png = read_scan(write_scan(one, tmp_path / "one.png"))
    np.testing.assert_allclose(png.pixels, scan.pixels[:1], atol=0.5 / 65535)


def test_enhance_writes_a_vendor_file_as_dicom_beside_nothing_else(vol, tmp_path: Path,
                                                                   tiny_generator_file: Path) -> None:
    result = enhance(str(vol[0]), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scan_sr.dcm"]
    ds = pydicom.dcmread(tmp_path / "out" / "scan_sr.dcm")
    assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (3, 96, 160)
    spacing = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    assert spacing == pytest.approx([VOL_SPACING[0] / 4, VOL_SPACING[1] / 4])


def test_damaged_vendor_file_is_one_line_naming_it(vol, bioptigen, tmp_path: Path) -> None:
    for path in (vol[0], bioptigen[0]):
        short = tmp_path / f"short{path.suffix}"
        short.write_bytes(path.read_bytes()[:-200])
        with pytest.raises(ScanError) as info:
            read_scan(short)
        message = str(info.value)
        assert message.startswith(f"{short}: ") and "truncated or damaged" in message and "\n" not in message


def test_damaged_vendor_file_in_enhance_is_skipped_in_one_line(tmp_path: Path, tiny_generator_file: Path) -> None:
    bad = tmp_path / "bad.vol"
    bad.write_bytes(b"HSF-OCT-103\0" + b"\1" * 40)
    result = enhance(str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file))
    assert result.exit_code == 1 and "Traceback" not in result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1 and "bad.vol" in skipped[0] and "Heidelberg .vol" in skipped[0]


def test_missing_library_names_the_extra(vol, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "eyepy.io.he.vol_reader", None)  # what Python holds for a missing module
    with pytest.raises(ScanError, match=r"needs the eyepy package: pip install 'oct-srgan\[vendor\]'"):
        read_scan(vol[0])


def test_patient_fields_stay_out_of_the_repr_and_metadata(vol) -> None:
    scan = read_scan(vol[0])
    assert scan.header.patient["PatientID"] == PATIENT_ID
    assert PATIENT_ID not in repr(scan) + repr(scan.header) + repr(scan_meta(scan))
