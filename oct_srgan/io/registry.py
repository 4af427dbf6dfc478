"""The format table: one ``ScanFormat`` entry per format owns every fact about it (name, file
suffixes, magic bytes, header size, media type, reader, writer), filled by each format module's
``register_format`` call when ``oct_srgan.io`` is imported (modelled on MONAI's ``register_writer`` /
``SUPPORTED_WRITERS`` / ``resolve_writer`` in ``monai/data/image_writer.py``).

Detection (``detect``), the pixel limit (``limits``), serve's accepted types and the page's file
picker all read this table, so a new format is one module that defines its functions and registers
them. A reader-only format (a vendor file nothing may write) names ``write_as``: its reader returns
the header that format's writer expects, and results are written in that format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ScanError
from ..tables import Table

if TYPE_CHECKING:  # scan.py names files through detect.py, which reads this table
    from .scan import Scan

# reader(path, bscan_axis): B-scans [N, H, W] in [0, 1]. ``bscan_axis`` is the source array axis that
# holds the B-scans of a volume format; formats that store B-scans explicitly (frames, pages) ignore it.
Reader = Callable[[Path, int | None], "Scan"]
# writer(scan, target, derivation): ``scan`` in its source format at ``target`` (a temporary path the
# caller moves into place); ``derivation`` says how the pixels were made, where the format holds it.
Writer = Callable[["Scan", Path, str | None], None]
# sniff(head, path): the suffix the content is stored under when the first bytes ``head`` (at least
# ``HEAD_BYTES``) are this format's, else None; ``path`` lets a wrapper format look inside.
Sniff = Callable[[bytes, Path], str | None]
# declared_size(path): (shape, decoded samples) the header declares, without decoding pixels.
DeclaredSize = Callable[[Path], tuple[tuple[int, ...], int]]

# Enough for every magic number of the shipped formats: the DICOM marker ends at 132, NIfTI-1's at 348.
HEAD_BYTES = 352


@dataclass(frozen=True)
class ScanFormat:
    """A registered format. ``suffixes`` are lower case, the first is the one uploads are stored
    under; ``writer`` None makes it reader-only, written as the format ``write_as`` names."""

    name: str
    suffixes: tuple[str, ...]
    sniff: Sniff
    declared_size: DeclaredSize
    media_type: str
    reader: Reader
    writer: Writer | None = None
    write_as: str | None = None
    sniff_unnamed: bool = False  # files without a suffix (DICOM exports ``IM000001``) are sniffed too


SUPPORTED_FORMATS: Table[ScanFormat] = Table("scan format", ScanError)


def register_format(entry: ScanFormat) -> ScanFormat:
    """Add ``entry`` to the table; a reader-only format must name the format it is written as."""
    if entry.writer is None and entry.write_as is None:
        raise ValueError(f"scan format {entry.name!r} has no writer and no write_as format")
    return SUPPORTED_FORMATS.register(entry)


def resolve_format(name: str) -> ScanFormat:
    """The table entry of format ``name``; ``ScanError`` for a format nothing registered."""
    return SUPPORTED_FORMATS.resolve(name)


def output_format(name: str) -> ScanFormat:
    """The format a scan read as ``name`` is written in: its own, or its ``write_as`` when it has no writer."""
    entry = resolve_format(name)
    return entry if entry.writer is not None else resolve_format(entry.write_as or "")


def scan_suffixes() -> tuple[str, ...]:
    """Every registered suffix, longest first (so ``.nii.gz`` is matched before ``.nii`` would be)."""
    return tuple(sorted({s for f in SUPPORTED_FORMATS.values() for s in f.suffixes}, key=lambda s: (-len(s), s)))


def media_types() -> tuple[str, ...]:
    """Every registered media type, for a file picker's ``accept`` list."""
    return tuple(dict.fromkeys(f.media_type for f in SUPPORTED_FORMATS.values()))
