"""The metric table: a test-only metric is one ``Metric`` entry, and scoring, the summaries and the
headline comparisons (validation, serve's check mode, the model card) report it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from oct_srgan.metric_table import METRIC_TABLE, Metric, metric_names, register_metric, score_against
from oct_srgan.metrics import summarize
from oct_srgan.scoring import score_items


def _mae(output: torch.Tensor, target: torch.Tensor, shave: int) -> float:
    return float((output - target).abs().mean())


@pytest.fixture()
def mae() -> Iterator[Metric]:
    entry = register_metric(Metric("mae", "MAE", _mae, "{:.4f}", headline=True))
    yield entry
    del METRIC_TABLE["mae"]


def _items() -> list[dict]:
    hr = torch.zeros(1, 32, 32)
    hr[:, :, 16:] = 1.0
    return [{"id": "a", "lr": hr[:, ::2, ::2], "hr": hr}]


def test_a_registered_metric_is_scored_and_summarised(mae: Metric) -> None:
    methods = {"model": lambda lr: torch.ones(1, 1, 32, 32), "bicubic": lambda lr: torch.zeros(1, 1, 32, 32)}
    rows, _ = score_items(_items(), methods, shave=0)
    assert rows.set_index("method").loc["model", "mae"] == pytest.approx(0.5)
    summary = summarize(rows).set_index(["method", "metric"])
    assert summary.loc[("model - bicubic", "mae"), "mean"] == pytest.approx(0.0)


def test_a_headline_metric_joins_the_headline_comparisons(mae: Metric) -> None:
    assert metric_names(headline=True) == ("psnr", "ssim", "mae")
    hr = torch.rand(1, 1, 16, 16)
    scored = score_against(hr, {"sr": hr.clamp(0.1, 0.9), "bicubic": hr})
    assert scored["bicubic"]["mae"] == 0.0 and scored["sr"]["mae"] > 0.0


def test_grey_only_metrics_are_left_out_for_colour_images() -> None:
    assert metric_names(grey=False) == ("psnr", "ssim", "ms_ssim")
    assert {"cnr", "enl", "epi"} <= set(metric_names())
