"""Issue 9, serve: only its own page may drive it; bombs are 413; uploads wait until processed."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oct_srgan import serving
from tests.helpers.scans import bomb_png
from tests.helpers.serving import call, tiny_model, upload


def small_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, serving.ScanService]]:
    app = serving.create_app(tiny_model(tmp_path_factory.mktemp("m") / "tiny.pt"), tile=0, keep_s=(0.0, 600.0))
    with serving.background(app) as base:
        yield base, app.state.service


def test_bomb_header_is_413_and_nothing_is_kept(server) -> None:
    base, service = server
    before = set(service.workdir.iterdir())
    status, data = upload(base, bomb_png(8000, 8000))
    assert status == 413
    assert "8000" in data["error"] and "limit" in data["error"] and "\n" not in data["error"]
    assert set(service.workdir.iterdir()) == before


def test_foreign_host_is_refused(server) -> None:
    base, _ = server
    status, _, body = call(base, "GET", "/api/model", headers={"Host": "evil.example:8000"})
    assert status == 403 and "Host" in json.loads(body)["error"]
    assert call(base, "GET", "/api/model", headers={"Host": "localhost:1"})[0] == 200


def test_foreign_origin_post_is_refused(server) -> None:
    base, _ = server
    host = base.removeprefix("http://")
    status, _, _ = call(base, "POST", "/api/scans", small_png(1),
                        {"Content-Type": "application/octet-stream", "Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = call(base, "POST", "/api/scans", small_png(1),
                        {"Content-Type": "application/octet-stream", "Origin": f"http://{host}"})
    assert status == 200


def test_text_plain_upload_is_refused(server) -> None:
    base, _ = server
    status, _, body = call(base, "POST", "/api/scans", small_png(2), {"Content-Type": "text/plain"})
    assert status == 415 and "application/octet-stream" in json.loads(body)["error"]


def test_unprocessed_uploads_are_kept_and_the_next_is_429(server) -> None:
    base, service = server
    with service._lock:
        service._uploads.clear()
    ids = [upload(base, small_png(100 + i))[1]["id"] for i in range(serving.MAX_SCANS)]
    status, data = upload(base, small_png(999))
    assert status == 429 and "try again" in data["error"]
    for scan_id in ids:
        assert call(base, "GET", f"/api/scans/{scan_id}")[0] == 200
    service.process(service.get(ids[3]), "enhance")
    from tests.helpers.serving import wait_done

    assert wait_done(base, ids[3])["state"] == "done"
    status, data = upload(base, small_png(999))
    assert status == 200
    assert call(base, "GET", f"/api/scans/{ids[3]}")[0] == 404
    assert all(call(base, "GET", f"/api/scans/{i}")[0] == 200 for i in ids if i != ids[3])


@pytest.fixture(scope="module")
def evicting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, serving.ScanService]]:
    """A server that may evict any upload at once, so each test's uploads always find room."""
    app = serving.create_app(tiny_model(tmp_path_factory.mktemp("e") / "tiny.pt"), tile=0, keep_s=(0.0, 0.0))
    with serving.background(app) as base:
        yield base, app.state.service


@pytest.mark.parametrize("path", ["metrics/" + "9" * 5000, "bscan/" + "9" * 5000 + "/sr.png", "metrics/-1",
                                  "metrics/1e3", "metrics/%EF%BC%91"])
def test_a_bscan_number_python_cannot_or_should_not_parse_is_404(evicting, path: str) -> None:
    base, _ = evicting
    scan_id = upload(base, small_png(3))[1]["id"]
    status, headers, body = call(base, "GET", f"/api/scans/{scan_id}/{path}")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "no such B-scan"}


def _raw_request(base: str, head: dict[str, str], body: bytes) -> socket.socket:
    """A POST /api/scans whose headers and body are sent exactly as given; the socket stays open."""
    url = urllib.parse.urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    lines = ["POST /api/scans HTTP/1.1", f"Host: {url.netloc}", *(f"{k}: {v}" for k, v in head.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_body_shorter_than_its_content_length_then_closed_leaves_nothing(evicting) -> None:
    base, service = evicting
    data = small_png(4)
    sock = _raw_request(base, {"Content-Type": "application/octet-stream", "Content-Length": str(len(data) + 500)},
                        data)

    def receiving() -> bool:
        return any(p.suffix == ".part" for p in service.workdir.iterdir())

    assert _wait_for(receiving)  # the server is streaming the body into its temp folder
    sock.close()  # the client gives up mid-body
    assert _wait_for(lambda: not receiving())
    assert upload(base, data)[0] == 200  # and the server goes on serving


def _nifti_gz(shape: tuple[int, ...]) -> bytes:
    import gzip

    import nibabel as nib

    pixels = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    return gzip.compress(nib.Nifti1Image(pixels, np.eye(4)).to_bytes())


@pytest.mark.parametrize(("data", "expected"), [
    (small_png(5)[:60], "cannot read the uploaded png file: cannot read as png: image file is truncated"),
    (_nifti_gz((32, 32, 4))[:2000],
     "cannot read the uploaded nifti file: cannot read as nifti: Compressed file ended before the end-of-stream "
     "marker was reached"),
    (_nifti_gz((32, 32, 0)), "cannot read the uploaded nifti file: no image data (the header declares 32x32x0 samples)"),
], ids=["png", "nii.gz", "nii.gz without B-scans"])
def test_a_truncated_or_empty_scan_upload_is_400_in_one_line(evicting, data: bytes, expected: str) -> None:
    base, _ = evicting
    status, answer = upload(base, data)
    assert (status, answer) == (400, {"error": expected})


def test_a_multipart_form_is_415_before_its_body_is_read(evicting) -> None:
    base, _ = evicting
    form = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + small_png(6)[:50]
    sock = _raw_request(base, {"Content-Type": "multipart/form-data; boundary=XX", "Content-Length": "100000"}, form)
    with sock:
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 415 Unsupported Media Type"


def test_a_body_that_stalls_is_408_in_one_line(tmp_path: Path) -> None:
    import asyncio

    from starlette.requests import Request

    from oct_srgan.serving.errors import UserError
    from oct_srgan.serving.limits import stream_body

    async def stalls() -> dict:
        await asyncio.sleep(60)
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, stalls)
    with (tmp_path / "part").open("wb") as fh, pytest.raises(UserError) as info:
        asyncio.run(stream_body(request, fh, 2**20, "limit", idle_s=0.05))
    assert (info.value.status, info.value.message) == (408, "the upload stalled (no data for 0.05 s)")
