"""The parent ``chain-…`` run carries the dataset, the trained model and the headline gains (read back from the store)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oct_srgan import tracking
from oct_srgan.chain_run import record_chain
from oct_srgan.evaluation import evaluation_run_name
from oct_srgan.model_registry import SHA_TAG, file_sha256
from oct_srgan.prepare import PrepareOptions, prepare_dataset


def summary_csv(folder: Path, gain: float) -> Path:
    folder.mkdir(parents=True)
    rows = [("model", "psnr", 25.0 + gain), ("bicubic", "psnr", 25.0), ("model - bicubic", "psnr", gain),
            ("model - bicubic", "ssim", 0.01)]
    pd.DataFrame([{"method": m, "metric": k, "n": 4, "mean": v, "std": 0.1, "ci_low": v - 1, "ci_high": v + 1}
                  for m, k, v in rows]).to_csv(folder / "summary.csv", index=False)
    return folder


def test_parent_run_shows_dataset_model_and_gains(tmp_path: Path, tiny_generator_file: Path) -> None:
    for group in ("a", "b", "c"):
        (tmp_path / "src" / group).mkdir(parents=True)
        pixels = (np.random.default_rng(ord(group)).random((64, 96)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "src" / group / "scan.png")
    report = prepare_dataset([tmp_path / "src"], tmp_path / "ds", PrepareOptions(val_fraction=0.34, test_fraction=0.34))
    evaluations = {"smoke": summary_csv(tmp_path / "ev" / "smoke", 1.25), "default": summary_csv(tmp_path / "ev" / "default", 2.5)}
    with tracking.run("train", "srresnet-tiny") as train_run:
        logged = mlflow.create_external_model(name="generator", tags={SHA_TAG: file_sha256(tiny_generator_file)})
    with tracking.run("chain", "chain-smoke") as parent:
        record_chain(tmp_path / "ds", evaluations, tiny_generator_file)

    client = mlflow.MlflowClient()
    run = client.get_run(parent.info.run_id)
    assert run.data.metrics == {
        "smoke.psnr_gain_db": 1.25, "smoke.ssim_gain": 0.01, "smoke.psnr_db": 26.25, "smoke.bicubic_psnr_db": 25.0,
        "default.psnr_gain_db": 2.5, "default.ssim_gain": 0.01, "default.psnr_db": 27.5, "default.bicubic_psnr_db": 25.0,
    }
    assert run.data.tags["dataset_hash"] == report.dataset_hash and run.data.tags["model_id"] == logged.model_id
    contexts = {t.value for i in run.inputs.dataset_inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {report.dataset_hash}
    assert contexts == {"train", "validation", "test"}
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_id]
    assert train_run.info.run_id != parent.info.run_id


@pytest.mark.parametrize("a,b", [
    ("runs/smoke/generator.pt", "default"),
    ("runs/smoke/checkpoints/step_0000010.pt", "runs/smoke/checkpoints/step_0000020.pt"),
    ("models:/oct-srgan-smoke/3", "models:/oct-srgan-smoke/4"),
])
def test_two_models_evaluation_runs_differ_in_the_first_20_characters(a: str, b: str) -> None:
    first, second = evaluation_run_name(a, "test-1a2b3c4d"), evaluation_run_name(b, "test-1a2b3c4d")
    assert first[:20] != second[:20]
    assert first.endswith("-eval-test-1a2b3c4d")
