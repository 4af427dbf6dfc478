"""Model card sections: cross-validation figures from a CSV, the protocol table only when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from oct_srgan.errors import DataError
from oct_srgan.model_card_sections import cv_section, noref_section, protocols_section


def test_cv_section_shows_mean_and_sd_per_protocol(tmp_path: Path) -> None:
    path = tmp_path / "cv_summary.csv"
    path.write_text("protocol,metric,mean,sd,n_folds\nbicubic,gain_psnr,1.91,0.32,4\ndecimate,psnr,26.4,0.5,4\n")
    lines = cv_section(path)
    assert "| bicubic | gain_psnr | 1.910 ± 0.320 | 4 |" in lines
    assert "| decimate | psnr | 26.400 ± 0.500 | 4 |" in lines


def test_cv_section_refuses_a_csv_without_sd(tmp_path: Path) -> None:
    path = tmp_path / "cv.csv"
    path.write_text("protocol,metric,mean,n_folds\nbicubic,psnr,1.0,3\n")
    with pytest.raises(DataError, match="lacks column"):
        cv_section(path)


def test_sections_without_input_are_empty(tmp_path: Path) -> None:
    assert cv_section(None) == [] and protocols_section(None) == [] and noref_section("default", [], tmp_path) == []
