"""bench/stored_ceiling.py: the PSNR cap a grey-level-faithful output meets against the stored reference."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers.bench import load_bench


def test_ceiling_is_the_matched_reference_scored_against_the_stored_one() -> None:
    # Flat images: bicubic of a flat input is the input, so every PSNR is known by hand.
    item = {"group_id": "g", "id": "a_000", "ref_gain": 1.1, "self": torch.full((1, 32, 40), 0.6),
            "reference": torch.full((1, 32, 40), 0.5), "reference_matched": torch.full((1, 32, 40), 0.55)}
    table = load_bench("stored_ceiling").ceiling_rows([item, {**item, "id": "no_ref", "reference": None}])
    assert table["id"].tolist() == ["a_000"]  # a B-scan without a reference has no ceiling
    row = table.iloc[0]
    assert row["bicubic"] == pytest.approx(-10 * math.log10(0.1 ** 2), abs=1e-3)  # 20.00 dB
    assert row["faithful_ceiling"] == pytest.approx(-10 * math.log10(0.05 ** 2), abs=1e-3)  # 26.02 dB
    assert row["gain_cap"] == pytest.approx(row["faithful_ceiling"] - row["bicubic"])
