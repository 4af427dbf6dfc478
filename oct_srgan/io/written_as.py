"""A read-only scan (vendor export) as a scan of a writable format: the same pixels and spacing with a
fresh header of that format, so the format's own writer writes it. DICOM becomes an Ophthalmic
Tomography (OPT) object that carries the source's patient fields the way a DICOM source's are kept."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..errors import ScanError
from .scan import NiftiHeader, RasterHeader, Scan
from .vendor import VendorHeader

OPT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image Storage


def _number(value: float) -> str:
    return f"{value:.10g}"


def _pixel_measures(scan: Scan) -> pydicom.Dataset:
    g = scan.geometry
    measures = pydicom.Dataset()
    if g.row_spacing is not None and g.col_spacing is not None:
        measures.PixelSpacing = [_number(g.row_spacing), _number(g.col_spacing)]
    if g.slice_spacing is not None:
        measures.SliceThickness = _number(g.slice_spacing)
        measures.SpacingBetweenSlices = _number(g.slice_spacing)
    return measures


def dicom_dataset(scan: Scan) -> pydicom.Dataset:
    """An OPT multi-frame dataset for ``scan`` (pixels left to the DICOM writer), with new study,
    series and frame-of-reference UIDs and no SOP Instance UID of a source (there is no DICOM source)."""
    src: VendorHeader = scan.header
    n, h, w = scan.pixels.shape
    bits = 8 if src.dtype.itemsize == 1 else 16
    now = datetime.now(timezone.utc)
    ds = pydicom.Dataset()
    ds.SOPClassUID = OPT_SOP_CLASS
    ds.Modality = "OPT"
    ds.Manufacturer = src.device
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (generate_uid() for _ in range(3))
    ds.StudyDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientName = src.patient.get("PatientName", "")
    ds.PatientID = src.patient.get("PatientID", "")
    ds.PatientBirthDate = src.patient.get("PatientBirthDate", "")
    ds.PatientSex = src.patient.get("PatientSex", "")
    if src.laterality:
        ds.Laterality = ds.ImageLaterality = src.laterality
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.NumberOfFrames, ds.Rows, ds.Columns = n, h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, scan.bit_depth, scan.bit_depth - 1, 0
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = [_pixel_measures(scan)]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PixelData = b""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = OPT_SOP_CLASS
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _nifti_header(scan: Scan) -> NiftiHeader:
    """Axes (lateral, axial, B-scan) with the spacing as voxel size, as the shipped NIfTI OCT volumes."""
    import nibabel

    src: VendorHeader = scan.header
    n, h, w = scan.pixels.shape
    g = scan.geometry
    zooms = [s if s is not None else 1.0 for s in (g.col_spacing, g.row_spacing, g.slice_spacing)]
    affine = np.diag(zooms + [1.0])
    header = nibabel.Nifti1Header()
    header.set_data_shape((w, h, n))
    header.set_data_dtype(src.dtype)
    header.set_zooms(zooms)
    header.set_xyzt_units("mm")
    return NiftiHeader(header, affine, nibabel.Nifti1Image, (w, h, n), src.dtype, (2, 1, 0), None,
                       src.intensity, False)


def written_as(scan: Scan, fmt: str) -> Scan:
    """``scan`` (read-only source format) as a ``fmt`` scan that ``fmt``'s writer takes."""
    src = scan.header
    if not isinstance(src, VendorHeader):
        raise ScanError(f"{scan.path}: a {scan.source_format} scan cannot be written as {fmt}")
    if fmt == "dicom":
        header: object = dicom_dataset(scan)
    elif fmt == "nifti":
        header = _nifti_header(scan)
    elif fmt in ("png", "tiff", "jpeg", "bmp"):
        # A 16-bit picture is read full-scale, so a 12-bit scan is spread over 0..65535.
        header = RasterHeader("L" if src.dtype.itemsize == 1 else "I;16", src.dtype,
                              (0.0, float(np.iinfo(src.dtype).max)))
    else:
        raise ScanError(f"{scan.path}: a {scan.source_format} scan cannot be written as {fmt}")
    return dataclasses.replace(scan, source_format=fmt, header=header)
