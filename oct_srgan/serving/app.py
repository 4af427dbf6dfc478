"""The Starlette app: the page's static files and the JSON/PNG API over a :class:`ScanService`,
with the safety rules listed in the package docstring (raw-body uploads with a size limit, static
files from memory, errors as one line of JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .. import io as scan_io
from ..errors import ModelError, OctSrganError
from ..inference import DEFAULT_TILE
from ..loading import load_model
from ..limits import SERVE_MAX_PIXELS
from .errors import UserError
from .jobs import MAX_SCANS, RESULT_GRACE_S, STALE_UPLOAD_S, supported_text
from .limits import stream_body
from .reports import MB
from .security import OwnPageOnly, SecurityHeaders, download_name, json_error
from .service import ScanService

log = logging.getLogger(__name__)

_WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _service(request: Request) -> ScanService:
    return request.app.state.service


async def _upload(request: Request) -> Response:
    """Refuse what can be refused before the body is read (size, type, no room, too many at once),
    then stream the body into the temp folder with an idle timeout and read it as a scan."""
    service = _service(request)
    limit_text = (f"the upload limit is {service.max_bytes / MB:g} MB "
                  "(start the server with --max-upload-mb to change it)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > service.max_bytes:
        return json_error(413, f"file too large: {limit_text}")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/octet-stream":
        return json_error(415, "send the file itself as the request body (Content-Type: application/octet-stream)")
    if not service.has_room():
        return json_error(429, f"the server holds {MAX_SCANS} scans being processed or viewed: try again later")
    if not service.slots.take():
        return json_error(429, "too many uploads at once: try again in a moment")
    try:
        return await _receive(request, service, limit_text)
    finally:
        service.slots.give()


async def _receive(request: Request, service: ScanService, limit_text: str) -> Response:
    part: Path | None = None
    try:
        part = service.new_part_file()  # in the try: a full temp folder is 507 here too
        with part.open("wb") as fh:
            size = await stream_body(request, fh, service.max_bytes, limit_text)
        if size == 0:
            raise UserError(400, "empty upload: choose a scan file")
        upload = await run_in_threadpool(service.add, part)
    except ClientDisconnect:
        return json_error(400, "the upload was interrupted")
    except UserError as exc:
        return json_error(exc.status, exc.message)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.warning("upload refused: the server's temp folder is full")
        return json_error(507, "the server's disk is full: try again later")
    finally:
        if part is not None:
            part.unlink(missing_ok=True)  # kept uploads were renamed to their id by then
    return JSONResponse(upload.summary())


def _bscan_index(request: Request) -> int:
    """The path's B-scan number; 404 for anything but up to 6 digits (Python refuses to parse thousands)."""
    text = request.path_params["k"]
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise UserError(404, "no such B-scan")
    return int(text)


def _scan_info(request: Request) -> Response:
    return JSONResponse(_service(request).get(request.path_params["scan_id"]).summary())


def _process(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    reference = request.query_params.get("reference")
    service.process(upload, request.query_params.get("mode", "enhance"), service.get(reference) if reference else None)
    return JSONResponse(service.progress(upload), status_code=202)


def _progress(request: Request) -> Response:
    service = _service(request)
    return JSONResponse(service.progress(service.get(request.path_params["scan_id"])))


def _panel(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    data = service.panel_png(upload, _bscan_index(request), request.path_params["panel"])
    return Response(data, media_type="image/png")


def _metrics(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    return JSONResponse(service.scores(upload, _bscan_index(request)))


def _download(request: Request) -> Response:
    service = _service(request)
    upload = service.get(request.path_params["scan_id"])
    job = upload.job
    if job is None or job.mode != "enhance" or job.state != "done" or job.output is None:
        raise UserError(409, "nothing to download yet: process the scan in enhance mode first")
    # the format the output was written as: a scanner export's is DICOM
    written = scan_io.format_of_name(job.output) or upload.format
    return FileResponse(job.output, media_type=scan_io.resolve_format(written).media_type,
                        filename=download_name(request.query_params.get("name"), upload))


def _model(request: Request) -> Response:
    return JSONResponse(_service(request).model_info())


def _formats(request: Request) -> Response:
    """The scan formats the format table holds, for the page's file picker and download names."""
    return JSONResponse({"suffixes": list(scan_io.scan_suffixes()), "media_types": [m for m in scan_io.media_types() if m != "application/octet-stream"],
                         "supported": supported_text()})


async def _user_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    return json_error(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return json_error(exc.status_code, messages.get(exc.status_code, "bad request"))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return json_error(500, "internal error (see the server console)")


def _web_routes() -> list[Route]:
    """The page and its static files (``oct_srgan/web``), read into memory once."""
    root = resources.files("oct_srgan") / "web"
    files = {name: ((root / name).read_bytes(), media) for name, media in _WEB_FILES.items()}

    def page(request: Request) -> Response:
        body, media = files["index.html"]
        return Response(body, media_type=media)

    def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            raise UserError(404, "not found")
        return Response(found[0], media_type=found[1])

    return [Route("/", page), Route("/static/{name}", static)]


_API_ROUTES = [
    Route("/api/model", _model),
    Route("/api/formats", _formats),
    Route("/api/scans", _upload, methods=["POST"]),
    Route("/api/scans/{scan_id}", _scan_info),
    Route("/api/scans/{scan_id}/process", _process, methods=["POST"]),
    Route("/api/scans/{scan_id}/progress", _progress),
    Route("/api/scans/{scan_id}/bscan/{k}/{panel}.png", _panel),
    Route("/api/scans/{scan_id}/metrics/{k}", _metrics),
    Route("/api/scans/{scan_id}/download", _download),
]


def create_app(model: str | Path = "default", *, max_upload_mb: float = 200,
               device: str | torch.device = "cpu", tile: int | None = DEFAULT_TILE,
               max_pixels: int | None = SERVE_MAX_PIXELS, allowed_hosts: Sequence[str] = (),
               keep_s: tuple[float, float] = (RESULT_GRACE_S, STALE_UPLOAD_S)) -> Starlette:
    """The web app with ``model`` loaded once (a generator file, checkpoint, MLflow URI or 'default').

    ``tile`` is the LR window side for tiled inference (0/None: whole B-scans, faster but memory
    grows with the B-scan). ``keep_s`` says how long finished results and unprocessed uploads are
    safe from eviction by newer uploads (see :class:`~oct_srgan.serving.jobs.Uploads`). The temp folder for uploads is created when the app starts and removed
    when it stops.
    """
    if max_upload_mb <= 0:
        raise OctSrganError(f"max upload size must be positive, got {max_upload_mb} MB")
    loaded = load_model(model, device)
    if not loaded.takes_grey:
        raise ModelError(f"model {loaded.source}: takes {loaded.channels} input channels; scans are grey")
    service = ScanService(loaded, max_bytes=int(max_upload_mb * MB), device=device,
                          tile=tile, max_pixels=max_pixels or None, keep_s=keep_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = Starlette(
        routes=[*_web_routes(), *_API_ROUTES],
        lifespan=lifespan,
        exception_handlers={UserError: _user_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(OwnPageOnly, allowed_hosts=allowed_hosts)
    app.state.service = service
    return app
