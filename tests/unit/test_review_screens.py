"""Review screens that can be read: what check mode scores against (and an uploaded reference), the
difference panel's robust scale, zoom windows on the retina of a canvas-padded scan, colour noted."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oct_srgan import serving
from oct_srgan.figures import enhance_comparison, evaluation_comparison
from oct_srgan.retina import canvas_mask, retina_window
from tests.helpers.serving import call, upload, wait_done

import torch


def synthetic_bscan(h: int = 120, w: int = 200, seed: int = 0) -> np.ndarray:
    """A speckled B-scan: dark vitreous, a retina of bright and dark layers in rows 50-90, grey choroid."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w), 0.08)
    image[50:58] = 0.75   # nerve fibre layer
    image[58:75] = 0.3    # nuclear layers
    image[75:82] = 0.9    # RPE
    image[82:] = 0.35     # choroid, featureless
    return np.clip(image * rng.gamma(4.0, 0.25, image.shape), 0, 1)


def on_canvas(scan: np.ndarray, top: int, left: int, shape: tuple[int, int], value: float = 1.0) -> np.ndarray:
    canvas = np.full(shape, value)
    canvas[top : top + scan.shape[0], left : left + scan.shape[1]] = scan
    return canvas


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- zoom windows


def test_canvas_mask_finds_the_white_margin_and_not_the_speckled_scan() -> None:
    image = on_canvas(synthetic_bscan(), 40, 90, (240, 400))
    canvas = canvas_mask(image)
    assert canvas[:30].all() and canvas[:, :80].all() and canvas[170:].all()
    assert not canvas[45:155, 95:285].any()


@pytest.mark.parametrize("value", [1.0, 0.0, 0.5])
def test_zoom_window_lies_on_the_retina_of_a_canvas_padded_scan(value: float) -> None:
    top, left = 40, 90
    image = on_canvas(synthetic_bscan(), top, left, (240, 400), value)
    y0, x0 = retina_window(image, 240 // 4, 400 // 5)
    assert top <= y0 and y0 + 60 <= top + 120 and left <= x0 and x0 + 80 <= left + 200  # inside the scan
    assert y0 <= top + 58 and y0 + 60 >= top + 75  # holds the layers, not vitreous or choroid


def test_evaluation_figure_outlines_the_retina_not_the_centre() -> None:
    hr = synthetic_bscan(240, 320)
    hr[:, :] = np.where(np.arange(240)[:, None] < 130, hr, 0.35)  # retina in rows 50-90, choroid below
    target = torch.from_numpy(hr.astype(np.float32))[None]
    lr = target[:, ::4, ::4]
    fig = evaluation_comparison(lr, target, target, target, target_name="reference", title="t")
    y, x = fig.axes[3].patches[0].get_xy()[::-1]
    height = fig.axes[3].patches[0].get_height()
    assert y <= 58 and y + height >= 75, (y, height)


def test_enhance_comparison_zooms_the_retina_of_a_screenshot() -> None:
    screenshot = on_canvas(synthetic_bscan(), 40, 90, (240, 400)).astype(np.float32)
    lr = screenshot[::4, ::4]
    fig = enhance_comparison(lr, np.kron(lr, np.ones((4, 4), np.float32)), 4, "both", title="s")
    rect = fig.axes[0].patches[0]
    x, y = rect.get_xy()
    assert 90 <= x and x + rect.get_width() <= 290 and 40 <= y and y + rect.get_height() <= 160


# ------------------------------------------------------------------------------------------- difference panel


def test_diff_scale_is_a_robust_percentile_and_maps_to_black_and_white() -> None:
    bicubic = np.full((100, 100), 100, np.uint8)
    sr = bicubic.copy()
    sr[:, :50] += 6   # half the image 6 levels brighter
    sr[0, 0] = 255    # one outlier does not set the scale
    scale = serving.diff_scale(sr, bicubic)
    assert scale == pytest.approx(6.0)
    image = serving.diff_image(sr, bicubic, scale)
    assert image[5, 5] == 255 and image[5, 60] == 128 and image[0, 0] == 255
    assert serving.diff_image(bicubic, sr, scale)[5, 5] == 1  # -6 levels: black end (128 - 127)


def test_diff_scale_of_identical_images_is_one_level() -> None:
    a = np.full((8, 8), 40, np.uint8)
    assert serving.diff_scale(a, a) == 1.0


def test_progress_reports_each_bscans_diff_scale_and_the_panel_uses_it(server) -> None:
    base, _ = server
    status, scan = upload(base, _png_bytes((synthetic_bscan(64, 96) * 255).astype(np.uint8)))
    assert status == 200
    call(base, "POST", f"/api/scans/{scan['id']}/process?mode=enhance")
    progress = wait_done(base, scan["id"])
    scale = progress["diff_scale"][0]
    images = {p: np.asarray(Image.open(io.BytesIO(call(base, "GET", f"/api/scans/{scan['id']}/bscan/0/{p}.png")[2])))
              for p in ("bicubic", "sr", "diff")}
    assert scale == pytest.approx(serving.diff_scale(images["sr"], images["bicubic"]))
    np.testing.assert_array_equal(images["diff"], serving.diff_image(images["sr"], images["bicubic"], scale))
    assert 0 < (images["diff"] == 255).mean() < 0.02  # about 0.5 % saturate at each end, not everything


# ------------------------------------------------------------------------------------------- check mode


def test_check_mode_says_it_scores_against_the_scan_itself(server) -> None:
    base, _ = server
    status, scan = upload(base, _png_bytes((synthetic_bscan(64, 96, seed=1) * 255).astype(np.uint8)))
    call(base, "POST", f"/api/scans/{scan['id']}/process?mode=check")
    assert wait_done(base, scan["id"])["state"] == "done"
    metrics = json.loads(call(base, "GET", f"/api/scans/{scan['id']}/metrics/0")[2])
    assert metrics["target"] == "self"


def test_check_mode_scores_against_an_uploaded_reference(server) -> None:
    base, service = server
    noisy = (synthetic_bscan(64, 96, seed=2) * 255).astype(np.uint8)
    clean = np.full((64, 96), 90, np.uint8)
    _, scan = upload(base, _png_bytes(noisy))
    _, ref = upload(base, _png_bytes(clean))
    status, _, _ = call(base, "POST", f"/api/scans/{scan['id']}/process?mode=check&reference={ref['id']}")
    assert status == 202 and wait_done(base, scan["id"])["state"] == "done"
    metrics = json.loads(call(base, "GET", f"/api/scans/{scan['id']}/metrics/0")[2])
    hr = np.asarray(Image.open(io.BytesIO(call(base, "GET", f"/api/scans/{scan['id']}/bscan/0/hr.png")[2])))
    assert metrics["target"] == "reference" and (hr == 90).all()  # the hr panel is the reference
    assert service.get(scan["id"]).job.source.shape == (1, 16, 24)  # the LR still comes from the noisy scan


def test_a_reference_of_another_size_is_refused_in_one_line(server) -> None:
    base, _ = server
    _, scan = upload(base, _png_bytes((synthetic_bscan(64, 96, seed=3) * 255).astype(np.uint8)))
    _, ref = upload(base, _png_bytes(np.full((60, 96), 90, np.uint8)))
    status, _, body = call(base, "POST", f"/api/scans/{scan['id']}/process?mode=check&reference={ref['id']}")
    error = json.loads(body)["error"]
    assert status == 400 and "96x60" in error and "96x64" in error and "\n" not in error


def test_the_page_explains_the_check_target() -> None:
    script = (Path(serving.__file__).parents[1] / "web" / "app.js").read_text()
    assert "Scored against the uploaded scan itself, speckle included" in script
    assert "penalised here" in script and "for the noise it removes" in script


# ------------------------------------------------------------------------------------------- colour input


def test_a_colour_upload_carries_a_grey_note(server) -> None:
    base, _ = server
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[..., 0] = 200
    _, scan = upload(base, _png_bytes(rgb))
    assert scan["note"].startswith("colour (RGB) converted to grey")
    _, grey = upload(base, _png_bytes(np.full((64, 96), 7, np.uint8)))
    assert grey["note"] is None


def test_enhance_cli_says_in_one_line_that_a_colour_scan_became_grey(tmp_path: Path, tiny_generator_file: Path) -> None:
    from oct_srgan.pipelines.cli import app

    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 1] = 180
    rgba[..., 3] = 255
    src = tmp_path / "annotated.png"
    Image.fromarray(rgba, "RGBA").save(src)
    result = CliRunner().invoke(app, ["enhance", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_generator_file),
                                      "--no-progress", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {src}: colour (RGBA) converted to grey (luma 0.299 R + 0.587 G + 0.114 B); the output is grey"]
