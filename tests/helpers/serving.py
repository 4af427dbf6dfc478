"""The serve web app under test: a tiny model with card numbers, raw HTTP calls, and the served app."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from oct_srgan import serving
from oct_srgan.checkpoint import save_generator_file
from oct_srgan.models import srresnet

PATIENT = ("Fixture^Jane", "FIXTURE-s14")
CARD = {"split": "test", "dataset_hash": "abc123", "n_images": 12, "model_psnr": 29.5, "model_ssim": 0.81,
        "bicubic_psnr": 27.25, "bicubic_ssim": 0.75}


def tiny_model(path: Path, meta: dict[str, Any] | None = None) -> Path:
    """A random 4-channel, 1-block SRResNet (fast on a shared CPU) with model-card numbers in its meta."""
    torch.manual_seed(0)
    spec = {"in_channels": 1, "channels": 4, "num_blocks": 1, "scale": 4, "norm": "batch", "upsample_axes": "both"}
    generator = srresnet(**spec)
    return save_generator_file(path, generator.state_dict(), spec, meta if meta is not None else {"evaluation": CARD})


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

