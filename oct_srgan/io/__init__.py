"""Read and write OCT scans as stacks of B-scans ``[N, H, W]`` float32 in ``[0, 1]``.

H is axial depth (rows) and W the lateral A-scans (columns), so retinal layers run left-right.
Every reader ends in this package, so each quirk of a format or of MONAI is fixed once:

- ``scan``: the ``Scan`` every reader returns, its ``Geometry`` and source headers, and the
  intensity conversions shared by the formats (the writers apply the exact inverse, so integer
  round trips are lossless).
- ``registry``: the format table (``ScanFormat``: name, suffixes, magic-byte sniff, declared size,
  media type, reader, writer or ``write_as``); ``dicom``, ``nifti`` and ``raster`` (PNG/TIFF/JPEG/BMP)
  each register their formats in it when imported here, and ``vendor`` the scanners' read-only exports
  (Heidelberg, Topcon, Zeiss, Bioptigen), which ``written_as`` turns into DICOM OPT (or the format an
  output name asks for) for writing. Everything below derives from it.
- ``detect``: which format a file holds, by name suffix or by magic bytes.
- ``readwrite``: ``read_scan`` / ``write_scan``, which dispatch through the table.

MONAI is imported only inside the readers that use it (NIfTI, PIL formats).
``oct_srgan.io.monai_reader.ScanReader`` wraps ``read_scan`` as a MONAI ``ImageReader`` and ``LoadScand``
runs it through ``LoadImage`` so files flow into MONAI transforms as MetaTensors ``[N, H, W]``.
"""

from __future__ import annotations

from ..limits import DEFAULT_MAX_PIXELS
from . import dicom, nifti, raster, vendor  # noqa: F401  (each registers its formats in the table)
from .detect import detect_format, find_scans, format_of_name, is_scan_file, scan_format
from .readwrite import can_write_as, read_scan, write_scan, written_suffix
from .registry import SUPPORTED_FORMATS, ScanFormat, media_types, output_format, register_format, resolve_format, scan_suffixes
from .scan import Geometry, NiftiHeader, RasterHeader, Scan, scan_meta

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "Geometry",
    "NiftiHeader",
    "RasterHeader",
    "Scan",
    "ScanFormat",
    "can_write_as",
    "detect_format",
    "find_scans",
    "format_of_name",
    "is_scan_file",
    "media_types",
    "output_format",
    "read_scan",
    "register_format",
    "resolve_format",
    "scan_format",
    "scan_meta",
    "scan_suffixes",
    "write_scan",
    "written_suffix",
]
