"""Issue 19 item 5: no silent pixel changes. 16-bit colour PNGs keep 16 bits in and out (also in
serve); big-endian and 1-bit DICOM are written back as little-endian DICOM with their pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import png
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from oct_srgan import serving
from oct_srgan.io import read_scan, write_scan
from oct_srgan.io.scan import luma
from tests.helpers.serving import call, tiny_model, upload, wait_done

WIDE = {"LA": (True, False), "RGBA": (True, True), "RGB": (False, True)}


def wide_png(mode: str, h: int = 20, w: int = 28) -> tuple[bytes, np.ndarray]:
    """A 16-bit PNG of ``mode`` with odd low bytes (8 bits would lose them) and its samples."""
    alpha, colour = WIDE[mode]
    planes = (3 if colour else 1) + alpha
    samples = np.random.default_rng(planes).integers(0, 65536, (h, w, planes), dtype=np.uint16) | 1
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=not colour, alpha=alpha, bitdepth=16).write(buf, samples.reshape(h, w * planes).tolist())
    return buf.getvalue(), samples


def expected_grey(mode: str, samples: np.ndarray) -> np.ndarray:
    x = samples.astype(np.float32) / 65535
    return x[..., 0] if mode == "LA" else luma(x)


@pytest.mark.parametrize("mode", list(WIDE))
def test_16_bit_colour_png_keeps_16_bits_read_and_written(tmp_path: Path, mode: str) -> None:
    data, samples = wide_png(mode)
    (tmp_path / "a.png").write_bytes(data)
    scan = read_scan(tmp_path / "a.png")
    assert scan.bit_depth == 16 and scan.header.dtype == np.uint16
    grey = expected_grey(mode, samples)
    assert np.abs(scan.pixels[0] - grey).max() < 1e-6  # 8-bit reading is off by up to 236/65535
    write_scan(scan, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        written = np.asarray(out)
    assert written.dtype.itemsize == 2 or out.mode.startswith("I")
    assert np.abs(written.astype(np.int64) - np.round(grey * 65535).astype(np.int64)).max() <= 1  # luma rounding


def test_serve_keeps_16_bits_of_a_grey_alpha_png(tmp_path: Path) -> None:
    data, _ = wide_png("LA", 24, 24)
    app = serving.create_app(tiny_model(tmp_path / "tiny.pt"), tile=0)
    with serving.background(app) as base:
        status, summary = upload(base, data)
        assert status == 200 and summary["bit_depth"] == 16
        assert call(base, "POST", f"/api/scans/{summary['id']}/process?mode=enhance")[0] == 202
        assert wait_done(base, summary["id"])["state"] == "done"
        status, _, body = call(base, "GET", f"/api/scans/{summary['id']}/download")
    assert status == 200
    with Image.open(io.BytesIO(body)) as out:
        assert out.size == (96, 96) and out.mode in ("I;16", "I") and np.asarray(out).max() > 255


def dicom(path: Path, pixels: np.ndarray, *, bits: int, syntax: pydicom.uid.UID) -> Path:
    """A single-frame MONOCHROME2 OPT-like DICOM of ``pixels`` with ``bits`` allocated, in ``syntax``."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.PatientName, ds.Modality, ds.SeriesInstanceUID = "Fixture^Jane", "OPT", generate_uid()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelSpacing = [0.0032, 0.0067]
    if bits == 1:
        ds.PixelData = np.packbits(pixels.ravel(), bitorder="little").tobytes()
    else:
        ds.PixelData = pixels.astype(">u2" if syntax == ExplicitVRBigEndian else "<u2").tobytes()
    ds["PixelData"].VR = "OB" if bits == 1 else "OW"
    ds.save_as(path, implicit_vr=False, little_endian=syntax != ExplicitVRBigEndian, enforce_file_format=True)
    return path


def test_big_endian_dicom_is_written_as_little_endian_with_its_pixels(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 65536, (16, 24), dtype=np.uint16)
    scan = read_scan(dicom(tmp_path / "be.dcm", pixels, bits=16, syntax=ExplicitVRBigEndian))
    write_scan(scan.with_pixels(scan.pixels), tmp_path / "out.dcm", derivation="test")
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(out.pixel_array, pixels) and str(out.PatientName) == "Fixture^Jane"


def test_one_bit_dicom_is_written_as_8_bit_with_a_note(tmp_path: Path) -> None:
    pixels = (np.random.default_rng(1).random((16, 24)) > 0.5).astype(np.uint8)
    scan = read_scan(dicom(tmp_path / "bits.dcm", pixels, bits=1, syntax=ExplicitVRLittleEndian))
    assert np.array_equal(scan.pixels[0], pixels.astype(np.float32))
    assert "1-bit" in (scan.depth_note or "") and "8-bit" in scan.depth_note
    write_scan(scan.with_pixels(scan.pixels), tmp_path / "out.dcm", derivation="test")
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert (out.BitsAllocated, out.BitsStored, out.HighBit) == (8, 8, 7)
    assert np.array_equal(out.pixel_array, pixels * 255)
