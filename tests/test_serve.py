"""The ``oct-srgan serve`` web app over real HTTP: uploads, both modes, download, limits, paths, privacy."""

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
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from oct_srgan import serving
from oct_srgan.checkpoint import save_generator_file
from oct_srgan.errors import OctSrganError
from oct_srgan.models import srresnet

FORMATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "oct" / "formats"
PNG16 = FORMATS / "oct_bscan16_s14.png"
VOLUME = FORMATS / "oct_volume_s14.dcm"
PATIENT = ("Fixture^Jane", "FIXTURE-s14")
CARD = {"split": "test", "dataset_hash": "abc123", "n_images": 12, "model_psnr": 29.5, "model_ssim": 0.81,
        "bicubic_psnr": 27.25, "bicubic_ssim": 0.75}


def tiny_model(path: Path, meta: dict[str, Any] | None = None) -> Path:
    """A random 4-channel, 1-block SRResNet (fast on a shared CPU) with model-card numbers in its meta."""
    torch.manual_seed(0)
    spec = {"in_channels": 1, "channels": 4, "num_blocks": 1, "scale": 4, "norm": "batch", "upsample_axes": "both"}
    generator = srresnet(**spec)
    return save_generator_file(path, generator.state_dict(), spec, meta if meta is not None else {"evaluation": CARD})


def volume_copy(path: Path, description: str) -> Path:
    """The fixture volume with another SeriesDescription: new content (a new scan id), same pixels."""
    ds = pydicom.dcmread(VOLUME)
    ds.SeriesDescription = description
    ds.save_as(path)
    return path


class HoldAfter:
    """A ``bscan_hook`` that holds the worker after B-scan ``k`` until released, so a test sees a
    volume mid-way deterministically (the model itself is not touched)."""

    def __init__(self, k: int, timeout: float = 120.0) -> None:
        self.k = k
        self.timeout = timeout
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, job: serving.Job, k: int) -> None:
        if k == self.k:
            self.held.set()
            self.release.wait(self.timeout)


def call(base: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (http.client does not normalise '..')."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def upload(base: str, data: bytes) -> tuple[int, dict]:
    status, _, body = call(base, "POST", "/api/scans", data, {"Content-Type": "application/octet-stream"})
    return status, json.loads(body)


def wait_done(base: str, scan_id: str, timeout: float = 90.0, seen: list[dict] | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = call(base, "GET", f"/api/scans/{scan_id}/progress")
        assert status == 200
        progress = json.loads(body)
        if seen is not None:
            seen.append(progress)
        if progress["state"] not in ("queued", "running"):
            return progress
        assert time.monotonic() < deadline, f"processing did not finish in {timeout} s: {progress}"
        time.sleep(0.2)


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "L"
        return image.size


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny_x4.pt")


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[tuple[str, serving.ScanService]]:
    app = serving.create_app(model_file, tile=0)
    with serving.background(app) as base:
        yield base, app.state.service


def test_model_endpoint_reports_source_scale_and_card(server) -> None:
    base, _ = server
    status, _, body = call(base, "GET", "/api/model")
    info = json.loads(body)
    assert status == 200
    assert info["source"] == "tiny_x4.pt" and info["scale"] == 4 and info["upsample_axes"] == "both"
    assert info["channels"] == 1 and info["max_upload_mb"] == 200
    assert info["card"] == CARD
    assert info["card_target"] is None  # nothing in this meta says what the numbers were scored against
    assert info["diff_gain"] == serving.DIFF_GAIN


@pytest.mark.parametrize(("meta", "target"), [
    ({"target": "reference", "dataset_hash": "abc123", "evaluation": CARD}, "reference"),
    ({"target": "reference", "dataset_hash": "other", "evaluation": CARD}, None),
    ({"target": "self", "dataset_hash": "abc123", "evaluation": CARD}, None),
    ({"target": "reference", "dataset_hash": "abc123", "evaluation": {**CARD, "target": "self"}}, "self"),
    ({"evaluation": {**CARD, "target": "reference"}}, "reference"),
    ({"target": "reference", "dataset_hash": "abc123"}, None),
])
def test_model_card_target_is_read_from_the_meta(tmp_path: Path, meta: dict, target: str | None) -> None:
    service = serving.create_app(tiny_model(tmp_path / "m.pt", meta), tile=0).state.service
    info = service.model_info()
    assert info["card_target"] == target
    assert info["card"] == (({k: v for k, v in meta["evaluation"].items()}) if "evaluation" in meta else None)


def test_default_model_box_shows_the_shipped_card_numbers() -> None:
    """The page's model box gets exactly the numbers in the shipped model's meta, labelled clean-reference
    numbers only when that meta says they are."""
    from oct_srgan.checkpoint import load_generator_file

    info = serving.create_app("default", tile=0).state.service.model_info()
    _, _, meta = load_generator_file(Path(serving.__file__).parents[1] / "weights" / "oct_srgan_x4.pt")
    assert info["source"] == "default (oct_srgan_x4.pt)"
    evaluation = meta["evaluation"]
    for key in ("model_psnr", "model_ssim", "bicubic_psnr", "bicubic_ssim", "n_images", "split"):
        assert info["card"][key] == evaluation[key]
    expected = evaluation.get("target") or (
        "reference" if meta.get("target") == "reference" and meta.get("dataset_hash") == evaluation.get("dataset_hash")
        else None)
    assert info["card_target"] == expected


def test_page_and_static_files_are_served(server) -> None:
    base, _ = server
    status, headers, body = call(base, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'id="file-input"' in body and b"/static/app.js" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    for name, media in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, body = call(base, "GET", f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(media) and len(body) > 1000


@pytest.mark.parametrize("path", [
    "/static/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/static/..\\..\\etc\\passwd",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/../../etc/passwd",
    "/static/../serving.py",
    "/static/../../oct_srgan/serving.py",
    "/static/index.html/../../../etc/passwd",
])
def test_traversal_paths_are_404(server, path: str) -> None:
    base, _ = server
    status, _, body = call(base, "GET", path)
    assert status == 404, path
    assert b"root:" not in body and b"import" not in body


@pytest.mark.parametrize("scan_id", ["abc", "A" * 64, "0" * 63 + "g", "0" * 64, "..%2f..%2fetc"])
def test_malformed_or_unknown_ids_are_404(server, scan_id: str) -> None:
    base, _ = server
    for suffix in ("progress", "download", "bscan/0/input.png"):
        status, _, body = call(base, "GET", f"/api/scans/{scan_id}/{suffix}")
        assert status == 404, (scan_id, suffix)
        assert "error" in json.loads(body)


def test_text_upload_is_refused_with_one_line(server) -> None:
    base, service = server
    before = set(service.workdir.iterdir())
    status, data = upload(base, b"Patient notes, not a scan.\n" * 20)
    assert status == 400
    message = data["error"]
    assert "\n" not in message and "Traceback" not in message and str(service.workdir) not in message
    assert message.startswith("unsupported file type")
    assert set(service.workdir.iterdir()) == before


def test_corrupt_scan_is_refused_without_server_paths(server) -> None:
    base, service = server
    status, data = upload(base, PNG16.read_bytes()[:2000])
    assert status == 400
    assert data["error"].startswith("cannot read the uploaded png file")
    assert str(service.workdir) not in data["error"] and "\n" not in data["error"]


def test_multipart_form_is_refused(server) -> None:
    base, _ = server
    status, _, body = call(base, "POST", "/api/scans", b"--x\r\n\r\n--x--\r\n",
                           {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 415 and "application/octet-stream" in json.loads(body)["error"]


def test_check_mode_scores_a_16bit_png(server) -> None:
    base, service = server
    data = PNG16.read_bytes()
    status, scan = upload(base, data)
    assert status == 200
    assert scan == {"id": hashlib.sha256(data).hexdigest(), "n_bscans": 1, "height": 450, "width": 900,
                    "format": "png", "suffix": ".png", "bit_depth": 16}
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
    source = pydicom.dcmread(VOLUME)
    bodies: list[bytes] = []

    status, headers, body = call(base, "POST", "/api/scans", VOLUME.read_bytes(),
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
    status, scan = upload(base, VOLUME.read_bytes())
    assert status == 200
    call(base, "POST", f"/api/scans/{scan['id']}/process?mode=enhance")
    assert wait_done(base, scan["id"])["state"] == "done"
    images = {panel: np.asarray(Image.open(io.BytesIO(call(base, "GET", f"/api/scans/{scan['id']}/bscan/1/{panel}.png")[2])))
              for panel in ("bicubic", "sr", "diff")}
    expected = np.clip(128 + serving.DIFF_GAIN * (images["sr"].astype(int) - images["bicubic"].astype(int)), 0, 255)
    np.testing.assert_array_equal(images["diff"], expected)
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
    status, scan = upload(base, VOLUME.read_bytes())
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


def test_download_name_takes_the_suffix_from_the_content() -> None:
    png = SimpleNamespace(id="0123456789abcdef" * 4, suffix=".png")
    assert serving.download_name("scan.tif", png) == "scan_sr.png"
    assert serving.download_name("scan.png", SimpleNamespace(id=png.id, suffix=".nii.gz")) == "scan_sr.nii.gz"
    assert serving.download_name(".hidden.png", png) == "hidden_sr.png"
    assert serving.download_name("/", png) == "scan_01234567_sr.png"


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

        small = PNG16.read_bytes()
        assert len(small) < limit
        assert upload(base, small)[0] == 200
        assert [p.name for p in workdir.iterdir()] == [f"{hashlib.sha256(small).hexdigest()}.png"]
    assert not workdir.exists()


def test_same_content_is_one_scan(server) -> None:
    base, _ = server
    data = PNG16.read_bytes()
    first, second = upload(base, data)[1], upload(base, data)[1]
    assert first == second


def test_bscan_pixels_match_the_scan(server) -> None:
    base, _ = server
    from oct_srgan.io import read_scan

    status, scan = upload(base, VOLUME.read_bytes())
    assert status == 200
    status, _, body = call(base, "GET", f"/api/scans/{scan['id']}/bscan/3/input.png")
    assert status == 200
    shown = np.asarray(Image.open(io.BytesIO(body)))
    expected = np.round(read_scan(VOLUME).pixels[3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown, expected)


def test_listen_on_a_taken_port_is_one_line_error() -> None:
    taken = serving.listen("127.0.0.1", 0)
    try:
        with pytest.raises(OctSrganError, match=r"^127\.0\.0\.1:\d+: cannot listen there"):
            serving.listen("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_serve_command_reports_a_missing_model_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from oct_srgan.pipelines.serve import app

    result = CliRunner().invoke(app, ["--model", str(tmp_path / "none.pt"), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'none.pt'}: model file not found"


def test_serve_command_serves_until_ctrl_c_and_removes_its_uploads(model_file: Path, tmp_path: Path) -> None:
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
        assert upload(base, PNG16.read_bytes())[0] == 200
        assert [len(list(d.iterdir())) for d in temp.iterdir()] == [1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert list(temp.iterdir()) == []
    assert f"model tiny_x4.pt (x4) at {base}" in log.read_text()


def test_format_is_detected_from_content_not_name(tmp_path: Path) -> None:
    import gzip

    grey = np.asarray(Image.open(PNG16).convert("L"))
    samples = {
        "a": (VOLUME.read_bytes(), ("dicom", ".dcm")),
        "b": ((FORMATS / "oct_volume_s14.nii.gz").read_bytes(), ("nifti", ".nii.gz")),
        "c": (gzip.decompress((FORMATS / "oct_volume_s14.nii.gz").read_bytes()), ("nifti", ".nii")),
        "d": (PNG16.read_bytes(), ("png", ".png")),
        "e": ((FORMATS.parent / "duke_bioptigen" / "subject01" / "1.tif").read_bytes(), ("tiff", ".tif")),
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
