"""Scan files made for a test: a renamed copy of the real DICOM volume, a PNG decompression bomb."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pydicom

from tests.paths import VOLUME_DCM


def volume_copy(path: Path, description: str) -> Path:
    """The fixture volume with another SeriesDescription: new content (a new scan id), same pixels."""
    ds = pydicom.dcmread(VOLUME_DCM)
    ds.SeriesDescription = description
    ds.save_as(path)
    return path


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring ``width x height`` grey, with one tiny IDAT (never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
