"""Metrics: known values, border shaving, the MATLAB Y channel, the paired summary and Set5."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import structural_similarity
from torch import nn

from oct_srgan import metrics
from oct_srgan.scoring import score_items


def noisy_pair(seed: int = 0, shape: tuple[int, ...] = (2, 1, 64, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(shape, generator=gen)
    sr = (hr + 0.1 * torch.randn(shape, generator=gen)).clamp(0, 1)
    return sr, hr


def test_psnr_of_identical_images_is_infinite() -> None:
    x = torch.rand(2, 1, 32, 32)
    assert torch.isinf(metrics.psnr(x, x)).all()


def test_psnr_of_a_constant_offset() -> None:
    hr = torch.full((3, 1, 16, 16), 0.4)
    values = metrics.psnr(hr + 0.1, hr)
    assert values.shape == (3,)
    torch.testing.assert_close(values, torch.full((3,), 20.0, dtype=torch.float64), atol=1e-4, rtol=0)


def test_psnr_uses_the_data_range() -> None:
    hr = torch.full((1, 1, 16, 16), 100.0)
    assert metrics.psnr(hr + 25.5, hr, data_range=255.0)[0] == pytest.approx(20.0, abs=1e-4)


def test_shave_removes_border_errors() -> None:
    hr = torch.rand(1, 1, 40, 40)
    sr = hr.clone()
    sr[..., :3, :] = 1 - sr[..., :3, :]
    sr[..., :, -3:] = 0
    assert math.isfinite(metrics.psnr(sr, hr)[0])
    assert torch.isinf(metrics.psnr(sr, hr, shave=3)).all()
    assert metrics.ssim(sr, hr)[0] < 0.999
    assert metrics.ssim(sr, hr, shave=3)[0] == pytest.approx(1.0, abs=1e-6)


def test_shave_too_large_is_refused() -> None:
    x = torch.rand(1, 1, 10, 10)
    with pytest.raises(ValueError, match="shave"):
        metrics.psnr(x, x, shave=5)


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_ssim_of_identical_images_is_one(kind: str) -> None:
    x = torch.rand(2, 3, 48, 48)
    torch.testing.assert_close(metrics.ssim(x, x, kind=kind), torch.ones(2, dtype=torch.float64))


def test_gaussian_ssim_is_wang_et_al() -> None:
    """MONAI's Gaussian SSIM equals scikit-image set up as Wang et al. (Gaussian 1.5, no sample covariance)."""
    sr, hr = noisy_pair()
    expected = [
        structural_similarity(a[0].numpy(), b[0].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for a, b in zip(sr, hr)
    ]
    np.testing.assert_allclose(metrics.ssim(sr, hr, kind="gaussian").numpy(), expected, atol=1e-4)


def test_uniform_ssim_is_scikit_image_default() -> None:
    sr, hr = noisy_pair(1)
    expected = [structural_similarity(a[0].numpy(), b[0].numpy(), data_range=1.0) for a, b in zip(sr, hr)]
    np.testing.assert_allclose(metrics.ssim(sr, hr, kind="uniform").numpy(), expected, atol=1e-6)


def test_ms_ssim_identical_noisy_and_too_small() -> None:
    sr, hr = noisy_pair(2, (2, 1, 192, 192))
    torch.testing.assert_close(metrics.ms_ssim(hr, hr), torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    noisy = metrics.ms_ssim(sr, hr)
    assert ((noisy > 0) & (noisy < 0.99)).all()
    assert torch.isnan(metrics.ms_ssim(hr[..., :100, :], hr[..., :100, :])).all()
    assert metrics.MS_SSIM_MIN_SIZE == 176


def test_rgb_to_y_known_values() -> None:
    colours = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x = colours.T.reshape(1, 3, 1, 4)
    y = metrics.rgb_to_y(x) * 255
    assert y.shape == (1, 1, 1, 4)
    torch.testing.assert_close(y.flatten(), torch.tensor([235.0, 16.0, 16 + 65.481, 16 + 128.553]), atol=1e-3, rtol=0)


def test_rgb_to_y_treats_grey_as_equal_channels() -> None:
    grey = torch.rand(2, 1, 5, 5)
    torch.testing.assert_close(metrics.rgb_to_y(grey), metrics.rgb_to_y(grey.expand(-1, 3, -1, -1)))


def hand_table() -> pd.DataFrame:
    bicubic = [20.0, 22.0, 24.0, 26.0]
    model = [21.0, 24.0, 24.0, 29.0]
    rows = [{"id": f"img{i}", "method": "bicubic", "psnr": v, "ms_ssim": 0.9} for i, v in enumerate(bicubic)]
    rows += [{"id": f"img{i}", "method": "model", "psnr": v, "ms_ssim": math.nan if i == 0 else 0.95}
             for i, v in enumerate(model)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # pairing must not depend on row order


def test_summarize_means_and_stds() -> None:
    summary = metrics.summarize(hand_table()).set_index(["method", "metric"])
    bic = summary.loc[("bicubic", "psnr")]
    assert bic["n"] == 4 and bic["mean"] == pytest.approx(23.0) and bic["std"] == pytest.approx(math.sqrt(20 / 3))
    model = summary.loc[("model", "psnr")]
    assert model["mean"] == pytest.approx(24.5) and model["std"] == pytest.approx(math.sqrt(33 / 3))


def test_summarize_paired_difference_and_confidence_interval() -> None:
    summary = metrics.summarize(hand_table()).set_index(["method", "metric"])
    diff = summary.loc[("model - bicubic", "psnr")]
    # differences 1, 2, 0, 3: mean 1.5, sample std sqrt(5/3), t(0.975, 3) = 3.182446
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert diff["n"] == 4 and diff["mean"] == pytest.approx(1.5) and diff["std"] == pytest.approx(math.sqrt(5 / 3))
    assert diff["ci_low"] == pytest.approx(1.5 - half) and diff["ci_high"] == pytest.approx(1.5 + half)


def test_summarize_leaves_out_nan_and_says_so() -> None:
    summary = metrics.summarize(hand_table()).set_index(["method", "metric"])
    assert summary.loc[("model", "ms_ssim"), "n"] == 3
    assert summary.loc[("model - bicubic", "ms_ssim"), "mean"] == pytest.approx(0.05)
    assert "ssim" not in summary.index.get_level_values("metric")


def test_score_items_rows() -> None:
    gen = torch.Generator().manual_seed(3)
    items = [{"id": f"x{i}", "hr": torch.rand(1, 32, 32, generator=gen)} for i in range(2)]
    for item in items:
        item["lr"] = item["hr"][:, ::4, ::4]
    methods = {"nearest": lambda lr: lr.repeat_interleave(4, -1).repeat_interleave(4, -2), "oracle": None}
    rows = []
    for item in items:
        methods["oracle"] = lambda lr, hr=item["hr"]: hr[None]
        rows += score_items([item], methods, shave=2)[0].to_dict("records")
    pairs = [(r["id"], r["method"]) for r in rows]
    assert pairs == [("x0", "nearest"), ("x0", "oracle"), ("x1", "nearest"), ("x1", "oracle")]
    assert all(math.isinf(r["psnr"]) and r["ssim"] == pytest.approx(1.0) for r in rows if r["method"] == "oracle")
    assert all(r["psnr"] < 15 and math.isnan(r["ms_ssim"]) for r in rows if r["method"] == "nearest")


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, self.scale * x]


def test_content_distance_is_mean_feature_mse() -> None:
    hr = torch.rand(2, 1, 8, 8)
    values = metrics.content_distance(TwoLayers(), hr + 0.1, hr)
    torch.testing.assert_close(values, torch.full((2,), (0.01 + 0.04) / 2, dtype=torch.float64))


def test_interval_over_fewer_than_three_units_is_not_meaningful() -> None:
    from oct_srgan.scoring import summary_markdown

    two = hand_table()[hand_table()["id"].isin(sorted(set(hand_table()["id"]))[:2])]
    summary = metrics.summarize(two, metrics=["psnr"])
    diff = summary.set_index(["method", "metric"]).loc[("model - bicubic", "psnr")]
    assert diff["n"] == 2 and math.isnan(diff["ci_low"]) and math.isnan(diff["ci_high"])
    row = next(line for line in summary_markdown(summary).splitlines() if line.startswith("| model - bicubic | psnr"))
    assert row.endswith("| not meaningful (2 units, fewer than 3) |")
    assert metrics.interval_text(-0.5, 1.5, 3, ".2f") == "[-0.50, 1.50]"
