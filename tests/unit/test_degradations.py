"""The degradation table (bicubic, area, decimate), the training-time mix, and reference intensity matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oct_srgan.config import DataConfig, DegradationConfig, MixConfig
from oct_srgan.degradations import DEGRADATIONS, RandomDegradation
from oct_srgan.intensity import fit_gain_offset, match_intensity, unmatch_intensity
from oct_srgan.transforms import downscale, train_transforms


def test_decimate_takes_the_sample_nearest_each_block_centre() -> None:
    """On a pattern whose value is its own (row, col) index, LR pixel (i, j) is HR sample (4i+1, 4j+1)."""
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(24.0), indexing="ij")
    pattern = (rows * 100 + cols)[None]
    lr = downscale(pattern, 4, "decimate")
    expected = torch.tensor([[100 * (4 * i + 1) + 4 * j + 1 for j in range(6)] for i in range(4)], dtype=torch.float32)
    assert lr.shape == (1, 4, 6)
    assert torch.equal(lr[0], expected)


def test_decimate_lateral_keeps_every_axial_sample() -> None:
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    pattern = (rows * 100 + cols)[None]
    lr = downscale(pattern, 4, "decimate", "lateral")
    assert lr.shape == (1, 8, 3)
    assert torch.equal(lr[0, :, 1], pattern[0, :, 5])


def test_decimate_keeps_native_speckle_where_bicubic_averages_it() -> None:
    """Strided samples of a speckled flat field keep its spread; antialiased bicubic shrinks it."""
    rng = np.random.default_rng(0)
    speckled = torch.from_numpy(rng.gamma(1.0, 0.3, size=(1, 256, 256)).astype(np.float32))
    spread = speckled.std().item()
    assert downscale(speckled, 4, "decimate").std().item() == pytest.approx(spread, rel=0.05)
    assert downscale(speckled, 4, "bicubic").std().item() < 0.5 * spread


def test_table_entries_say_what_they_do_to_speckle() -> None:
    assert set(DEGRADATIONS) == {"bicubic", "area", "decimate"}
    assert DEGRADATIONS["decimate"].speckle == "native" and DEGRADATIONS["bicubic"].speckle == "averaged"


def test_mixed_degradation_draws_each_mode_and_records_it() -> None:
    mix = RandomDegradation(4, 4, ["bicubic", "decimate"], blur=(0.5, 1.0), blur_prob=0.5)
    rng = np.random.RandomState(0)
    x = torch.rand(1, 32, 32)
    seen = set()
    for _ in range(40):
        lr = mix(x, rng)
        assert lr.shape == (1, 8, 8)
        seen.add(mix.last["mode"])
        if mix.last["mode"] == "decimate" and mix.last["blur"] == 0.0:
            assert torch.equal(lr, downscale(x, 4, "decimate"))
    assert seen == {"bicubic", "decimate"}


def test_mixed_degradation_refuses_unknown_modes() -> None:
    with pytest.raises(ValueError, match="mixed degradation modes"):
        RandomDegradation(4, 4, ["bicubic", "jpeg"])


def test_train_transforms_use_the_mix_when_configured() -> None:
    cfg = DataConfig(hr_crop=32, degradation=DegradationConfig(), mix=MixConfig(modes=["decimate"], blur_prob=0.0))
    transform = train_transforms(cfg)
    transform.set_random_state(seed=0)
    out = transform({"hr": torch.rand(1, 64, 64)})
    assert torch.equal(out["lr"], downscale(out["hr"], 4, "decimate"))


def test_intensity_fit_recovers_a_known_gain_and_offset() -> None:
    """A speckled copy of 0.8 * reference + 0.05 gives back (0.8, 0.05)."""
    yy, xx = np.mgrid[0:120, 0:200]
    reference = np.clip(0.1 + 0.7 * np.exp(-((yy - 60) / 15.0) ** 2) * (1 + 0.2 * np.sin(xx / 9.0)), 0, 1)
    noisy = (0.8 * reference + 0.05) * np.random.default_rng(1).gamma(20.0, 1 / 20.0, size=reference.shape)
    gain, offset = fit_gain_offset(noisy, reference)
    assert gain == pytest.approx(0.8, abs=0.03) and offset == pytest.approx(0.05, abs=0.02)
    assert gain * 0.1 + offset == pytest.approx(0.13, abs=0.005)  # the background level (0.1) is matched


def test_matched_reference_can_be_undone() -> None:
    reference = torch.linspace(0.1, 0.9, 50)[None]
    matched = match_intensity(reference, 0.9, 0.03)
    assert torch.allclose(matched, 0.9 * reference + 0.03)
    assert torch.allclose(unmatch_intensity(matched, 0.9, 0.03), reference, atol=1e-6)
