"""Scans and jobs, no HTTP: an upload read into a scan stored under its content hash, the store
that keeps a few of them, and the one worker thread that runs their jobs one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as scan_io
from ..errors import OctSrganError, PixelLimitError
from .errors import Cancelled, UserError, one_line

log = logging.getLogger(__name__)

MODES = ("enhance", "check")
MAX_SCANS = 8
STALE_UPLOAD_S = 600.0
SCAN_ID = re.compile(r"[0-9a-f]{64}")


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


def read_upload(part: Path, digest: str, folder: Path, max_pixels: int | None) -> Upload:
    """A fully received upload (``part``, content hash ``digest``) renamed to ``<digest><suffix>`` in
    ``folder`` and read; a file that is not a readable scan is deleted and refused with 400 (413 over
    ``max_pixels``), its message free of server paths."""
    detected = scan_io.detect_format(part)
    if detected is None:
        part.unlink(missing_ok=True)
        raise UserError(400, f"unsupported file type: expected a {supported_text()} scan")
    fmt, suffix = detected
    target = folder / f"{digest}{suffix}"
    os.replace(part, target)
    try:
        scan = scan_io.read_scan(target, max_pixels=max_pixels)
    except PixelLimitError as exc:
        target.unlink(missing_ok=True)
        raise UserError(413, f"scan too large: {one_line(exc, folder)}") from None
    except OctSrganError as exc:
        target.unlink(missing_ok=True)
        raise UserError(400, f"cannot read the uploaded {fmt} file: {one_line(exc, folder)}") from None
    except Exception as exc:  # read_scan wraps reader errors; this is a last line of defence
        target.unlink(missing_ok=True)
        log.warning("upload %s: %s reader failed (%s)", digest[:8], fmt, type(exc).__name__)
        raise UserError(400, f"cannot read the uploaded {fmt} file") from None
    return Upload(digest, fmt, _result_suffix(fmt, suffix), target, scan)


def _result_suffix(fmt: str, suffix: str) -> str:
    """The suffix the enhanced scan gets: the upload's, or that of a reader-only format's ``write_as``."""
    written = scan_io.output_format(fmt)
    return suffix if written.name == fmt else written.suffixes[0]


def supported_text() -> str:
    """The formats serve accepts, in words: ``dicom (.dcm/.dicom), nifti (.nii.gz/.nii), ...``."""
    return ", ".join(f"{f.name} ({'/'.join(f.suffixes)})" for f in scan_io.SUPPORTED_FORMATS.values())


class Uploads:
    """The app's scans by content hash, oldest first, at most ``MAX_SCANS``.

    Not locked itself: the service calls it under the one lock that also guards the scans' jobs.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, Upload] = OrderedDict()

    def lookup(self, scan_id: str) -> Upload | None:
        return self._items.get(scan_id)

    def touch(self, digest: str) -> Upload | None:
        """The scan with this content if it is known, then counted as the newest."""
        known = self._items.get(digest)
        if known is not None:
            self._items.move_to_end(digest)
        return known

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
        """Make room for one more scan: forget the oldest finished scans first, then scans left
        unprocessed for ``STALE_UPLOAD_S``; a scan waiting for or in processing is never dropped.
        Raises 429 when every slot holds such a scan."""
        if len(self._items) < MAX_SCANS:
            return []
        now = time.monotonic()
        finished = [k for k, u in self._items.items() if u.job is not None and not u.job.active]
        stale = [k for k, u in self._items.items() if u.job is None and now - u.added > STALE_UPLOAD_S]
        dropped = [self._items.pop(key) for key in (finished + stale)[: len(self._items) - MAX_SCANS + 1]]
        for upload in dropped:
            upload.path.unlink(missing_ok=True)
            if upload.job is not None and upload.job.output is not None:
                upload.job.output.unlink(missing_ok=True)
        if len(self._items) >= MAX_SCANS:
            raise UserError(429, f"the server holds {MAX_SCANS} scans waiting to be processed: try again later")
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
