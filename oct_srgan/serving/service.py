"""The work of one app on its uploads: scans kept in a temp folder, one job per scan run in the
background B-scan by B-scan, and the panels, progress and scores the page asks for."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import io as scan_io
from ..allocator import trim_freed_memory
from ..limits import SERVE_MAX_PIXELS
from ..loading import LoadedModel
from . import reports
from .errors import Cancelled, UserError
from .jobs import MAX_SCANS, MODES, RESULT_GRACE_S, SCAN_ID, STALE_UPLOAD_S, Job, Upload, Uploads, Worker, read_upload
from .limits import UploadSlots
from .panels import PanelCache
from .processing import ModelRunner

log = logging.getLogger(__name__)


class ScanService:
    """Uploads, background jobs and rendered panels of one app; everything lives under ``workdir``.

    It ties together the parts, each readable alone: the scans kept (``Uploads``) and the job thread
    (``Worker``) from jobs.py, the model's work (``ModelRunner``, processing.py), the panel cache
    (panels.py) and what the page is told (reports.py). One lock guards the scans and their jobs.
    """

    def __init__(self, model: LoadedModel, *, max_bytes: int,
                 device: str | torch.device, tile: int | None, max_pixels: int | None = SERVE_MAX_PIXELS,
                 keep_s: tuple[float, float] = (RESULT_GRACE_S, STALE_UPLOAD_S)) -> None:
        """``keep_s``: how long a finished scan's results, and a scan never processed, are safe from eviction."""
        self.model = ModelRunner(model, device=device, tile=tile)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.workdir: Path | None = None
        self.panels = PanelCache()
        self._uploads = Uploads(*keep_s)
        self.slots = UploadSlots()
        self._worker = Worker()
        self._lock = threading.Lock()
        # Called in the worker after each finished B-scan (job, k); tests use it to hold a job mid-volume.
        self.bscan_hook: Callable[[Job, int], None] | None = None

    # lifecycle

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="oct-srgan-serve-"))
        self._worker.start()

    def stop(self) -> None:
        """Cancel every job, wait for the running one and remove the temp folder."""
        with self._lock:
            for upload in self._uploads.clear():
                if upload.job is not None:
                    upload.job.cancel.set()
            self.panels.clear()
        self._worker.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _require_workdir(self) -> Path:
        if self.workdir is None:
            raise UserError(503, "the server is not running")
        return self.workdir

    # uploads

    def new_part_file(self) -> Path:
        """An empty file in the temp folder to stream an upload into."""
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self._require_workdir())
        os.close(fd)
        return Path(name)

    def has_room(self) -> bool:
        """Whether a new scan could be kept now: asked before an upload's body is read."""
        with self._lock:
            return self._uploads.has_room()

    def add(self, part: Path) -> Upload:
        """Turn a fully received upload into a new scan with its own id."""
        with self._lock:
            if not self._uploads.has_room():
                part.unlink(missing_ok=True)
                raise UserError(429, f"the server holds {MAX_SCANS} scans being processed or viewed: try again later")
        upload = read_upload(part, self._require_workdir(), self.max_pixels, self.model.area_factor)
        if self._keep(upload):
            trim_freed_memory()
        n, h, w = upload.scan.pixels.shape
        log.info("scan %s: %s, %d B-scan(s) of %dx%d", upload.id[:8], upload.format, n, h, w)
        return upload

    def _keep(self, upload: Upload) -> int:
        """Keep ``upload``, forgetting the scans dropped to make room; how many were dropped."""
        with self._lock:
            dropped = self._uploads.put(upload)
            for gone in dropped:
                self.panels.forget(gone.id)
        return len(dropped)

    def get(self, scan_id: str) -> Upload:
        """The scan with this id; 404 for anything but a known upload's id."""
        if not SCAN_ID.fullmatch(scan_id):
            raise UserError(404, "unknown scan id")
        with self._lock:
            upload = self._uploads.lookup(scan_id)
        if upload is None:
            raise UserError(404, "unknown scan id (upload the scan again)")
        return upload

    # processing

    def process(self, upload: Upload, mode: str, reference: Upload | None = None) -> Job:
        """Start (or keep) the job for ``mode`` (check mode: scored against ``reference`` when given);
        a running job of another mode or reference is cancelled."""
        if mode not in MODES:
            raise UserError(400, f"mode must be one of {', '.join(MODES)}")
        if reference is not None and mode != "check":
            raise UserError(400, "a reference is scored against in check mode only")
        reference_id = reference.id if reference is not None else None
        with self._lock:
            current = upload.job
            if (current is not None and current.mode == mode and current.reference == reference_id
                    and current.state in ("queued", "running", "done")):
                return current
        job = self._prepare(upload, mode, reference)
        with self._lock:
            if upload.job is not None:
                upload.job.cancel.set()
            upload.job = job
            self.panels.forget(upload.id)
            self._worker.submit(upload, job, self._work, self.workdir)
        return job

    def _prepare(self, upload: Upload, mode: str, reference: Upload | None = None) -> Job:
        """The job's model input: the scan itself (enhance), or the scan cropped and degraded (check)."""
        ref = (reference.id, reference.scan.pixels) if reference is not None else None
        return self.model.prepare(upload.scan.pixels, mode, ref)

    def _work(self, upload: Upload, job: Job) -> None:
        """The job in the worker: every B-scan, then in enhance mode the enhanced file next to the scan."""
        enhanced = self.model.run(job, self._after_bscan)
        if enhanced is None:
            return
        if job.cancel.is_set():
            raise Cancelled
        target = self._require_workdir() / f"enhanced_{upload.id}{upload.suffix}"
        scan_io.write_scan(upload.scan.with_pixels(enhanced), target, derivation=self.model.derivation)
        job.output = target

    def _after_bscan(self, job: Job, k: int) -> None:
        if self.bscan_hook is not None:
            self.bscan_hook(job, k)

    # views

    def progress(self, upload: Upload) -> dict[str, Any]:
        return reports.progress(upload)

    def panel_png(self, upload: Upload, k: int, panel: str) -> bytes:
        return self.panels.png(upload, k, panel)

    def scores(self, upload: Upload, k: int) -> dict[str, Any]:
        return reports.scores(upload, k, shave=self.model.scale)

    def model_info(self) -> dict[str, Any]:
        return reports.model_info(self.model.loaded, max_bytes=self.max_bytes)
