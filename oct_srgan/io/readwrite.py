"""``read_scan`` and ``write_scan``: find the format, guard size and output, dispatch through the format
table, and turn every failure into one ``ScanError`` line that starts with the path."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydicom.errors import InvalidDicomError

from ..errors import DISK_FULL_ERRNOS, OutputExistsError, ScanError, WriteError, one_line, raised_as
from ..fsutil import atomic_path
from ..limits import DEFAULT_MAX_PIXELS, check_pixels
from .detect import format_of_name, scan_format
from .registry import resolve_format
from .scan import Scan
from .written_as import written_as


def _reason(exc: BaseException) -> str:
    """Why reading or writing failed, in one line; pydicom's complaint about a file named as DICOM
    that is none (raised by any DICOM header read) in words that say what the file is not."""
    if isinstance(exc, InvalidDicomError):
        return "not a DICOM file (no DICOM file meta header and no 'DICM' marker)"
    return one_line(exc)


def _as_scan_error(what: str) -> contextlib.AbstractContextManager[None]:
    """Let ``ScanError`` through and turn any other failure into ``ScanError('<what>: <reason>')``."""
    return raised_as(lambda exc: ScanError(f"{what}: {_reason(exc)}"), ScanError)


def read_scan(path: str | Path, bscan_axis: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Scan:
    """Read a DICOM / NIfTI / PNG / TIFF / JPEG / BMP scan or scanner export as B-scans ``[N, H, W]`` in [0, 1].

    The header's declared size is checked against ``max_pixels`` (see ``limits.check_pixels``)
    before any pixel is decoded.

    ``bscan_axis`` (source array axis) overrides the B-scan axis of a 3-D NIfTI volume; other
    formats store B-scans explicitly (frames, pages) and ignore it. Any failure is a ``ScanError``
    whose one-line message starts with the path.
    """
    path = Path(path)
    fmt = scan_format(path)
    with _as_scan_error(f"{path}: cannot read as {fmt}"):
        try:
            entry = resolve_format(fmt)
            check_pixels(path, entry.declared_size, max_pixels)
            scan = entry.reader(path, bscan_axis)
        except MemoryError:
            raise ScanError(f"{path}: not enough memory to decode it "
                            "(lower --max-pixels or use a smaller scan)") from None
    if scan.pixels.ndim != 3 or 0 in scan.pixels.shape:
        raise ScanError(f"{path}: no image data (shape {scan.pixels.shape})")
    return scan


def write_scan(scan: Scan, path: str | Path, derivation: str | None = None, overwrite: bool = True) -> Path:
    """Write ``scan`` atomically in its source format; ``derivation`` says how it was made.

    DICOM gets new SOP Instance and Series Instance UIDs, and with ``derivation`` ImageType
    DERIVED/SECONDARY, a new Series Number and Description, and the derivation (description, code
    "Spatial resampling", Source Image reference) where the IOD holds it (see ``dicom._mark_derived``).
    A reader-only format (scanner export) is written as its ``write_as`` format, or as the format
    ``path``'s extension names.
    """
    path = Path(path)
    wanted = format_of_name(path)
    write_as = resolve_format(scan.source_format).write_as
    if write_as is not None:
        scan = written_as(scan, wanted or write_as)
    elif wanted and wanted != scan.source_format:
        raise ScanError(f"{path}: a {scan.source_format} scan cannot be written as {wanted}")
    with _as_scan_error(f"{path}: cannot write {scan.source_format}"):
        try:
            writer = resolve_format(scan.source_format).writer
            assert writer is not None  # written_as returns a scan of a format with a writer
            with atomic_path(path, exclusive=not overwrite) as tmp:
                writer(scan, tmp, derivation)
        except FileExistsError:
            raise OutputExistsError(f"{path}: output already exists (use --overwrite to replace it)") from None
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise WriteError(f"disk full: {path} ({exc.strerror})") from None
            raise WriteError(f"{path}: cannot write: {exc.strerror or _reason(exc)}") from None
    return path


def written_suffix(path: str | Path) -> str | None:
    """The extension an output of ``path`` gets when it cannot keep the input's own: ``.dcm`` for a
    read-only scanner export (written as DICOM), None for every format that is written as itself."""
    fmt = format_of_name(path)
    write_as = resolve_format(fmt).write_as if fmt else None
    return resolve_format(write_as).suffixes[0] if write_as else None


def can_write_as(source: str, wanted: str) -> bool:
    """Whether a ``source`` scan can be written as ``wanted``: itself, or anything for a read-only format."""
    return source == wanted or resolve_format(source).writer is None
