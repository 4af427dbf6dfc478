"""Scans and jobs, no HTTP: an upload read into a scan stored under its content hash, the store
that keeps a few of them, and the one worker thread that runs their jobs one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as scan_io
from ..allocator import trim_freed_memory
from ..errors import OctSrganError, PixelLimitError
from .errors import Cancelled, UserError, one_line
from .limits import check_upload_memory

log = logging.getLogger(__name__)

MODES = ("enhance", "check")
MAX_SCANS = 8
STALE_UPLOAD_S = 600.0
RESULT_GRACE_S = 600.0
SCAN_ID = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(eq=False)
class Job:
    """One processing run over all B-scans of a scan; fields are written by the worker thread only."""

    mode: str
    total: int
    source: np.ndarray
    hr: np.ndarray | None = None
    reference: str | None = None  # check mode: the uploaded reference scan scored against, else the scan itself
    state: str = "queued"
    done: int = 0
    error: str | None = None
    output: Path | None = None
    bicubic: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    sr: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    scores: list[dict[str, dict[str, float | None]] | None] = dataclasses.field(default_factory=list)
    diff_scale: list[float | None] = dataclasses.field(default_factory=list)
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    ended: float | None = None

    def __post_init__(self) -> None:
        self.bicubic = [None] * self.total
        self.sr = [None] * self.total
        self.scores = [None] * self.total
        self.diff_scale = [None] * self.total

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def finished(self) -> list[int]:
        """The B-scans whose bicubic and SR panels exist, so the page can show each as soon as it is done."""
        return [k for k in range(self.total) if self.sr[k] is not None]


@dataclasses.dataclass(eq=False)
class Upload:
    """An uploaded scan: its own random id, detected format, the suffix of the files written from it
    (its own, or ``.dcm`` for a scanner export), the file in the temp folder and the pixels."""

    id: str
    format: str
    suffix: str
    path: Path
    scan: scan_io.Scan
    job: Job | None = None
    added: float = dataclasses.field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        """What the page is told about the scan, with a note when colour went to grey, 1 bit to 8 or EXIF was applied."""
        n, h, w = self.scan.pixels.shape
        return {"id": self.id, "n_bscans": n, "height": h, "width": w, "format": self.format,
                "suffix": self.suffix, "bit_depth": self.scan.bit_depth, "note": "; ".join(self.scan.notes) or None}


def read_upload(part: Path, folder: Path, max_pixels: int | None, factor: int = 16) -> Upload:
    """A fully received upload (``part``) given its own unguessable id, renamed to ``<id><suffix>`` in
    ``folder`` and read; a file that is not a readable scan is deleted and refused with 400 (413 over
    ``max_pixels``, or when enhancing it ``factor``× would cost more than the server allows), its
    message free of server paths. Two uploads of the same file are two scans: an id says nothing about
    a file's content, and one user's request never touches another's job."""
    detected = scan_io.detect_format(part)
    if detected is None:
        part.unlink(missing_ok=True)
        raise UserError(400, f"unsupported file type: expected a {supported_text()} scan")
    fmt, suffix = detected
    digest = secrets.token_hex(32)
    target = folder / f"{digest}{suffix}"
    os.replace(part, target)
    try:
        check_upload_memory(target, fmt, factor, max_pixels)
        scan = scan_io.read_scan(target, max_pixels=max_pixels)
    except PixelLimitError as exc:
        target.unlink(missing_ok=True)
        raise UserError(413, f"scan too large: {one_line(exc, folder)}") from None
    except UserError:
        target.unlink(missing_ok=True)
        raise
    except OctSrganError as exc:
        target.unlink(missing_ok=True)
        raise UserError(400, f"cannot read the uploaded {fmt} file: {one_line(exc, folder)}") from None
    except Exception as exc:  # read_scan wraps reader errors; this is a last line of defence
        target.unlink(missing_ok=True)
        log.warning("upload %s: %s reader failed (%s)", digest[:8], fmt, type(exc).__name__)
        raise UserError(400, f"cannot read the uploaded {fmt} file") from None
    return Upload(digest, fmt, scan_io.written_suffix(target) or suffix, target, scan)


def supported_text() -> str:
    """The formats serve accepts, in words: ``dicom (.dcm/.dicom), nifti (.nii.gz/.nii), ...``."""
    return ", ".join(f"{f.name} ({'/'.join(f.suffixes)})" for f in scan_io.SUPPORTED_FORMATS.values())


class Uploads:
    """The app's scans by id, oldest first, at most ``MAX_SCANS``.

    A finished scan's results stay for ``grace_s`` after its job ended, so one user's uploads do not
    make another's results vanish while they look at them. Not locked itself: the service calls it
    under the one lock that also guards the scans' jobs.
    """

    def __init__(self, grace_s: float = RESULT_GRACE_S, stale_s: float = STALE_UPLOAD_S) -> None:
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self.grace_s, self.stale_s = grace_s, stale_s

    def lookup(self, scan_id: str) -> Upload | None:
        return self._items.get(scan_id)

    def has_room(self) -> bool:
        """Whether one more scan could be kept now (checked before an upload's body is read)."""
        return len(self._items) < MAX_SCANS or bool(self._droppable())

    def _droppable(self) -> list[str]:
        """Finished scans past their grace period (oldest first), then scans left unprocessed too long."""
        now = time.monotonic()
        finished = [k for k, u in self._items.items()
                    if u.job is not None and not u.job.active and now - (u.job.ended or now) >= self.grace_s]
        stale = [k for k, u in self._items.items() if u.job is None and now - u.added >= self.stale_s]
        return finished + stale

    def put(self, upload: Upload) -> list[Upload]:
        """Keep ``upload``, dropping older scans to make room; returns the scans dropped. When no
        room can be made it raises 429 and deletes the upload's file."""
        try:
            dropped = self._make_room()
        except UserError:
            upload.path.unlink(missing_ok=True)
            raise
        self._items[upload.id] = upload
        return dropped

    def _make_room(self) -> list[Upload]:
        """Make room for one more scan: forget the oldest finished scans past their grace period
        first, then scans left unprocessed for ``STALE_UPLOAD_S``; a scan waiting for or in
        processing is never dropped (before ``stale_s``). Raises 429 when every slot holds such a scan."""
        if len(self._items) < MAX_SCANS:
            return []
        dropped = [self._items.pop(key) for key in self._droppable()[: len(self._items) - MAX_SCANS + 1]]
        for upload in dropped:
            upload.path.unlink(missing_ok=True)
            if upload.job is not None and upload.job.output is not None:
                upload.job.output.unlink(missing_ok=True)
        if len(self._items) >= MAX_SCANS:
            raise UserError(429, f"the server holds {MAX_SCANS} scans being processed or viewed: try again later")
        return dropped

    def clear(self) -> list[Upload]:
        """Forget every scan (their files stay for the caller); returns them."""
        gone = list(self._items.values())
        self._items.clear()
        return gone


class Worker:
    """The one background thread that runs jobs in order, so the server stays responsive."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oct-srgan-job")

    def stop(self) -> None:
        """Drop the queued jobs and wait for the running one (the caller has cancelled it)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def submit(self, upload: Upload, job: Job, work: Callable[[Upload, Job], None], folder: Path | None) -> None:
        """Queue ``work(upload, job)``; 503 once the server is shutting down."""
        if self._executor is None:
            raise UserError(503, "the server is shutting down")
        self._executor.submit(_run, upload, job, work, folder)


def _run(upload: Upload, job: Job, work: Callable[[Upload, Job], None], folder: Path | None) -> None:
    """Run one job and record how it ended: cancelled, an error (one line for the page, without paths
    under ``folder``; an unexpected one logged with its traceback) or done."""
    try:
        _run_job(upload, job, work, folder)
    finally:
        job.ended = time.monotonic()
        trim_freed_memory()


def _run_job(upload: Upload, job: Job, work: Callable[[Upload, Job], None], folder: Path | None) -> None:
    if job.cancel.is_set():
        job.state = "cancelled"
        return
    job.state = "running"
    try:
        work(upload, job)
    except Cancelled:
        job.state = "cancelled"
        return
    except OctSrganError as exc:
        job.error = one_line(exc, folder)
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
