"""Topcon ``.fds`` / ``.fda`` B-scans decoded with oct-converter's own binary layouts
(``oct_converter.readers.binary_structs``).

oct-converter's ``FDS`` / ``FDA`` classes read the chunk list with ``np.fromstring``, whose binary
mode NumPy 2.3 removed, so they fail on every file under current NumPy; walking the chunks here with
their structs keeps the format knowledge theirs. A Topcon file is a 15-byte header ('FOCT', type,
two versions) and named chunks (u8 name length, name, u32 size, data) until a zero name length.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from ..errors import ScanError

_SEX = {1: "M", 2: "F", 3: "O"}
_EYE = {0: "R", 1: "L"}


@dataclass
class TopconVolume:
    """B-scans ``[N, H, W]``, spacing (axial, lateral, between B-scans) in mm, and the stated fields."""

    bscans: np.ndarray
    spacing: tuple[float | None, float | None, float | None]
    laterality: str | None = None
    patient: dict[str, Any] = field(default_factory=dict, repr=False)


def chunks(fh: BinaryIO, binary: ModuleType, path: Path) -> dict[bytes, tuple[int, int]]:
    """Chunk name -> (offset of its data, size), after checking the file header."""
    head = binary.header.parse(fh.read(15))
    if head.file_code != "FOCT":
        raise ScanError(f"{path}: not a Topcon file (no 'FOCT' header)")
    found: dict[bytes, tuple[int, int]] = {}
    end = fh.seek(0, io.SEEK_END)
    fh.seek(15)
    while (size_byte := fh.read(1)) and size_byte[0]:
        name = fh.read(size_byte[0])
        raw = fh.read(4)
        if len(raw) < 4:
            raise ScanError(f"{path}: truncated Topcon chunk list")
        (size,) = struct.unpack("<I", raw)
        found[name] = (fh.tell(), size)
        if fh.tell() + size > end:
            raise ScanError(f"{path}: Topcon chunk {name.decode('latin-1')} runs past the end of the file")
        fh.seek(size, io.SEEK_CUR)
    return found


def _raw_cube(fh: BinaryIO, header: Any, path: Path) -> np.ndarray:
    """uint16 samples stored row by row, B-scan by B-scan -> ``[N, H, W]``."""
    count = header.width * header.height * header.number_slices
    data = np.frombuffer(fh.read(count * 2), dtype="<u2")
    if data.size != count:
        raise ScanError(f"{path}: truncated Topcon B-scans ({data.size} of {count} samples)")
    return data.reshape(header.number_slices, header.height, header.width)


def _jpeg_slices(fh: BinaryIO, header: Any, path: Path) -> np.ndarray:
    """``@IMG_JPEG``: each B-scan a JPEG 2000 picture after its u32 byte count (decoded by PIL)."""
    from PIL import Image

    bscans = []
    for _ in range(header.number_slices):
        (size,) = struct.unpack("<i", fh.read(4))
        with Image.open(io.BytesIO(fh.read(size))) as image:
            bscans.append(np.asarray(image))
    return np.stack(bscans)


# The chunks that hold B-scans, in the order tried: (chunk, the oct-converter module with its header
# struct, the struct's name, header size, decoder). .fds and .fda exports differ in which they carry.
_BSCAN_CHUNKS = (
    (b"@IMG_SCAN_03", "fds", "oct_header", 22, _raw_cube),
    (b"@IMG_JPEG", "fda", "oct_header", 25, _jpeg_slices),
    (b"@IMG_MOT_COMP_03", "fda", "oct_header_2", 22, _raw_cube),
)


def _bscans(fh: BinaryIO, found: dict[bytes, tuple[int, int]], binaries: dict[str, ModuleType],
            path: Path) -> tuple[np.ndarray, Any]:
    """The B-scans of the first OCT chunk the file has, and that chunk's header."""
    for name, kind, struct_name, size, decode in _BSCAN_CHUNKS:
        if name in found:
            fh.seek(found[name][0])
            header = getattr(binaries[kind], struct_name).parse(fh.read(size))
            return decode(fh, header, path), header
    raise ScanError(f"{path}: no OCT B-scans in the file (none of its chunks is a B-scan stack)")


def _parse(fh: BinaryIO, found: dict[bytes, tuple[int, int]], name: bytes, layout: Any) -> Any:
    if name not in found:
        return None
    fh.seek(found[name][0])
    return layout.parse(fh.read(found[name][1]))


def _spacing(fh: BinaryIO, found: dict[bytes, tuple[int, int]], binary: ModuleType,
             shape: tuple[int, int, int]) -> tuple[float | None, float | None, float | None]:
    """(axial, lateral, between B-scans) from the scan parameters, as oct-converter computes them."""
    params = (_parse(fh, found, b"@PARAM_SCAN_04", binary.param_scan_04_header)
              or _parse(fh, found, b"@PARAM_SCAN_02", binary.param_scan_02_header))
    if params is None:
        return None, None, None
    n, _, w = shape
    return params.z_resolution_um / 1000, params.x_dimension_mm / w, (params.y_dimension_mm / n if n > 1 else None)


def _patient(info: Any) -> dict[str, Any]:
    if info is None:
        return {}
    try:
        birth = datetime(*info.birth_date)
    except (TypeError, ValueError):
        birth = None
    return {"name": "^".join(p for p in (info.last_name, info.first_name) if p), "id": info.patient_id,
            "birth": birth, "sex": _SEX.get(info.sex)}


def read_topcon(path: Path, binaries: dict[str, ModuleType]) -> TopconVolume:
    """B-scans, spacing, laterality and patient fields of a Topcon ``.fds`` or ``.fda`` file;
    ``binaries`` holds oct-converter's struct modules by kind ("fds": ``fds_binary``, "fda": ``fda_binary``)."""
    binary = binaries["fds"]  # the file header and the parameter chunks are laid out alike in both
    with path.open("rb") as fh:
        found = chunks(fh, binary, path)
        bscans, _ = _bscans(fh, found, binaries, path)
        spacing = _spacing(fh, found, binary, bscans.shape)
        capture = (_parse(fh, found, b"@CAPTURE_INFO_02", binary.capture_info_02_header)
                   or _parse(fh, found, b"@CAPTURE_INFO", binary.capture_info_header))
        patient = _patient(_parse(fh, found, b"@PATIENT_INFO_02", binary.patient_info_02_header))
    return TopconVolume(bscans, spacing, _EYE.get(capture.eye) if capture is not None else None, patient)
