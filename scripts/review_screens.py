"""Screenshots of the serve page with a real model, for a person to look at (not a test).

Serves ``--model`` (default: the shipped ``default``) on a free local port, opens the page in
headless Chromium (Debian's chromium + chromium-driver, as the browser test) and saves, under
``--out``:

- ``check_self.png``: check mode on a noisy scan, scored against the scan itself;
- ``check_reference.png``: the same scan scored against its clean reference (uploaded beside it);
- ``enhance_<name>.png``: enhance mode on each ``--enhance`` scan, with the SR - bicubic panel.

    python scripts/review_screens.py --scan HR.png --reference REF.png --enhance other_device.nii.gz
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from oct_srgan import serving

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1000")


def wait(driver: webdriver.Chrome, done: Callable[[webdriver.Chrome], bool], what: str, seconds: float = 300) -> None:
    """Poll ``done`` until it holds; a page that never gets there is a one-line error."""
    end = time.monotonic() + seconds
    while not done(driver):
        if time.monotonic() > end:
            raise SystemExit(f"error: timed out waiting for {what}")
        time.sleep(0.5)


def finished(driver: webdriver.Chrome) -> bool:
    return driver.find_element(By.ID, "progress-text").text.startswith("done")


def scored(driver: webdriver.Chrome) -> bool:
    return finished(driver) and driver.find_element(By.ID, "metric-sr-psnr").text not in ("", "–")


def shoot(driver: webdriver.Chrome, path: Path) -> None:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1500, max(1000, height + 40))
    driver.save_screenshot(str(path))
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--scan", type=Path, required=True, help="A noisy B-scan for check mode.")
    parser.add_argument("--reference", type=Path, help="Its clean reference (registered average).")
    parser.add_argument("--enhance", type=Path, action="append", default=[], help="Scans for enhance mode.")
    parser.add_argument("--out", type=Path, default=Path("outputs/review_screens"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        with serving.background(serving.create_app(args.model)) as url:
            driver.get(url)
            driver.find_element(By.ID, "mode-check").click()
            driver.find_element(By.ID, "file-input").send_keys(str(args.scan.resolve()))
            wait(driver, scored, "check mode")
            shoot(driver, args.out / "check_self.png")
            if args.reference is not None:
                driver.find_element(By.ID, "reference-input").send_keys(str(args.reference.resolve()))
                wait(driver, lambda d: d.find_element(By.ID, "metrics-target").text.startswith("Scored against the reference")
                     and scored(d), "the reference scores")
                shoot(driver, args.out / "check_reference.png")
            for scan in args.enhance:
                driver.get(url)
                driver.find_element(By.ID, "file-input").send_keys(str(scan.resolve()))
                wait(driver, finished, f"enhancing {scan.name}")
                shoot(driver, args.out / f"enhance_{scan.name.split('.')[0]}.png")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
