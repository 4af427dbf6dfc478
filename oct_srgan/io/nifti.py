"""NIfTI (.nii, .nii.gz): read with MONAI's ``NibabelReader`` (native dtype, header and affine are
right); write back with the source's axis layout, dtype and header.

Which array axis holds the B-scans and which in-plane axis is depth are decided here from the voxel
sizes (see ``_read_nifti``). Integers: non-negative data ``/(2**b - 1)`` for the smallest standard
depth ``b`` that holds the maximum, data with negative values by its own min/max (``scan.int_range``).
MONAI is imported inside the reader only: enhancing a DICOM or PNG must not pay its package import.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScanError
from .registry import HEAD_BYTES, ScanFormat, register_format
from .scan import Geometry, NiftiHeader, Scan, float_range, int_range, luma, to_integers, to_unit

_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}


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


def _zooms_mm(header: Any) -> list[float]:
    """Voxel sizes of the first three axes in mm (1.0 for axes the image lacks)."""
    unit = _UNIT_TO_MM.get(header.get_xyzt_units()[0] or "unknown", 1.0)
    zooms = [float(str(np.float32(z))) * unit for z in header.get_zooms()[:3]]
    return zooms + [1.0] * (3 - len(zooms))


def _core(data: np.ndarray, source_shape: tuple[int, ...], zooms: Sequence[float],
          bscan_axis: int | None) -> tuple[np.ndarray, list[int], int | str | None]:
    """(data without trailing singleton axes, the source axes it keeps, the colour axis or None).

    RGB24 records become a last axis of three samples (colour ``"fields"``); a fourth axis of 3 or 4
    samples is colour; a 3-D image may hold colour as a spatial axis (see ``_colour_axis``).
    """
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
    return core, axes, colour


def _intensity(core: np.ndarray, path: Path) -> tuple[tuple[float, float], int]:
    """(source values that map to 0 and 1, bit depth)."""
    if core.dtype.kind == "f":
        return float_range(core, path), core.dtype.itemsize * 8
    if core.dtype.kind in "ui":
        return int_range(core)
    raise ScanError(f"{path}: unsupported NIfTI data type {core.dtype}")


def _bscan_order(spatial: list[int], zoom: Mapping[int, float], source_shape: tuple[int, ...],
                 bscan_axis: int | None, path: Path) -> tuple[int | None, int, int]:
    """The source axes that become (N, H, W); N is None for a 2-D image."""
    if len(spatial) != 3:
        h, w = _plane_order(*spatial, zoom)
        return None, h, w
    if bscan_axis is not None:
        b = bscan_axis % len(source_shape)
        if b not in spatial:
            raise ScanError(f"{path}: --bscan-axis {bscan_axis} is not a spatial axis of {source_shape}")
    else:
        b = max(spatial, key=lambda a: (zoom[a], -source_shape[a], a))
    h, w = _plane_order(*[a for a in spatial if a != b], zoom)
    return b, h, w


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
    header = img.header
    source_shape = tuple(int(s) for s in img.shape)
    zooms = _zooms_mm(header)
    core, axes, colour = _core(np.asarray(data), source_shape, zooms, bscan_axis)
    spatial = [a for a in axes if a != colour and a < 3]
    if len(spatial) + (1 if colour is not None else 0) != core.ndim or len(spatial) < 2:
        raise ScanError(f"{path}: unsupported NIfTI shape {source_shape}")
    intensity, bit_depth = _intensity(core, path)
    x = to_unit(core, *intensity)
    channels = 1
    if colour is not None:
        position = core.ndim - 1 if colour == "fields" else axes.index(colour)
        channels = core.shape[position]
        x = luma(np.moveaxis(x, position, -1))
    zoom = dict(enumerate(zooms))
    order = _bscan_order(spatial, zoom, source_shape, bscan_axis, path)
    b, h, w = order
    pixels = x.transpose([spatial.index(a) for a in order if a is not None])
    if b is None:
        pixels = pixels[None]
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
    geometry = Geometry(zoom[h], zoom[w], None if b is None else zoom[b])
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
            data = to_integers(values, 1.0, 0.0, 1.0, (info.min, info.max), src.dtype)
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



def _nifti_magic(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic at 344) or NIfTI-2 (540-byte header, magic at 4), either endian."""
    if len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    if len(head) >= 8 and head[4:8] in (b"n+2\0", b"ni2\0"):
        return int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return False


def _sniff_nifti(head: bytes, path: Path) -> str | None:
    """``.nii`` for a NIfTI header, ``.nii.gz`` for one inside gzip."""
    if _nifti_magic(head):
        return ".nii"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(HEAD_BYTES)
        except (OSError, EOFError):
            return None
        if _nifti_magic(inner):
            return ".nii.gz"
    return None


def _declared_size(path: Path) -> tuple[tuple[int, ...], int]:
    """The header's data shape; samples wider than 16 bits count double."""
    import nibabel

    header = nibabel.load(str(path)).header
    shape = tuple(int(s) for s in header.get_data_shape())
    return shape, math.prod(shape) * max(1, math.ceil(header.get_data_dtype().itemsize / 2))


register_format(ScanFormat("nifti", (".nii.gz", ".nii"), _sniff_nifti, _declared_size, "application/octet-stream",
                           _read_nifti, _write_nifti))
