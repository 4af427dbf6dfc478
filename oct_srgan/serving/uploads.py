"""Recognising an upload's scan format from its first bytes (the client's file name is never used)."""

from __future__ import annotations

import gzip
from pathlib import Path


def _nifti_magic(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic at 344) or NIfTI-2 (540-byte header, magic at 4), either endian."""
    if len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    if len(head) >= 8 and head[4:8] in (b"n+2\0", b"ni2\0"):
        return int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return False


def detect_format(path: Path) -> tuple[str, str] | None:
    """(format, suffix) of a file from its first bytes, or None if it is not a scan format we read."""
    with path.open("rb") as fh:
        head = fh.read(352)
    if head[128:132] == b"DICM":
        return "dicom", ".dcm"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", ".png"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff", ".tif"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", ".jpg"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp", ".bmp"
    if _nifti_magic(head):
        return "nifti", ".nii"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(352)
        except (OSError, EOFError):
            return None
        if _nifti_magic(inner):
            return "nifti", ".nii.gz"
    return None
