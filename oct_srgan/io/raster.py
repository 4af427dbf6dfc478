"""PNG / JPEG / BMP through PIL (MONAI's ``PILReader``) and TIFF through ``tifffile``: one B-scan per
picture, one per page of a TIFF; grey written back at the source sample depth.

- PNG / JPEG / BMP: ``PILReader`` with ``reverse_indexing=False`` (arrays stay ``[H, W]``), imported
  inside the reader so that enhancing a DICOM does not pay MONAI's package import.
- TIFF: ``tifffile``. ``LoadImage`` picks no reader for ``.tif``, and PIL reads only the first page
  of a multi-page TIFF (a volume); tifffile also gives BitsPerSample and the photometric tag.

Integers map to [0, 1] by ``/(2**bits - 1)`` with bits the sample size (TIFF BitsPerSample). These
formats carry no trustworthy geometry (resolution tags are usually a 72 dpi placeholder), so their
spacing is None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, ImageOps, PngImagePlugin

from ..errors import ScanError
from .registry import ScanFormat, register_format
from .scan import Geometry, RasterHeader, Scan, float_range, from_unit, int_range, luma, to_unit

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP"}
_PIL_TO_RGB = {
    "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB", "1": "L"
}
_EXIF_ORIENTATION = 0x0112
_PHOTOMETRIC_BY_CHANNELS = {1: "MONOCHROME2", 2: "MONOCHROME2", 3: "RGB", 4: "RGBA"}


def _grey(x: np.ndarray) -> np.ndarray:
    """Normalised [..., C] samples to grey: grey+alpha keeps the grey, colour goes through luma."""
    return x[..., 0] if x.shape[-1] == 2 else luma(x)


# PNG colour types whose 16-bit samples PIL narrows to 8 bits (it has no 16-bit RGB, LA or RGBA mode).
_PNG_WIDE_COLOUR = {2: "RGB", 4: "LA", 6: "RGBA"}


def _png_wide_colour(path: Path) -> tuple[np.ndarray, str] | None:
    """A 16-bit RGB / grey+alpha / RGBA PNG as ``[H, W, planes]`` uint16 and its mode, read with pypng
    (PIL would return 8 bits); None for every other picture, which PIL reads exactly."""
    with path.open("rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[24] != 16 or head[25] not in _PNG_WIDE_COLOUR:
        return None
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return arr.reshape(height, width, info["planes"]), _PNG_WIDE_COLOUR[head[25]]


def _pil_array(path: Path) -> tuple[np.ndarray, str, str | None, bool]:
    """Samples as ``[H, W(, C)]``, PIL mode, PIL format and whether an EXIF rotation was applied."""
    from monai.data import PILReader

    reader = PILReader(reverse_indexing=False)
    img = reader.read(str(path))
    try:
        img.load()
        turned = img.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
        if turned:  # a camera's JPEG stores its rotation in EXIF; the pixels are turned, the tag not kept
            img = ImageOps.exif_transpose(img)
        mode = img.mode
        target_mode = "RGBA" if mode == "P" and "transparency" in img.info else _PIL_TO_RGB.get(mode)
        converted = img.convert(target_mode) if target_mode else img
        arr, _ = reader.get_data(converted)
        return np.asarray(arr), mode, img.format, turned
    finally:
        img.close()


def _read_pil(path: Path, bscan_axis: int | None = None, *, fmt: str) -> Scan:
    """One B-scan: 8-bit -> /255, 16-bit -> /65535; palette, colour and alpha modes go to grey."""
    wide = _png_wide_colour(path) if fmt == "png" else None
    if wide is not None:
        (arr, mode), pil_format, turned = wide, "PNG", False
    else:
        arr, mode, pil_format, turned = _pil_array(path)
    arr = arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr
    if arr.dtype == np.uint8:
        intensity, bits, dtype = (0.0, 255.0), 8, np.dtype(np.uint8)
    elif arr.dtype.kind in "ui" and arr.min() >= 0 and arr.max() <= 65535:
        intensity, bits, dtype = (0.0, 65535.0), 16, np.dtype(np.uint16)
    elif arr.dtype.kind == "f":
        intensity, bits, dtype = float_range(arr, path), 32, np.dtype(np.uint16)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        intensity, bits, dtype = (lo, max(hi, lo + 1.0)), 32, np.dtype(np.uint16)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    photometric = "PALETTE COLOR" if mode in ("P", "PA") else _PHOTOMETRIC_BY_CHANNELS.get(channels, "RGB")
    x = to_unit(arr, *intensity)
    pixels = (_grey(x) if channels > 1 else x)[None]
    info = {"format": pil_format or _PIL_FORMAT.get(fmt)}
    if turned:
        info["exif_orientation_applied"] = True
    header = RasterHeader(mode=mode, dtype=dtype, intensity=intensity, info=info)
    return Scan(np.ascontiguousarray(pixels), Geometry(), fmt, bits, photometric, header, path)


def _read_tiff(path: Path, bscan_axis: int | None = None) -> Scan:
    """All pages of the first series are B-scans; MINISWHITE is inverted, palettes applied."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        arr = series.asarray()
        axes = series.axes
        page = tif.pages[0]
        photometric = page.photometric
        bits = int(page.bitspersample)
        colormap = page.colormap
        packing = {"compression": int(page.compression), "predictor": int(page.predictor)}
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
        intensity, dtype = float_range(arr, path), np.dtype(np.float32)
    elif arr.dtype.kind == "u":
        intensity, dtype = (0.0, float(2 ** min(bits, arr.dtype.itemsize * 8) - 1)), arr.dtype
    elif arr.dtype.kind == "i":
        intensity, _ = int_range(arr)
        dtype = arr.dtype
    else:
        raise ScanError(f"{path}: unsupported TIFF sample type {arr.dtype}")
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        arr = np.float32(sum(intensity)) - arr.astype(np.float32)  # inverted before scaling: exact
    x = to_unit(arr, *intensity)
    x = _grey(x) if samples > 1 else x
    if photometric == tifffile.PHOTOMETRIC.PALETTE:
        name = "PALETTE COLOR"
    elif photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        name = "MONOCHROME1"
    else:
        name = _PHOTOMETRIC_BY_CHANNELS.get(samples, "RGB")
    header = RasterHeader(axes, np.dtype(dtype), intensity, {"bits_per_sample": bits, **packing})
    depth = arr.dtype.itemsize * 8 if arr.dtype.kind == "f" else bits
    return Scan(np.ascontiguousarray(x, dtype=np.float32), Geometry(), "tiff", depth, name, header, path)


def _write_raster(scan: Scan, target: Path, derivation: str | None) -> None:
    """Grey at the source sample depth (16-bit stays 16-bit); JPEG/BMP are always 8-bit. TIFF gets a
    page per B-scan, PNG/JPEG/BMP the first (``_write_one_bscan`` sees there is only one)."""
    src: RasterHeader = scan.header
    n = scan.pixels.shape[0]
    fmt = scan.source_format
    lo, hi = src.intensity
    dtype = src.dtype
    if fmt in ("jpeg", "bmp") and dtype != np.uint8:
        lo, hi, dtype = 0.0, 255.0, np.dtype(np.uint8)
    arr = from_unit(scan.pixels, lo, hi, dtype)
    if fmt == "tiff":
        _write_tiff(target, arr if n > 1 else arr[0], src.info, derivation)
        return
    options: dict[str, Any] = {}
    if fmt == "jpeg":
        options["quality"] = 95
    if fmt == "png" and derivation:
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", derivation)
        options["pnginfo"] = info
    Image.fromarray(arr[0]).save(target, format=_PIL_FORMAT[fmt], **options)


def _write_tiff(target: Path, arr: np.ndarray, info: dict, derivation: str | None) -> None:
    """Grey pages with the source's compression and predictor (a 4x output left uncompressed is 16x the
    source's size); a codec tifffile cannot write here falls back to lossless Deflate."""
    options = dict(photometric="minisblack", metadata=None, description=derivation or None)
    compression = info.get("compression", tifffile.COMPRESSION.NONE)
    if compression == tifffile.COMPRESSION.NONE:
        tifffile.imwrite(target, arr, **options)
        return
    predictor = info.get("predictor", tifffile.PREDICTOR.NONE)
    try:
        tifffile.imwrite(target, arr, compression=compression,
                         predictor=predictor if predictor != tifffile.PREDICTOR.NONE else None, **options)
    except (KeyError, ValueError, ImportError, RuntimeError):  # no encoder for this codec or sample type
        tifffile.imwrite(target, arr, compression=tifffile.COMPRESSION.ADOBE_DEFLATE, **options)


def _write_one_bscan(scan: Scan, target: Path, derivation: str | None) -> None:
    """PNG / JPEG / BMP: a picture holds one B-scan, so a volume cannot be written as one."""
    n = scan.pixels.shape[0]
    if n != 1:
        raise ScanError(f"{target}: {scan.source_format.upper()} holds one B-scan, got {n}")
    _write_raster(scan, target, derivation)


def _magic(prefixes: tuple[bytes, ...], suffix: str, min_len: int = 0) -> Callable[[bytes, Path], str | None]:
    """A sniff that knows the format by the first bytes starting with one of ``prefixes``."""
    def sniff(head: bytes, path: Path) -> str | None:
        return suffix if len(head) >= min_len and head.startswith(prefixes) else None
    return sniff


def _pil_size(path: Path) -> tuple[tuple[int, ...], int]:
    """Frames x height x width x bands from PIL's header parse (PIL refuses bomb sizes itself)."""
    with Image.open(path) as img:
        shape = (int(getattr(img, "n_frames", 1)), img.height, img.width, len(img.getbands()))
    return shape, shape[1] * shape[2] * shape[3]


def _tiff_size(path: Path) -> tuple[tuple[int, ...], int]:
    """The first series' shape; samples wider than 16 bits count double."""
    with tifffile.TiffFile(path) as tif:
        shape = tuple(int(s) for s in tif.series[0].shape) if tif.series else (0,)
        itemsize = tif.series[0].dtype.itemsize if tif.series else 1
    return shape, math.prod(shape) * max(1, math.ceil(itemsize / 2))


register_format(ScanFormat("png", (".png",), _magic((b"\x89PNG\r\n\x1a\n",), ".png"), _pil_size, "image/png",
                           partial(_read_pil, fmt="png"), _write_one_bscan))
register_format(ScanFormat("tiff", (".tif", ".tiff"), _magic((b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), ".tif"),
                           _tiff_size, "image/tiff", _read_tiff, _write_raster))
register_format(ScanFormat("jpeg", (".jpg", ".jpeg"), _magic((b"\xff\xd8\xff",), ".jpg"), _pil_size, "image/jpeg",
                           partial(_read_pil, fmt="jpeg"), _write_one_bscan))
register_format(ScanFormat("bmp", (".bmp",), _magic((b"BM",), ".bmp", 26), _pil_size, "image/bmp",
                           partial(_read_pil, fmt="bmp"), _write_one_bscan))
