"""bench/crossval.py's summary: mean and sd over folds of the gain over bicubic, stored and matched."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.bench import load_bench


def test_summary_gives_stored_and_matched_gains_over_folds() -> None:
    rows = []
    for fold, (model, bicubic, model_m, bicubic_m) in enumerate([(27.0, 25.5, 28.0, 26.0), (29.0, 27.0, 29.5, 27.5)]):
        rows += [{"fold": fold, "protocol": "bicubic", "method": "model", "psnr": model, "ssim": 0.7,
                  "psnr_matched": model_m, "ssim_matched": 0.72},
                 {"fold": fold, "protocol": "bicubic", "method": "bicubic", "psnr": bicubic, "ssim": 0.6,
                  "psnr_matched": bicubic_m, "ssim_matched": 0.6}]
    summary = load_bench("crossval").summarise(pd.DataFrame(rows)).set_index("metric")
    assert summary.loc["gain_psnr", "mean"] == pytest.approx(1.75)  # (1.5 + 2.0) / 2
    assert summary.loc["gain_psnr", "sd"] == pytest.approx(0.125 ** 0.5)  # sample sd of 1.5 and 2.0
    assert summary.loc["gain_psnr_matched", "mean"] == pytest.approx(2.0)  # (2.0 + 2.0) / 2
    assert summary.loc["gain_ssim_matched", "mean"] == pytest.approx(0.12)
    assert set(summary["n_folds"]) == {2}
