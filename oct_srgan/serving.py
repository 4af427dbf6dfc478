"""``oct-srgan serve``: a small local web app to enhance a scan, or check the model on it.

The page (``oct_srgan/web``) uploads one scan, shows input | bicubic | SR | SR - bicubic per B-scan
(each B-scan as soon as it is done) and, in check mode, PSNR/SSIM of bicubic and SR against the scan
taken as high resolution. What keeps it safe:

- An upload is the raw request body (``Content-Type: application/octet-stream``; no form parsing,
  so the client's file name is not part of it). It is streamed into a temp folder that belongs to
  the app (created at start-up, removed at shutdown) and refused with HTTP 413 as soon as it passes
  the size limit, the partial file deleted.
- The download request may carry the source's file name (``?name=``) so the enhanced file keeps it
  (``scan.dcm`` -> ``scan_sr.dcm``); it is reduced to ``[A-Za-z0-9._-]``, used for that one
  response header and neither stored nor logged.
- Files are identified by content: stored as ``<sha256><suffix>`` with the suffix from the magic
  bytes, and addressed by that hash only (``[0-9a-f]{64}``; anything else is 404).
- The static files are read once into memory; a request never names a file on disk.
- Errors reach the client as one line of JSON ``{"error": ...}``, without a stack trace or a
  server path. Nothing from a DICOM header but geometry and bit depth is returned or logged.

Processing runs in one background worker thread, one B-scan at a time, so the server stays
responsive and the page can poll progress and show B-scans as they are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import hashlib
import io as bytes_io
import ipaddress
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import io as scan_io
from . import metrics
from .errors import ModelError, OctSrganError, PixelLimitError
from .limits import SERVE_MAX_PIXELS
from .inference import DEFAULT_OVERLAP, DEFAULT_TILE, load_generator, prepare_for_inference, super_resolve
from .transforms import Degraded, upscale_bicubic

log = logging.getLogger(__name__)

MB = 1024 * 1024
MODES = ("enhance", "check")
PANELS = ("input", "bicubic", "sr", "hr", "diff")
DIFF_GAIN = 4  # the diff panel shows 128 + 4 * (SR - bicubic) grey levels: small changes stay visible
MAX_SCANS = 8
STALE_UPLOAD_S = 600.0
PNG_CACHE = 32
_ID = re.compile(r"[0-9a-f]{64}")
_SCAN_EXTENSIONS = (".nii.gz", ".dicom", ".tiff", ".jpeg", ".dcm", ".nii", ".png", ".tif", ".jpg", ".bmp")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
MAX_STEM = 100
_WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_MEDIA = {
    "dicom": "application/dicom",
    "nifti": "application/octet-stream",
    "png": "image/png",
    "tiff": "image/tiff",
    "jpeg": "image/jpeg",
    "bmp": "image/bmp",
}
_SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
SUPPORTED = "DICOM, NIfTI (.nii/.nii.gz), PNG, TIFF, JPEG or BMP"


class UserError(Exception):
    """A request that cannot be served; ``status`` and a one-line message go back as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Cancelled(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# recognising uploads


def _nifti_magic(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic at 344) or NIfTI-2 (540-byte header, magic at 4), either endian."""
    if len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    if len(head) >= 8 and head[4:8] in (b"n+2\0", b"ni2\0"):
        return int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return False


def detect_format(path: Path) -> tuple[str, str] | None:
    """(format, suffix) of a file from its first bytes, or None if it is not a scan format we read."""
    with path.open("rb") as fh:
        head = fh.read(352)
    if head[128:132] == b"DICM":
        return "dicom", ".dcm"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", ".png"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff", ".tif"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", ".jpg"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp", ".bmp"
    if _nifti_magic(head):
        return "nifti", ".nii"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(352)
        except (OSError, EOFError):
            return None
        if _nifti_magic(inner):
            return "nifti", ".nii.gz"
    return None


# ----------------------------------------------------------------------------------------------
# scans and jobs


@dataclasses.dataclass(eq=False)
class Job:
    """One processing run over all B-scans of a scan; fields are written by the worker thread only."""

    mode: str
    total: int
    source: np.ndarray
    hr: np.ndarray | None = None
    state: str = "queued"
    done: int = 0
    error: str | None = None
    output: Path | None = None
    bicubic: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    sr: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    scores: list[dict[str, dict[str, float | None]] | None] = dataclasses.field(default_factory=list)
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.bicubic = [None] * self.total
        self.sr = [None] * self.total
        self.scores = [None] * self.total

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def finished(self) -> list[int]:
        """The B-scans whose bicubic and SR panels exist, so the page can show each as soon as it is done."""
        return [k for k in range(self.total) if self.sr[k] is not None]


@dataclasses.dataclass(eq=False)
class Upload:
    """An uploaded scan: its content hash, detected format, the file in the temp folder and the pixels."""

    id: str
    format: str
    suffix: str
    path: Path
    scan: scan_io.Scan
    job: Job | None = None
    added: float = dataclasses.field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        n, h, w = self.scan.pixels.shape
        return {"id": self.id, "n_bscans": n, "height": h, "width": w, "format": self.format,
                "suffix": self.suffix, "bit_depth": self.scan.bit_depth}


def _uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _png(image: np.ndarray) -> bytes:
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def download_name(client_name: str | None, upload: Upload) -> str:
    """``scan.dcm`` -> ``scan_sr.dcm``: the source's name (any folder part and scan extension
    dropped, other characters than ``[A-Za-z0-9._-]`` made ``_``) + ``_sr`` + the suffix of the
    content; ``scan_<id>_sr<suffix>`` without a usable name. ``app.js`` (``downloadName``) mirrors it."""
    name = re.split(r"[/\\]", client_name or "")[-1]
    for extension in _SCAN_EXTENSIONS:
        if name.lower().endswith(extension):
            name = name[: -len(extension)]
            break
    stem = _UNSAFE_NAME.sub("_", name).lstrip(".")[:MAX_STEM]
    return f"{stem or 'scan_' + upload.id[:8]}_sr{upload.suffix}"


def _one_line(exc: BaseException, folder: Path | None) -> str:
    """The first line of an error message without paths under the server's ``folder``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if folder is not None:
        text = re.sub(re.escape(str(folder)) + r"[^\s:]*:?\s*", "", text)
    return text[:300]


class ScanService:
    """Uploads, background jobs and rendered panels of one app; everything lives under ``workdir``."""

    def __init__(self, generator: torch.nn.Module, info: dict[str, Any], *, max_bytes: int,
                 device: str | torch.device, tile: int | None, max_pixels: int | None = SERVE_MAX_PIXELS) -> None:
        self.generator = generator
        self.info = info
        self.scale = int(info["scale"])
        self.axes = str(info["upsample_axes"])
        self.channels = int(info["in_channels"])
        # Check mode degrades the way the model was trained (design.md, "One owner for the degradation").
        recorded = (info.get("meta") or {}).get("degradation") or {}
        self.degradation = {"mode": str(recorded.get("mode", "bicubic")), "speckle": float(recorded.get("speckle", 0.0))}
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.device = device
        self.tile = tile or None
        self.workdir: Path | None = None
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._pngs: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # Called in the worker after each finished B-scan (job, k); tests use it to hold a job mid-volume.
        self.bscan_hook: Callable[[Job, int], None] | None = None

    # lifecycle

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="oct-srgan-serve-"))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oct-srgan-job")

    def stop(self) -> None:
        with self._lock:
            for upload in self._uploads.values():
                if upload.job is not None:
                    upload.job.cancel.set()
            self._uploads.clear()
            self._pngs.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _require_workdir(self) -> Path:
        if self.workdir is None:
            raise UserError(503, "the server is not running")
        return self.workdir

    # uploads

    def new_part_file(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self._require_workdir())
        os.close(fd)
        return Path(name)

    def add(self, part: Path, digest: str) -> Upload:
        """Turn a fully received upload into a known scan (or the same scan uploaded before)."""
        with self._lock:
            known = self._uploads.get(digest)
            if known is not None:
                self._uploads.move_to_end(digest)
        if known is not None:
            part.unlink(missing_ok=True)
            return known
        detected = detect_format(part)
        if detected is None:
            part.unlink(missing_ok=True)
            raise UserError(400, f"unsupported file type: expected a {SUPPORTED} scan")
        fmt, suffix = detected
        target = self._require_workdir() / f"{digest}{suffix}"
        os.replace(part, target)
        try:
            scan = scan_io.read_scan(target, max_pixels=self.max_pixels)
        except PixelLimitError as exc:
            target.unlink(missing_ok=True)
            raise UserError(413, f"scan too large: {_one_line(exc, self.workdir)}") from None
        except OctSrganError as exc:
            target.unlink(missing_ok=True)
            raise UserError(400, f"cannot read the uploaded {fmt} file: "
                                 f"{_one_line(exc, self.workdir)}") from None
        except Exception as exc:  # read_scan wraps reader errors; this is a last line of defence
            target.unlink(missing_ok=True)
            log.warning("upload %s: %s reader failed (%s)", digest[:8], fmt, type(exc).__name__)
            raise UserError(400, f"cannot read the uploaded {fmt} file") from None
        upload = Upload(digest, fmt, suffix, target, scan)
        with self._lock:
            try:
                self._evict()
            except UserError:
                target.unlink(missing_ok=True)
                raise
            self._uploads[digest] = upload
        n, h, w = scan.pixels.shape
        log.info("scan %s: %s, %d B-scan(s) of %dx%d", digest[:8], fmt, n, h, w)
        return upload

    def _evict(self) -> None:
        """Make room for one more scan: forget the oldest finished scans first, then scans left
        unprocessed for ``STALE_UPLOAD_S``; a scan waiting for or in processing is never dropped.
        Raises 429 when every slot holds such a scan."""
        if len(self._uploads) < MAX_SCANS:
            return
        now = time.monotonic()
        finished = [k for k, u in self._uploads.items() if u.job is not None and not u.job.active]
        stale = [k for k, u in self._uploads.items() if u.job is None and now - u.added > STALE_UPLOAD_S]
        for key in (finished + stale)[: len(self._uploads) - MAX_SCANS + 1]:
            upload = self._uploads.pop(key)
            upload.path.unlink(missing_ok=True)
            if upload.job is not None and upload.job.output is not None:
                upload.job.output.unlink(missing_ok=True)
            for cached in [c for c in self._pngs if c[0] == key]:
                del self._pngs[cached]
        if len(self._uploads) >= MAX_SCANS:
            raise UserError(429, f"the server holds {MAX_SCANS} scans waiting to be processed: try again later")

    def get(self, scan_id: str) -> Upload:
        if not _ID.fullmatch(scan_id):
            raise UserError(404, "unknown scan id")
        with self._lock:
            upload = self._uploads.get(scan_id)
        if upload is None:
            raise UserError(404, "unknown scan id (upload the scan again)")
        return upload

    # processing

    def process(self, upload: Upload, mode: str) -> Job:
        """Start (or keep) the job for ``mode``; a running job of the other mode is cancelled."""
        if mode not in MODES:
            raise UserError(400, f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            current = upload.job
            if current is not None and current.mode == mode and current.state in ("queued", "running", "done"):
                return current
        job = self._prepare(upload, mode)
        with self._lock:
            if upload.job is not None:
                upload.job.cancel.set()
            upload.job = job
            for cached in [c for c in self._pngs if c[0] == upload.id]:
                del self._pngs[cached]
            if self._executor is None:
                raise UserError(503, "the server is shutting down")
            self._executor.submit(self._run, upload, job)
        return job

    def _prepare(self, upload: Upload, mode: str) -> Job:
        """The job's model input: the scan itself (enhance), or the scan cropped and degraded (check)."""
        pixels = upload.scan.pixels
        if mode == "enhance":
            return Job(mode, len(pixels), source=pixels)
        s = self.scale
        n, h, w = pixels.shape
        hh = h if self.axes == "lateral" else h // s * s
        ww = w // s * s
        min_side = 2 * s + 11
        if min(hh, ww) < min_side or min(hh if self.axes == "lateral" else hh // s, ww // s) < 2:
            raise UserError(400, f"B-scans of {h}x{w} are too small for check mode (need at least "
                                 f"{min_side} pixels a side)")
        hr = np.ascontiguousarray(pixels[:, :hh, :ww])
        deg = self.degradation
        degrade = Degraded(keys="hr", lr_key="lr", scale=s, mode=deg["mode"], axes=self.axes, speckle=deg["speckle"], seed=0)
        lr = np.stack([degrade({"hr": torch.from_numpy(b)[None]})["lr"][0].numpy() for b in hr])
        return Job(mode, n, source=lr, hr=hr)

    def _super_resolve(self, x: torch.Tensor) -> torch.Tensor:
        """[1,1,h,w] -> [1,1,H,W]; grey goes into a 3-channel model as RGB and comes back averaged."""
        sr = super_resolve(self.generator, x.expand(-1, self.channels, -1, -1), scale=self.scale,
                           upsample_axes=self.axes, tile=self.tile, overlap=DEFAULT_OVERLAP, batch_size=4,
                           device=self.device)
        return sr.mean(dim=1, keepdim=True)

    def _run(self, upload: Upload, job: Job) -> None:
        if job.cancel.is_set():
            job.state = "cancelled"
            return
        job.state = "running"
        try:
            self._run_bscans(upload, job)
        except _Cancelled:
            job.state = "cancelled"
            return
        except OctSrganError as exc:
            job.error = _one_line(exc, self.workdir)
            job.state = "error"
            return
        except Exception as exc:
            log.error("scan %s: %s processing failed: %s", upload.id[:8], job.mode, type(exc).__name__,
                      exc_info=True)
            job.error = f"processing failed ({type(exc).__name__})"
            job.state = "error"
            return
        job.state = "done"
        log.info("scan %s: %s done (%d B-scan(s))", upload.id[:8], job.mode, job.total)

    def _run_bscans(self, upload: Upload, job: Job) -> None:
        enhanced = None
        for k in range(job.total):
            if job.cancel.is_set():
                raise _Cancelled
            x = torch.from_numpy(np.ascontiguousarray(job.source[k], dtype=np.float32))[None, None]
            bicubic = upscale_bicubic(x, self.scale, self.axes).clamp_(0, 1)
            sr = self._super_resolve(x)
            if job.hr is not None:
                hr = torch.from_numpy(job.hr[k])[None, None]
                job.scores[k] = {
                    name: {"psnr": _finite(float(metrics.psnr(out, hr, shave=self.scale)[0])),
                           "ssim": _finite(float(metrics.ssim(out, hr, shave=self.scale)[0]))}
                    for name, out in (("bicubic", bicubic), ("sr", sr))
                }
            else:
                if enhanced is None:
                    enhanced = np.empty((job.total, *sr.shape[-2:]), dtype=np.float32)
                enhanced[k] = sr[0, 0].numpy()
            job.bicubic[k] = _uint8(bicubic[0, 0])
            job.sr[k] = _uint8(sr[0, 0])
            job.done = k + 1
            if self.bscan_hook is not None:
                self.bscan_hook(job, k)
        if enhanced is not None:
            if job.cancel.is_set():
                raise _Cancelled
            target = self._require_workdir() / f"enhanced_{upload.id}{upload.suffix}"
            derivation = f"oct-srgan x{self.scale} super-resolution (model {self.info['source']})"
            scan_io.write_scan(upload.scan.with_pixels(enhanced), target, derivation=derivation)
            job.output = target

    # views

    def progress(self, upload: Upload) -> dict[str, Any]:
        job = upload.job
        if job is None:
            return {"state": "idle", "mode": None, "done": 0, "total": int(upload.scan.pixels.shape[0]),
                    "finished": [], "error": None, "download": False}
        return {"state": job.state, "mode": job.mode, "done": job.done, "total": job.total,
                "finished": job.finished(), "error": job.error,
                "download": job.mode == "enhance" and job.output is not None and job.state == "done"}

    def panel_png(self, upload: Upload, k: int, panel: str) -> bytes:
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
        image = self._panel_array(upload, job, k, panel)
        data = _png(image)
        with self._lock:
            self._pngs[key] = data
            while len(self._pngs) > PNG_CACHE:
                self._pngs.popitem(last=False)
        return data

    def _panel_array(self, upload: Upload, job: Job | None, k: int, panel: str) -> np.ndarray:
        if panel == "input":
            return _uint8(job.source[k] if job is not None else upload.scan.pixels[k])
        if panel == "hr":
            if job is None or job.hr is None:
                raise UserError(404, "the hr panel exists in check mode only")
            return _uint8(job.hr[k])
        if job is None:
            raise UserError(409, "the scan is not processed yet")
        bicubic, sr = job.bicubic[k], job.sr[k]
        if bicubic is None or sr is None:
            raise UserError(409, f"B-scan {k} is not processed yet")
        if panel == "diff":
            difference = sr.astype(np.int16) - bicubic.astype(np.int16)
            return np.clip(128 + DIFF_GAIN * difference, 0, 255).astype(np.uint8)
        return bicubic if panel == "bicubic" else sr

    def scores(self, upload: Upload, k: int) -> dict[str, Any]:
        job = upload.job
        if job is None or job.mode != "check":
            raise UserError(409, "metrics exist in check mode only (process the scan with mode=check)")
        if not 0 <= k < job.total:
            raise UserError(404, f"B-scan {k} does not exist (the scan has {job.total})")
        done = [s for s in job.scores if s is not None]
        mean = {
            name: {m: _mean([s[name][m] for s in done]) for m in ("psnr", "ssim")} for name in ("bicubic", "sr")
        } if done else None
        return {"k": k, "scores": job.scores[k], "mean": mean, "n_done": len(done), "shave": self.scale}

    def model_info(self) -> dict[str, Any]:
        meta = self.info.get("meta") or {}
        evaluation = meta.get("evaluation") if isinstance(meta, dict) else None
        card = None
        if isinstance(evaluation, dict):
            card = {str(k): (_finite(v) if isinstance(v, float) else v) for k, v in evaluation.items()
                    if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        return {"source": self.info["source"], "scale": self.scale, "upsample_axes": self.axes,
                "channels": self.channels, "card": card, "card_target": _card_target(meta),
                "diff_gain": DIFF_GAIN, "max_upload_mb": self.max_bytes / MB}


def _card_target(meta: Any) -> str | None:
    """What the model card's numbers were scored against ("reference": clean registered averages,
    "self": the noisy scans), as far as the meta says, else None. The evaluation's own ``target``
    counts first. Without it, a model trained on references whose card evaluated that same dataset
    was scored against them: training on references needs a dataset that has them, and model_card.py
    scores the test split against the references whenever the dataset has them."""
    if not isinstance(meta, dict) or not isinstance(meta.get("evaluation"), dict):
        return None
    evaluation = meta["evaluation"]
    target = evaluation.get("target")
    if target in ("reference", "self"):
        return target
    same_data = bool(evaluation.get("dataset_hash")) and evaluation.get("dataset_hash") == meta.get("dataset_hash")
    return "reference" if same_data and meta.get("target") == "reference" else None


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


# ----------------------------------------------------------------------------------------------
# HTTP


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _service(request: Request) -> ScanService:
    return request.app.state.service


async def _upload(request: Request) -> Response:
    service = _service(request)
    limit_text = (f"the upload limit is {service.max_bytes / MB:g} MB "
                  "(start the server with --max-upload-mb to change it)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > service.max_bytes:
        return _error(413, f"file too large: {limit_text}")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/octet-stream":
        return _error(415, "send the file itself as the request body (Content-Type: application/octet-stream)")
    part = service.new_part_file()
    digest = hashlib.sha256()
    size = 0
    try:
        with part.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > service.max_bytes:
                    raise UserError(413, f"file too large: {limit_text}")
                digest.update(chunk)
                fh.write(chunk)
        if size == 0:
            raise UserError(400, "empty upload: choose a scan file")
        upload = await run_in_threadpool(service.add, part, digest.hexdigest())
    except ClientDisconnect:
        return _error(400, "the upload was interrupted")
    except UserError as exc:
        return _error(exc.status, exc.message)
    finally:
        part.unlink(missing_ok=True)  # kept uploads were renamed to their content hash by then
    return JSONResponse(upload.summary())


def _scan_info(request: Request) -> Response:
    return JSONResponse(_service(request).get(request.path_params["scan_id"]).summary())


def _process(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    service.process(upload, request.query_params.get("mode", "enhance"))
    return JSONResponse(service.progress(upload), status_code=202)


def _progress(request: Request) -> Response:
    service = _service(request)
    return JSONResponse(service.progress(service.get(request.path_params["scan_id"])))


def _panel(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    data = service.panel_png(upload, int(request.path_params["k"]), request.path_params["panel"])
    return Response(data, media_type="image/png")


def _metrics(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    return JSONResponse(service.scores(upload, int(request.path_params["k"])))


def _download(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    job = upload.job
    if job is None or job.mode != "enhance" or job.state != "done" or job.output is None:
        raise UserError(409, "nothing to download yet: process the scan in enhance mode first")
    return FileResponse(job.output, media_type=_MEDIA[upload.format],
                        filename=download_name(request.query_params.get("name"), upload))


def _model(request: Request) -> Response:
    return JSONResponse(_service(request).model_info())


async def _user_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    return _error(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return _error(exc.status_code, messages.get(exc.status_code, "bad request"))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return _error(500, "internal error (see the server console)")


class _SecurityHeaders:
    """Adds a strict Content-Security-Policy (only this server's own files) and no-store to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _OwnPageOnly:
    """Refuses requests not made through this server's own page.

    A ``Host`` that is neither an IP literal, ``localhost`` nor an allowed name is refused (DNS
    rebinding: a foreign site whose name resolves to this address); a POST whose ``Origin`` is not
    this server's own origin is refused (cross-site requests from another page).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = {"localhost", *(h.lower().strip("[]") for h in allowed_hosts)}

    def host_ok(self, host: str) -> bool:
        name = _host_name(host)
        if name in self.allowed:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        problem = None
        if not self.host_ok(host):
            problem = "unknown Host header: open the page at the address the server printed"
        elif scope.get("method") == "POST" and "origin" in headers:
            origin = headers["origin"].lower()
            if origin not in (f"http://{host.lower()}", f"https://{host.lower()}"):
                problem = "cross-origin request refused"
        if problem is not None:
            await _error(403, problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _web_files() -> dict[str, tuple[bytes, str]]:
    root = resources.files("oct_srgan") / "web"
    return {name: ((root / name).read_bytes(), media) for name, media in _WEB_FILES.items()}


def create_app(model: str | Path = "default", *, max_upload_mb: float = 200,
               device: str | torch.device = "cpu", tile: int | None = DEFAULT_TILE,
               max_pixels: int | None = SERVE_MAX_PIXELS, allowed_hosts: Sequence[str] = ()) -> Starlette:
    """The web app with ``model`` loaded once (a generator file, checkpoint, MLflow URI or 'default').

    ``tile`` is the LR window side for tiled inference (0/None: whole B-scans, faster but memory
    grows with the B-scan). The temp folder for uploads is created when the app starts and removed
    when it stops.
    """
    if max_upload_mb <= 0:
        raise OctSrganError(f"max upload size must be positive, got {max_upload_mb} MB")
    generator, info = load_generator(model, device)
    if int(info["in_channels"]) not in (1, 3):
        raise ModelError(f"model {info['source']}: takes {info['in_channels']} input channels; scans are grey")
    generator = prepare_for_inference(generator, device)
    service = ScanService(generator, info, max_bytes=int(max_upload_mb * MB), device=device,
                          tile=tile, max_pixels=max_pixels or None)
    files = _web_files()

    def page(request: Request) -> Response:
        body, media = files["index.html"]
        return Response(body, media_type=media)

    def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            raise UserError(404, "not found")
        return Response(found[0], media_type=found[1])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/model", _model),
        Route("/api/scans", _upload, methods=["POST"]),
        Route("/api/scans/{scan_id}", _scan_info),
        Route("/api/scans/{scan_id}/process", _process, methods=["POST"]),
        Route("/api/scans/{scan_id}/progress", _progress),
        Route("/api/scans/{scan_id}/bscan/{k:int}/{panel}.png", _panel),
        Route("/api/scans/{scan_id}/metrics/{k:int}", _metrics),
        Route("/api/scans/{scan_id}/download", _download),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={UserError: _user_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(_OwnPageOnly, allowed_hosts=allowed_hosts)
    app.state.service = service
    return app


# ----------------------------------------------------------------------------------------------
# running


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); one-line OctSrganError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OctSrganError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The page's URL for a socket from :func:`listen`."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Starlette, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=False))


def run(app: Starlette, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C; shutdown removes the upload folder.

    uvicorn re-raises the Ctrl+C it handled once it has shut down; that is the normal way to stop.
    """
    with contextlib.suppress(KeyboardInterrupt):
        _server(app, log_level).run(sockets=[sock])


@contextlib.contextmanager
def background(app: Starlette, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` from a thread (tests, notebooks); yields the base URL and stops the server after."""
    sock = listen(host, port)
    url = address(sock)
    server = _server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise OctSrganError(f"{url}: the server did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
