"""Which scan format a file holds: by its name's suffix, and by its first bytes (magic numbers).

Names decide for files on disk (``find_scans``, ``scan_format``): a suffix we know, or for DICOM
exports without one (``IM000001``, ``1.2.840...``) the 'DICM' marker at byte 128. Uploads arrive
without a trustworthy name, so ``detect_format`` asks every format in the table to sniff the first bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import ScanError
from .registry import HEAD_BYTES, SUPPORTED_FORMATS, ScanFormat, scan_suffixes


def known_suffix(path: Path) -> str | None:
    """The scan suffix ``path``'s name ends with (case-insensitive, ``.nii.gz`` whole), else None."""
    name = path.name.lower()
    return next((s for s in scan_suffixes() if name.endswith(s)), None)


def _format_by_suffix(suffix: str) -> ScanFormat:
    return next(f for f in SUPPORTED_FORMATS.values() if suffix in f.suffixes)


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""


def _unnamed_format(path: Path) -> str | None:
    """The format of a file without a scan suffix, among those recognised by content alone."""
    head = _read_head(path)
    return next((f.name for f in SUPPORTED_FORMATS.values() if f.sniff_unnamed and f.sniff(head, path)), None)


def is_scan_file(path: str | Path) -> bool:
    """A scan suffix, or no/numeric suffix and content a format recognises without a name (DICOM 'DICM')."""
    path = Path(path)
    if known_suffix(path):
        return True
    return (path.suffix == "" or path.suffix[1:].isdigit()) and _unnamed_format(path) is not None


def find_scans(paths: Iterable[str | Path]) -> list[Path]:
    """Scan files under ``paths`` (folders searched recursively, hidden entries skipped), sorted.

    A file named explicitly that is not a scan raises ``ScanError`` rather than being dropped silently.
    """
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            for f in p.rglob("*"):
                if any(part.startswith(".") for part in f.relative_to(p).parts):
                    continue
                if f.is_file() and is_scan_file(f):
                    found.add(f)
        elif p.is_file():
            if not is_scan_file(p):
                raise ScanError(f"{p}: not a supported scan file (expected {', '.join(scan_suffixes())} or DICOM)")
            found.add(p)
        elif p.exists():
            raise ScanError(f"{p}: not a regular file or folder (a FIFO, socket or device cannot be read as a scan)")
        else:
            raise ScanError(f"{p}: no such file or directory")
    return sorted(found)


def scan_format(path: str | Path) -> str:
    """Format of an existing scan file, from its name's suffix or, without one, its content."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    if not path.is_file():
        raise ScanError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ScanError(f"{path}: empty file")
    suffix = known_suffix(path)
    if suffix:
        return _format_by_suffix(suffix).name
    unnamed = _unnamed_format(path)
    if unnamed:
        return unnamed
    raise ScanError(f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(scan_suffixes())})")


def format_of_name(path: str | Path) -> str | None:
    """Format a file name's scan suffix stands for (``out.nii.gz`` -> nifti), None without one."""
    suffix = known_suffix(Path(path))
    return _format_by_suffix(suffix).name if suffix else None


def detect_format(path: Path) -> tuple[str, str] | None:
    """(format, suffix) of a file from its first bytes, or None if it is not a scan format we read."""
    head = _read_head(path)
    for entry in SUPPORTED_FORMATS.values():
        suffix = entry.sniff(head, path)
        if suffix:
            return entry.name, suffix
    return None
