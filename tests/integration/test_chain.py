"""The main job (`oct-srgan chain`): every stage on real scans, one parent run, the clean-reference summary."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from oct_srgan.pipelines.cli import app
from tests.paths import DUKE, FORMATS

pytestmark = pytest.mark.slow


def test_chain_runs_every_stage_and_prints_the_clean_reference_result(tmp_path: Path, mlflow_store: Path) -> None:
    scans = tmp_path / "scans"
    for subject in ("01", "02", "03", "04"):
        folder = scans / f"subject{subject}"
        folder.mkdir(parents=True)
        for name in ("test", "1", "average"):
            (folder / f"{name}.tif").symlink_to(DUKE / f"subject{subject}" / f"{name}.tif")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["chain", "--scans", str(scans), "--enhance", str(FORMATS / "oct_bscan16_s14.png"),
                                      "--out", str(out), "--device", "cpu", "--config", "smoke"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("test split, against the clean references: PSNR gain over bicubic"))
    assert lines[at + 1].split()[:2] == ["smoke", "model"] and "over bicubic" in lines[at + 1]
    assert lines[at + 2].split()[:2] == ["default", "model"]
    assert "dB not meaningful (2 B-scans, fewer than 3) over bicubic" in lines[at + 2]  # 1 test subject, 2 noisy B-scans
    summary = lines[lines.index(next(line for line in lines if line.startswith("main job finished"))):]
    assert len(summary) <= 25 and summary[-1].startswith("done. ")
    assert f"evaluation (default): {out / 'evaluate' / 'default'}" in summary[-1]
    assert "with the default model" in "\n".join(summary)  # the smoke model loses to bicubic: the shipped one enhances
    assert (out / "evaluate" / "smoke" / "summary.csv").is_file() and (out / "evaluate" / "default" / "per_image.csv").is_file()
    assert (out / "enhanced" / "oct_bscan16_s14_sr.png").is_file()
    assert "| model - bicubic | psnr |" in (out / "logs" / "3-evaluate.log").read_text()  # the full tables
    runs = mlflow.MlflowClient().search_runs(mlflow.get_experiment_by_name("oct-srgan").experiment_id)
    parent = [r for r in runs if r.data.tags.get("stage") == "chain"]
    assert len(parent) == 1
    children = [r.data.tags.get("stage") for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert sorted(children) == ["evaluate", "evaluate", "preprocess", "srresnet"]
    assert {"smoke.psnr_gain_db", "default.psnr_gain_db"} <= set(parent[0].data.metrics)
    assert parent[0].data.tags["dataset_hash"] and parent[0].inputs.dataset_inputs
    evaluations = [r.info.run_name for r in runs if r.data.tags.get("stage") == "evaluate"]
    assert len({name[:20] for name in evaluations}) == 2
