"""The shipped default model: it loads with no flag, beats bicubic against clean references of held-out Duke subjects, has a card."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from oct_srgan.checkpoint import load_generator_file
from oct_srgan.loading import OctSrganWeights
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.pipelines.cli import app
from tests.paths import DUKE, FORMATS

runner = CliRunner()
DEFAULT_MODEL_FILE = OctSrganWeights.DEFAULT.path


def test_enhance_needs_no_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["enhance", str(FORMATS / "oct_bscan16_s14.dcm"), "--no-progress"])
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(tmp_path / "enhanced" / "oct_bscan16_s14_sr.dcm")
    assert (ds.Rows, ds.Columns) == (1800, 3600)


@pytest.mark.slow
def test_default_model_beats_bicubic_against_the_clean_references_of_unseen_subjects(tmp_path: Path) -> None:
    """The headline: the shipped model against registered averages of unseen subjects (card: +1.61 dB, +0.103 SSIM).

    The model keeps its input's grey levels (it is trained against references matched to their
    inputs), so against the references as stored it no longer gains what moving every scan to the
    averages' brightness gave (+2.13 dB); it does keep the background of other devices' scans.
    """
    data = tmp_path / "duke"
    prepare_dataset([DUKE], data, PrepareOptions(seed=0, reference="average"))
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", "--model", "default", "--data", str(data), "--out", str(out), "--no-progress", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 10  # 2 test subjects x 5 single acquisitions, each against its subject's average
    assert per_image["psnr_model"].mean() - per_image["psnr_bicubic"].mean() >= 1.5
    assert per_image["ssim_model"].mean() - per_image["ssim_bicubic"].mean() >= 0.10
    assert (per_image["psnr_model"] > per_image["psnr_bicubic"] + 1.0).all()  # every B-scan, not only on average
    _, _, meta = load_generator_file(DEFAULT_MODEL_FILE)
    assert meta["evaluation"]["target"] == "reference"
    assert abs(meta["evaluation"]["model_psnr"] - per_image["psnr_model"].mean()) < 0.01
