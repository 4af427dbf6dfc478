"""The format table: a reader-only format is one ``ScanFormat`` entry, and detection, the pixel limit,
writing (as its ``write_as``), enhance's output names and serve's accepted types all follow from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from oct_srgan import io as scan_io
from oct_srgan.errors import PixelLimitError
from oct_srgan.inference.enhance import _split_name
from oct_srgan.io.registry import SUPPORTED_FORMATS
from oct_srgan.io.vendor import VendorHeader
from oct_srgan.serving.jobs import supported_text
from oct_srgan.serving.security import download_name

MAGIC = b"TRAW"


def _size(path: Path) -> tuple[tuple[int, ...], int]:
    h, w = np.frombuffer(path.read_bytes()[4:8], dtype="<u2")
    return (int(h), int(w)), int(h) * int(w)


def _read(path: Path, bscan_axis: int | None) -> scan_io.Scan:
    (h, w), _ = _size(path)
    pixels = np.frombuffer(path.read_bytes()[8:], dtype=np.uint8).reshape(1, h, w) / 255.0
    header = VendorHeader("test device", np.dtype(np.uint8), (0.0, 255.0))
    return scan_io.Scan(pixels.astype(np.float32), scan_io.Geometry(), "testraw", 8, "MONOCHROME2", header, path)


@pytest.fixture()
def testraw() -> Iterator[scan_io.ScanFormat]:
    """A toy vendor format nothing may write: 'TRAW', uint16 height and width, uint8 pixels."""
    entry = scan_io.register_format(scan_io.ScanFormat(
        "testraw", (".traw",), lambda head, path: ".traw" if head.startswith(MAGIC) else None,
        _size, "application/x-testraw", _read, writer=None, write_as="tiff"))
    yield entry
    del SUPPORTED_FORMATS["testraw"]


def _write_traw(path: Path, pixels: np.ndarray) -> Path:
    path.write_bytes(MAGIC + np.array(pixels.shape, dtype="<u2").tobytes() + pixels.astype(np.uint8).tobytes())
    return path


def test_a_reader_only_format_is_found_by_suffix_and_by_content(testraw, tmp_path: Path) -> None:
    path = _write_traw(tmp_path / "eye.TRAW", np.zeros((3, 5)))
    assert scan_io.scan_format(path) == "testraw"
    assert scan_io.find_scans([tmp_path]) == [path]
    upload = _write_traw(tmp_path / "upload.part", np.zeros((3, 5)))
    assert scan_io.detect_format(upload) == ("testraw", ".traw")


def test_a_reader_only_format_is_written_as_its_write_as_format(testraw, tmp_path: Path) -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    scan = scan_io.read_scan(_write_traw(tmp_path / "eye.traw", pixels))
    out = scan_io.write_scan(scan, tmp_path / "eye_sr.tif")
    back = scan_io.read_scan(out)
    assert back.source_format == "tiff"
    np.testing.assert_array_equal(np.rint(back.pixels[0] * 255).astype(np.uint8), pixels)
    assert _split_name(tmp_path / "eye.traw") == ("eye", ".tif")


def test_a_reader_only_format_is_refused_over_the_pixel_limit(testraw, tmp_path: Path) -> None:
    path = _write_traw(tmp_path / "big.traw", np.zeros((40, 50)))
    with pytest.raises(PixelLimitError, match="40x50"):
        scan_io.read_scan(path, max_pixels=1000)


def test_serve_accepts_and_names_what_the_table_holds(testraw) -> None:
    assert "testraw (.traw)" in supported_text()
    assert ".traw" in scan_io.scan_suffixes() and "application/x-testraw" in scan_io.media_types()
    upload = type("U", (), {"id": "0" * 64, "suffix": ".tif"})()
    assert download_name("eye.traw", upload) == "eye_sr.tif"


def test_a_format_without_writer_needs_write_as() -> None:
    entry = scan_io.ScanFormat("nowrite", (".nw",), lambda head, path: None, _size, "x/y", _read)
    with pytest.raises(ValueError, match="no writer"):
        scan_io.register_format(entry)
    assert "nowrite" not in SUPPORTED_FORMATS
