"""DICOM: read with ``pydicom.dcmread`` and decode the pixels here; write the source dataset back with
new pixels, new UIDs and, for a derived image, the derivation where its IOD holds it.

``pydicom.dcmread`` is all that MONAI's ``PydicomReader.read`` does for one file; it is called
directly so that enhancing a DICOM does not pay the 2.6 s import of the whole MONAI package. The
pixels are decoded with pydicom's decoder, because ``PydicomReader.get_data`` returns a multi-frame
OCT as (rows, frames, cols), reports unit spacing (it ignores functional-group Pixel Measures), does
not invert MONOCHROME1 and leaves RGB as colour.

Frames are B-scans as stored (rows = depth). Integers: stored value -> Rescale Slope/Intercept ->
the rescaled range of the stored bit depth (``[0, 2**BitsStored - 1]``, or the signed range when
Pixel Representation is 1) maps to ``[0, 1]``: 12-bit -> /4095 whatever the rescale (a positive
slope cancels, a negative one inverts). Then MONOCHROME1 is inverted.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from ..errors import ScanError, one_line
from .registry import ScanFormat, register_format
from .scan import Geometry, Scan, float_range, luma, to_integers, to_unit

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


def _frames(ds: pydicom.Dataset) -> int:
    """NumberOfFrames as declared (absent or empty: one frame); an explicit 0 stays 0, an empty scan."""
    value = ds.get("NumberOfFrames")
    return 1 if value is None or value == "" else int(value)


def _read_dicom(path: Path, bscan_axis: int | None = None) -> Scan:
    """Every frame is a B-scan as stored (rows = depth), so ``bscan_axis`` does not apply."""
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
        raise ScanError(f"{path}: cannot decode pixel data ({syntax.name}): {one_line(exc)}") from exc
    photometric = str(info.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ScanError(f"{path}: unsupported photometric interpretation {photometric!r}")
    samples = int(info.get("samples_per_pixel", 1))
    shape = (_frames(ds), int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if arr.size != math.prod(shape):
        dims = "x".join(map(str, shape))
        raise ScanError(f"{path}: the pixel data holds {arr.size} samples, the header declares {dims} ({math.prod(shape)})")
    arr = arr.reshape(shape)
    if arr.dtype.kind == "f":
        x = to_unit(arr, *float_range(arr, path))
        bit_depth = arr.dtype.itemsize * 8
    else:
        slope, intercept, lo, hi = _dicom_unit_range(ds)
        values = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        if photometric == "MONOCHROME1":
            values = np.float32(hi + lo) - values  # inverted before scaling: exact for integers
        x = to_unit(values, lo, hi)
        bit_depth = int(ds.BitsStored)
    if arr.dtype.kind == "f" and photometric == "MONOCHROME1":
        x = 1.0 - x
    if samples > 1:
        x = luma(x)
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
        raise ScanError(f"{scan.path or target.name}: writing float-pixel DICOM is not supported")
    ds = copy.deepcopy(src)
    n, h, w = scan.pixels.shape
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if frames is not None and len(frames) != n:
        raise ScanError(f"{target}: source has {len(frames)} per-frame groups but there are {n} B-scans")
    photometric = str(src.PhotometricInterpretation)
    out_photometric = "MONOCHROME1" if photometric == "MONOCHROME1" else "MONOCHROME2"
    x = 1.0 - scan.pixels if out_photometric == "MONOCHROME1" else scan.pixels
    if int(ds.BitsAllocated) == 1:  # no 1-bit writer: 0/1 become 0/255 (``Scan.depth_note`` says so)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    slope, intercept, lo, hi = _dicom_unit_range(ds)
    smin, smax, _, _ = _dicom_stored_range(ds)
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    data = to_integers(x, hi - lo, lo - intercept, slope, (smin, smax), dtype).tobytes()
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
    # dcmwrite (not save_as) re-encodes a big-endian source in the little-endian syntax set above
    pydicom.dcmwrite(target, ds, enforce_file_format=True)


def _sniff_dicom(head: bytes, path: Path) -> str | None:
    """The DICOM Part 10 marker: 128 bytes of preamble, then 'DICM'."""
    return ".dcm" if head[128:132] == b"DICM" else None


def _declared_size(path: Path) -> tuple[tuple[int, ...], int]:
    """Frames x rows x columns x samples; samples wider than 16 bits count double."""
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    shape = (_frames(ds), int(ds.get("Rows", 0) or 0),
             int(ds.get("Columns", 0) or 0), int(ds.get("SamplesPerPixel", 1) or 1))
    bits = int(ds.get("BitsAllocated", 8) or 8)
    return shape, math.prod(shape) * max(1, math.ceil(bits / 16))


register_format(ScanFormat("dicom", (".dcm", ".dicom"), _sniff_dicom, _declared_size, "application/dicom",
                           _read_dicom, _write_dicom, sniff_unnamed=True))
