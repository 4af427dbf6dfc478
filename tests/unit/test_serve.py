"""The ``oct-srgan serve`` web app over real HTTP with a tiny model: model info, page, paths, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from oct_srgan import serving
from oct_srgan.errors import OctSrganError
from tests.helpers.serving import CARD, call, tiny_model, upload


def test_model_endpoint_reports_source_scale_and_card(server) -> None:
    base, _ = server
    status, _, body = call(base, "GET", "/api/model")
    info = json.loads(body)
    assert status == 200
    assert info["source"] == "tiny_x4.pt" and info["scale"] == 4 and info["upsample_axes"] == "both"
    assert info["channels"] == 1 and info["max_upload_mb"] == 200
    assert info["card"] == CARD
    assert info["card_target"] is None  # nothing in this meta says what the numbers were scored against
    assert info["diff_percentile"] == serving.DIFF_PERCENTILE


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


def test_multipart_form_is_refused(server) -> None:
    base, _ = server
    status, _, body = call(base, "POST", "/api/scans", b"--x\r\n\r\n--x--\r\n",
                           {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 415 and "application/octet-stream" in json.loads(body)["error"]


def test_download_name_takes_the_suffix_from_the_content() -> None:
    png = SimpleNamespace(id="0123456789abcdef" * 4, suffix=".png")
    assert serving.download_name("scan.tif", png) == "scan_sr.png"
    assert serving.download_name("scan.png", SimpleNamespace(id=png.id, suffix=".nii.gz")) == "scan_sr.nii.gz"
    assert serving.download_name(".hidden.png", png) == "hidden_sr.png"
    assert serving.download_name("/", png) == "scan_01234567_sr.png"


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
