"""Which scan format a file holds: by its name's suffix, and by its first bytes (magic numbers).

Names decide for files on disk (``find_scans``, ``scan_format``): a suffix we know, or for DICOM
exports without one (``IM000001``, ``1.2.840...``) the 'DICM' marker at byte 128. Uploads arrive
without a trustworthy name, so ``detect_format`` reads the magic numbers of every format.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

from ..errors import ScanError

_FORMAT_BY_SUFFIX = {
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".bmp": "bmp",
    # scanner exports, read-only (``vendor``)
    ".vol": "heidelberg_vol",
    ".e2e": "heidelberg_e2e",
    ".fds": "topcon_fds",
    ".fda": "topcon_fda",
    ".img": "zeiss_img",
    ".oct": "bioptigen_oct",
}
SCAN_SUFFIXES: tuple[str, ...] = (
    ".dcm", ".dicom", ".nii", ".nii.gz", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp",
    ".vol", ".e2e", ".fds", ".fda", ".img", ".oct",
)
# Enough for every magic number below: the DICOM marker ends at 132, the NIfTI-1 magic at 348.
_HEAD_BYTES = 352


def known_suffix(path: Path) -> str | None:
    """The scan suffix ``path``'s name ends with (case-insensitive, ``.nii.gz`` whole), else None."""
    name = path.name.lower()
    return next((s for s in _FORMAT_BY_SUFFIX if name.endswith(s)), None)


def _dicm_at_128(head: bytes) -> bool:
    """The DICOM Part 10 marker: 128 bytes of preamble, then 'DICM'."""
    return head[128:132] == b"DICM"


def _has_dicm_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return _dicm_at_128(head)


def is_scan_file(path: str | Path) -> bool:
    """A scan suffix, or no/numeric suffix and the DICOM 'DICM' marker at byte 128."""
    path = Path(path)
    if known_suffix(path):
        return True
    return (path.suffix == "" or path.suffix[1:].isdigit()) and _has_dicm_preamble(path)


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
                raise ScanError(f"{p}: not a supported scan file (expected {', '.join(SCAN_SUFFIXES)} or DICOM)")
            found.add(p)
        elif p.exists():
            raise ScanError(f"{p}: not a regular file or folder (a FIFO, socket or device cannot be read as a scan)")
        else:
            raise ScanError(f"{p}: no such file or directory")
    return sorted(found)


def scan_format(path: str | Path) -> str:
    """Format of an existing scan file (dicom, nifti, png, tiff, jpeg, bmp), from its name or DICOM marker."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    if not path.is_file():
        raise ScanError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ScanError(f"{path}: empty file")
    suffix = known_suffix(path)
    if suffix:
        return _FORMAT_BY_SUFFIX[suffix]
    if _has_dicm_preamble(path):
        return "dicom"
    raise ScanError(f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(SCAN_SUFFIXES)})")


def format_of_name(path: str | Path) -> str | None:
    """Format a file name's scan suffix stands for (``out.nii.gz`` -> nifti), None without one."""
    suffix = known_suffix(Path(path))
    return _FORMAT_BY_SUFFIX[suffix] if suffix else None


def suffix_of_format(fmt: str) -> str:
    """The usual extension of format ``fmt`` (dicom -> .dcm)."""
    return next(s for s, f in _FORMAT_BY_SUFFIX.items() if f == fmt)


def _nifti_magic(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic at 344) or NIfTI-2 (540-byte header, magic at 4), either endian."""
    if len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    if len(head) >= 8 and head[4:8] in (b"n+2\0", b"ni2\0"):
        return int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return False


def heidelberg_vol_magic(head: bytes) -> bool:
    """Heidelberg ``.vol``: its version string, 'HSF-OCT-xxx'."""
    return head.startswith(b"HSF-OCT-")


def heidelberg_e2e_magic(head: bytes) -> bool:
    """Heidelberg ``.e2e``: 'CMDb' (the magic of its header and directory chunks)."""
    return head.startswith(b"CMDb")


def topcon_fda_magic(head: bytes) -> bool:
    """Topcon: 'FOCT', then 'FDA' (macula) or 'FAA' (external fixation), as ``.fda`` exports start."""
    return head.startswith(b"FOCT") and head[4:7] in (b"FDA", b"FAA")


def topcon_fds_magic(head: bytes) -> bool:
    """Topcon: 'FOCT' with another file type."""
    return head.startswith(b"FOCT") and not topcon_fda_magic(head)


def bioptigen_oct_magic(head: bytes) -> bool:
    """Bioptigen ``.oct``: after the magic number and version, the key 'FRAMEHEADER' with its length 11."""
    return head[6:10] == (11).to_bytes(4, "little") and head[10:21] == b"FRAMEHEADER"


# Scanner exports by their first bytes (a Zeiss .img has no header and is known by its name only).
_VENDOR_MAGIC = (
    (heidelberg_vol_magic, "heidelberg_vol", ".vol"),
    (heidelberg_e2e_magic, "heidelberg_e2e", ".e2e"),
    (topcon_fda_magic, "topcon_fda", ".fda"),
    (topcon_fds_magic, "topcon_fds", ".fds"),
    (bioptigen_oct_magic, "bioptigen_oct", ".oct"),
)


def detect_format(path: Path) -> tuple[str, str] | None:
    """(format, suffix) of a file from its first bytes, or None if it is not a scan format we read."""
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if _dicm_at_128(head):
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
    vendor = next(((fmt, suffix) for magic, fmt, suffix in _VENDOR_MAGIC if magic(head)), None)
    if vendor is not None:
        return vendor
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(_HEAD_BYTES)
        except (OSError, EOFError):
            return None
        if _nifti_magic(inner):
            return "nifti", ".nii.gz"
    return None
