"""Scanner exports read through the libraries made for them: Heidelberg ``.vol`` / ``.e2e`` with
``eyepy``, Topcon ``.fds`` / ``.fda``, Zeiss Cirrus ``.img`` and Bioptigen ``.oct`` with
``oct-converter`` (both optional: ``pip install 'oct-srgan[vendor]'``).

They are read-only: each reader returns B-scans ``[N, H, W]`` with the spacing the file states and a
``VendorHeader``; ``written_as`` turns such a scan into a DICOM OPT (or NIfTI / PNG / TIFF) scan for
writing. Patient fields travel in the header only, to be written into the derived DICOM like a DICOM
source's, and are never part of its repr.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import struct
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import ScanError, one_line
from .registry import ScanFormat, Sniff, register_format
from .scan import Geometry, Scan, int_range, to_unit

VENDOR_EXTRA_HINT = "pip install 'oct-srgan[vendor]'"
# A Zeiss Cirrus .img has no header: the cube is known by its size (A-scans per B-scan, B-scans).
_CIRRUS_DEPTH = 1024
_CIRRUS_CUBES = ((512, 128), (200, 200))


@dataclass(frozen=True)
class VendorHeader:
    """What a vendor file states beside its pixels, for writing the scan in another format.

    ``intensity`` are the sample values that map to 0 and 1 (``dtype`` holds them); ``patient`` maps
    DICOM keywords (PatientName, PatientID, PatientBirthDate, PatientSex) to the file's values.
    """

    device: str
    dtype: np.dtype
    intensity: tuple[float, float]
    laterality: str | None = None
    patient: dict[str, str] = field(default_factory=dict, repr=False)


def _library(module: str, package: str, path: Path, what: str) -> ModuleType:
    """Import ``module`` or fail in one line that names the extra which installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ScanError(f"{path}: reading {what} needs the {package} package: {VENDOR_EXTRA_HINT}") from None


@contextlib.contextmanager
def _damaged(path: Path, what: str) -> Iterator[None]:
    """A parser running out of bytes or meeting bytes its layout does not allow: one line saying so."""
    import construct

    try:
        yield
    except (construct.ConstructError, EOFError, struct.error) as exc:
        reason = one_line(exc).replace("Error in path (parsing) -> ", "")
        raise ScanError(f"{path}: not a readable {what} file (truncated or damaged: {reason})") from None


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Capture what a reader prints (oct-converter reports some failures on stdout and goes on)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def _laterality(value: Any) -> str | None:
    text = str(value or "").strip().upper()
    return {"OD": "R", "R": "R", "OS": "L", "L": "L"}.get(text)


def _patient(name: Any = None, patient_id: Any = None, birth: Any = None, sex: Any = None) -> dict[str, str]:
    """DICOM patient keywords from a vendor file's fields (empty or placeholder values left out)."""
    out: dict[str, str] = {}
    if name and str(name).strip("^ "):
        out["PatientName"] = str(name)
    if patient_id and str(patient_id).strip() not in ("", "unknown"):
        out["PatientID"] = str(patient_id).strip()[:64]
    if isinstance(birth, str):
        with contextlib.suppress(ValueError):
            birth = datetime.fromisoformat(birth)
    if isinstance(birth, (date, datetime)) and birth.year > 1900:
        out["PatientBirthDate"] = birth.strftime("%Y%m%d")
    if sex and str(sex)[:1].upper() in "MFO":
        out["PatientSex"] = str(sex)[:1].upper()
    return out


def _positive(value: Any) -> float | None:
    """A spacing in mm the file states, or None for a missing, zero or non-finite one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _integer_scan(path: Path, bscans: np.ndarray, fmt: str, geometry: Geometry, device: str,
                  laterality: str | None = None, patient: dict[str, str] | None = None) -> Scan:
    """A ``Scan`` of integer B-scans ``[N, H, W]``: the smallest bit depth that holds them maps to [0, 1]."""
    bscans = np.asarray(bscans)
    if bscans.ndim != 3 or 0 in bscans.shape:
        raise ScanError(f"{path}: no B-scans in the file (shape {bscans.shape})")
    intensity, bits = int_range(bscans)
    dtype = np.dtype(np.uint8 if bits <= 8 else np.uint16)
    header = VendorHeader(device, dtype, intensity, laterality, patient or {})
    return Scan(to_unit(bscans, *intensity), geometry, fmt, bits, "MONOCHROME2", header, path)


def read_heidelberg_vol(path: Path, bscan_axis: int | None = None) -> Scan:
    """Heidelberg Spectralis ``.vol``: eyepy's parser, reflectivity shown with eyepy's own vol transform."""
    he = _library("eyepy.io.he.vol_reader", "eyepy", path, "Heidelberg .vol")
    from eyepy.core.utils import from_vol_intensity

    with open(path, "rb") as fh, _damaged(path, "Heidelberg .vol"):
        parsed = he.vol_format.parse_stream(fh)
    raw = np.stack([np.asarray(b.data, dtype=np.float32) for b in parsed.bscans])
    bscans = from_vol_intensity(raw.copy())
    geometry = Geometry(_positive(parsed.scale_y), _positive(parsed.scale_x),
                        _positive(parsed.distance) if len(raw) > 1 else None)
    patient = _patient(patient_id=parsed.patient_id, birth=parsed.dob)
    return _integer_scan(path, bscans, "heidelberg_vol", geometry, "Heidelberg Engineering",
                         _laterality(parsed.scan_position), patient)


def read_heidelberg_e2e(path: Path, bscan_axis: int | None = None) -> Scan:
    """Heidelberg ``.e2e``: the first OCT volume eyepy finds. The file states the axial spacing (each
    B-scan's header, mm); eyepy gives the lateral one only as a derivation from the scan angle and an
    average eye, so it stays unknown, as does the distance between B-scans."""
    he = _library("eyepy.io.he", "eyepy", path, "Heidelberg .e2e")
    with _damaged(path, "Heidelberg .e2e"), he.HeE2eReader(path) as reader:
        volume = reader.volume
    meta = volume.meta
    bscan_meta = meta.get("bscan_meta") or [{}]
    in_mm = meta.get("scale_unit") == "mm"
    geometry = Geometry(_positive(meta.get("scale_y") if in_mm else bscan_meta[0].get("scale_y")),
                        _positive(meta.get("scale_x")) if in_mm else None,
                        _positive(meta.get("scale_z")) if in_mm else None)
    person = ((meta.get("e2e_metadata") or {}).get("heyex") or {}).get("Patient") or {}
    name = "^".join(str(p) for p in (person.get("Surname"), person.get("First Name")) if p)
    patient = _patient(name, person.get("Patient ID"), None, person.get("Sex"))
    return _integer_scan(path, np.asarray(volume.data), "heidelberg_e2e", geometry, "Heidelberg Engineering",
                         _laterality(meta.get("laterality")), patient)


def _octconverter_scan(path: Path, fmt: str, device: str, volume: Any) -> Scan:
    """An oct-converter ``OCTVolumeWithMetaData`` (B-scans ``[H, W]``; spacing x, between B-scans, axial)."""
    spacing = list(volume.pixel_spacing or [None, None, None])
    bscans = np.stack([np.asarray(b) for b in volume.volume])
    geometry = Geometry(_positive(spacing[2]), _positive(spacing[0]),
                        _positive(spacing[1]) if len(bscans) > 1 else None)
    name = "^".join(str(p) for p in (volume.surname, volume.first_name) if p)
    patient = _patient(name, volume.patient_id, volume.DOB, volume.sex)
    return _integer_scan(path, bscans, fmt, geometry, device, _laterality(volume.laterality), patient)


def _topcon_scan(path: Path, kind: str) -> Scan:
    """Topcon ``.fds`` (raw 16-bit B-scans) or ``.fda`` (JPEG 2000 B-scans), decoded by ``topcon`` with
    oct-converter's structs (its ``FDS``/``FDA`` classes need a NumPy older than 2.3)."""
    binaries = {k: _library(f"oct_converter.readers.binary_structs.{k}_binary", "oct-converter", path,
                            f"Topcon .{kind}") for k in ("fds", "fda")}
    from .topcon import read_topcon

    with _damaged(path, f"Topcon .{kind}"):
        volume = read_topcon(path, binaries)
    person = volume.patient
    patient = _patient(person.get("name"), person.get("id"), person.get("birth"), person.get("sex"))
    return _integer_scan(path, volume.bscans, f"topcon_{kind}", Geometry(*map(_positive, volume.spacing)),
                         "Topcon", volume.laterality, patient)


def read_topcon_fds(path: Path, bscan_axis: int | None = None) -> Scan:
    """Topcon ``.fds``."""
    return _topcon_scan(path, "fds")


def read_topcon_fda(path: Path, bscan_axis: int | None = None) -> Scan:
    """Topcon ``.fda``."""
    return _topcon_scan(path, "fda")


def read_zeiss_img(path: Path, bscan_axis: int | None = None) -> Scan:
    """Zeiss Cirrus ``.img``: a raw 8-bit cube without a header, so without spacing; the cube
    (512 x 128 or 200 x 200 A-scans of 1024 samples) is known by the file's size."""
    readers = _library("oct_converter.readers", "oct-converter", path, "Zeiss .img")
    size = path.stat().st_size
    cols = next((c for c, n in _CIRRUS_CUBES if size == c * n * _CIRRUS_DEPTH), None)
    if cols is None:
        cubes = ", ".join(f"{c}x{n}" for c, n in _CIRRUS_CUBES)
        raise ScanError(f"{path}: {size} bytes is not a Zeiss Cirrus cube ({cubes} A-scans of {_CIRRUS_DEPTH})")
    volume = readers.IMG(path).read_oct_volume(rows=_CIRRUS_DEPTH, cols=cols)
    volume.pixel_spacing = None
    volume.patient_id = None  # oct-converter takes it from the file name, which we never carry
    return _octconverter_scan(path, "zeiss_img", "Carl Zeiss Meditec", volume)


def _bioptigen_geometry(header: Any, depth: int, ascans: int, bscans: int) -> Geometry:
    """Spacing from the header's scan depth and length (mm); B-scans of a linear scan share one place."""
    between = None
    if bscans > 1 and header.scantype.value == 1:
        between = _positive(header.elscanlength.value / (bscans - 1)) if header.elscanlength.value else None
    return Geometry(_positive(header.scandepth.value / depth), _positive(header.scanlength.value / ascans), between)


def read_bioptigen_oct(path: Path, bscan_axis: int | None = None) -> Scan:
    """Bioptigen ``.oct``: every frame of every volume, A-scans stored as columns of ``[depth, A-scans]``."""
    readers = _library("oct_converter.readers", "oct-converter", path, "Bioptigen .oct")
    from oct_converter.exceptions import InvalidOCTReaderError

    try:
        with _damaged(path, "Bioptigen .oct"), _quiet() as printed:
            volumes = readers.BOCT(path).read_oct_volume()
    except InvalidOCTReaderError:
        raise ScanError(f"{path}: not a Bioptigen .oct file (its header keys differ; "
                        "Optovue .oct is not read)") from None
    if "Stopping load" in printed.getvalue():
        raise ScanError(f"{path}: truncated or damaged frame data ({printed.getvalue().splitlines()[0]})")
    bscans = np.concatenate([np.asarray(v.volume) for v in volumes]).transpose(0, 2, 1)
    header = readers.BOCT.header_structure.parse_file(path)
    geometry = _bioptigen_geometry(header, bscans.shape[1], bscans.shape[2], len(bscans) if len(volumes) == 1 else 0)
    return _integer_scan(path, bscans, "bioptigen_oct", geometry, "Bioptigen")


def vol_declared_size(path: Path) -> tuple[tuple[int, ...], int]:
    """(shape, samples) a ``.vol`` header declares (float32 samples count double); a header that
    declares more B-scan bytes than the file holds is refused as damaged, not as too large."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24:
        return file_declared_size(path)
    size_x, n_bscans, size_y = struct.unpack("<3I", head[12:24])
    if n_bscans * size_y * size_x * 4 > size:
        raise ScanError(f"{path}: not a readable Heidelberg .vol file (truncated or damaged: the header "
                        f"declares {n_bscans} B-scans of {size_y}x{size_x}, more than its {size} bytes hold)")
    return (n_bscans, size_y, size_x), n_bscans * size_y * size_x * 2


def file_declared_size(path: Path) -> tuple[tuple[int, ...], int]:
    """(shape, samples) bounded by the byte count: none of these formats is compressed except .fda
    (JPEG 2000) and .e2e, whose B-scans eyepy decodes one by one."""
    size = path.stat().st_size
    return (size,), size


def _sniff(test: Callable[[bytes], bool], suffix: str) -> Sniff:
    """A sniff that answers ``suffix`` when ``test`` accepts the first bytes."""
    return lambda head, path: suffix if test(head) else None


def _topcon_fda(head: bytes) -> bool:
    """Topcon: 'FOCT', then 'FDA' (macula) or 'FAA' (external fixation), as ``.fda`` exports start."""
    return head.startswith(b"FOCT") and head[4:7] in (b"FDA", b"FAA")


def _bioptigen(head: bytes) -> bool:
    """Bioptigen ``.oct``: after the magic number and version, the key 'FRAMEHEADER' with its length 11."""
    return head[6:10] == (11).to_bytes(4, "little") and head[10:21] == b"FRAMEHEADER"


# Heidelberg .vol starts with its version string 'HSF-OCT-xxx', .e2e with 'CMDb' (the magic of its
# header and directory chunks); Topcon files with 'FOCT'; a Zeiss .img has no header and is known by
# its name only.
_VENDOR_FORMATS = (
    ("heidelberg_vol", ".vol", lambda head: head.startswith(b"HSF-OCT-"), vol_declared_size, read_heidelberg_vol),
    ("heidelberg_e2e", ".e2e", lambda head: head.startswith(b"CMDb"), file_declared_size, read_heidelberg_e2e),
    ("topcon_fda", ".fda", _topcon_fda, file_declared_size, read_topcon_fda),
    ("topcon_fds", ".fds", lambda head: head.startswith(b"FOCT") and not _topcon_fda(head), file_declared_size,
     read_topcon_fds),
    ("zeiss_img", ".img", lambda head: False, file_declared_size, read_zeiss_img),
    ("bioptigen_oct", ".oct", _bioptigen, file_declared_size, read_bioptigen_oct),
)
for _name, _suffix, _test, _size, _reader in _VENDOR_FORMATS:
    register_format(ScanFormat(_name, (_suffix,), _sniff(_test, _suffix), _size, "application/octet-stream",
                               _reader, writer=None, write_as="dicom"))
