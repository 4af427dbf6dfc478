"""The main job's parts: its recipe fine-tunes the shipped weights, and its closing summary is short,
names each model's gain with its interval and lists every output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from oct_srgan.checkpoint import load_generator_file
from oct_srgan.config import load_config, resolve_config
from oct_srgan.errors import ModelError
from oct_srgan.job_summary import Gain, best, dataset_line, summary_lines
from oct_srgan.loading import OctSrganWeights
from oct_srgan.models import generator_spec
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.training.state import build_nets


def test_main_recipe_starts_from_the_shipped_weights() -> None:
    cfg = load_config(resolve_config("main"), ["train.device=cpu"])
    assert cfg.train.stage == "srresnet" and cfg.train.init_from == "default"
    nets = build_nets(cfg, generator_spec(cfg), torch.device("cpu"), None, None)
    shipped, _, _ = load_generator_file(OctSrganWeights.DEFAULT.path)
    for name, value in nets.generator.state_dict().items():
        torch.testing.assert_close(value.float(), shipped[name].float(), msg=name)


def test_init_from_weights_of_another_architecture_is_refused_naming_the_field() -> None:
    cfg = load_config(resolve_config("main"), ["train.device=cpu", "model.num_blocks=3"])
    with pytest.raises(ModelError, match="num_blocks"):
        build_nets(cfg, generator_spec(cfg), torch.device("cpu"), None, None)


def _evaluation(folder: Path, model: float, bicubic: float, low: float, high: float) -> Path:
    folder.mkdir(parents=True)
    rows = [("model", "psnr", model, model, model), ("bicubic", "psnr", bicubic, bicubic, bicubic),
            ("model", "ssim", 0.7, 0.7, 0.7), ("model - bicubic", "ssim", 0.1, 0.09, 0.11),
            ("model - bicubic", "psnr", model - bicubic, low, high)]
    pd.DataFrame([{"method": m, "metric": k, "n": 10, "mean": v, "std": 0.1, "ci_low": lo, "ci_high": hi}
                  for m, k, v, lo, hi in rows]).to_csv(folder / "summary.csv", index=False)
    return folder


def _dataset(folder: Path) -> Path:
    """A real prepared dataset: 4 subjects, each a noisy 64 x 96 B-scan and its average, split 2/1/1."""
    rng = np.random.default_rng(0)
    for subject in "abcd":
        (folder / "src" / subject).mkdir(parents=True)
        clean = rng.integers(40, 200, (64, 96), dtype=np.uint8)
        Image.fromarray(clean).save(folder / "src" / subject / "average.png")
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / "src" / subject / "1.png")
    prepare_dataset([folder / "src"], folder / "ds", PrepareOptions(val_fraction=0.25, test_fraction=0.25,
                                                                      reference="average"))
    return folder / "ds"


def test_gain_line_has_the_gain_and_its_interval(tmp_path: Path) -> None:
    gain = Gain.read("main", _evaluation(tmp_path / "e", 27.5, 25.35, 1.74, 2.59))
    assert gain.gain == pytest.approx(2.15) and gain.n == 10
    assert gain.line() == "  main model       +2.15 dB [+1.74, +2.59] over bicubic (27.50 vs 25.35 dB), SSIM +0.100"


def test_gain_line_over_too_few_b_scans_says_the_interval_is_not_meaningful() -> None:
    gain = Gain("smoke", 13.11, 23.42, -10.31, float("nan"), float("nan"), -0.527, 2)
    assert gain.line() == ("  smoke model      -10.31 dB not meaningful (2 B-scans, fewer than 3) over bicubic "
                           "(13.11 vs 23.42 dB), SSIM -0.527")


def test_best_is_the_highest_gain() -> None:
    gains = [Gain("a", 1, 1, -11.7, -12, -11, 0, 10), Gain("b", 1, 1, 2.1, 1.7, 2.5, 0, 10)]
    assert best(gains).label == "b"


def test_dataset_line_names_subjects_splits_degradation_and_target(tmp_path: Path) -> None:
    line = dataset_line(_dataset(tmp_path / "d"))
    assert "4 subjects (2/1/1 train/val/test), 4/2/2 B-scans; LR = bicubic x4 (both axes)" in line
    assert line.endswith("target = clean reference (registered average)")


def test_summary_is_at_most_25_lines_and_done_lists_every_output(tmp_path: Path) -> None:
    evaluations = {"main": _evaluation(tmp_path / "evaluate" / "main", 27.5, 25.35, 1.7, 2.6),
                   "default": _evaluation(tmp_path / "evaluate" / "default", 27.47, 25.35, 1.8, 2.5)}
    gains = [Gain.read(k, v) for k, v in evaluations.items()]
    lines = summary_lines(data=_dataset(tmp_path / "dataset"), gains=gains, evaluations=evaluations,
                          model=tmp_path / "runs" / "main" / "generator.pt", enhanced=tmp_path / "enhanced",
                          enhanced_with="main", logs=tmp_path / "logs", parent_run="abc", tracking_uri="sqlite:///m.db",
                          minutes=4.9)
    assert len(lines) <= 25
    assert any(line.startswith("  main model       +2.15 dB [+1.70, +2.60]") for line in lines)
    assert any(line.startswith("  default model    +2.12 dB") for line in lines)
    done = lines[-1]
    for output in ("dataset: ", "model: ", "evaluation (main): ", "evaluation (default): ", "enhanced: ", "logs: ", "MLflow run: abc"):
        assert output in done, output
