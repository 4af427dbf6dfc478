"""Inference on the real scans: tiled = untiled on Duke B-scans, whole-scan enhancement of the DICOM volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oct_srgan import inference
from oct_srgan.errors import ModelError
from oct_srgan.inference import SRInferer
from oct_srgan.io import read_scan
from oct_srgan.loading import LoadedModel
from oct_srgan.precision import native_bf16
from oct_srgan.transforms import downscale
from tests.helpers.nets import random_net, untiled
from tests.paths import DUKE, FORMATS


@pytest.fixture(scope="module")
def duke_lr() -> torch.Tensor:
    """LR [1, 1, 112, 225]: a real 450 x 900 Duke B-scan cropped to 448 x 900, bicubic x4 down."""
    hr = torch.from_numpy(read_scan(DUKE / "subject03" / "1.tif").pixels[:, :448].copy())[:, None]
    return downscale(hr, 4).clamp(0, 1)


def test_tiled_matches_untiled_on_a_duke_bscan(duke_lr: torch.Tensor) -> None:
    net = random_net(channels=16, num_blocks=8, norm="batch")
    whole = untiled(net, duke_lr)
    assert ((whole > 0.01) & (whole < 0.99)).float().mean() > 0.99
    tiled = inference.super_resolve(net, duke_lr, scale=4, tile=64)
    assert tiled.shape == (1, 1, 448, 900)
    assert (tiled - whole).abs().max() < 1e-3


def test_tiled_matches_untiled_on_a_whole_450x900_bscan() -> None:
    """``enhance`` takes a 450 x 900 scan as LR: many windows in both axes, edges not multiples of the tile."""
    lr = torch.from_numpy(read_scan(DUKE / "subject05" / "average.tif").pixels.copy())[:, None]
    net = inference.prepare_for_inference(random_net(1, channels=4, num_blocks=2, norm="batch"))
    tiled = inference.super_resolve(net, lr, scale=4, tile=128)
    assert tiled.shape == (1, 1, 1800, 3600)
    assert (tiled - untiled(net, lr)).abs().max() < 1e-3


def test_constant_blending_matches_untiled_too(duke_lr: torch.Tensor) -> None:
    net = random_net(2, channels=8, num_blocks=2, norm="none")
    lr = duke_lr[..., :60, :90]
    tiled = inference.super_resolve(net, lr, scale=4, tile=40, overlap=16, mode="constant")
    assert (tiled - untiled(net, lr)).abs().max() < 1e-3


def test_prepared_generator_gives_the_same_output(duke_lr: torch.Tensor) -> None:
    net = random_net(6, channels=16, num_blocks=2, norm="batch")
    lr = duke_lr[..., :48, :64]
    reference = inference.super_resolve(net, lr, scale=4, tile=0)
    fast = inference.prepare_for_inference(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    torch.testing.assert_close(inference.super_resolve(fast, lr, scale=4, tile=0), reference, atol=1e-4, rtol=0)
    if not native_bf16("cpu"):
        return  # oneDNN's bf16 conv needs AVX512-BF16 or AVX-NE-CONVERT; auto precision picks fp32 there
    bf16 = inference.super_resolve(fast, lr, scale=4, tile=0, precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - reference).abs().max() < 5e-2


def test_auto_tiling_matches_untiled(duke_lr: torch.Tensor) -> None:
    net = random_net(5, channels=8, num_blocks=2, norm="batch")
    lr = duke_lr[..., :64, :96]
    whole = inference.super_resolve(net, lr, scale=4, tile=0)
    per_pixel = inference.activation_bytes_per_pixel(net, 1)
    tile = inference.auto_tile((64, 96), per_pixel, budget=int(48 * 48 * per_pixel))
    assert tile == 48
    tiled = inference.super_resolve(net, lr, scale=4, tile=tile)
    assert (tiled - whole).abs().max() < 1e-3


def test_enhance_scan_dicom_volume() -> None:
    scan = read_scan(FORMATS / "oct_volume_s14.dcm")
    net = inference.prepare_for_inference(random_net(9, channels=2, num_blocks=0, norm="none"))
    info = LoadedModel(net, scale=4, channels=1, axes="both", source="test")
    calls = []
    out = inference.enhance_scan(scan, SRInferer(info, tile=0, batch_size=4),
                                 progress=lambda done, total: calls.append((done, total)))
    assert out.pixels.shape == (6, 1800, 3600) and out.pixels.dtype == np.float32
    assert out.geometry.row_spacing == pytest.approx(scan.geometry.row_spacing / 4)
    assert out.geometry.col_spacing == pytest.approx(scan.geometry.col_spacing / 4)
    assert out.geometry.slice_spacing == scan.geometry.slice_spacing
    assert calls == [(i, 6) for i in range(1, 7)]


def test_enhance_scan_grey_through_an_rgb_model_and_refuses_other_channels() -> None:
    full = read_scan(DUKE / "subject01" / "test.tif")
    scan = full.with_pixels(full.pixels[:, :40, :60])
    rgb = random_net(10, in_channels=3, channels=8, num_blocks=1)
    out = inference.enhance_scan(scan, SRInferer(LoadedModel(rgb, scale=4, channels=3, axes="both", source="test")))
    assert out.pixels.shape == (1, 160, 240)
    with pytest.raises(ModelError, match="channels"):
        inference.enhance_scan(scan, SRInferer(LoadedModel(rgb, scale=4, channels=2, axes="both", source="test")))


def test_inferer_tiles_to_its_memory_budget_and_adapts_channels(duke_lr: torch.Tensor) -> None:
    """SRInferer: "auto" tiles within the budget agree with whole images; grey and RGB go through any model."""
    lr = duke_lr[..., :64, :96]
    model = LoadedModel(random_net(5, channels=8, num_blocks=2, norm="batch"), scale=4, axes="both", channels=1, source="t")
    whole = SRInferer(model, tile=0)
    small = SRInferer(model, memory_budget=int(48 * 48 * inference.activation_bytes_per_pixel(whole.module, 1)))
    assert small.tile_for((64, 96)) == 48 and small.windows((64, 96)) > 1 and whole.windows((64, 96)) == 1
    assert (small(lr) - whole(lr)).abs().max() < 1e-3
    torch.testing.assert_close(whole(lr.expand(-1, 3, -1, -1)), whole(lr).expand(-1, 3, -1, -1))
    rgb = SRInferer(LoadedModel(random_net(10, in_channels=3, channels=8, num_blocks=1), scale=4, axes="both",
                                channels=3, source="rgb"), tile=0)
    torch.testing.assert_close(rgb(lr), rgb(lr.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True))
