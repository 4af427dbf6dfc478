"""Pair the scans of a group with the group's clean reference scan (``preprocess --reference``).

With ``reference`` (a regex on the file name stem, e.g. ``average``), the matching scan of each group
is its clean reference: every scan of the group (the reference included, so clean inputs stay
clean) is an *input* whose row names the reference B-scan it is scored and trained against
(B-scan i of a volume <-> B-scan i of the reference; a single-B-scan reference serves every B-scan).
All scans of such a group are cropped to their common area; with ``register`` (the default) each
input B-scan is then aligned to its reference by the integer translation that phase correlation finds
(single acquisitions drift by up to ~20 lateral / ~6 axial pixels against the average in the Duke
set), and both are cropped to their overlap, so no pixel is interpolated and the pairs align pixel for
pixel. A shift beyond ``MAX_REGISTRATION_SHIFT`` of a side means the pairing is wrong and is refused.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oct_srgan.errors import DataError
from oct_srgan.intensity import GAIN_RANGE, fit_gain_offset

# A group's scans may differ by a few rows/columns (export padding); more than this is not one location.
MAX_REFERENCE_MISMATCH = 8
# Registration shifts beyond this fraction of a side are not one location seen twice.
MAX_REGISTRATION_SHIFT = 0.1

# (path, path relative to its input folder, the read Scan) of one source file.
SourceScan = tuple[Path, str, Any]


def crop_to_scale(pixels: np.ndarray, scale: int, axes: str) -> np.ndarray:
    """Crop the upsampled axes to a multiple of ``scale`` so LR and HR align exactly."""
    h, w = pixels.shape[-2:]
    h2 = h - h % scale if axes == "both" else h
    return pixels[..., :h2, : w - w % scale]


def crop_common(scans: list[SourceScan], ref: SourceScan) -> list[SourceScan]:
    """Crop every scan of a reference group to the group's common B-scan area (top-left aligned).

    Registered exports of one location differ by at most a few border pixels; a larger mismatch
    means the pairing is wrong, so it is refused naming both files.
    """
    rh, rw = ref[2].pixels.shape[-2:]
    for path, _, scan in scans:
        h, w = scan.pixels.shape[-2:]
        if abs(h - rh) > MAX_REFERENCE_MISMATCH or abs(w - rw) > MAX_REFERENCE_MISMATCH:
            raise DataError(
                f"{path}: B-scans of {h}x{w} do not match the {rh}x{rw} of reference {ref[0]} "
                f"(more than {MAX_REFERENCE_MISMATCH} pixels apart)"
            )
    h = min(s.pixels.shape[-2] for _, _, s in scans)
    w = min(s.pixels.shape[-1] for _, _, s in scans)
    return [(p, r, dataclasses.replace(s, pixels=s.pixels[..., :h, :w])) for p, r, s in scans]


def registration_shift(moving: np.ndarray, fixed: np.ndarray) -> tuple[int, int]:
    """Integer (dy, dx) with ``fixed[y, x] ~ moving[y - dy, x - dx]``, by phase correlation (scikit-image).

    Integer shifts keep both images exact (no resampling of the reference or the input).
    """
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(fixed, moving, normalization=None)
    return int(round(float(shift[0]))), int(round(float(shift[1])))


def overlap(moving: np.ndarray, fixed: np.ndarray, shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``moving`` and ``fixed`` that show the same tissue after ``shift`` (same shape)."""
    h, w = moving.shape[-2:]
    (dy, dx) = shift
    m = moving[..., max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    f = fixed[..., max(0, dy): h - max(0, -dy), max(0, dx): w - max(0, -dx)]
    return m, f


def register(path: Path, ref_path: Path, moving: np.ndarray, fixed: np.ndarray) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(shift, moving overlap, fixed overlap) of one B-scan and its reference; a wild shift is refused."""
    shift = registration_shift(moving, fixed)
    h, w = moving.shape[-2:]
    if abs(shift[0]) > MAX_REGISTRATION_SHIFT * h or abs(shift[1]) > MAX_REGISTRATION_SHIFT * w:
        raise DataError(
            f"{path}: registration to reference {ref_path} found a shift of {shift[0]} rows, {shift[1]} columns "
            f"(more than {MAX_REGISTRATION_SHIFT:.0%} of the B-scan; not the same location, or use --no-register)"
        )
    return (shift, *overlap(moving, fixed, shift))


def find_reference(scans: list[SourceScan], pattern: re.Pattern[str] | None,
                   option: str | None) -> tuple[list[SourceScan], SourceScan | None]:
    """The group's scans (cropped to their common area when it has a reference) and its reference scan.

    ``pattern`` matches reference file name stems; ``option`` is its text, for the error of a group
    with two references.
    """
    refs = [s for s in scans if pattern is not None and pattern.search(s[0].name.split(".")[0])]
    if len(refs) > 1:
        raise DataError(
            f"{refs[0][0]}: group has {len(refs)} reference scans matching --reference {option!r} "
            f"(also {refs[1][0]}); use --group-pattern so that each group has one"
        )
    if not refs:
        return scans, None
    scans = crop_common(scans, refs[0])
    return scans, next(s for s in scans if s[0] == refs[0][0])


@dataclass
class Reference:
    """A group's reference scan and the file names its B-scans have in the dataset."""

    path: Path
    pixels: np.ndarray
    names: dict[int, str]

    @classmethod
    def of(cls, ref: SourceScan, scan_id: str) -> Reference:
        pixels = ref[2].pixels
        return cls(ref[0], pixels, {b: f"{scan_id}_{b:03d}_hr.png" for b in range(pixels.shape[0])})

    def check_count(self, path: Path, n_bscans: int) -> None:
        """B-scan i pairs with reference B-scan i, or every B-scan with a single-B-scan reference."""
        if len(self.names) not in (1, n_bscans):
            raise DataError(f"{path}: {n_bscans} B-scans cannot pair with the {len(self.names)} of reference {self.path}")

    def pair(self, path: Path, scan_id: str, b: int, raw: np.ndarray, hr: np.ndarray, *, register_it: bool, scale: int,
             axes: str) -> tuple[np.ndarray, np.ndarray | None, str, tuple[int, int]]:
        """(input B-scan, its own reference crop or None, the reference file name, shift) of B-scan ``b``.

        ``raw`` is the uncropped B-scan and ``hr`` its crop to the scale; registered pairs are cropped
        to their overlap and then to the scale, and get a reference crop of their own.
        """
        if not register_it:
            return hr, None, self.names.get(b, self.names.get(0, "")), (0, 0)
        rb = b if len(self.names) > 1 else 0
        shift, hr, ref_hr = register(path, self.path, raw, self.pixels[rb])
        hr, ref_hr = (crop_to_scale(x, scale, axes) for x in (hr, ref_hr))
        return hr, ref_hr, f"{self.names[rb].rsplit('_', 1)[0]}_ref_{scan_id}_{b:03d}.png", shift

    def intensity_fit(self, path: Path, b: int, hr: np.ndarray, ref_hr: np.ndarray | None) -> tuple[float, float]:
        """``(gain, offset)`` of input B-scan ``b`` against its reference (its own crop, or the shared B-scan).

        A gain outside :data:`~oct_srgan.intensity.GAIN_RANGE` means the images do not share their
        structure (no retina to fit on): such a pair keeps its raw grey levels, ``(1.0, 0.0)``.
        """
        if ref_hr is None:
            ref = self.pixels[b if len(self.names) > 1 else 0]
            ref_hr = ref[: hr.shape[0], : hr.shape[1]]
        gain, offset = fit_gain_offset(hr, ref_hr)
        if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
            return 1.0, 0.0
        return gain, offset
