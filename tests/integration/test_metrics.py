"""Metrics on the Set5 benchmark: bicubic x4 gives the SRGAN paper's numbers under its protocol."""

from __future__ import annotations

import pandas as pd
import pytest

from oct_srgan import metrics
from oct_srgan.evaluation import benchmark_items
from oct_srgan.scoring import score_items
from oct_srgan.transforms import upscale_bicubic
from tests.paths import SET5


@pytest.mark.slow
def test_set5_bicubic_matches_the_srgan_protocol() -> None:
    items = benchmark_items(SET5)
    methods = {"bicubic": lambda lr: upscale_bicubic(lr, 4)}
    rows, outputs = score_items(items, methods, shave=4, y_channel=True, quantize_bits=8)
    uniform = pd.DataFrame({"ssim": [float(metrics.ssim(metrics.rgb_to_y(outputs[it["id"]]["bicubic"][None]),
                                                         metrics.rgb_to_y(metrics.quantize(it["hr"][None].float(), 8)),
                                                         shave=4, kind="uniform")[0]) for it in items]})
    assert rows["psnr"].mean() == pytest.approx(28.43, abs=0.01)
    assert rows["ssim"].mean() == pytest.approx(0.8113, abs=5e-4)
    assert uniform["ssim"].mean() == pytest.approx(0.8232, abs=5e-4)
