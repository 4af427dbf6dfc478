"""The MLflow experiment as users expect to find it (read back from the store)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from oct_srgan import tracking


def test_experiment_is_tagged_as_model_training_so_the_ui_opens_on_runs(mlflow_store: Path) -> None:
    exp_id = tracking.experiment_id()
    exp = mlflow.MlflowClient().get_experiment(exp_id)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_an_existing_untagged_experiment_gets_the_tag(mlflow_store: Path) -> None:
    tracking.configure()
    exp_id = mlflow.create_experiment("untagged-before")
    assert tracking.EXPERIMENT_KIND_TAG not in mlflow.MlflowClient().get_experiment(exp_id).tags
    assert tracking.experiment_id("untagged-before") == exp_id
    assert mlflow.MlflowClient().get_experiment(exp_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
