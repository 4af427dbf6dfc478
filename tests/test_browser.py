"""The serve page driven in headless Chromium (Debian's chromium + chromium-driver, never downloaded).

Screenshots go to the test's tmp folder, and also to outputs/screenshots/ when OCT_SRGAN_SCREENSHOTS
is set, so a person can look at what the page showed.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from oct_srgan import serving
from tests.test_serve import PATIENT, PNG16, VOLUME, tiny_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--window-size=1500,1000")
WAIT = 90


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = serving.create_app(tiny_model(tmp_path_factory.mktemp("model") / "tiny_x4.pt"), tile=0)
    with serving.background(app) as url:
        yield url


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
def shoot(driver: webdriver.Chrome, tmp_path: Path) -> Callable[[str], Path]:
    """Save a full-page screenshot as a test artifact (and to outputs/screenshots/ on request)."""

    def take(name: str) -> Path:
        folder = tmp_path / "screenshots"
        folder.mkdir(exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1500, max(1000, int(height) + 40))
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
        if os.environ.get("OCT_SRGAN_SCREENSHOTS"):
            keep = ROOT / "outputs" / "screenshots"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, keep / path.name)
        return path

    return take


def wait_for(driver: webdriver.Chrome, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    def check(d: Any) -> Any:
        error = d.find_element(By.ID, "error")
        if error.is_displayed() and "error" not in what:
            raise AssertionError(f"page shows an error while waiting for {what}: {error.text}")
        return condition(d)

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check, message=f"timed out waiting for {what}")


def open_page(driver: webdriver.Chrome, base_url: str) -> None:
    driver.set_window_size(1500, 1000)
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


def test_enhance_dicom_volume_then_download(driver, base_url: str, downloads: Path, shoot) -> None:
    open_page(driver, base_url)
    card = driver.find_element(By.ID, "model-card").text
    assert "29.50 dB" in card and "27.25 dB" in card
    assert driver.find_element(By.ID, "model-scale").text.startswith("×4")
    upload(driver, VOLUME)
    wait_for(driver, processed, "the volume to be processed")
    assert "6 B-scans of 900×450" in driver.find_element(By.ID, "scan-info").text

    slider = driver.find_element(By.ID, "bscan-slider")
    assert slider.get_attribute("max") == "5"
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "2"
    assert driver.find_element(By.ID, "bscan-label").text == "3 / 6"
    states = wait_for(driver, lambda d: panels_loaded(d, ("input", "bicubic", "sr"), 2), "three panels of B-scan 3")
    assert (states["input"]["width"], states["input"]["height"]) == (900, 450)
    assert (states["bicubic"]["width"], states["bicubic"]["height"]) == (3600, 1800)
    assert (states["sr"]["width"], states["sr"]["height"]) == (3600, 1800)
    assert not driver.find_element(By.ID, "figure-hr").is_displayed()

    viewport = driver.find_element(By.CSS_SELECTOR, '[data-panel="sr"] .viewport')
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(viewport, 40, 10), 0, -400).perform()
    ActionChains(driver).drag_and_drop_by_offset(viewport, 30, 15).perform()
    transforms = {name: panel_state(driver, name)["transform"] for name in ("input", "bicubic", "sr")}
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
    link.click()
    deadline = time.monotonic() + WAIT
    while True:
        done = [p for p in downloads.iterdir() if p.suffix == ".dcm"]
        if done:
            break
        assert time.monotonic() < deadline, f"no download in {downloads}: {list(downloads.iterdir())}"
        time.sleep(0.2)
    assert re.fullmatch(r"enhanced_[0-9a-f]{8}\.dcm", done[0].name)
    enhanced = pydicom.dcmread(done[0])
    source = pydicom.dcmread(VOLUME)
    assert (enhanced.Rows, enhanced.Columns, int(enhanced.NumberOfFrames)) == (1800, 3600, 6)
    assert enhanced.SOPInstanceUID != source.SOPInstanceUID


def test_check_mode_shows_psnr_and_ssim(driver, base_url: str, shoot) -> None:
    open_page(driver, base_url)
    driver.find_element(By.ID, "mode-check").click()
    upload(driver, PNG16)
    wait_for(driver, processed, "the check run")
    wait_for(driver, lambda d: d.find_element(By.ID, "metric-sr-ssim").text not in ("", "–"), "the scores")
    values = {name: float(driver.find_element(By.ID, f"metric-{name}").text)
              for name in ("bicubic-psnr", "bicubic-ssim", "sr-psnr", "sr-ssim")}
    assert 20 < values["bicubic-psnr"] < 60 and 0 < values["bicubic-ssim"] <= 1
    assert 0 < values["sr-psnr"] < 100 and -1 <= values["sr-ssim"] <= 1
    assert driver.find_element(By.ID, "bscan-slider").get_attribute("disabled") is not None
    states = wait_for(driver, lambda d: panels_loaded(d, ("input", "bicubic", "sr", "hr"), 0), "four panels")
    assert (states["input"]["width"], states["hr"]["width"], states["sr"]["width"]) == (225, 900, 900)
    assert "degraded" in driver.find_element(By.ID, "caption-input").text
    assert "disabled" in driver.find_element(By.ID, "download").get_attribute("class")
    shoot("check_png")


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
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base_url) for u in urls), urls
    assert not [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
