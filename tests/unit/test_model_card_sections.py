"""Model card sections: cross-validation figures from a CSV, the protocol table only when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from oct_srgan.errors import DataError
from oct_srgan.model_card_sections import cv_section, noref_section, protocols_section, speckle_levels_section


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
    assert speckle_levels_section("default", None) == []


def test_speckle_levels_section_scores_every_level_of_a_reference_dataset(tmp_path: Path, tiny_generator_file: Path) -> None:
    import numpy as np
    from PIL import Image

    from oct_srgan.data import open_dataset
    from oct_srgan.prepare import PrepareOptions, prepare_dataset

    yy, xx = np.mgrid[0:96, 0:128]
    for seed, subject in enumerate(("s1", "s2", "s3", "s4")):  # distinct subjects: identical scans join groups
        reference = 0.1 + 0.7 * np.exp(-((yy - 40 - 4 * seed) / 12.0) ** 2) * (1 + 0.2 * np.sin(xx / 7.0))
        folder = tmp_path / "src" / subject
        folder.mkdir(parents=True)
        noisy = np.clip(reference * np.random.default_rng(seed).gamma(30.0, 1 / 30.0, size=reference.shape), 0, 1)
        Image.fromarray(np.round(reference * 255).astype(np.uint8)).save(folder / "average.png")
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(folder / "scan.png")
    prepare_dataset([tmp_path / "src"], tmp_path / "out", PrepareOptions(val_fraction=0, test_fraction=0.5,
                                                                        reference="average"))
    lines = speckle_levels_section(str(tiny_generator_file), open_dataset(tmp_path / "out"))
    assert lines[0] == "### Inputs with less speckle"
    rows = [line for line in lines[-1].splitlines() if line.startswith("| 0") or line.startswith("| 1")]
    assert [r.split(" | ")[0] for r in rows] == ["| 0", "| 0.25", "| 0.5", "| 1"]
