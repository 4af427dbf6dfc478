"""The ``oct-srgan serve`` web app over real HTTP on the real scans: uploads, both modes, download, limits,
privacy, and the command served from its own process."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from PIL import Image

from oct_srgan import serving
from tests.helpers.scans import volume_copy
from tests.helpers.serving import PATIENT, HoldAfter, call, png_size, upload, wait_done
from tests.paths import BSCAN16_DCM, BSCAN16_PNG, DUKE, VOLUME_DCM, VOLUME_NII


def test_corrupt_scan_is_refused_without_server_paths(server) -> None:
    base, service = server
    status, data = upload(base, BSCAN16_PNG.read_bytes()[:2000])
    assert status == 400
    assert data["error"].startswith("cannot read the uploaded png file")
    assert str(service.workdir) not in data["error"] and "\n" not in data["error"]


def test_check_mode_scores_a_16bit_png(server) -> None:
    base, service = server
    data = BSCAN16_PNG.read_bytes()
    status, scan = upload(base, data)
    assert status == 200
    assert scan["id"] != hashlib.sha256(data).hexdigest()  # an id says nothing about the content
    assert {k: v for k, v in scan.items() if k != "id"} == {"n_bscans": 1, "height": 450, "width": 900, "format": "png", "suffix": ".png", "bit_depth": 16, "note": None}
    assert (service.workdir / f"{scan['id']}.png").read_bytes() == data
    status, _, _ = call(base, "POST", f"/api/scans/{scan['id']}/process?mode=check")
    assert status == 202
    progress = wait_done(base, scan["id"])
    assert progress["state"] == "done" and progress["done"] == progress["total"] == 1
    assert progress["finished"] == [0] and progress["download"] is False

    status, _, body = call(base, "GET", f"/api/scans/{scan['id']}/metrics/0")
    result = json.loads(body)
    assert status == 200 and result["shave"] == 4
    for method in ("bicubic", "sr"):
        assert math.isfinite(result["scores"][method]["psnr"]) and 0 < result["scores"][method]["ssim"] <= 1
    assert 20 < result["scores"]["bicubic"]["psnr"] < 60
    assert result["mean"]["bicubic"]["psnr"] == pytest.approx(result["scores"]["bicubic"]["psnr"])

    sizes = {panel: png_size(call(base, "GET", f"/api/scans/{scan['id']}/bscan/0/{panel}.png")[2])
             for panel in ("input", "bicubic", "sr", "hr", "diff")}
    assert sizes == {"input": (225, 112), "bicubic": (900, 448), "sr": (900, 448), "hr": (900, 448),
                     "diff": (900, 448)}
    assert call(base, "GET", f"/api/scans/{scan['id']}/download")[0] == 409
    assert call(base, "GET", f"/api/scans/{scan['id']}/bscan/1/sr.png")[0] == 404
    assert call(base, "GET", f"/api/scans/{scan['id']}/bscan/0/other.png")[0] == 404


def test_dicom_volume_enhanced_and_downloaded_without_leaking_patient(
        server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base, _ = server
    caplog.set_level(logging.INFO)
    source = pydicom.dcmread(VOLUME_DCM)
    bodies: list[bytes] = []

    status, headers, body = call(base, "POST", "/api/scans", VOLUME_DCM.read_bytes(),
                                 {"Content-Type": "application/octet-stream"})
    bodies.append(body)
    scan = json.loads(body)
    assert status == 200
    summary = (scan["n_bscans"], scan["height"], scan["width"], scan["format"], scan["bit_depth"])
    assert summary == (6, 450, 900, "dicom", 8)
    scan_id = scan["id"]
    for path in (f"/api/scans/{scan_id}/process?mode=enhance", f"/api/scans/{scan_id}/progress"):
        bodies.append(call(base, "POST" if "process" in path else "GET", path)[2])
    seen: list[dict] = []
    progress = wait_done(base, scan_id, seen=seen)
    assert progress["state"] == "done" and progress["download"] is True
    assert any(p["state"] == "running" and p["done"] < p["total"] == 6 for p in seen)  # answered while busy
    for k, panel, size in ((2, "input", (900, 450)), (2, "bicubic", (3600, 1800)), (2, "sr", (3600, 1800))):
        status, _, body = call(base, "GET", f"/api/scans/{scan_id}/bscan/{k}/{panel}.png")
        bodies.append(body)
        assert status == 200 and png_size(body) == size
    for path in (f"/api/scans/{scan_id}", f"/api/scans/{scan_id}/progress", f"/api/scans/{scan_id}/metrics/0",
                 "/api/model"):
        bodies.append(call(base, "GET", path)[2])

    status, headers, body = call(base, "GET", f"/api/scans/{scan_id}/download")
    assert status == 200 and headers["content-type"] == "application/dicom"
    assert headers["content-disposition"] == f'attachment; filename="scan_{scan_id[:8]}_sr.dcm"'  # no name sent
    (tmp_path / "enhanced.dcm").write_bytes(body)
    enhanced = pydicom.dcmread(tmp_path / "enhanced.dcm")
    assert (enhanced.Rows, enhanced.Columns, int(enhanced.NumberOfFrames)) == (4 * 450, 4 * 900, 6)
    assert enhanced.SOPInstanceUID != source.SOPInstanceUID
    assert enhanced.SeriesInstanceUID != source.SeriesInstanceUID
    assert "tiny_x4.pt" in str(enhanced.get("DerivationDescription", ""))
    assert enhanced.pixel_array.shape == (6, 1800, 3600)
    # the downloaded file stays the patient's own record; nothing else the page gets names the patient
    assert str(enhanced.PatientName) == str(source.PatientName) == PATIENT[0]
    for body in bodies:
        for identifier in PATIENT:
            assert identifier.encode() not in body
    for identifier in PATIENT:
        assert identifier not in caplog.text


def test_progress_lists_each_finished_bscan_while_the_volume_runs(server, tmp_path: Path) -> None:
    """The page polls ``finished`` and shows a B-scan's panels as soon as it is listed, not at the end."""
    base, service = server
    hold = HoldAfter(1)
    service.bscan_hook = hold
    try:
        status, scan = upload(base, volume_copy(tmp_path / "held.dcm", "held after B-scan 2").read_bytes())
        assert status == 200
        scan_id = scan["id"]
        assert json.loads(call(base, "GET", f"/api/scans/{scan_id}/progress")[2])["finished"] == []
        assert call(base, "POST", f"/api/scans/{scan_id}/process?mode=enhance")[0] == 202
        assert hold.held.wait(120), "the worker never reached B-scan 2"
        status, _, body = call(base, "GET", f"/api/scans/{scan_id}/progress")
        progress = json.loads(body)
        assert status == 200 and progress["state"] == "running"
        assert progress["finished"] == [0, 1] and progress["done"] == 2 and progress["total"] == 6
        assert progress["download"] is False
        for k in (0, 1):
            for panel in ("bicubic", "sr", "diff"):
                assert call(base, "GET", f"/api/scans/{scan_id}/bscan/{k}/{panel}.png")[0] == 200, (k, panel)
        for panel in ("bicubic", "sr", "diff"):
            status, _, body = call(base, "GET", f"/api/scans/{scan_id}/bscan/2/{panel}.png")
            assert status == 409 and "not processed yet" in json.loads(body)["error"]
        assert call(base, "GET", f"/api/scans/{scan_id}/download")[0] == 409
    finally:
        hold.release.set()
        service.bscan_hook = None
    progress = wait_done(base, scan_id)
    assert progress["state"] == "done" and progress["finished"] == list(range(6))


def test_diff_panel_is_sr_minus_bicubic(server) -> None:
    base, _ = server
    status, scan = upload(base, VOLUME_DCM.read_bytes())
    assert status == 200
    call(base, "POST", f"/api/scans/{scan['id']}/process?mode=enhance")
    progress = wait_done(base, scan["id"])
    assert progress["state"] == "done"
    images = {panel: np.asarray(Image.open(io.BytesIO(call(base, "GET", f"/api/scans/{scan['id']}/bscan/1/{panel}.png")[2])))
              for panel in ("bicubic", "sr", "diff")}
    scale = progress["diff_scale"][1]
    assert scale == pytest.approx(serving.diff_scale(images["sr"], images["bicubic"]))
    np.testing.assert_array_equal(images["diff"], serving.diff_image(images["sr"], images["bicubic"], scale))
    assert images["diff"].std() > 1  # the random tiny model does change the image


@pytest.mark.parametrize(("name", "expected"), [
    ("scan.dcm", "scan_sr.dcm"),
    ("oct_volume_s14.DCM", "oct_volume_s14_sr.dcm"),
    ("volume.nii.gz", "volume_sr.dcm"),  # the suffix is the content's, not the name's
    ("IM000001", "IM000001_sr.dcm"),
    ("C:\\scans\\Doe, Jane (OD).dcm", "Doe__Jane__OD__sr.dcm"),
    ("../../etc/passwd", "passwd_sr.dcm"),
    ('a"b\r\nSet-Cookie: x=1.dcm', "a_b__Set-Cookie__x_1_sr.dcm"),
    ("..dcm", "scan_{id}_sr.dcm"),
    ("", "scan_{id}_sr.dcm"),
    (None, "scan_{id}_sr.dcm"),
    ("Müller.dcm", "M_ller_sr.dcm"),
    ("x" * 300 + ".dcm", "x" * serving.MAX_STEM + "_sr.dcm"),
])
def test_download_keeps_the_source_file_name(server, name: str | None, expected: str) -> None:
    base, _ = server
    status, scan = upload(base, BSCAN16_DCM.read_bytes())  # one frame: the names are what is tested
    assert status == 200
    call(base, "POST", f"/api/scans/{scan['id']}/process?mode=enhance")
    assert wait_done(base, scan["id"])["download"] is True
    query = "" if name is None else "?name=" + urllib.parse.quote(name, safe="")
    status, headers, body = call(base, "GET", f"/api/scans/{scan['id']}/download{query}")
    filename = expected.format(id=scan["id"][:8])
    assert status == 200 and headers["content-type"] == "application/dicom"
    assert headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert "set-cookie" not in headers and body[128:132] == b"DICM"
    assert serving.download_name(name, SimpleNamespace(id=scan["id"], suffix=".dcm")) == filename


def test_upload_over_limit_is_413_and_nothing_is_kept(model_file: Path) -> None:
    app = serving.create_app(model_file, max_upload_mb=1, tile=0)
    limit = 1024 * 1024
    with serving.background(app) as base:
        workdir = app.state.service.workdir
        payload = b"\x89PNG\r\n\x1a\n" + bytes(limit + 100)
        status, _, body = call(base, "POST", "/api/scans", payload, {"Content-Type": "application/octet-stream"})
        assert status == 413 and "1 MB" in json.loads(body)["error"]
        assert list(workdir.iterdir()) == []

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
            for start in range(0, len(payload), 64 * 1024):
                yield payload[start : start + 64 * 1024]

        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        conn.request("POST", "/api/scans", body=chunks(), headers={"Content-Type": "application/octet-stream"},
                     encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and "too large" in json.loads(response.read())["error"]
        conn.close()
        assert list(workdir.iterdir()) == []

        small = BSCAN16_PNG.read_bytes()
        assert len(small) < limit
        status, scan = upload(base, small)
        assert status == 200
        assert [p.name for p in workdir.iterdir()] == [f"{scan['id']}.png"]
    assert not workdir.exists()


def test_same_content_uploaded_twice_is_two_scans(server) -> None:
    base, _ = server
    data = BSCAN16_PNG.read_bytes()
    first, second = upload(base, data)[1], upload(base, data)[1]
    assert first.pop("id") != second.pop("id") and first == second


def test_bscan_pixels_match_the_scan(server) -> None:
    base, _ = server
    from oct_srgan.io import read_scan

    status, scan = upload(base, VOLUME_DCM.read_bytes())
    assert status == 200
    status, _, body = call(base, "GET", f"/api/scans/{scan['id']}/bscan/3/input.png")
    assert status == 200
    shown = np.asarray(Image.open(io.BytesIO(body)))
    expected = np.round(read_scan(VOLUME_DCM).pixels[3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown, expected)


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_serve_command_serves_until_stopped_and_removes_its_uploads(model_file: Path, tmp_path: Path, stop: int,
                                                                    code: int) -> None:
    """Ctrl+C is a normal stop; SIGTERM (``kill``) exits 143, the shell's code for it, not -15."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    command = [sys.executable, "-c", "from oct_srgan.pipelines.serve import app; app()", "--model", str(model_file),
               "--port", str(port), "--device", "cpu", "--tile", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "TMPDIR": str(temp)}, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if call(base, "GET", "/api/model")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text()}"
            time.sleep(0.3)
        assert upload(base, BSCAN16_PNG.read_bytes())[0] == 200
        assert [len(list(d.iterdir())) for d in temp.glob("oct-srgan-serve-*")] == [1], list(temp.iterdir())
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == code, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert list(temp.glob("oct-srgan-serve-*")) == []  # torch may keep its own cache folder there
    assert f"model tiny_x4.pt (x4) at {base}" in log.read_text()


def test_format_is_detected_from_content_not_name(tmp_path: Path) -> None:
    import gzip

    grey = np.asarray(Image.open(BSCAN16_PNG).convert("L"))
    samples = {
        "a": (VOLUME_DCM.read_bytes(), ("dicom", ".dcm")),
        "b": (VOLUME_NII.read_bytes(), ("nifti", ".nii.gz")),
        "c": (gzip.decompress(VOLUME_NII.read_bytes()), ("nifti", ".nii")),
        "d": (BSCAN16_PNG.read_bytes(), ("png", ".png")),
        "e": ((DUKE / "subject01" / "1.tif").read_bytes(), ("tiff", ".tif")),
        "f": (gzip.compress(b"not a nifti" * 100), None),
        "g": (b"%PDF-1.7\n" + bytes(400), None),
    }
    for name, fmt in (("h", "JPEG"), ("i", "BMP")):
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format=fmt)
        samples[name] = (buffer.getvalue(), (fmt.lower(), ".jpg" if fmt == "JPEG" else ".bmp"))
    for name, (data, expected) in samples.items():
        path = tmp_path / f"{name}.png"  # a misleading name on purpose
        path.write_bytes(data)
        assert serving.detect_format(path) == expected, name
