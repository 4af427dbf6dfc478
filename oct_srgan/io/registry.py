"""The format table: format name -> how to read and write it, filled by each format module's
``register_format`` calls when ``oct_srgan.io`` is imported (modelled on MONAI's
``register_writer`` / ``SUPPORTED_WRITERS`` / ``resolve_writer`` in ``monai/data/image_writer.py``).

A new format is one module that defines its reader and writer and registers them; ``read_scan`` and
``write_scan`` find it here by the name ``detect`` gives the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScanError
from .scan import Scan

# reader(path, bscan_axis): B-scans [N, H, W] in [0, 1]. ``bscan_axis`` is the source array axis that
# holds the B-scans of a volume format; formats that store B-scans explicitly (frames, pages) ignore it.
Reader = Callable[[Path, int | None], Scan]
# writer(scan, target, derivation): ``scan`` in its source format at ``target`` (a temporary path the
# caller moves into place); ``derivation`` says how the pixels were made, where the format holds it.
Writer = Callable[[Scan, Path, str | None], None]


@dataclass(frozen=True)
class ScanFormat:
    """A registered format: its name (``Scan.source_format``), reader and writer; a read-only format
    (a scanner's export) has no writer and names the format its scans are written as."""

    name: str
    reader: Reader
    writer: Writer | None
    write_as: str | None = None


SUPPORTED_FORMATS: dict[str, ScanFormat] = {}


def register_format(name: str, reader: Reader, writer: Writer | None, write_as: str | None = None) -> ScanFormat:
    """Add format ``name`` to the table; a name is registered once (a second module claiming it is a bug)."""
    if name in SUPPORTED_FORMATS:
        raise ValueError(f"scan format {name!r} is already registered")
    if (writer is None) == (write_as is None):
        raise ValueError(f"scan format {name!r} needs either a writer or a write_as format")
    entry = ScanFormat(name, reader, writer, write_as)
    SUPPORTED_FORMATS[name] = entry
    return entry


def resolve_format(name: str) -> ScanFormat:
    """The table entry of format ``name``; ``ScanError`` for a format nothing registered."""
    entry = SUPPORTED_FORMATS.get(name)
    if entry is None:
        raise ScanError(f"no reader or writer for scan format {name!r} (known: {', '.join(sorted(SUPPORTED_FORMATS))})")
    return entry
