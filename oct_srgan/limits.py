"""Decoded-size limits read from file headers, so a tiny file that declares a huge image is refused
before any pixel is decoded (a 60 KB PNG can claim 12000 x 12000; a 1 MB .nii.gz 4096 x 4096 x 64)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import PixelLimitError, ScanError

# A Cirrus 512x128 cube (1024 x 512 x 128 = 67 M samples) fits the CLI default; serve takes less.
DEFAULT_MAX_PIXELS = 2**26
SERVE_MAX_PIXELS = 2**24


def check_pixels(path: Path, declared_size: Callable[[Path], tuple[tuple[int, ...], int]],
                 max_pixels: int | None) -> None:
    """Refuse ``path`` in one line when its header declares no sample at all or more than ``max_pixels``
    decoded samples; ``declared_size`` is the format's header reader (``ScanFormat.declared_size``).

    Samples count every frame and channel; samples wider than 16 bits count double, so the limit
    bounds memory rather than the picture's area. ``None`` or 0 turns the limit off. An empty axis
    is refused with or without a limit: decoding it ends in a numpy message about zero-size arrays.
    """
    from PIL import Image

    try:
        shape, samples = declared_size(path)
    except Image.DecompressionBombError:  # PIL refuses some headers itself, before ours is read
        if not max_pixels:
            raise
        raise PixelLimitError(f"{path}: declares a decompression-bomb size, over the limit of "
                              f"{max_pixels / 1e6:.1f} M samples") from None
    dims = "x".join(str(s) for s in shape)
    if samples == 0:
        raise ScanError(f"{path}: no image data (the header declares {dims} samples)")
    if max_pixels and samples > max_pixels:
        raise PixelLimitError(f"{path}: declares {dims} ({samples / 1e6:.1f} M samples), over the limit of "
                              f"{max_pixels / 1e6:.1f} M (raise it with --max-pixels)")
