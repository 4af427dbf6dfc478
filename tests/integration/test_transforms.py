"""Transforms on real images: MATLAB bicubic x4 on Set5 gives the SRGAN paper's PSNR, the training
transforms on a Duke B-scan."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.utils import set_determinism
from PIL import Image

from oct_srgan.config import DataConfig, DegradationConfig
from oct_srgan.transforms import downscale, resize_bicubic, train_transforms
from tests.paths import DUKE, SET5


@pytest.fixture(autouse=True)
def _reset_determinism():
    yield
    set_determinism(None)


def _y_channel(rgb: torch.Tensor) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of an RGB [3, H, W] image in [0, 255], as uint8-rounded values."""
    r, g, b = (rgb.double().numpy() / 255.0)
    return np.round(16 + 65.481 * r + 128.553 * g + 24.966 * b)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def _imresize_uint8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MATLAB imresize on a uint8 image: rows first, rounded to uint8 after each dimension."""
    rows = resize_bicubic(img, (size[0], img.shape[-1])).round().clamp(0, 255)
    return resize_bicubic(rows, size).round().clamp(0, 255)


def test_set5_bicubic_x4_psnr_matches_srgan_paper() -> None:
    psnrs = []
    for path in sorted(SET5.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        h, w = (s - s % 4 for s in rgb.shape[:2])
        hr = torch.from_numpy(rgb[:h, :w]).permute(2, 0, 1).contiguous()
        lr = _imresize_uint8(hr, (h // 4, w // 4))
        sr = _imresize_uint8(lr, (h, w))
        psnrs.append(_psnr(_y_channel(hr)[4:-4, 4:-4], _y_channel(sr)[4:-4, 4:-4]))
    assert len(psnrs) == 5
    assert abs(np.mean(psnrs) - 28.43) < 0.1


def _bscan() -> torch.Tensor:
    pixels = np.asarray(Image.open(DUKE / "subject01" / "1.tif"), dtype=np.float32)
    return MetaTensor(torch.from_numpy(pixels / 255.0)[None])


@pytest.mark.parametrize(("axes", "lr_shape"), [("both", (1, 24, 24)), ("lateral", (1, 96, 24))])
def test_train_transforms_shapes_types_and_range(axes, lr_shape) -> None:
    cfg = DataConfig(hr_crop=96, degradation=DegradationConfig(axes=axes, speckle=0.1))
    out = train_transforms(cfg)({"hr": _bscan()})
    assert out["hr"].shape == (1, 96, 96) and out["lr"].shape == lr_shape
    for t in (out["lr"], out["hr"]):
        assert type(t) is torch.Tensor and t.dtype == torch.float32 and t.is_contiguous()
        assert 0.0 <= t.min() and t.max() <= 1.0


def test_train_transforms_lr_is_the_degraded_hr_crop() -> None:
    cfg = DataConfig(hr_crop=64, degradation=DegradationConfig(mode="area"))
    out = train_transforms(cfg)({"hr": _bscan()})
    assert torch.allclose(out["lr"], downscale(out["hr"], 4, mode="area"))


def test_train_transforms_deterministic_under_set_determinism() -> None:
    cfg = DataConfig(hr_crop=48, degradation=DegradationConfig(speckle=0.2))
    hr = _bscan()

    def run(seed: int) -> list[torch.Tensor]:
        set_determinism(seed)
        transform = train_transforms(cfg)
        return [t for _ in range(3) for t in transform({"hr": hr}).values()]

    assert all(torch.equal(a, b) for a, b in zip(run(0), run(0)))
    assert not all(torch.equal(a, b) for a, b in zip(run(0), run(1)))
    transform = train_transforms(cfg)
    first = transform.set_random_state(7)({"hr": hr})
    second = transform.set_random_state(7)({"hr": hr})
    assert torch.equal(first["lr"], second["lr"]) and torch.equal(first["hr"], second["hr"])
