"""Synthetic lesions (data.lesions): the same cysts and foci in input and target, only inside tissue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oct_srgan.config import ConfigError, load_config
from oct_srgan.lesions import LesionSpec, lesion_field
from oct_srgan.transforms import RandLesionsd


def _retina(h: int = 256, w: int = 192) -> torch.Tensor:
    """Dark vitreous above row 128, tissue below: [1, H, W]."""
    x = torch.full((1, h, w), 0.05)
    x[:, h // 2:] = 0.6
    return x


def test_input_and_target_get_the_same_field() -> None:
    clean = _retina()
    noisy = (clean * torch.from_numpy(np.random.default_rng(0).gamma(4.0, 0.25, clean.shape)).float()).clamp(0, 0.9)
    t = RandLesionsd(keys=("input", "hr"), clean_key="hr", spec=LesionSpec(cysts=3, foci=4), prob=1.0)
    t.set_random_state(seed=2)
    out = t({"input": noisy, "hr": clean})
    assert t.last is not None and (t.last != 1).any()
    field = t.last[None]
    assert torch.allclose(out["hr"], (clean * field).clamp(0, 1))
    assert torch.allclose(out["input"], (noisy * field).clamp(0, 1))


def test_lesions_sit_in_the_tissue_of_the_clean_image() -> None:
    rng = np.random.RandomState(3)
    spec = LesionSpec(cysts=5, foci=5)
    for _ in range(20):
        field = lesion_field(_retina(), spec, rng)
        assert torch.allclose(field[:40], torch.ones(40, field.shape[1]), atol=1e-3)  # 88+ px above the tissue
    assert (lesion_field(_retina(), LesionSpec(cysts=0, foci=0), rng) == 1).all()


def test_cysts_darken_and_foci_brighten_within_their_ranges() -> None:
    rng = np.random.RandomState(0)
    dark = lesion_field(_retina(), LesionSpec(cysts=1, foci=0, cyst_depth=(0.1, 0.1), cyst_radius=(10.0, 10.0)), rng)
    bright = lesion_field(_retina(), LesionSpec(cysts=0, foci=1, focus_gain=(3.0, 3.0)), np.random.RandomState(1))
    assert dark.max() <= 1.0 and (dark.min() == 1.0 or dark.min() == pytest.approx(0.1, abs=0.01))
    assert bright.min() >= 1.0 and (bright.max() == 1.0 or bright.max() == pytest.approx(3.0, abs=0.05))


def test_probability_zero_leaves_the_pair_unchanged() -> None:
    clean = _retina()
    t = RandLesionsd(keys=("input", "hr"), clean_key="hr", spec=LesionSpec(), prob=0.0)
    out = t({"input": clean.clone(), "hr": clean.clone()})
    assert t.last is None and torch.equal(out["hr"], clean) and torch.equal(out["input"], clean)


def test_config_reads_lesions_and_refuses_a_bad_probability() -> None:
    cfg = load_config("configs/oct_x4_srresnet.yaml", ["data.lesions={prob: 0.25, cysts: 2, foci: 1}"])
    assert (cfg.data.lesions.prob, cfg.data.lesions.cysts, cfg.data.lesions.foci) == (0.25, 2, 1)
    with pytest.raises(ConfigError, match="data.lesions"):
        load_config("configs/oct_x4_srresnet.yaml", ["data.lesions={prob: 1.5}"])
