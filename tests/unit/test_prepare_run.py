"""``preprocess`` logs from the library like every stage: one run with counts, options and the dataset
files, and no name of a subject's folder anywhere in its params or tags."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from PIL import Image

from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.prepare_run import log_preparation


def test_preparation_run_holds_counts_splits_and_files_but_no_folder_names(tmp_path: Path) -> None:
    for group in ("subject_ann", "subject_bob", "subject_cyd"):
        (tmp_path / "src" / group).mkdir(parents=True)
        pixels = (np.random.default_rng(len(group)).random((32, 48)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "src" / group / "scan.png")
    options = PrepareOptions(val_fraction=0.34, test_fraction=0.34)
    report = prepare_dataset([tmp_path / "src"], tmp_path / "ds", options)

    run_id = log_preparation(report, options)  # first: it points MLflow at this test's store
    run = mlflow.MlflowClient().get_run(run_id)

    assert run.data.tags["stage"] == "preprocess" and run.data.tags["dataset_hash"] == report.dataset_hash
    assert (run.data.params["n_groups"], run.data.params["n_bscans"], run.data.params["scale"]) == ("3", "3", "4")
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {report.dataset_hash}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "dataset")}
    assert artifacts == {"dataset/manifest.csv", "dataset/dataset.json"}
    assert "subject_" not in repr(run.data.params) + repr(run.data.tags)
