"""The page's per-B-scan images: input, bicubic, SR, hr and SR - bicubic, as PNGs, the last few cached."""

from __future__ import annotations

import io as bytes_io
import threading
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from .errors import UserError
from .jobs import Job, Upload

PANELS = ("input", "bicubic", "sr", "hr", "diff")
# The diff panel maps SR - bicubic from -scale to +scale grey levels onto black to white, the scale
# being this percentile of |SR - bicubic| over the B-scan: the largest few changes saturate, the
# typical ones stay visible, whether the model changes a scan by 2 grey levels or by 60.
DIFF_PERCENTILE = 99.5
MIN_DIFF_SCALE = 1.0
PNG_CACHE = 32


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """[0, 1] intensities as 8-bit grey levels (rounded, clipped)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def diff_scale(sr: np.ndarray, bicubic: np.ndarray) -> float:
    """The grey-level difference shown as black / white: the 99.5th percentile of |SR - bicubic|."""
    difference = np.abs(sr.astype(np.float32) - bicubic.astype(np.float32))
    return max(MIN_DIFF_SCALE, float(np.percentile(difference, DIFF_PERCENTILE)))


def diff_image(sr: np.ndarray, bicubic: np.ndarray, scale: float) -> np.ndarray:
    """SR - bicubic (8-bit images) as grey levels: 128 = equal, 0 / 255 = -scale / +scale or beyond."""
    difference = sr.astype(np.float32) - bicubic.astype(np.float32)
    return np.clip(np.rint(128.0 + 127.0 * difference / scale), 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> bytes:
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def panel_array(upload: Upload, job: Job | None, k: int, panel: str) -> np.ndarray:
    """One panel of B-scan ``k``: 404 for an hr panel outside check mode, 409 before it is processed."""
    if panel == "input":
        return to_uint8(job.source[k] if job is not None else upload.scan.pixels[k])
    if panel == "hr":
        if job is None or job.hr is None:
            raise UserError(404, "the hr panel exists in check mode only")
        return to_uint8(job.hr[k])
    if job is None:
        raise UserError(409, "the scan is not processed yet")
    bicubic, sr = job.bicubic[k], job.sr[k]
    if bicubic is None or sr is None:
        raise UserError(409, f"B-scan {k} is not processed yet")
    if panel == "diff":
        return diff_image(sr, bicubic, job.diff_scale[k] or diff_scale(sr, bicubic))
    return bicubic if panel == "bicubic" else sr


class PanelCache:
    """Rendered panel PNGs, the last ``PNG_CACHE`` kept, keyed by scan, job, B-scan and panel."""

    def __init__(self) -> None:
        self._pngs: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, upload: Upload, k: int, panel: str) -> bytes:
        """The PNG of one panel; 404 for an unknown panel or B-scan."""
        if panel not in PANELS:
            raise UserError(404, f"unknown panel (expected one of {', '.join(PANELS)})")
        n = upload.scan.pixels.shape[0]
        if not 0 <= k < n:
            raise UserError(404, f"B-scan {k} does not exist (the scan has {n})")
        job = upload.job
        key = (upload.id, id(job), k, panel)
        with self._lock:
            cached = self._pngs.get(key)
            if cached is not None:
                self._pngs.move_to_end(key)
                return cached
        data = _png(panel_array(upload, job, k, panel))
        with self._lock:
            self._pngs[key] = data
            while len(self._pngs) > PNG_CACHE:
                self._pngs.popitem(last=False)
        return data

    def forget(self, scan_id: str) -> None:
        """Drop the panels of a scan that was dropped or is processed again."""
        with self._lock:
            for cached in [c for c in self._pngs if c[0] == scan_id]:
                del self._pngs[cached]

    def clear(self) -> None:
        with self._lock:
            self._pngs.clear()
