"""oct_srgan/speckle_levels.py: model and bicubic against the matched reference, per share of speckle kept."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from oct_srgan.speckle_levels import level_markdown, level_rows, level_table
from oct_srgan.transforms import upscale_bicubic


def test_levels_scale_the_speckle_and_score_against_the_matched_reference() -> None:
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(96.0), indexing="ij")
    clean = (0.3 + 0.4 * torch.sin(yy / 9.0) * torch.cos(xx / 13.0))[None]
    item = {"id": "a_000", "self": (clean + 0.2 * torch.randn_like(clean)).clamp(0, 1), "reference_matched": clean}
    rows = level_rows([item, {**item, "id": "b_000", "reference_matched": None}],
                      lambda lr: upscale_bicubic(lr, 4, "both"), [0.0, 0.5, 1.0])
    table = rows.set_index("kept")
    assert list(table["id"]) == ["a_000"] * 3  # a B-scan without a reference is left out
    assert table["gain"].abs().max() == pytest.approx(0.0, abs=1e-9)  # bicubic as the model gains nothing
    assert table.loc[0.0, "bicubic"] > table.loc[0.5, "bicubic"] > table.loc[1.0, "bicubic"]  # less speckle, closer


def test_level_table_averages_per_level_and_prints_signed_gains() -> None:
    rows = pd.DataFrame([{"kept": 0.0, "id": "a", "model": 30.0, "bicubic": 31.0, "gain": -1.0},
                         {"kept": 0.0, "id": "b", "model": 32.0, "bicubic": 32.0, "gain": 0.0},
                         {"kept": 1.0, "id": "a", "model": 28.0, "bicubic": 26.0, "gain": 2.0}])
    table = level_table(rows)
    assert table.loc[0.0].tolist() == [31.0, 31.5, -0.5]
    text = level_markdown(table)
    assert "| 0 | 31.00 | 31.50 | -0.50 |" in text and "| 1 | 28.00 | 26.00 | +2.00 |" in text
