"""oct_srgan.io on files the tests make: multi-page TIFF, NIfTI ranges and NaN, text and missing files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile

from oct_srgan.errors import ScanError
from oct_srgan.io import find_scans, read_scan, write_scan


def test_text_file_named_dcm_is_one_line_without_library_advice(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_text("this is a text file, not DICOM\n")
    with pytest.raises(ScanError) as info:
        read_scan(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "not a DICOM file" in message
    assert "force" not in message.lower()


def test_multipage_16bit_tiff_is_a_volume(tmp_path):
    stack = (np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30) * 50)
    tifffile.imwrite(tmp_path / "v.tif", stack, photometric="minisblack")
    scan = read_scan(tmp_path / "v.tif")
    assert scan.pixels.shape == (3, 20, 30) and scan.bit_depth == 16
    np.testing.assert_allclose(scan.pixels, stack / 65535.0, atol=1e-7)
    back = read_scan(write_scan(scan, tmp_path / "out.tif"))
    np.testing.assert_array_equal(back.pixels, scan.pixels)


def test_nifti_integer_range_is_the_smallest_bit_depth_holding_the_data(tmp_path):
    data = np.zeros((40, 30), dtype=np.int16)
    data[5, 5] = 4095
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "d.nii")
    scan = read_scan(tmp_path / "d.nii")
    assert scan.bit_depth == 12 and scan.pixels.max() == 1.0
    assert scan.pixels.shape == (1, 30, 40)


def test_nifti_float_outside_unit_range_is_min_max_scaled(tmp_path):
    data = np.linspace(-2.0, 6.0, 40 * 30 * 4).reshape(40, 30, 4)
    nib.save(nib.Nifti1Image(data, np.diag([0.01, 0.004, 0.1, 1.0])), tmp_path / "f.nii.gz")
    scan = read_scan(tmp_path / "f.nii.gz")
    assert scan.pixels.shape == (4, 30, 40)
    assert scan.pixels.min() == 0.0 and scan.pixels.max() == 1.0
    back = read_scan(write_scan(scan, tmp_path / "out.nii.gz"))
    np.testing.assert_allclose(back.pixels, scan.pixels, atol=1e-6)


def test_nan_in_float_nifti_is_a_scan_error(tmp_path):
    data = np.random.default_rng(0).random((32, 32, 2)).astype(np.float32)
    data[3, 4, 1] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(ScanError, match="NaN"):
        read_scan(path)


def test_missing_file_is_a_scan_error(tmp_path):
    with pytest.raises(ScanError, match="no such file"):
        read_scan(tmp_path / "absent.dcm")


def test_find_scans_rejects_an_explicit_non_scan(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(ScanError, match="notes.txt"):
        find_scans([path])


@pytest.mark.parametrize("compression,predictor,dtype", [
    ("packbits", None, np.uint8), ("lzw", "horizontal", np.uint16), ("adobe_deflate", None, np.uint8), (None, None, np.uint16),
])
def test_tiff_output_keeps_the_source_compression(tmp_path, compression, predictor, dtype):
    pixels = (np.arange(48 * 64).reshape(48, 64) % 251).astype(dtype) * (1 if dtype == np.uint8 else 200)
    tifffile.imwrite(tmp_path / "in.tif", pixels, photometric="minisblack", compression=compression, predictor=predictor)
    scan = read_scan(tmp_path / "in.tif")
    out = write_scan(scan.with_pixels(np.repeat(np.repeat(scan.pixels, 4, axis=1), 4, axis=2)), tmp_path / "out.tif")
    with tifffile.TiffFile(tmp_path / "in.tif") as src, tifffile.TiffFile(out) as dst:
        assert dst.pages[0].compression == src.pages[0].compression
        assert dst.pages[0].predictor == src.pages[0].predictor
        assert dst.pages[0].shape == (192, 256) and dst.pages[0].dtype == dtype
        assert np.array_equal(dst.asarray()[::4, ::4], src.asarray())
