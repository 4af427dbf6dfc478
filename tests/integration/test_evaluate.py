"""`oct-srgan evaluate`: tables, figures and an MLflow run; the SRGAN paper's bicubic Set5 number."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from oct_srgan.prepare import PrepareOptions, prepare_dataset
from tests.helpers.cli import evaluate
from tests.paths import DUKE


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for subj in ("01", "02", "03"):
        (src / f"s{subj}").mkdir()
        for k in ("1", "average"):
            (src / f"s{subj}" / f"{k}.tif").write_bytes((DUKE / f"subject{subj}" / f"{k}.tif").read_bytes())
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare_dataset([src], out, PrepareOptions(val_fraction=0.34, test_fraction=0.34, seed=1))
    return out


@pytest.mark.slow
def test_split_evaluation_writes_tables_figures_and_run(
    small_dataset: Path, tiny_generator_file: Path, tmp_path: Path, mlflow_store: Path
) -> None:
    out = tmp_path / "eval"
    result = evaluate("--model", str(tiny_generator_file), "--data", str(small_dataset), "--out", str(out))
    assert result.exit_code == 0, result.output
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 2
    for col in ("psnr_model", "psnr_bicubic", "psnr_nearest", "ssim_bicubic", "ms_ssim_bicubic"):
        assert per_image[col].notna().all()
    # Bicubic beats nearest neighbour on real OCT; both are in a plausible range.
    assert (per_image["psnr_bicubic"] > per_image["psnr_nearest"]).all()
    assert per_image["psnr_bicubic"].between(15, 45).all()
    summary = pd.read_csv(out / "summary.csv")
    assert {"model", "bicubic", "nearest", "model - bicubic"} <= set(summary["method"])
    assert (out / "psnr_gain_hist.png").is_file() and list(out.glob("compare_*.png"))
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("oct-srgan").experiment_id])
    run = runs[0]
    assert run.data.tags["stage"] == "evaluate"
    assert len(run.data.tags["dataset_hash"]) == 16
    assert run.data.params["model"] == "tiny_x4.pt"
    assert run.data.metrics["bicubic.psnr"] == pytest.approx(per_image["psnr_bicubic"].mean(), abs=1e-4)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    assert "tables/per_image.csv" in artifacts


@pytest.mark.slow
def test_set5_bicubic_matches_the_paper(tiny_generator_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "set5"
    result = evaluate("--model", str(tiny_generator_file), "--benchmark", "set5", "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    bicubic = summary[(summary["method"] == "bicubic")].set_index("metric")["mean"]
    assert bicubic["psnr"] == pytest.approx(28.43, abs=0.1)
    assert 0.80 < bicubic["ssim"] < 0.83


@pytest.mark.slow
def test_second_model_never_overwrites_the_first(
    small_dataset: Path, tiny_generator_file: Path, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oct_srgan.evaluation import model_label

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other" / "generator.pt"
    other.parent.mkdir()
    other.write_bytes(tiny_generator_file.read_bytes())
    args = ("--data", str(small_dataset), "--limit", "1", "--tile", "0")
    assert evaluate("--model", str(tiny_generator_file), *args).exit_code == 0
    assert evaluate("--model", str(other), *args).exit_code == 0
    folders = sorted(p.name for p in (tmp_path / "outputs" / "evaluate").iterdir())
    assert len(folders) == 2 and folders[0].endswith(model_label(str(other))) != folders[1].endswith(model_label(str(other)))
    again = evaluate("--model", str(other), *args)
    assert again.exit_code == 2 and "output folder exists" in again.output and "--overwrite" in again.output
    assert evaluate("--model", str(other), *args, "--overwrite").exit_code == 0
    client = MlflowClient()
    names = {r.info.run_name for r in client.search_runs([client.get_experiment_by_name("oct-srgan").experiment_id])}
    assert len(names) == 2 and all(model_label(str(other)) in n or "tiny_x4" in n for n in names)
