"""The three-protocol table: LR made on the fly from the noisy input, model only where its axes fit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from oct_srgan.protocols import headline_metrics, protocol_rows, protocol_table, protocols_for, write_protocols
from oct_srgan.transforms import upscale_bicubic, upscale_nearest


def _items(n: int = 2) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        reference = torch.rand(1, 32, 48, generator=gen) * 0.5 + 0.2
        noisy = (reference + 0.05 * torch.randn(1, 32, 48, generator=gen)).clamp(0, 1)
        items.append({"id": f"b{i}", "self": noisy, "reference": reference, "reference_matched": reference * 0.9})
    return items


def test_a_model_runs_only_the_protocols_of_its_axes() -> None:
    assert protocols_for("both") == ["bicubic", "decimate"]
    assert protocols_for("lateral") == ["lateral"]


def test_the_model_sees_the_strided_samples_of_the_noisy_input() -> None:
    seen: list[torch.Tensor] = []

    def model(lr: torch.Tensor) -> torch.Tensor:
        seen.append(lr)
        return upscale_nearest(lr, 4, "lateral")

    item = _items(1)[0]
    rows = protocol_rows([item], model, "lateral", 4, shave=4)
    assert len(seen) == 1 and torch.equal(seen[0][0], item["self"][..., :, 1::4])
    assert set(rows.loc[rows["method"] == "model", "protocol"]) == {"lateral"}
    assert sorted(rows.loc[rows["protocol"] == "bicubic", "method"]) == ["bicubic", "linear"]


def test_a_bicubic_model_gains_nothing_and_matched_scores_differ() -> None:
    rows = protocol_rows(_items(), lambda lr: upscale_bicubic(lr, 4, "both"), "both", 4, shave=4)
    table = protocol_table(rows)
    gain = table[(table["protocol"] == "decimate") & (table["method"] == "model - bicubic")].iloc[0]
    assert gain["psnr"] == pytest.approx(0.0, abs=1e-9) and gain["n"] == 2
    model = table[(table["protocol"] == "bicubic") & (table["method"] == "model")].iloc[0]
    assert model["psnr_matched"] != pytest.approx(model["psnr"], abs=0.1)
    assert list(dict.fromkeys(table["protocol"])) == ["bicubic", "decimate", "lateral"]


def test_headline_metrics_and_files(tmp_path: Path) -> None:
    table = protocol_table(protocol_rows(_items(), lambda lr: upscale_bicubic(lr, 4, "both"), "both", 4, shave=4))
    metrics = headline_metrics(table, "test")
    assert metrics["test.bicubic.gain_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["test.decimate.psnr"] == metrics["test.decimate.model.psnr"]
    assert "test.lateral.linear.ssim_matched" in metrics and "test.lateral.psnr" not in metrics
    files = write_protocols(table, tmp_path)
    assert pd.read_csv(files["protocols"]).shape == table.shape
    assert "| decimate | model - linear |" in files["protocols_md"].read_text()
