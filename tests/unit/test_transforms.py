"""Degradations, baselines and paired random transforms (oct_srgan.transforms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.utils import set_determinism

from oct_srgan.config import ConfigError, DataConfig
from oct_srgan.transforms import (
    Degrade,
    Degraded,
    PairedRandFlipd,
    add_speckle,
    downscale,
    resize_bicubic,
    train_transforms,
    upscale_bicubic,
    upscale_nearest,
)


@pytest.fixture(autouse=True)
def _reset_determinism():
    yield
    set_determinism(None)


def _matlab_weights(in_len: int, out_len: int) -> np.ndarray:
    """Resampling matrix of MATLAB imresize 'bicubic' (contributions() in imresize.m), float64."""
    scale = out_len / in_len

    def cubic(x: np.ndarray) -> np.ndarray:
        ax = np.abs(x)
        return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
            (ax > 1) & (ax <= 2)
        )

    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(math.ceil(width) + 2)[None]
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if scale < 1 else cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = mirror[np.mod(idx.astype(int) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), cols.shape[1]), cols.ravel()), w.ravel())
    return matrix


@pytest.mark.parametrize(("in_size", "out_size"), [((40, 36), (10, 9)), ((10, 9), (40, 36)), ((23, 30), (17, 41))])
def test_resize_bicubic_matches_matlab_including_borders(in_size, out_size) -> None:
    x = torch.rand(2, *in_size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.einsum("oh,chw,pw->cop", _matlab_weights(in_size[0], out_size[0]), x.numpy(),
                         _matlab_weights(in_size[1], out_size[1]))
    out = resize_bicubic(x, out_size)
    assert out.shape == (2, *out_size)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)


def test_resize_bicubic_keeps_float32_and_leading_dims() -> None:
    x = torch.rand(2, 3, 16, 12)
    out = resize_bicubic(MetaTensor(x), (4, 3))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 3)
    assert torch.allclose(out[1, 2], resize_bicubic(x[1, 2], (4, 3)))


def _grid(shape: tuple[int, ...]) -> torch.Tensor:
    """Values k/256 so that block sums and means are exact in float32."""
    return (torch.arange(math.prod(shape)) % 256).reshape(shape).float() / 256


def test_area_downscale_is_exact_block_mean() -> None:
    x = _grid((2, 1, 8, 12))
    out = downscale(x, 4, mode="area")
    expected = x.numpy().reshape(2, 1, 2, 4, 3, 4).mean(axis=(3, 5))
    assert out.shape == (2, 1, 2, 3)
    assert np.array_equal(out.numpy(), expected)


def test_area_lateral_keeps_every_axial_sample() -> None:
    x = _grid((1, 6, 12))
    out = downscale(x, 4, mode="area", axes="lateral")
    assert out.shape == (1, 6, 3)
    assert torch.equal(out[0, :, 1], x[0, :, 4:8].mean(dim=1))


def test_bicubic_lateral_resamples_width_only() -> None:
    x = torch.rand(1, 7, 16)
    out = downscale(x, 4, axes="lateral")
    assert out.shape == (1, 7, 4)
    assert torch.allclose(out[0, 3], resize_bicubic(x[0, 3:4], (1, 4))[0], atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "axes"), [((1, 10, 16), "both"), ((1, 16, 10), "both"), ((1, 16, 10), "lateral")]
)
def test_downscale_rejects_sizes_not_divisible_by_scale(shape, axes) -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        downscale(torch.rand(shape), 4, mode="area", axes=axes)


def test_lateral_downscale_accepts_any_height() -> None:
    assert downscale(torch.rand(1, 10, 16), 4, axes="lateral").shape == (1, 10, 4)


def test_upscale_baselines_shapes_and_nearest_values() -> None:
    x = torch.rand(1, 3, 5)
    near = upscale_nearest(x, 4)
    assert near.shape == (1, 12, 20)
    assert torch.equal(near[0, 4:8, 8:12], x[0, 1, 2].expand(4, 4))
    assert upscale_nearest(x, 4, axes="lateral").shape == (1, 3, 20)
    assert upscale_bicubic(x, 4).shape == (1, 12, 20)
    assert upscale_bicubic(x, 4, axes="lateral").shape == (1, 3, 20)


def test_upscale_bicubic_of_constant_is_constant() -> None:
    out = upscale_bicubic(torch.full((1, 6, 6), 0.3), 4)
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)


def test_paired_flip_applies_the_same_lateral_flip_to_all_keys() -> None:
    x = torch.rand(1, 4, 6)
    flip = PairedRandFlipd(keys=("lr", "hr"), prob=0.5).set_random_state(0)
    flipped = 0
    for _ in range(20):
        out = flip({"lr": x.clone(), "hr": x.clone()})
        assert torch.equal(out["lr"], out["hr"])
        if torch.equal(out["hr"].as_tensor(), torch.flip(x, dims=[-1])):
            flipped += 1
        else:
            assert torch.equal(out["hr"].as_tensor(), x)
    assert 0 < flipped < 20


def test_train_transforms_refuse_bad_crop() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        train_transforms(DataConfig(hr_crop=90))
    with pytest.raises(RuntimeError) as info:  # MONAI's Compose wraps errors raised inside a transform
        train_transforms(DataConfig(hr_crop=96))({"hr": torch.rand(1, 80, 200)})
    assert isinstance(info.value.__cause__, ValueError)
    assert "(80, 200) is smaller than the crop (96, 96)" in str(info.value.__cause__)


def test_speckle_keeps_mean_raises_std_and_is_reproducible() -> None:
    x = torch.full((1, 128, 128), 0.4)
    noisy = add_speckle(x, 0.2, torch.Generator().manual_seed(0))
    assert abs(noisy.mean().item() - 0.4) < 0.005
    assert abs(noisy.std().item() - 0.4 * 0.2) < 0.005
    assert noisy.dtype == torch.float32 and 0.0 <= noisy.min() and noisy.max() <= 1.0
    assert torch.equal(noisy, add_speckle(x, 0.2, torch.Generator().manual_seed(0)))
    assert not torch.equal(noisy, add_speckle(x, 0.2, torch.Generator().manual_seed(1)))
    assert torch.equal(add_speckle(x, 0.2, np.random.RandomState(5)), add_speckle(x, 0.2, np.random.RandomState(5)))


def test_degraded_with_speckle_is_random_per_call_and_seedable() -> None:
    hr = torch.rand(1, 32, 32)
    deg = Degraded(speckle=0.3).set_random_state(0)
    a, b = deg({"hr": hr})["lr"], deg({"hr": hr})["lr"]
    assert not torch.equal(a, b)
    assert torch.equal(a, Degraded(speckle=0.3).set_random_state(0)({"hr": hr})["lr"])


def test_degraded_metatensor_keeps_metadata_and_rescales_spacing() -> None:
    affine = torch.diag(torch.tensor([0.0032, 0.00667, 1.0, 1.0], dtype=torch.float64))
    hr = MetaTensor(torch.rand(1, 16, 32), affine=affine, meta={"scan_id": "s14"})
    out = Degraded(axes="lateral")({"hr": hr})
    lr = out["lr"]
    assert isinstance(lr, MetaTensor) and lr.shape == (1, 16, 8) and lr.dtype == torch.float32
    assert lr.meta["scan_id"] == "s14"
    assert torch.allclose(torch.diagonal(lr.affine)[:2], torch.tensor([0.0032, 0.00667 * 4], dtype=torch.float64))


def test_degrade_array_form_is_what_the_dictionary_form_adds() -> None:
    hr = torch.rand(1, 32, 40)
    assert torch.equal(Degrade(speckle=0.3, seed=5)(hr), Degraded(speckle=0.3, seed=5)({"hr": hr})["lr"])
    assert torch.equal(Degrade(speckle=0.3).set_random_state(1)(hr),
                       Degraded(speckle=0.3).set_random_state(1)({"hr": hr})["lr"])


def test_speckle_kept_scales_the_input_minus_target_by_the_drawn_share() -> None:
    """input -> clean + kept * (input - clean): kept 0 is the clean target, kept 1 the input unchanged."""
    from oct_srgan.transforms import RandSpeckleKeptd

    noisy, clean = torch.rand(1, 8, 8), torch.full((1, 8, 8), 0.5)
    half = RandSpeckleKeptd(keys="input", clean_key="hr", prob=1.0, kept_range=(0.25, 0.25))
    out = half({"input": noisy, "hr": clean})
    assert half.last == 0.25
    assert torch.allclose(out["input"], 0.5 + 0.25 * (noisy - 0.5))
    assert torch.equal(out["hr"], clean)
    none_kept = RandSpeckleKeptd(keys="input", clean_key="hr", prob=1.0, kept_range=(0.0, 0.0))
    assert torch.equal(none_kept({"input": noisy, "hr": clean})["input"], clean)
    never = RandSpeckleKeptd(keys="input", clean_key="hr", prob=0.0)
    assert torch.equal(never({"input": noisy, "hr": clean})["input"], noisy) and never.last == 1.0


def test_speckle_kept_share_and_rate_follow_the_config() -> None:
    from oct_srgan.transforms import RandSpeckleKeptd

    noisy, clean = torch.rand(1, 8, 8), torch.full((1, 8, 8), 0.5)
    sometimes = RandSpeckleKeptd(keys="input", clean_key="hr", prob=0.3, kept_range=(0.2, 0.6))
    sometimes.set_random_state(seed=0)
    draws = []
    for _ in range(1000):
        sometimes({"input": noisy, "hr": clean})
        draws.append(sometimes.last)
    changed = [k for k in draws if k != 1.0]
    assert 250 <= len(changed) <= 350
    assert min(changed) >= 0.2 and max(changed) <= 0.6


def test_speckle_kept_outside_zero_to_one_is_refused() -> None:
    from oct_srgan.config import load_config

    with pytest.raises(ConfigError, match="data.speckle_kept: prob must be in"):
        load_config("configs/oct_x4_srresnet.yaml", ["data.speckle_kept.prob=1.5"])
    with pytest.raises(ConfigError, match="data.speckle_kept: prob must be in"):
        load_config("configs/oct_x4_srresnet.yaml", ["data.speckle_kept.range=[0.5,0.2]"])
