"""The one place that talks to MLflow.

The default store is ``mlruns/`` in the working directory (SQLite + artifacts, docs/architecture.md);
``MLFLOW_TRACKING_URI`` overrides it so a team's server works unchanged. Callers pass only values
that are safe to record: hashes, counts and config values, never patient fields or source paths.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import tracking_store
from .errors import TrackingError

DEFAULT_STORE = Path("mlruns")
EXPERIMENT = "oct-srgan"
_MAX_PARAM = 6000
# MLflow 3's UI opens an experiment without this tag on the GenAI "Traces" overview; this value
# (the UI's CUSTOM_MODEL_DEVELOPMENT kind) makes it open on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Dataset lineage: each split is one MLflow dataset (digest = the dataset hash from dataset.json),
# logged with the split as its context. MLflow keeps one input per (name, digest) and run, so the
# split is part of the name too. Only these manifest columns go in: the ids are hashes, never names.
DATASET_FORMAT = "oct-srgan-dataset/1"
DATASET_COLUMNS = ("split", "group_id", "scan_id", "bscan", "height", "width")
SPLIT_CONTEXTS = {"train": "train", "val": "validation", "test": "test"}


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{DEFAULT_STORE.resolve() / 'mlflow.db'}"


def store_dir() -> Path | None:
    """The local folder holding the SQLite database (artifacts go beside it), or None for a server."""
    db = tracking_store.sqlite_file(tracking_uri())
    return db.parent if db is not None else None


def check_store() -> str:
    """Reach the store and create its experiment before a stage does any work, so a store that cannot
    work is one line in seconds (``TrackingError``); returns the experiment id."""
    tracking_store.probe(tracking_uri(), write=True)
    return experiment_id()


def configure() -> str:
    """Point MLflow at the project store, creating the local store folder when it is SQLite."""
    import mlflow

    _quiet()
    uri = tracking_uri()
    local = store_dir()
    if local is not None:
        (local / "artifacts").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(name: str = EXPERIMENT) -> str:
    """The id of ``name``, created with artifacts under ``mlruns/artifacts`` when the store is local."""
    uri = configure()
    tracking_store.probe(uri, write=False)
    with tracking_store.store_errors(uri), tracking_store.first_use(uri):
        return _experiment_id(name)


def _experiment_id(name: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    local = store_dir()
    if exp is not None:
        foreign = tracking_store.foreign_artifacts(exp.artifact_location, local)
        if foreign is not None:
            raise TrackingError(f"{local}: experiment {name!r} keeps its artifacts in {foreign}, outside this store "
                                "(a copied project folder?); move mlruns/ away or set MLFLOW_TRACKING_URI")
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = (local / "artifacts").as_uri() if local is not None else None
    return mlflow.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def git_commit() -> str:
    """The source tree's commit (``unknown`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


@contextlib.contextmanager
def run(
    stage: str,
    run_name: str,
    *,
    tags: Mapping[str, str] | None = None,
    experiment: str = EXPERIMENT,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Any]:
    """Open one MLflow run for a stage (or reopen ``run_id`` to resume it), tagged with stage + commit.

    ``OCT_SRGAN_PARENT_RUN_ID`` nests the run under a chain's parent run when no parent is given.
    """
    import mlflow

    exp_id = experiment_id(experiment)
    parent_run_id = parent_run_id or os.environ.get("OCT_SRGAN_PARENT_RUN_ID") or None
    all_tags = {"stage": stage, "git_commit": git_commit(), **(tags or {})}
    if parent_run_id and run_id is None:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with tracking_store.store_errors(tracking_uri()):
        started = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else exp_id,
                                   run_name=None if run_id else run_name, tags=all_tags)
    with started as active:
        yield active


def log_params(params: Mapping[str, Any]) -> None:
    """Log params, stringified and truncated to MLflow's limit; values already logged are skipped."""
    import mlflow

    active = mlflow.active_run()
    existing = dict(active.data.params) if active is not None else {}
    fresh = {}
    for k, v in params.items():
        text = str(v)[:_MAX_PARAM]
        if k in existing:
            continue
        fresh[k] = text
    items = list(fresh.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, *, model_id: str | None = None, dataset: Any = None
) -> None:
    """Log metrics to the active run; ``model_id`` also puts them on that LoggedModel, ``dataset``
    (from :func:`split_dataset`) records which data they were measured on."""
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, model_id=model_id, dataset=dataset)


def set_tags(tags: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_figure(fig: Any, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG image artifact and close it."""
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_model_output(model_id: str, step: int = 0) -> None:
    """Record a LoggedModel as an output of the active run: MLflow lists it on the run's page."""
    import mlflow
    from mlflow.entities import LoggedModelOutput

    mlflow.MlflowClient().log_outputs(mlflow.active_run().info.run_id, [LoggedModelOutput(model_id, step)])


@functools.cache
def _dataset_source_class() -> type:
    """A dataset source that records only the dataset format and hash: no path, no file name.

    Built on first use so importing this module does not import MLflow.
    """
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source

    class OctSrganDatasetSource(DatasetSource):
        def __init__(self, dataset_hash: str, split: str) -> None:
            self.dataset_hash, self.split = dataset_hash, split

        @staticmethod
        def _get_source_type() -> str:
            return "oct-srgan-dataset"

        def load(self) -> Any:
            # The source holds no path on purpose (paths may name patients): there is nothing to load from.
            raise ValueError("an oct-srgan dataset is opened from its folder with oct_srgan.data.open_dataset")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> Any:
            raise ValueError("oct-srgan dataset sources are never resolved from a URI (they hold no path)")

        def to_dict(self) -> dict[str, Any]:
            return {"format": DATASET_FORMAT, "dataset_hash": self.dataset_hash, "split": self.split}

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]) -> Any:
            return cls(str(source_dict.get("dataset_hash", "")), str(source_dict.get("split", "")))

    register_dataset_source(OctSrganDatasetSource)
    return OctSrganDatasetSource


def dataset_name(dataset_hash: str, split: str) -> str:
    return f"oct-srgan-dataset-{dataset_hash}-{SPLIT_CONTEXTS.get(split, split)}"


def split_dataset(manifest: Any, dataset_hash: str, split: str) -> Any:
    """One split of a prepared dataset as an MLflow dataset, for ``log_input`` and metric lineage.

    The frame holds only :data:`DATASET_COLUMNS` (hashed ids, B-scan index and size), so its schema
    and profile can never carry a patient field or a source path.
    """
    import mlflow.data

    rows = manifest.loc[manifest["split"] == split, list(DATASET_COLUMNS)].reset_index(drop=True)
    return mlflow.data.from_pandas(
        rows, source=_dataset_source_class()(dataset_hash, split), name=dataset_name(dataset_hash, split),
        digest=dataset_hash,
    )


def log_dataset_splits(manifest: Any, dataset_hash: str, splits: tuple[str, ...] = tuple(SPLIT_CONTEXTS)) -> dict[str, Any]:
    """Log each non-empty split as a dataset input of the active run (context = split); returns them.

    Logging the same split again (a resumed run) is a no-op in MLflow.
    """
    import mlflow

    logged = {}
    for split in splits:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        dataset = split_dataset(manifest, dataset_hash, split)
        tags = {"split": split, "n_bscans": str(len(rows)), "n_groups": str(rows["group_id"].nunique())}
        mlflow.log_input(dataset, context=SPLIT_CONTEXTS.get(split, split), tags=tags)
        logged[split] = dataset
    return logged
