"""``oct-srgan serve``: a small local web app to enhance a scan, or check the model on it.

The page (``oct_srgan/web``) uploads one scan, shows input | bicubic | SR | SR - bicubic per B-scan
(each B-scan as soon as it is done) and, in check mode, PSNR/SSIM of bicubic and SR against the scan
taken as high resolution, or against a reference scan uploaded beside it (a clean registered average
of the same location). What keeps it safe:

- An upload is the raw request body (``Content-Type: application/octet-stream``; no form parsing,
  so the client's file name is not part of it). It is streamed into a temp folder that belongs to
  the app (created at start-up, removed at shutdown) and refused with HTTP 413 as soon as it passes
  the size limit, the partial file deleted.
- The download request may carry the source's file name (``?name=``) so the enhanced file keeps it
  (``scan.dcm`` -> ``scan_sr.dcm``); it is reduced to ``[A-Za-z0-9._-]``, used for that one
  response header and neither stored nor logged.
- Each upload gets its own unguessable id (64 random hex digits), stored as ``<id><suffix>`` with
  the suffix from the magic bytes and addressed by that id only (anything else is 404), so two users
  with the same file never share a job and no id tells whether a file was uploaded.
- The static files are read once into memory; a request never names a file on disk.
- Errors reach the client as one line of JSON ``{"error": ...}``, without a stack trace or a
  server path. Nothing from a DICOM header but geometry and bit depth is returned or logged.

Processing runs in one background worker thread, one B-scan at a time, so the server stays
responsive and the page can poll progress and show B-scans as they are done.

Modules: ``app`` (routes and handlers), ``server`` (listening and running), ``limits`` (what an
upload may cost before it is read), ``security``
(headers, Host/Origin checks, download names), ``service`` (:class:`ScanService`, which ties
together ``jobs`` (scans, eviction, the worker), ``processing`` (the model's work), ``panels``
and ``reports``) and ``errors``; formats are sniffed by ``oct_srgan.io.detect_format``.
"""

from .app import create_app
from .errors import UserError
from .jobs import MAX_SCANS, Job, Upload
from .panels import DIFF_PERCENTILE, diff_image, diff_scale
from .security import MAX_STEM, download_name
from .server import address, background, listen, run
from .service import ScanService
from ..io import detect_format

__all__ = [
    "DIFF_PERCENTILE", "MAX_SCANS", "MAX_STEM", "Job", "ScanService", "Upload", "UserError",
    "address", "background", "create_app", "detect_format", "diff_image", "diff_scale", "download_name", "listen", "run",
]
