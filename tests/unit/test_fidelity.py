"""Input fidelity: the smoothed residual of the output's block mean to its input is put back."""

from __future__ import annotations

import pytest
import torch

from oct_srgan.degradations.area import block_mean
from oct_srgan.degradations.mixed import gaussian_blur
from oct_srgan.inference.fidelity import keep_input


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """An input with a dark 'cyst' and a bright 'focus', and an output that flattened both."""
    lr = torch.full((1, 1, 32, 32), 0.5)
    lr[..., 8:14, 8:14] = 0.1
    lr[..., 20:23, 20:23] = 0.9
    sr = torch.full((1, 1, 128, 128), 0.5)
    return sr, lr


def test_zero_strength_is_the_model_output_unchanged() -> None:
    sr, lr = _scene()
    assert keep_input(sr, lr, (4, 4), 0.0) is sr


def test_full_strength_brings_a_flattened_lesion_back_to_the_smoothed_input() -> None:
    sr, lr = _scene()
    out = keep_input(sr, lr, (4, 4), 1.0)
    before = (block_mean(sr, 4, 4) - gaussian_blur(lr, 1.0, 1.0)).abs()
    after = (block_mean(out, 4, 4) - gaussian_blur(lr, 1.0, 1.0)).abs()
    assert after[..., 8:14, 8:14].mean() < 0.25 * before[..., 8:14, 8:14].mean()
    assert block_mean(out, 4, 4)[..., 10, 10].item() < 0.25
    assert block_mean(out, 4, 4)[..., 21, 21].item() > 0.7
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_half_strength_puts_back_half_of_a_flat_offset() -> None:
    lr = torch.full((1, 1, 16, 16), 0.6)
    sr = torch.full((1, 1, 64, 64), 0.4)
    out = keep_input(sr, lr, (4, 4), 0.5)
    assert torch.allclose(out, torch.full_like(sr, 0.5), atol=1e-5)


def test_lateral_factors_keep_the_axial_grid() -> None:
    lr = torch.rand(2, 1, 20, 16)
    sr = torch.rand(2, 1, 20, 64)
    assert keep_input(sr, lr, (1, 4), 1.0).shape == sr.shape


def test_strength_outside_zero_to_one_is_refused() -> None:
    sr, lr = _scene()
    with pytest.raises(ValueError, match="fidelity must be between 0 and 1"):
        keep_input(sr, lr, (4, 4), 1.5)


def test_inferer_with_fidelity_brings_its_output_closer_to_the_input() -> None:
    from oct_srgan.inference import SRInferer, prepare_for_inference
    from oct_srgan.loading import LoadedModel
    from tests.helpers.nets import random_net

    net = prepare_for_inference(random_net(5, channels=2, num_blocks=0, norm="none"))
    info = LoadedModel(net, scale=4, channels=1, axes="both", source="test")
    lr = gaussian_blur(torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0)), 2.0, 2.0)
    plain, kept = SRInferer(info, tile=0)(lr), SRInferer(info, tile=0, fidelity=1.0)(lr)
    target = gaussian_blur(lr, 1.0, 1.0)
    error = {name: float((block_mean(out, 4, 4) - target).abs().mean()) for name, out in (("plain", plain), ("kept", kept))}
    assert error["kept"] < 0.5 * error["plain"]
