"""Read and write OCT scans as stacks of B-scans ``[N, H, W]`` float32 in ``[0, 1]``.

H is axial depth (rows) and W the lateral A-scans (columns), so retinal layers run left-right.
Every reader ends in this one module, so each quirk of a format or of MONAI is fixed once:

- NIfTI: MONAI ``NibabelReader`` (native dtype, header, affine are right). Which axis holds the
  B-scans and which in-plane axis is depth are decided here from the geometry (see ``_read_nifti``).
- PNG / JPEG / BMP: MONAI ``PILReader`` with ``reverse_indexing=False`` (arrays stay ``[H, W]``).
- TIFF: ``tifffile``. ``LoadImage`` picks no reader for ``.tif``, and PIL reads only the first page
  of a multi-page TIFF (a volume); tifffile also gives BitsPerSample and the photometric tag.
- DICOM: ``pydicom.dcmread`` (all that MONAI's ``PydicomReader.read`` does for one file; called
  directly so that enhancing a DICOM does not pay the 2.6 s import of the whole MONAI package), and
  the pixels are decoded here with pydicom's decoder, because ``PydicomReader.get_data`` returns a
  multi-frame OCT as (rows, frames, cols), reports unit spacing (it ignores functional-group Pixel
  Measures), does not invert MONOCHROME1 and leaves RGB as colour.
- MONAI is imported only inside the readers that use it. ``oct_srgan.transforms.ScanReader`` wraps
  ``read_scan`` as a MONAI ``ImageReader`` and ``LoadScand`` runs it through ``LoadImage`` so files
  flow into MONAI transforms as MetaTensors ``[N, H, W]``.

Orientation: DICOM frames and TIFF pages are B-scans as stored (rows = depth). NIfTI: see
``_read_nifti`` (B-scan axis = coarsest voxel size; in-plane depth = finer voxel size, ties follow
the NIfTI convention that the first axis is x, the columns). PNG/TIFF/JPEG/BMP carry no trustworthy
geometry (resolution tags are usually a 72 dpi placeholder), so their spacing is None.

Intensity normalisation (the writers apply the exact inverse, so integer round trips are lossless):

- DICOM integers: stored value -> Rescale Slope/Intercept -> the rescaled range of the stored bit
  depth (``[0, 2**BitsStored - 1]``, or the signed range when Pixel Representation is 1) maps to
  ``[0, 1]``: 12-bit -> /4095 whatever the rescale (a positive slope cancels, a negative one
  inverts). Then MONOCHROME1 is inverted.
- PNG / TIFF / JPEG / BMP integers: ``/(2**bits - 1)`` with bits the sample size (TIFF BitsPerSample).
- NIfTI integers: non-negative data ``/(2**b - 1)`` for the smallest ``b`` of 8, 10, 12, 14, 16, 24,
  32, 64 that holds the data maximum (a 12-bit device's uint16 volume -> /4095, the same for all its
  files; uint8 -> /255); data with negative values by its own min/max.
- Floats: unchanged when already within ``[0, 1]``, else min/max. NaN or inf -> ``ScanError``.
- Colour -> grey by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B); alpha is ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import tifffile
from PIL import Image, PngImagePlugin
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from .errors import OutputExistsError, ScanError, WriteError
from .fsutil import atomic_path
from .limits import DEFAULT_MAX_PIXELS, check_pixels

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
}
SCAN_SUFFIXES: tuple[str, ...] = (
    ".dcm", ".dicom", ".nii", ".nii.gz", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"
)
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_NIFTI_BITS = (8, 10, 12, 14, 16, 24, 32, 64)
_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}


@dataclass(frozen=True)
class Geometry:
    """Sample spacing in mm: along H (axial rows), along W (lateral columns), between B-scans."""

    row_spacing: float | None = None
    col_spacing: float | None = None
    slice_spacing: float | None = None


@dataclass(frozen=True)
class NiftiHeader:
    """What a NIfTI writer needs to put B-scans back the way the source file held them.

    ``axes`` are the source array axes that became (N, H, W) (N is None for a 2-D image),
    ``colour_axis`` the source axis (or ``"fields"`` for RGB24 records) that was reduced to grey,
    ``intensity`` the source values that map to 0 and 1.
    """

    header: Any
    affine: np.ndarray
    image_class: type
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: tuple[int | None, int, int]
    colour_axis: int | str | None
    intensity: tuple[float, float]
    scaled: bool

    @property
    def bscan_axis(self) -> int | None:
        return self.axes[0]


@dataclass(frozen=True)
class RasterHeader:
    """Mode and sample type of a PNG/TIFF/JPEG/BMP source, for writing back at the same bit depth."""

    mode: str
    dtype: np.dtype
    intensity: tuple[float, float]
    info: dict = dataclasses.field(default_factory=dict)


@dataclass(eq=False)
class Scan:
    """B-scans ``[N, H, W]`` float32 in [0, 1] with the geometry and the source header to write back.

    ``header`` is the pydicom Dataset (DICOM), a ``NiftiHeader`` or a ``RasterHeader``; it is shared
    between copies and never modified (writers work on a copy).
    """

    pixels: np.ndarray = dataclasses.field(repr=False)
    geometry: Geometry
    source_format: str
    bit_depth: int
    photometric: str
    header: Any = dataclasses.field(repr=False)
    path: Path | None = None

    @property
    def name(self) -> str:
        """File name without its scan suffix (``oct_volume_s14.nii.gz`` -> ``oct_volume_s14``)."""
        if self.path is None:
            return "scan"
        suffix = _known_suffix(self.path)
        return self.path.name[: -len(suffix)] if suffix else self.path.name

    def with_pixels(self, new_pixels: Any) -> Scan:
        """A copy holding ``new_pixels`` (clipped to [0, 1]); row/col spacing scale by old/new size."""
        if hasattr(new_pixels, "detach"):
            new_pixels = new_pixels.detach().cpu().numpy()
        arr = np.asarray(new_pixels, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        label = self.path if self.path is not None else "scan"
        if arr.ndim != 3 or 0 in arr.shape:
            raise ScanError(f"{label}: new pixels must be [N, H, W], got shape {tuple(arr.shape)}")
        if not np.isfinite(arr).all():
            raise ScanError(f"{label}: new pixels contain NaN or infinite values")
        _, h, w = self.pixels.shape
        g = self.geometry
        geometry = Geometry(
            _scaled(g.row_spacing, h, arr.shape[1]), _scaled(g.col_spacing, w, arr.shape[2]), g.slice_spacing
        )
        return dataclasses.replace(self, pixels=np.clip(arr, 0.0, 1.0), geometry=geometry)


def _scaled(spacing: float | None, old: int, new: int) -> float | None:
    return None if spacing is None else spacing * old / new


# ----------------------------------------------------------------------------------------------
# finding and recognising files


def _known_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in _FORMAT_BY_SUFFIX if name.endswith(s)), None)


def _has_dicm_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_scan_file(path: str | Path) -> bool:
    """A scan suffix, or no/numeric suffix and the DICOM 'DICM' marker at byte 128."""
    path = Path(path)
    if _known_suffix(path):
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
        else:
            raise ScanError(f"{p}: no such file or directory")
    return sorted(found)


def _format_of(path: Path) -> str:
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    if not path.is_file():
        raise ScanError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ScanError(f"{path}: empty file")
    suffix = _known_suffix(path)
    if suffix:
        return _FORMAT_BY_SUFFIX[suffix]
    if _has_dicm_preamble(path):
        return "dicom"
    raise ScanError(f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(SCAN_SUFFIXES)})")


def scan_format(path: str | Path) -> str:
    """Format of an existing scan file (dicom, nifti, png, tiff, jpeg, bmp), from its name or DICOM marker."""
    return _format_of(Path(path))


def format_of_name(path: str | Path) -> str | None:
    """Format a file name's scan suffix stands for (``out.nii.gz`` -> nifti), None without one."""
    suffix = _known_suffix(Path(path))
    return _FORMAT_BY_SUFFIX[suffix] if suffix else None


# Advice a library addresses to its programmers ("Use force=True to force reading."): it names no flag
# of ours, so the user could not follow it; dropped from messages passed on.
_LIBRARY_ADVICE = re.compile(r"[^.;]*\b(?:use|set|pass)\s+\w+=\w+[^.;]*[.;]?", re.IGNORECASE)


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line of at most 200 characters, without advice about library keyword arguments."""
    if isinstance(exc, InvalidDicomError):
        return "not a DICOM file (no DICOM file meta header and no 'DICM' marker)"
    text = " ".join(_LIBRARY_ADVICE.sub("", str(exc)).split()).rstrip(" .;,") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ----------------------------------------------------------------------------------------------
# intensity


def _to_unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = (hi - lo) or 1.0
    out = (values.astype(np.float32) - np.float32(lo)) / np.float32(span)
    return np.clip(out, 0.0, 1.0, out=out)


def _from_unit(x: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> np.ndarray:
    """Inverse of ``_to_unit`` into ``dtype`` (rounded and clipped for integers)."""
    v = x.astype(np.float64) * ((hi - lo) or 1.0) + lo
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(v), info.min, info.max).astype(dtype)
    return v.astype(dtype)


def _float_range(values: np.ndarray, path: Path) -> tuple[float, float]:
    if not np.isfinite(values).all():
        raise ScanError(f"{path}: contains NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, (hi if hi > lo else lo + 1.0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Grey from the first three channels of the last axis (normalised values)."""
    return np.clip(rgb[..., :3] @ _LUMA, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# DICOM


def _fg_lookup(ds: pydicom.Dataset, macro: str, keyword: str) -> Any:
    """``keyword`` from ``macro`` in the Shared or first Per-Frame functional group, else the top level."""
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(group)
        if items:
            seq = items[0].get(macro)
            if seq and keyword in seq[0] and seq[0][keyword].value not in (None, ""):
                return seq[0][keyword].value
    value = ds.get(keyword)
    return None if value in (None, "") else value


def _position_step(ds: pydicom.Dataset) -> float | None:
    """Distance between the first two frames' Image Position (Patient), when both are given."""
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if not frames or len(frames) < 2:
        return None
    positions = []
    for item in frames[:2]:
        seq = item.get("PlanePositionSequence")
        if not seq or "ImagePositionPatient" not in seq[0]:
            return None
        positions.append(np.asarray([float(v) for v in seq[0].ImagePositionPatient]))
    step = float(np.linalg.norm(positions[1] - positions[0]))
    return step if step > 0 else None


def _dicom_geometry(ds: pydicom.Dataset) -> Geometry:
    spacing = _fg_lookup(ds, "PixelMeasuresSequence", "PixelSpacing")
    row = col = None
    if spacing is not None and len(spacing) == 2:
        row, col = float(spacing[0]), float(spacing[1])
    between = _fg_lookup(ds, "PixelMeasuresSequence", "SpacingBetweenSlices")
    thickness = _fg_lookup(ds, "PixelMeasuresSequence", "SliceThickness")
    if between is not None:
        slice_spacing = float(between)
    else:
        step = _position_step(ds)
        slice_spacing = step if step is not None else (float(thickness) if thickness is not None else None)
    return Geometry(row, col, slice_spacing)


def _dicom_stored_range(ds: pydicom.Dataset) -> tuple[float, float, float, float]:
    """(stored min, stored max, rescale slope, rescale intercept)."""
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        smin, smax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        smin, smax = 0, 2**bits - 1
    slope = _fg_lookup(ds, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _fg_lookup(ds, "PixelValueTransformationSequence", "RescaleIntercept")
    slope = float(slope) if slope is not None and float(slope) != 0 else 1.0
    intercept = float(intercept) if intercept is not None else 0.0
    return float(smin), float(smax), slope, intercept


def _dicom_unit_range(ds: pydicom.Dataset) -> tuple[float, float, float, float]:
    """(slope, intercept, lo, hi): rescaled values in [lo, hi] map to [0, 1]."""
    smin, smax, slope, intercept = _dicom_stored_range(ds)
    ends = (smin * slope + intercept, smax * slope + intercept)
    return slope, intercept, min(ends), max(ends)


def _read_dicom(path: Path) -> Scan:
    ds = pydicom.dcmread(str(path))
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ScanError(f"{path}: DICOM file has no pixel data")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        raise ScanError(f"{path}: DICOM file has no transfer syntax in its file meta")
    try:
        arr, info = get_decoder(syntax).as_array(ds, as_rgb=True)
    except Exception as exc:
        raise ScanError(f"{path}: cannot decode pixel data ({syntax.name}): {_one_line(exc)}") from exc
    photometric = str(info.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ScanError(f"{path}: unsupported photometric interpretation {photometric!r}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(info.get("samples_per_pixel", 1))
    shape = (frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    arr = arr.reshape(shape)
    if arr.dtype.kind == "f":
        x = _to_unit(arr, *_float_range(arr, path))
        bit_depth = arr.dtype.itemsize * 8
    else:
        slope, intercept, lo, hi = _dicom_unit_range(ds)
        values = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        if photometric == "MONOCHROME1":
            values = np.float32(hi + lo) - values  # inverted before scaling: exact for integers
        x = _to_unit(values, lo, hi)
        bit_depth = int(ds.BitsStored)
    if arr.dtype.kind == "f" and photometric == "MONOCHROME1":
        x = 1.0 - x
    if samples > 1:
        x = _luma(x)
    return Scan(x.astype(np.float32), _dicom_geometry(ds), "dicom", bit_depth, photometric, ds, path)


def _ds_number(value: float) -> str:
    """Shortest faithful decimal string that fits DICOM's 16-character DS."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else format_number_as_ds(value)


def _set_pixel_spacing(ds: pydicom.Dataset, geometry: Geometry) -> None:
    """Write PixelSpacing wherever the source had it: top level, shared and per-frame groups."""
    if geometry.row_spacing is None or geometry.col_spacing is None:
        return
    value = [_ds_number(geometry.row_spacing), _ds_number(geometry.col_spacing)]
    holders: list[pydicom.Dataset] = [ds]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            holders.extend(item.get("PixelMeasuresSequence") or [])
    for holder in holders:
        if "PixelSpacing" in holder:
            holder.PixelSpacing = value

# CID 7203 "Image Derivation": super-resolution changes the pixel grid, i.e. spatial resampling.
DERIVATION_CODE = ("113085", "DCM", "Spatial resampling")
# CID 7202 "Source Image Purpose of Reference": the source was the input of an image processing step
# (121320 "Uncompressed predecessor" is for lossy-compressed copies, which this is not).
SOURCE_PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")


def _code_item(code: tuple[str, str, str]) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _source_reference(src: pydicom.Dataset, frame: int | None = None) -> pydicom.Dataset:
    """An Image SOP Instance Reference and Purpose item pointing at ``src`` (one frame when given)."""
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    if frame is not None:
        ref.ReferencedFrameNumber = frame
    ref.PurposeOfReferenceCodeSequence = [_code_item(SOURCE_PURPOSE_CODE)]
    return ref


def _derivation_item(src: pydicom.Dataset, derivation: str, frame: int | None) -> pydicom.Dataset:
    """One Derivation Image Sequence item (the enhanced IODs' Derivation Image functional group)."""
    item = pydicom.Dataset()
    item.DerivationDescription = derivation[:1024]
    item.DerivationCodeSequence = [_code_item(DERIVATION_CODE)]
    item.SourceImageSequence = [_source_reference(src, frame)]
    return item


def _mark_derived(ds: pydicom.Dataset, src: pydicom.Dataset, derivation: str) -> None:
    """Say in ``ds`` that it was derived from ``src`` where the IOD puts it, so a PACS files and links it.

    Single-frame objects (General Image module) carry Derivation Description, Derivation Code
    Sequence and Source Image Sequence at the top level. Functional-group objects (Ophthalmic
    Tomography, enhanced IODs) hold them in the Derivation Image functional group, per frame when the
    source has per-frame groups (each frame referencing its source frame), and list the source in
    the Common Instance Reference module. They keep a top-level Derivation Description as well
    (a standard attribute outside their IOD: dciodvfy warns, no error) because viewers and our own
    tools show that one and not the functional groups.
    """
    old = list(src.get("ImageType") or [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + old[2:]
    # A PACS files the result as its own series beside the source, named for what was done.
    ds.SeriesNumber = (int(src.get("SeriesNumber") or 0) % 1000) + 1000
    old_desc = str(src.get("SeriesDescription") or "").strip()
    ds.SeriesDescription = ((f"{old_desc} " if old_desc else "") + "[oct-srgan super-resolution]")[-64:]
    for keyword in ("DerivationCodeSequence", "SourceImageSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    has_ids = "SOPClassUID" in src and "SOPInstanceUID" in src
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    ds.DerivationDescription = derivation[:1024]
    if per_frame is None and shared is None:
        ds.DerivationCodeSequence = [_code_item(DERIVATION_CODE)]
        if has_ids:
            ds.SourceImageSequence = [_source_reference(src)]
        return
    if not has_ids:
        return
    for group in list(per_frame or []) + list(shared or []):
        if "DerivationImageSequence" in group:
            del group.DerivationImageSequence
    if per_frame:
        for index, group in enumerate(per_frame, start=1):
            group.DerivationImageSequence = [_derivation_item(src, derivation, index)]
    else:
        if not shared:
            ds.SharedFunctionalGroupsSequence = [pydicom.Dataset()]
        ds.SharedFunctionalGroupsSequence[0].DerivationImageSequence = [_derivation_item(src, derivation, None)]
    if "SeriesInstanceUID" in src:
        instance = pydicom.Dataset()
        instance.ReferencedSOPClassUID = src.SOPClassUID
        instance.ReferencedSOPInstanceUID = src.SOPInstanceUID
        series = pydicom.Dataset()
        series.SeriesInstanceUID = src.SeriesInstanceUID
        series.ReferencedInstanceSequence = [instance]
        ds.ReferencedSeriesSequence = [series]


def _write_dicom(scan: Scan, target: Path, derivation: str | None) -> None:
    """Source dataset with new pixels at the source bit depth; RGB sources are written MONOCHROME2."""
    src: pydicom.Dataset = scan.header
    if "PixelData" not in src:
        raise ScanError(f"{target}: writing float-pixel DICOM is not supported")
    ds = copy.deepcopy(src)
    n, h, w = scan.pixels.shape
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if frames is not None and len(frames) != n:
        raise ScanError(f"{target}: source has {len(frames)} per-frame groups but there are {n} B-scans")
    photometric = str(src.PhotometricInterpretation)
    out_photometric = "MONOCHROME1" if photometric == "MONOCHROME1" else "MONOCHROME2"
    x = 1.0 - scan.pixels if out_photometric == "MONOCHROME1" else scan.pixels
    slope, intercept, lo, hi = _dicom_unit_range(ds)
    smin, smax, _, _ = _dicom_stored_range(ds)
    stored = (x.astype(np.float64) * (hi - lo) + lo - intercept) / slope
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    data = np.clip(np.rint(stored), smin, smax).astype(dtype).tobytes()
    if len(data) % 2:
        data += b"\0"
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds.Rows, ds.Columns = h, w
    if "NumberOfFrames" in ds or n > 1:
        ds.NumberOfFrames = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = out_photometric
    for keyword in ("PlanarConfiguration", "SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    if out_photometric != photometric and "ICCProfile" in ds:
        del ds.ICCProfile
    _set_pixel_spacing(ds, scan.geometry)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax.is_compressed or not syntax.is_little_endian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    if derivation:
        _mark_derived(ds, src, derivation)
    ds.save_as(target, enforce_file_format=True)


# ----------------------------------------------------------------------------------------------
# NIfTI


def _nifti_int_range(values: np.ndarray) -> tuple[tuple[float, float], int]:
    lo, hi = int(values.min()), int(values.max())
    if lo < 0:
        return (float(lo), float(hi if hi > lo else lo + 1)), values.dtype.itemsize * 8
    bits = next(b for b in _NIFTI_BITS if hi <= 2**b - 1)
    bits = max(min(bits, values.dtype.itemsize * 8), 1)
    return (0.0, float(2**bits - 1)), bits


def _colour_axis(shape: tuple[int, ...], zooms: Sequence[float]) -> int | None:
    """A first or last axis of size 3/4 beside an image plane (both other axes >= 16 samples)
    whose voxel size is 1 (unset) or equal to the others: no geometry sets it apart.

    Tools that save an RGB picture as NIfTI store the colour as a third spatial axis with unit
    voxel size (our writer keeps it so). A real 3- or 4-B-scan volume has a B-scan spacing other
    than 1 mm and other than its in-plane spacing; pass ``bscan_axis`` to force volume reading.
    """
    if len(shape) != 3:
        return None
    for axis in (2, 0):
        others = [a for a in range(3) if a != axis]
        unset = math.isclose(zooms[axis], 1.0, rel_tol=1e-4) or all(
            math.isclose(zooms[axis], zooms[a], rel_tol=1e-4) for a in others)
        if shape[axis] in (3, 4) and min(shape[a] for a in others) >= 16 and unset:
            return axis
    return None


def _plane_order(p: int, q: int, zoom: Mapping[int, float]) -> tuple[int, int]:
    """(H axis, W axis) of a plane: depth is the finer-sampled axis (OCT axial sampling is finer
    than lateral); on a tie the NIfTI convention holds: the first axis is x, i.e. the columns.
    """
    if math.isclose(zoom[p], zoom[q], rel_tol=1e-4):
        return q, p
    return (p, q) if zoom[p] < zoom[q] else (q, p)


def _read_nifti(path: Path, bscan_axis: int | None) -> Scan:
    """NIfTI 2-D/3-D (plus trailing singleton or colour axes) to B-scans.

    The B-scan axis of a volume is the coarsest-sampled axis (largest voxel size: the fewest
    samples lie between B-scans); ties go to the smallest axis, then the last. ``bscan_axis``
    overrides it (3-D data only; it also turns off colour-axis detection). The affine's direction
    signs are ignored on purpose: both OCTDL files carry an ITK-style x/y flip, yet their array
    order (first axis = x = columns) is already the upright picture (checked by eye).
    """
    from monai.data import NibabelReader

    reader = NibabelReader()
    img = reader.read(str(path))
    data, _ = reader.get_data(img)
    data = np.asarray(data)
    header = img.header
    source_shape = tuple(int(s) for s in img.shape)
    unit = _UNIT_TO_MM.get(header.get_xyzt_units()[0] or "unknown", 1.0)
    zooms = [float(str(np.float32(z))) * unit for z in header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    colour: int | str | None = None
    if data.dtype.names:
        colour = "fields"
        data = np.stack([data[name] for name in data.dtype.names[:3]], axis=-1)
    axes = [a for a in range(len(source_shape)) if a < 3 or source_shape[a] != 1]
    core = data.reshape([source_shape[a] for a in axes] + ([data.shape[-1]] if colour == "fields" else []))
    if colour is None:
        if core.ndim == 4 and core.shape[3] in (3, 4):
            colour = axes[3]
        elif core.ndim == 3 and bscan_axis is None:
            colour = _colour_axis(core.shape, zooms)
    spatial = [a for a in axes if a != colour and a < 3]
    if len(spatial) + (1 if colour is not None else 0) != core.ndim or len(spatial) < 2:
        raise ScanError(f"{path}: unsupported NIfTI shape {source_shape}")
    if core.dtype.kind == "f":
        intensity = _float_range(core, path)
        bit_depth = core.dtype.itemsize * 8
    elif core.dtype.kind in "ui":
        intensity, bit_depth = _nifti_int_range(core)
    else:
        raise ScanError(f"{path}: unsupported NIfTI data type {core.dtype}")
    x = _to_unit(core, *intensity)
    channels = 1
    if colour is not None:
        position = core.ndim - 1 if colour == "fields" else axes.index(colour)
        channels = core.shape[position]
        x = _luma(np.moveaxis(x, position, -1))
    zoom = dict(enumerate(zooms))
    if len(spatial) == 3:
        if bscan_axis is not None:
            b = bscan_axis % len(source_shape)
            if b not in spatial:
                raise ScanError(f"{path}: --bscan-axis {bscan_axis} is not a spatial axis of {source_shape}")
        else:
            b = max(spatial, key=lambda a: (zoom[a], -source_shape[a], a))
        h, w = _plane_order(*[a for a in spatial if a != b], zoom)
        pixels = x.transpose([spatial.index(b), spatial.index(h), spatial.index(w)])
        slice_spacing: float | None = zoom[b]
        order: tuple[int | None, int, int] = (b, h, w)
    else:
        h, w = _plane_order(*spatial, zoom)
        pixels = x.transpose([spatial.index(h), spatial.index(w)])[None]
        slice_spacing = None
        order = (None, h, w)
    slope, inter = header.get_slope_inter()
    source = NiftiHeader(
        header=header.copy(),
        affine=np.array(img.affine, copy=True),
        image_class=type(img),
        shape=source_shape,
        dtype=np.dtype(img.get_data_dtype()),
        axes=order,
        colour_axis=colour,
        intensity=intensity,
        scaled=(slope is not None and slope != 1.0) or (inter is not None and inter != 0.0),
    )
    photometric = {1: "MONOCHROME2", 3: "RGB", 4: "RGBA"}.get(channels, "MONOCHROME2")
    geometry = Geometry(zoom[h], zoom[w], slice_spacing)
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    return Scan(pixels, geometry, "nifti", bit_depth, photometric, source, path)


def _write_nifti(scan: Scan, target: Path, derivation: str | None) -> None:
    """Same axis layout, dtype and header as the source; resized axes get scaled affine columns
    (and the origin moved half a voxel so voxel centres stay where they were). A colour source is
    written with grey in every colour channel (alpha opaque)."""
    src: NiftiHeader = scan.header
    b, h, w = src.axes
    n, height, width = scan.pixels.shape
    lo, hi = src.intensity
    values = scan.pixels.astype(np.float64) * ((hi - lo) or 1.0) + lo
    if b is None:
        if n != 1:
            raise ScanError(f"{target}: the source is a single 2-D image but there are {n} B-scans")
        order, values = [h, w], values[0]
        sizes = {h: height, w: width}
    else:
        order, sizes = [b, h, w], {b: n, h: height, w: width}
    spatial = sorted(order)
    values = np.transpose(values, [order.index(a) for a in spatial])
    colour = src.colour_axis
    if isinstance(colour, int):
        channels = src.shape[colour]
        position = sorted(spatial + [colour]).index(colour)
        values = np.repeat(np.expand_dims(values, position), channels, axis=position)
        if channels == 4:
            np.moveaxis(values, position, -1)[..., 3] = hi
        sizes[colour] = channels
    shape = [sizes.get(a, src.shape[a] if a == colour else 1) for a in range(len(src.shape))]
    if colour == "fields":
        data = np.empty(shape, dtype=src.dtype)
        grey = np.clip(np.rint(values.reshape(shape)), 0, 255)
        for name in src.dtype.names:
            data[name] = 255 if name == "A" else grey
    else:
        values = values.reshape(shape)
        if src.scaled or src.dtype.kind == "f":
            data = values.astype(np.float64 if src.scaled else src.dtype)
        else:
            info = np.iinfo(src.dtype)
            data = np.clip(np.rint(values), info.min, info.max).astype(src.dtype)
    affine = src.affine.copy()
    hdr = src.header.copy()
    zooms = list(hdr.get_zooms())
    for axis in (a for a in spatial if a < 3):
        factor = src.shape[axis] / sizes[axis]
        if factor != 1.0:
            affine[:3, 3] += src.affine[:3, axis] * (factor - 1.0) / 2.0
            affine[:3, axis] *= factor
            zooms[axis] *= factor
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(src.dtype)
    hdr.set_zooms(zooms[: len(data.shape)] + [1.0] * max(0, len(data.shape) - len(zooms)))
    if derivation:
        hdr["descrip"] = derivation.encode("ascii", "replace")[:79]
    out = src.image_class(data, affine, header=hdr)
    out.set_sform(affine, code=int(hdr["sform_code"]) or "aligned")
    out.set_qform(affine, code=int(hdr["qform_code"]) or "unknown")
    out.to_filename(str(target))


# ----------------------------------------------------------------------------------------------
# PNG / JPEG / BMP (PIL) and TIFF (tifffile)

_PIL_TO_RGB = {
    "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB", "1": "L"
}
_PHOTOMETRIC_BY_CHANNELS = {1: "MONOCHROME2", 2: "MONOCHROME2", 3: "RGB", 4: "RGBA"}


def _grey(x: np.ndarray) -> np.ndarray:
    """Normalised [..., C] samples to grey: grey+alpha keeps the grey, colour goes through luma."""
    return x[..., 0] if x.shape[-1] == 2 else _luma(x)


def _read_pil(path: Path, fmt: str) -> Scan:
    """One B-scan: 8-bit -> /255, 16-bit -> /65535; palette, colour and alpha modes go to grey."""
    from monai.data import PILReader

    reader = PILReader(reverse_indexing=False)
    img = reader.read(str(path))
    try:
        img.load()
        mode = img.mode
        target_mode = "RGBA" if mode == "P" and "transparency" in img.info else _PIL_TO_RGB.get(mode)
        converted = img.convert(target_mode) if target_mode else img
        arr, _ = reader.get_data(converted)
        arr = np.asarray(arr)
    finally:
        img.close()
    arr = arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr
    if arr.dtype == np.uint8:
        intensity, bits, dtype = (0.0, 255.0), 8, np.dtype(np.uint8)
    elif arr.dtype.kind in "ui" and arr.min() >= 0 and arr.max() <= 65535:
        intensity, bits, dtype = (0.0, 65535.0), 16, np.dtype(np.uint16)
    elif arr.dtype.kind == "f":
        intensity, bits, dtype = _float_range(arr, path), 32, np.dtype(np.uint16)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        intensity, bits, dtype = (lo, max(hi, lo + 1.0)), 32, np.dtype(np.uint16)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    photometric = "PALETTE COLOR" if mode in ("P", "PA") else _PHOTOMETRIC_BY_CHANNELS.get(channels, "RGB")
    x = _to_unit(arr, *intensity)
    pixels = (_grey(x) if channels > 1 else x)[None]
    header = RasterHeader(mode=mode, dtype=dtype, intensity=intensity, info={"format": img.format})
    return Scan(np.ascontiguousarray(pixels), Geometry(), fmt, bits, photometric, header, path)


def _read_tiff(path: Path) -> Scan:
    """All pages of the first series are B-scans; MINISWHITE is inverted, palettes applied."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        arr = series.asarray()
        axes = series.axes
        page = tif.pages[0]
        photometric = page.photometric
        bits = int(page.bitspersample)
        colormap = page.colormap
    if "Y" not in axes or "X" not in axes:
        raise ScanError(f"{path}: TIFF series has no image plane (axes {axes})")
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if photometric == tifffile.PHOTOMETRIC.PALETTE and colormap is not None:
        arr = np.asarray(colormap).T[arr]
        axes, bits = axes + "S", 16
    if axes[-3:] == "YXS" or axes[-2:] == "YX":
        plane = 3 if axes.endswith("S") else 2
    else:
        raise ScanError(f"{path}: unsupported TIFF axis order {axes}")
    samples = arr.shape[-1] if plane == 3 else 1
    if photometric == tifffile.PHOTOMETRIC.SEPARATED:
        raise ScanError(f"{path}: CMYK TIFF is not supported")
    arr = arr.reshape((-1,) + arr.shape[-plane:])
    if arr.dtype.kind == "f":
        intensity, dtype = _float_range(arr, path), np.dtype(np.float32)
    elif arr.dtype.kind == "u":
        intensity, dtype = (0.0, float(2 ** min(bits, arr.dtype.itemsize * 8) - 1)), arr.dtype
    elif arr.dtype.kind == "i":
        intensity, _ = _nifti_int_range(arr)
        dtype = arr.dtype
    else:
        raise ScanError(f"{path}: unsupported TIFF sample type {arr.dtype}")
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        arr = np.float32(sum(intensity)) - arr.astype(np.float32)  # inverted before scaling: exact
    x = _to_unit(arr, *intensity)
    x = _grey(x) if samples > 1 else x
    if photometric == tifffile.PHOTOMETRIC.PALETTE:
        name = "PALETTE COLOR"
    elif photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        name = "MONOCHROME1"
    else:
        name = _PHOTOMETRIC_BY_CHANNELS.get(samples, "RGB")
    header = RasterHeader(axes, np.dtype(dtype), intensity, {"bits_per_sample": bits})
    depth = arr.dtype.itemsize * 8 if arr.dtype.kind == "f" else bits
    return Scan(np.ascontiguousarray(x, dtype=np.float32), Geometry(), "tiff", depth, name, header, path)


def _write_raster(scan: Scan, target: Path, derivation: str | None) -> None:
    """Grey at the source sample depth (16-bit stays 16-bit); JPEG/BMP are always 8-bit."""
    src: RasterHeader = scan.header
    n = scan.pixels.shape[0]
    fmt = scan.source_format
    if fmt != "tiff" and n != 1:
        raise ScanError(f"{target}: {fmt.upper()} holds one B-scan, got {n}")
    lo, hi = src.intensity
    dtype = src.dtype
    if fmt in ("jpeg", "bmp") and dtype != np.uint8:
        lo, hi, dtype = 0.0, 255.0, np.dtype(np.uint8)
    arr = _from_unit(scan.pixels, lo, hi, dtype)
    if fmt == "tiff":
        tifffile.imwrite(target, arr if n > 1 else arr[0], photometric="minisblack", metadata=None,
                         description=derivation or None)
        return
    options: dict[str, Any] = {}
    if fmt == "jpeg":
        options["quality"] = 95
    if fmt == "png" and derivation:
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", derivation)
        options["pnginfo"] = info
    Image.fromarray(arr[0]).save(target, format=_PIL_FORMAT[fmt], **options)


# ----------------------------------------------------------------------------------------------
# entry points


def _read_by_format(path: Path, fmt: str, bscan_axis: int | None) -> Scan:
    if fmt == "dicom":
        return _read_dicom(path)
    if fmt == "nifti":
        return _read_nifti(path, bscan_axis)
    if fmt == "tiff":
        return _read_tiff(path)
    return _read_pil(path, fmt)


def read_scan(path: str | Path, bscan_axis: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Scan:
    """Read a DICOM / NIfTI / PNG / TIFF / JPEG / BMP scan as B-scans ``[N, H, W]`` in [0, 1].

    The header's declared size is checked against ``max_pixels`` (see ``limits.check_pixels``)
    before any pixel is decoded.

    ``bscan_axis`` (source array axis) overrides the B-scan axis of a 3-D NIfTI volume; other
    formats store B-scans explicitly (frames, pages) and ignore it. Any failure is a ``ScanError``
    whose one-line message starts with the path.
    """
    path = Path(path)
    fmt = _format_of(path)
    try:
        check_pixels(path, fmt, max_pixels)
        scan = _read_by_format(path, fmt, bscan_axis)
    except ScanError:
        raise
    except MemoryError:
        raise ScanError(f"{path}: not enough memory to decode it (lower --max-pixels or use a smaller scan)") from None
    except Exception as exc:
        raise ScanError(f"{path}: cannot read as {fmt}: {_one_line(exc)}") from exc
    if scan.pixels.ndim != 3 or 0 in scan.pixels.shape:
        raise ScanError(f"{path}: no image data (shape {scan.pixels.shape})")
    return scan


def write_scan(scan: Scan, path: str | Path, derivation: str | None = None, overwrite: bool = True) -> Path:
    """Write ``scan`` atomically in its source format; ``derivation`` says how it was made.

    DICOM gets new SOP Instance and Series Instance UIDs, and with ``derivation`` ImageType
    DERIVED/SECONDARY, a new Series Number and Description, and the derivation (description, code
    "Spatial resampling", Source Image reference) where the IOD holds it (see ``_mark_derived``).
    """
    path = Path(path)
    suffix = _known_suffix(path)
    if suffix and _FORMAT_BY_SUFFIX[suffix] != scan.source_format:
        wanted = _FORMAT_BY_SUFFIX[suffix]
        raise ScanError(f"{path}: a {scan.source_format} scan cannot be written as {wanted}")
    writers = {"dicom": _write_dicom, "nifti": _write_nifti}
    writer = writers.get(scan.source_format, _write_raster)
    try:
        with atomic_path(path, exclusive=not overwrite) as tmp:
            writer(scan, tmp, derivation)
    except ScanError:
        raise
    except FileExistsError:
        raise OutputExistsError(f"{path}: output already exists (use --overwrite to replace it)") from None
    except OSError as exc:
        raise WriteError(f"{path}: cannot write: {exc.strerror or _one_line(exc)}") from None
    except Exception as exc:
        raise ScanError(f"{path}: cannot write {scan.source_format}: {_one_line(exc)}") from exc
    return path


# ----------------------------------------------------------------------------------------------
# MONAI


def scan_meta(scan: Scan) -> dict[str, Any]:
    """MONAI metadata for ``scan``: spacing (N, H, W) in mm (NaN when unknown) and its source."""
    g = scan.geometry
    spacing = np.array([np.nan if s is None else s for s in (g.slice_spacing, g.row_spacing, g.col_spacing)])
    affine = np.diag(np.append(np.where(np.isnan(spacing), 1.0, spacing), 1.0))
    return {
        "affine": affine,
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(scan.pixels.shape),
        "original_channel_dim": float("nan"),
        "spacing": spacing,
        "source_format": scan.source_format,
        "bit_depth": scan.bit_depth,
        "photometric": scan.photometric,
    }
