"""The in-memory scan every reader returns and every writer takes, and the intensity conversions the
format modules share.

Intensity conventions (the writers apply the exact inverse, so integer round trips are lossless):
floats are unchanged when already within ``[0, 1]``, else min/max (NaN or inf -> ``ScanError``);
colour goes to grey by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), alpha ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScanError
from .detect import known_suffix

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_INT_BITS = (8, 10, 12, 14, 16, 24, 32, 64)


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
        suffix = known_suffix(self.path)
        return self.path.name[: -len(suffix)] if suffix else self.path.name

    @property
    def colour_note(self) -> str | None:
        """One line saying that colour samples were reduced to grey (annotations in colour lose their
        colour and enter the model as grey), or None for a grey scan."""
        if self.photometric.startswith("MONOCHROME"):
            return None
        return f"colour ({self.photometric}) converted to grey (luma 0.299 R + 0.587 G + 0.114 B); the output is grey"

    @property
    def depth_note(self) -> str | None:
        """One line saying that 1-bit samples are written back as 8-bit (no writer keeps 1 bit), else None."""
        if self.bit_depth != 1:
            return None
        return "1-bit samples are written as 8-bit (0 -> 0, 1 -> 255): the output's grey levels are not 1-bit"

    @property
    def notes(self) -> list[str]:
        """Every way the pixels or the written file differ from the source's own, one line each."""
        notes = [note for note in (self.colour_note, self.depth_note) if note]
        if (getattr(self.header, "info", None) or {}).get("exif_orientation_applied"):
            notes.append("EXIF orientation applied to the pixels; the output is stored upright without it")
        return notes

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


# ----------------------------------------------------------------------------------------------
# intensity


def to_unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``values`` in ``[lo, hi]`` to float32 in [0, 1] (clipped)."""
    span = (hi - lo) or 1.0
    out = (values.astype(np.float32) - np.float32(lo)) / np.float32(span)
    return np.clip(out, 0.0, 1.0, out=out)


def from_unit(x: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> np.ndarray:
    """Inverse of ``to_unit`` into ``dtype`` (rounded and clipped for integers)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return to_integers(x, (hi - lo) or 1.0, lo, 1.0, (info.min, info.max), dtype)
    return (x.astype(np.float64) * ((hi - lo) or 1.0) + lo).astype(dtype)


def to_integers(x: np.ndarray, mul: float, add: float, div: float, limits: tuple[float, float],
                dtype: np.dtype) -> np.ndarray:
    """``clip(rint((x * mul + add) / div), *limits)`` as integer ``dtype``, computed in float64 in place
    one 2-D plane at a time: an upscaled volume as one float64 array is gigabytes and several passes."""
    out = np.empty(x.shape, dtype)
    planes = x.reshape(-1, *x.shape[-2:]) if x.ndim >= 2 else x.reshape(1, -1)
    for src, dst in zip(planes, out.reshape(planes.shape)):
        v = src.astype(np.float64)
        v *= mul
        v += add
        if div != 1.0:
            v /= div
        np.rint(v, out=v)
        np.clip(v, *limits, out=v)
        dst[...] = v
    return out


def float_range(values: np.ndarray, path: Path) -> tuple[float, float]:
    """The float values that map to 0 and 1: [0, 1] itself when the data lie within it, else min/max."""
    if not np.isfinite(values).all():
        raise ScanError(f"{path}: contains NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, (hi if hi > lo else lo + 1.0)


def int_range(values: np.ndarray) -> tuple[tuple[float, float], int]:
    """(integer values that map to 0 and 1, bit depth) of integer data whose header states no depth.

    Non-negative data: ``[0, 2**b - 1]`` for the smallest ``b`` of 8, 10, 12, 14, 16, 24, 32, 64 that
    holds the maximum (a 12-bit device's uint16 volume -> /4095, the same for all its files; uint8 ->
    /255). Data with negative values: its own min/max.
    """
    lo, hi = int(values.min()), int(values.max())
    if lo < 0:
        return (float(lo), float(hi if hi > lo else lo + 1)), values.dtype.itemsize * 8
    bits = next(b for b in _INT_BITS if hi <= 2**b - 1)
    bits = max(min(bits, values.dtype.itemsize * 8), 1)
    return (0.0, float(2**bits - 1)), bits


def luma(rgb: np.ndarray) -> np.ndarray:
    """Grey from the first three channels of the last axis (normalised values)."""
    return np.clip(rgb[..., :3] @ _LUMA, 0.0, 1.0).astype(np.float32)
