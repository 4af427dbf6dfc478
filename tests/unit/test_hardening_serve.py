"""Issue 9, serve: only its own page may drive it; bombs are 413; uploads wait until processed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
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
