"""Decoded-size limits read from file headers, so a tiny file that declares a huge image is refused
before any pixel is decoded (a 60 KB PNG can claim 12000 x 12000; a 1 MB .nii.gz 4096 x 4096 x 64)."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import PixelLimitError

# A Cirrus 512x128 cube (1024 x 512 x 128 = 67 M samples) fits the CLI default; serve takes less.
DEFAULT_MAX_PIXELS = 2**26
SERVE_MAX_PIXELS = 2**24


def declared_size(path: Path, fmt: str) -> tuple[tuple[int, ...], int]:
    """(shape, decoded samples) that the header of ``path`` declares, without decoding pixels."""
    from .io.registry import resolve_format

    if resolve_format(fmt).writer is None:
        from .io.vendor import declared_size as vendor_declared_size

        return vendor_declared_size(path, fmt)
    if fmt == "dicom":
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        shape = (int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("Rows", 0) or 0),
                 int(ds.get("Columns", 0) or 0), int(ds.get("SamplesPerPixel", 1) or 1))
        bits = int(ds.get("BitsAllocated", 8) or 8)
        return shape, math.prod(shape) * max(1, math.ceil(bits / 16))
    if fmt == "nifti":
        import nibabel

        header = nibabel.load(str(path)).header
        shape = tuple(int(s) for s in header.get_data_shape())
        itemsize = header.get_data_dtype().itemsize
        return shape, math.prod(shape) * max(1, math.ceil(itemsize / 2))
    if fmt == "tiff":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tuple(int(s) for s in tif.series[0].shape) if tif.series else (0,)
            itemsize = tif.series[0].dtype.itemsize if tif.series else 1
        return shape, math.prod(shape) * max(1, math.ceil(itemsize / 2))
    from PIL import Image

    with Image.open(path) as img:
        shape = (int(getattr(img, "n_frames", 1)), img.height, img.width, len(img.getbands()))
    return shape, shape[1] * shape[2] * shape[3]


def check_pixels(path: Path, fmt: str, max_pixels: int | None) -> None:
    """Refuse ``path`` in one line when its header declares more than ``max_pixels`` decoded samples.

    Samples count every frame and channel; samples wider than 16 bits count double, so the limit
    bounds memory rather than the picture's area. ``None`` or 0 turns the check off.
    """
    if not max_pixels:
        return
    from PIL import Image

    try:
        shape, samples = declared_size(path, fmt)
    except Image.DecompressionBombError:  # PIL refuses some headers itself, before ours is read
        raise PixelLimitError(f"{path}: declares a decompression-bomb size, over the limit of "
                              f"{max_pixels / 1e6:.1f} M samples") from None
    if samples > max_pixels:
        dims = "x".join(str(s) for s in shape)
        raise PixelLimitError(f"{path}: declares {dims} ({samples / 1e6:.1f} M samples), over the limit of "
                              f"{max_pixels / 1e6:.1f} M (raise it with --max-pixels)")
