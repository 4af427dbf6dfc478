"""The serve page driven in headless Chromium (Debian's chromium + chromium-driver, never downloaded).

Screenshots go to the test's tmp folder and are copied to /tmp/serve_screens/ (and to
outputs/screenshots/ when OCT_SRGAN_SCREENSHOTS is set), so a person can look at what the page showed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from oct_srgan import serving
from tests.helpers.scans import volume_copy
from tests.helpers.serving import CARD, PATIENT, HoldAfter, call, tiny_model
from tests.paths import BSCAN16_DCM, BSCAN16_PNG, DUKE, REPO, VOLUME_DCM

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--window-size=1500,1000")
WAIT = 90
DESKTOP = 1500
NARROW = 420
SCREENS = Path("/tmp/serve_screens")
# like the shipped default model: trained on references, card evaluated on the same dataset
MODEL_META = {"target": "reference", "dataset_hash": CARD["dataset_hash"], "evaluation": CARD}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, serving.ScanService]]:
    app = serving.create_app(tiny_model(tmp_path_factory.mktemp("model") / "tiny_x4.pt", MODEL_META), tile=0,
                               keep_s=(0.0, 0.0))  # many uploads: results may be evicted at once
    with serving.background(app) as url:
        yield url, app.state.service


@pytest.fixture(scope="module")
def base_url(server: tuple[str, serving.ScanService]) -> str:
    return server[0]


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[webdriver.Chrome]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    assert not missing, (f"Chromium for the browser test is not installed ({', '.join(missing)} missing): "
                         "`bash scripts/test.sh` installs them as root (Debian chromium + chromium-driver)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    chrome = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    chrome.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    chrome.set_script_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def shoot(driver: webdriver.Chrome, tmp_path: Path) -> Callable[..., Path]:
    """Save a full-page screenshot (desktop, or the page as laid out at ``width``) as a test artifact,
    copied to /tmp/serve_screens/ (and to outputs/screenshots/ on request)."""

    def take(name: str, width: int = DESKTOP) -> Path:
        folder = tmp_path / "screenshots"
        folder.mkdir(exist_ok=True)
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        if width == DESKTOP:
            driver.set_window_size(DESKTOP, max(1000, height + 40))
        else:
            emulate_width(driver, width, max(800, height))
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
        keep = [SCREENS] + ([REPO / "outputs" / "screenshots"] if os.environ.get("OCT_SRGAN_SCREENSHOTS") else [])
        for target in keep:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        return path

    return take


def emulate_width(driver: webdriver.Chrome, width: int, height: int = 900) -> None:
    """Lay the page out as on a ``width`` CSS-pixel screen (a window that narrow is not possible on every platform)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


@contextlib.contextmanager
def narrow(driver: webdriver.Chrome, width: int = NARROW) -> Iterator[None]:
    emulate_width(driver, width)
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def wait_for(driver: webdriver.Chrome, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    def check(d: Any) -> Any:
        error = d.find_element(By.ID, "error")
        if error.is_displayed() and "error" not in what:
            raise AssertionError(f"page shows an error while waiting for {what}: {error.text}")
        return condition(d)

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check, message=f"timed out waiting for {what}")


def open_page(driver: webdriver.Chrome, base_url: str) -> None:
    driver.set_window_size(DESKTOP, 1000)
    driver.get(base_url)
    wait_for(driver, lambda d: d.find_element(By.ID, "model-source").text == "tiny_x4.pt", "model info")


def upload(driver: webdriver.Chrome, path: Path) -> None:
    driver.find_element(By.ID, "file-input").send_keys(str(path))


def processed(driver: webdriver.Chrome) -> bool:
    return driver.find_element(By.ID, "progress-text").text.startswith("done")


def panel_state(driver: webdriver.Chrome, name: str) -> dict:
    return driver.execute_script(
        "const img = document.getElementById(arguments[0]);"
        "return {src: img.getAttribute('src') || '', complete: img.complete, width: img.naturalWidth,"
        " height: img.naturalHeight, transform: img.style.transform, shown: img.offsetWidth > 0};",
        f"panel-{name}")


def panels_loaded(driver: webdriver.Chrome, names: tuple[str, ...], k: int) -> dict | None:
    states = {name: panel_state(driver, name) for name in names}
    ok = all(f"/bscan/{k}/{name}.png" in s["src"] and s["complete"] and s["width"] > 0 and s["shown"]
             for name, s in states.items())
    return states if ok else None


ENHANCE_PANELS = ("input", "bicubic", "sr", "diff")


def open_volume(driver: webdriver.Chrome, base_url: str, path: Path = VOLUME_DCM) -> None:
    """The page with ``path`` uploaded and fully processed in enhance mode, B-scan 1 loaded."""
    open_page(driver, base_url)
    upload(driver, path)
    wait_for(driver, processed, "the volume to be processed")
    wait_for(driver, lambda d: panels_loaded(d, ENHANCE_PANELS, 0), "the panels of B-scan 1")


def viewport_pixels(driver: webdriver.Chrome, name: str) -> np.ndarray:
    """What the screen shows in a panel (after window/level), as grey values."""
    element = driver.find_element(By.CSS_SELECTOR, f'[data-panel="{name}"] .viewport')
    with Image.open(io.BytesIO(element.screenshot_as_png)) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    return pixels[3:-3, 3:-3]  # without the border


def image_pixels(driver: webdriver.Chrome, name: str, x: int, y: int, size: int) -> np.ndarray:
    """The decoded pixels of a panel's image (before any CSS filter), a ``size`` square at (x, y)."""
    values = driver.execute_script(
        "const img = document.getElementById(arguments[0]);"
        "const canvas = document.createElement('canvas'); canvas.width = arguments[3]; canvas.height = arguments[3];"
        "const ctx = canvas.getContext('2d', {willReadFrequently: true});"
        "ctx.drawImage(img, arguments[1], arguments[2], arguments[3], arguments[3], 0, 0, arguments[3], arguments[3]);"
        "const data = ctx.getImageData(0, 0, arguments[3], arguments[3]).data;"
        "const grey = []; for (let i = 0; i < data.length; i += 4) grey.push(data[i]); return grey;",
        f"panel-{name}", x, y, size)
    return np.asarray(values, dtype=np.int64).reshape(size, size)


def layer_filters(driver: webdriver.Chrome) -> dict[str, str]:
    return driver.execute_script(
        "const out = {}; for (const f of document.querySelectorAll('#panels .panel')) {"
        " if (f.offsetWidth > 0) out[f.dataset.panel] = getComputedStyle(f.querySelector('.layer')).filter; }"
        "return out;")


def press(driver: webdriver.Chrome, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def zoom_of(driver: webdriver.Chrome, name: str = "sr") -> float:
    transform = panel_state(driver, name)["transform"]
    return float(re.search(r"scale\(([\d.]+)\)", transform).group(1)) if transform else 1.0


def test_enhance_dicom_volume_then_download(driver, base_url: str, downloads: Path, shoot) -> None:
    open_page(driver, base_url)
    card = driver.find_element(By.ID, "model-card").text
    assert "29.50 dB" in card and "27.25 dB" in card
    assert "against clean references" in card and "12 B-scans" in card
    assert driver.find_element(By.ID, "model-scale").text.startswith("×4")
    upload(driver, VOLUME_DCM)
    wait_for(driver, processed, "the volume to be processed")
    assert "6 B-scans of 900×450" in driver.find_element(By.ID, "scan-info").text

    slider = driver.find_element(By.ID, "bscan-slider")
    assert slider.get_attribute("max") == "5"
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "2"
    assert driver.find_element(By.ID, "bscan-label").text == "3 / 6"
    states = wait_for(driver, lambda d: panels_loaded(d, ENHANCE_PANELS, 2), "four panels of B-scan 3")
    assert (states["input"]["width"], states["input"]["height"]) == (900, 450)
    for name in ("bicubic", "sr", "diff"):
        assert (states[name]["width"], states[name]["height"]) == (3600, 1800), name
    assert not driver.find_element(By.ID, "figure-hr").is_displayed()

    viewport = driver.find_element(By.CSS_SELECTOR, '[data-panel="sr"] .viewport')
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(viewport, 40, 10), 0, -400).perform()
    ActionChains(driver).drag_and_drop_by_offset(viewport, 30, 15).perform()
    transforms = {name: panel_state(driver, name)["transform"] for name in ENHANCE_PANELS}
    assert len(set(transforms.values())) == 1, transforms
    zoom = float(re.search(r"scale\(([\d.]+)\)", transforms["sr"]).group(1))
    assert zoom > 1.5, transforms
    shoot("enhance_dicom_zoomed")
    driver.find_element(By.ID, "zoom-reset").click()
    assert panel_state(driver, "sr")["transform"] == "translate(0px, 0px) scale(1)"
    shoot("enhance_dicom")

    page_text = driver.find_element(By.TAG_NAME, "body").text + driver.page_source
    for identifier in PATIENT:
        assert identifier not in page_text

    link = driver.find_element(By.ID, "download")
    assert "disabled" not in link.get_attribute("class")
    assert link.get_attribute("download") == "oct_volume_s14_sr.dcm"
    assert link.get_attribute("href").endswith("/download?name=oct_volume_s14.dcm")
    link.click()
    deadline = time.monotonic() + WAIT
    while True:
        done = [p for p in downloads.iterdir() if p.suffix == ".dcm"]
        if done:
            break
        assert time.monotonic() < deadline, f"no download in {downloads}: {list(downloads.iterdir())}"
        time.sleep(0.2)
    assert done[0].name == "oct_volume_s14_sr.dcm"  # the source's name with _sr
    enhanced = pydicom.dcmread(done[0])
    source = pydicom.dcmread(VOLUME_DCM)
    assert (enhanced.Rows, enhanced.Columns, int(enhanced.NumberOfFrames)) == (1800, 3600, 6)
    assert enhanced.SOPInstanceUID != source.SOPInstanceUID


def test_check_mode_shows_psnr_and_ssim(driver, base_url: str, shoot) -> None:
    open_page(driver, base_url)
    driver.find_element(By.ID, "mode-check").click()
    upload(driver, BSCAN16_PNG)
    wait_for(driver, processed, "the check run")
    wait_for(driver, lambda d: d.find_element(By.ID, "metric-sr-ssim").text not in ("", "–"), "the scores")
    values = {name: float(driver.find_element(By.ID, f"metric-{name}").text)
              for name in ("bicubic-psnr", "bicubic-ssim", "sr-psnr", "sr-ssim")}
    assert 20 < values["bicubic-psnr"] < 60 and 0 < values["bicubic-ssim"] <= 1
    assert 0 < values["sr-psnr"] < 100 and -1 <= values["sr-ssim"] <= 1
    assert driver.find_element(By.ID, "bscan-slider").get_attribute("disabled") is not None
    states = wait_for(driver, lambda d: panels_loaded(d, ("input", "bicubic", "sr", "diff", "hr"), 0), "five panels")
    assert (states["input"]["width"], states["hr"]["width"], states["sr"]["width"]) == (225, 900, 900)
    assert states["diff"]["width"] == 900
    assert "degraded" in driver.find_element(By.ID, "caption-input").text
    assert "disabled" in driver.find_element(By.ID, "download").get_attribute("class")
    target = driver.find_element(By.ID, "metrics-target").text
    assert target.startswith("Scored against the uploaded scan itself, speckle included")
    assert "for the noise it removes" in target
    assert driver.find_element(By.ID, "reference-zone").is_displayed()
    shoot("check_png")


def test_check_mode_scores_against_an_uploaded_reference(driver, base_url: str, shoot) -> None:
    open_page(driver, base_url)
    driver.find_element(By.ID, "mode-check").click()
    upload(driver, DUKE / "subject03" / "1.tif")
    wait_for(driver, processed, "the check run")
    driver.find_element(By.ID, "reference-input").send_keys(str(DUKE / "subject03" / "average.tif"))
    wait_for(driver, lambda d: d.find_element(By.ID, "metrics-target").text.startswith("Scored against the reference"),
             "the reference to be scored against")
    wait_for(driver, processed, "the check run against the reference")
    wait_for(driver, lambda d: d.find_element(By.ID, "metric-sr-psnr").text not in ("", "–"), "the scores")
    assert "scoring against 1 B-scan of 900×450" in driver.find_element(By.ID, "reference-name").text
    assert driver.find_element(By.ID, "caption-hr").text == "reference (uploaded)"
    shoot("check_reference")


def test_a_colour_scan_is_noted_on_the_page(driver, base_url: str, tmp_path: Path) -> None:
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[..., 2] = 160
    path = tmp_path / "annotated.png"
    Image.fromarray(rgb, "RGB").save(path)
    open_page(driver, base_url)
    upload(driver, path)
    wait_for(driver, processed, "the colour scan")
    note = driver.find_element(By.ID, "scan-note")
    assert note.is_displayed() and note.text.startswith("Note: colour (RGB) converted to grey")


def test_window_level_changes_every_panel(driver, base_url: str, shoot) -> None:
    open_volume(driver, base_url, BSCAN16_DCM)  # one B-scan is all this test looks at
    assert set(layer_filters(driver).values()) == {"none"}  # full range: no filter at all
    before = {name: viewport_pixels(driver, name) for name in ENHANCE_PANELS}

    driver.find_element(By.ID, "wl-window").send_keys(*[Keys.ARROW_LEFT] * 50)  # 100% -> 50%
    driver.find_element(By.ID, "wl-level").send_keys(*[Keys.ARROW_LEFT] * 40)  # 50% -> 10%
    assert driver.find_element(By.ID, "wl-window-value").text == "50%"
    assert driver.find_element(By.ID, "wl-level-value").text == "10%"
    filters = layer_filters(driver)
    assert set(filters) == set(ENHANCE_PANELS)
    assert all("window-level-filter" in f for f in filters.values()), filters
    ramp = driver.find_element(By.ID, "wl-g")
    assert (ramp.get_attribute("slope"), ramp.get_attribute("intercept")) == ("2.0000", "0.3000")  # (g - 0.1) / 0.5 + 0.5
    after = {name: viewport_pixels(driver, name) for name in ENHANCE_PANELS}
    for name in ENHANCE_PANELS:  # what the screen shows follows the window/level ramp, clipped to the grey range
        expected = np.clip(2 * before[name] + 0.3 * 255, 0, 255)
        assert after[name].mean() == pytest.approx(expected.mean(), abs=4), name
        assert after[name].mean() > before[name].mean() + 30, name
    shoot("window_level")

    press(driver, "w")  # back to full range
    assert driver.find_element(By.ID, "wl-window").get_attribute("value") == "100"
    assert set(layer_filters(driver).values()) == {"none"}
    assert abs(viewport_pixels(driver, "sr").mean() - before["sr"].mean()) < 1


def test_difference_panel_shows_sr_minus_bicubic_on_its_stated_scale(driver, base_url: str, shoot) -> None:
    open_volume(driver, base_url)
    href = driver.find_element(By.ID, "download").get_attribute("href")  # each upload has its own random id
    scan_id = href.split("/api/scans/", 1)[1].split("/", 1)[0]
    scale = json.loads(call(base_url, "GET", f"/api/scans/{scan_id}/progress")[2])["diff_scale"][0]
    shown = f"{scale:.{1 if scale < 10 else 0}f}"
    caption = driver.find_element(By.ID, "caption-diff")
    assert caption.text == f"SR − bicubic: black −{shown} … white +{shown}"
    assert f"mid-grey 0, white +{shown} grey levels" in caption.get_attribute("title")
    assert "99.5th percentile" in caption.get_attribute("title")
    assert driver.find_element(By.CSS_SELECTOR, '[data-panel="diff"] .viewport').is_displayed()
    x, y, size = 1500, 600, 96  # inside the retina of the 3600 x 1800 panels
    sr, bicubic, diff = (image_pixels(driver, name, x, y, size) for name in ("sr", "bicubic", "diff"))
    assert diff.std() > 1 and diff.min() < 128 < diff.max()  # not a constant image
    np.testing.assert_array_equal(diff, serving.diff_image(sr, bicubic, scale))
    # scaled, not saturated everywhere: 1 % of the B-scan saturates, more in the retina where SR changes most
    assert ((diff == 0) | (diff == 255)).mean() < 0.25
    shoot("difference_panel")


def test_research_use_notice_stays_visible(driver, base_url: str) -> None:
    open_volume(driver, base_url, BSCAN16_DCM)  # one B-scan is all this test looks at
    driver.set_window_size(DESKTOP, 500)  # shorter than the page, so it scrolls
    for width in (None, NARROW):
        with narrow(driver, width) if width else contextlib.nullcontext():
            notice = driver.find_element(By.ID, "notice")
            assert notice.is_displayed() and "Research use only — not for diagnosis" in notice.text
            driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
            assert driver.execute_script("return window.scrollY") > 100, width
            top, bottom, height, on_top = driver.execute_script(
                "const r = document.getElementById('notice').getBoundingClientRect();"
                "const hit = document.elementFromPoint(r.left + 20, (r.top + r.bottom) / 2);"
                "return [r.top, r.bottom, innerHeight, Boolean(hit && hit.closest('#notice'))];")
            assert 0 <= top < bottom <= height and on_top, (width, top, bottom, height)
            driver.execute_script("window.scrollTo(0, 0)")


def test_sr_panel_fills_bscan_by_bscan(driver, server, tmp_path: Path, shoot) -> None:
    """The worker is held after the first B-scan (the model runs for real): the page already shows it."""
    base_url, service = server
    hold = HoldAfter(0)
    service.bscan_hook = hold
    try:
        open_page(driver, base_url)
        upload(driver, volume_copy(tmp_path / "held_volume.dcm", "held after the first B-scan"))
        assert hold.held.wait(WAIT), "the worker never finished the first B-scan"
        states = wait_for(driver, lambda d: panels_loaded(d, ENHANCE_PANELS, 0), "B-scan 1 while the volume runs")
        assert (states["sr"]["width"], states["sr"]["height"]) == (3600, 1800)
        assert not hold.release.is_set()  # the job is still running: B-scans 2-6 are not done
        wait_for(driver, lambda d: d.find_element(By.ID, "progress-text").text == "processing 1 / 6", "progress 1 / 6")
        cells = driver.find_elements(By.CSS_SELECTOR, "#bscan-strip .cell")
        assert ["done" in c.get_attribute("class") for c in cells] == [True] + [False] * 5
        assert "disabled" in driver.find_element(By.ID, "download").get_attribute("class")
        assert not driver.find_element(By.ID, "pending-sr").is_displayed()

        driver.find_element(By.ID, "bscan-slider").send_keys(Keys.ARROW_RIGHT)
        pending = wait_for(driver, lambda d: d.find_element(By.ID, "pending-sr").is_displayed(), "the waiting note")
        assert pending and driver.find_element(By.ID, "pending-sr").text.startswith("B-scan 2: waiting")
        wait_for(driver, lambda d: panels_loaded(d, ("input",), 1), "the input of B-scan 2")
        assert panel_state(driver, "sr")["src"] == "" and panel_state(driver, "diff")["src"] == ""
        shoot("bscan_by_bscan_running")
    finally:
        hold.release.set()
        service.bscan_hook = None
    wait_for(driver, lambda d: panels_loaded(d, ENHANCE_PANELS, 1), "B-scan 2 once it is done")
    wait_for(driver, processed, "the rest of the volume")
    assert not driver.find_element(By.ID, "pending-sr").is_displayed()
    cells = driver.find_elements(By.CSS_SELECTOR, "#bscan-strip .cell")
    assert all("done" in c.get_attribute("class") for c in cells) and len(cells) == 6


def test_page_fits_a_420px_screen(driver, base_url: str, shoot) -> None:
    open_volume(driver, base_url, BSCAN16_DCM)  # one B-scan is all this test looks at
    with narrow(driver):
        assert driver.execute_script("return innerWidth") == NARROW
        widths = driver.execute_script("return [document.documentElement.scrollWidth, document.body.scrollWidth]")
        assert max(widths) <= NARROW, widths
        figures = driver.execute_script(
            "return [...document.querySelectorAll('#panels .panel')].filter(f => f.offsetWidth > 0)"
            ".map(f => { const r = f.getBoundingClientRect(); return [r.left, r.top, r.right]; });")
        assert len(figures) == 4
        assert len({round(left) for left, _, _ in figures}) == 1  # stacked in one column
        assert all(a[1] < b[1] for a, b in zip(figures, figures[1:]))
        assert all(right <= NARROW for _, _, right in figures)
        controls = driver.execute_script(
            "return [...document.querySelectorAll('#controls > *, header > *, #status-bar > *')]"
            ".filter(e => e.offsetWidth > 0).map(e => { const r = e.getBoundingClientRect(); return [e.id || e.className, r.top, r.right]; });")
        assert all(right <= NARROW for _, _, right in controls), controls
        assert len({round(top) for name, top, _ in controls if name in ("drop-zone", "mode", "window-level")}) == 3  # wrapped
        assert driver.find_element(By.ID, "notice").is_displayed()
        shoot("narrow_420", width=NARROW)
        assert driver.execute_script("return document.documentElement.scrollWidth") <= NARROW


def test_keyboard_focus_is_visible_and_keys_zoom(driver, base_url: str, shoot) -> None:
    open_volume(driver, base_url)
    help_text = driver.find_element(By.ID, "help").text
    assert "+ / − zoom in / out, 0 resets the zoom" in help_text and "Arrow keys pan" in help_text
    driver.execute_script("document.activeElement.blur()")
    seen = []
    for _ in range(20):
        press(driver, Keys.TAB)
        focus = driver.execute_script(
            "const el = document.activeElement;"
            "const shown = el.id === 'file-input' ? document.getElementById('drop-zone') : el;"
            "const style = getComputedStyle(shown);"
            "return {id: el.id, panel: el.classList.contains('viewport') ? el.parentElement.dataset.panel : null,"
            " style: style.outlineStyle, width: parseFloat(style.outlineWidth), visible: el.matches(':focus-visible')};")
        seen.append(focus)
        assert focus["visible"] and focus["style"] != "none" and focus["width"] >= 2, focus
        if focus["panel"] == "sr":
            break
    assert [f["id"] for f in seen[:3]] == ["file-input", "mode-enhance", "bscan-slider"], seen
    assert seen[-1]["panel"] == "sr", seen

    press(driver, "+")
    assert zoom_of(driver) == pytest.approx(1.25)
    press(driver, "+")
    assert zoom_of(driver) == pytest.approx(1.5625)
    assert len({panel_state(driver, name)["transform"] for name in ENHANCE_PANELS}) == 1  # synchronised
    tx = panel_state(driver, "sr")["transform"]
    press(driver, Keys.ARROW_RIGHT)  # zoomed in: arrows pan
    assert panel_state(driver, "sr")["transform"] != tx and zoom_of(driver) == pytest.approx(1.5625)
    assert driver.find_element(By.ID, "bscan-label").text == "1 / 6"
    shoot("keyboard_focus_zoomed")
    press(driver, "-")
    assert zoom_of(driver) == pytest.approx(1.25)
    press(driver, "0")
    assert panel_state(driver, "sr")["transform"] == "translate(0px, 0px) scale(1)"
    press(driver, Keys.ARROW_RIGHT)  # full view: arrows step B-scans
    assert driver.find_element(By.ID, "bscan-label").text == "2 / 6"
    press(driver, Keys.PAGE_DOWN)
    assert driver.find_element(By.ID, "bscan-label").text == "3 / 6"
    press(driver, Keys.PAGE_UP)
    assert driver.find_element(By.ID, "bscan-label").text == "2 / 6"
    wait_for(driver, lambda d: panels_loaded(d, ENHANCE_PANELS, 1), "the panels of B-scan 2")


def test_text_file_shows_an_error_message(driver, base_url: str, tmp_path: Path, shoot) -> None:
    open_page(driver, base_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a scan at all\n" * 10)
    upload(driver, notes)
    error = wait_for(driver, lambda d: d.find_element(By.ID, "error") if d.find_element(By.ID, "error").is_displayed()
                     else None, "the error message")
    assert error.text.startswith("unsupported file type")
    assert "Traceback" not in error.text and "/tmp" not in error.text and "\n" not in error.text
    shoot("error_text_file")


def test_browser_never_left_the_server(driver, base_url: str) -> None:
    """Every resource the page loaded came from the local server (no CDN, no network), without errors."""
    driver.get_log("browser")  # drop what earlier tests logged (the refused text file)
    open_page(driver, base_url)
    driver.find_element(By.ID, "wl-level").send_keys(Keys.ARROW_LEFT)  # the window/level filter is in use too
    assert "window-level-filter" in layer_filters(driver)["sr"]
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base_url) for u in urls), urls
    assert not [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
