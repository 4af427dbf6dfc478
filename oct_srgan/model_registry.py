"""Logging the generator as an MLflow model and finding it again in the registry.

The model carries its code (the ``oct_srgan`` package, without its bundled weights) as
``code_paths``, and its requirements are the package's own dependencies pinned to public versions,
so its environment can be rebuilt from a package registry alone (``mlflow models serve`` without
``--env-manager local``). Evaluations are written back to the model: headline metrics on the
LoggedModel, tags, a description and the ``evaluated`` alias on its registered version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from . import tracking
from .checkpoint import load_generator_file
from .metric_table import METRIC_TABLE, metric_names
from .mlflow_model import OctSrganModel, signature
from .model_download import ARTIFACT_KEY

MODEL_NAME = "model"
SHA_TAG = "generator_sha256"
EVALUATED_ALIAS = "evaluated"
# Always in the model's environment; the rest are oct-srgan's declared dependencies.
_BASE_REQUIREMENTS = ("mlflow", "torch", "monai", "numpy")
# Left out of the copy of the package carried with a model: the shipped default weights (the model
# has its own) and the web UI's static files.
_CODE_IGNORE = ("__pycache__", "*.pyc", "weights", "web")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _public_version(dist: str) -> str | None:
    """The installed version without a local label (``2.13.0+cpu`` → ``2.13.0``): a registry has no local builds."""
    try:
        return importlib.metadata.version(dist).split("+", 1)[0]
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements() -> list[str]:
    """pip requirements of the logged model: mlflow, torch and oct-srgan's dependencies, pinned to the
    installed public versions. oct-srgan itself is not listed: its code travels with the model."""
    names = list(_BASE_REQUIREMENTS)
    try:
        declared = importlib.metadata.requires("oct-srgan") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    for req in declared:
        if "extra ==" in req.replace('"', "").replace("'", ""):
            continue
        m = _REQUIREMENT_NAME.match(req)
        if m and m.group(1).lower() not in {n.lower() for n in names}:
            names.append(m.group(1))
    pins = []
    for name in names:
        version = _public_version(name)
        pins.append(f"{name}=={version}" if version else name)
    return pins


def _code_copy(tmp: Path) -> Path:
    """A copy of the ``oct_srgan`` package for ``code_paths``, without weights or caches."""
    package = Path(__file__).resolve().parent
    return Path(shutil.copytree(package, tmp / package.name, ignore=shutil.ignore_patterns(*_CODE_IGNORE)))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_generator_model(
    generator_file: Path,
    registered_name: str | None,
    input_example: np.ndarray,
    stage: str,
) -> str:
    """Log the generator file as a pyfunc model in the active run; register it when a name is given.

    The LoggedModel is tagged with the file's sha256, so an evaluation of the file (or of a training
    output folder) finds it; a registered version gets the alias ``latest-<stage>``.
    Returns the model URI (``models:/<name>/<version>`` when registered, else the logged model's URI).
    """
    generator_file = Path(generator_file)
    _, spec, _ = load_generator_file(generator_file)
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=OctSrganModel(),
            artifacts={ARTIFACT_KEY: str(generator_file)},
            code_paths=[str(_code_copy(Path(tmp)))],
            signature=signature(int(spec.get("in_channels", 1))),
            input_example=np.asarray(input_example, dtype=np.float32),
            pip_requirements=requirements(),
            registered_model_name=registered_name,
            tags={"stage": stage, SHA_TAG: file_sha256(generator_file)},
        )
    if registered_name and info.registered_model_version is not None:
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        client.set_model_version_tag(registered_name, version, "stage", stage)
        client.set_registered_model_alias(registered_name, f"latest-{stage}", version)
        return f"models:/{registered_name}/{version}"
    return info.model_uri


@dataclass(frozen=True)
class ModelRecord:
    """Where a model lives in MLflow: its LoggedModel and, when registered, its version."""

    model_id: str | None
    name: str | None = None
    version: str | None = None

    @property
    def registered_uri(self) -> str | None:
        return f"models:/{self.name}/{self.version}" if self.name and self.version else None


def _model_id_of(version: Any) -> str | None:
    """The LoggedModel of a registered version: its ``model_id``, which the SQL registry leaves empty,
    else its source URI ``models:/<model id>``."""
    if version.model_id:
        return str(version.model_id)
    source = str(version.source or "")
    rest = source[len("models:/") :] if source.startswith("models:/") else ""
    return rest if rest and "/" not in rest and "@" not in rest else None


def _version_of(client: Any, model_id: str, run_id: str | None) -> tuple[str | None, str | None]:
    """The registered (name, version) made from a LoggedModel, found through its source run."""
    if not run_id:
        return None, None
    versions = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if _model_id_of(v) == model_id]
    if not versions:
        return None, None
    newest = max(versions, key=lambda v: int(v.version))
    return newest.name, str(newest.version)


def _registry_version(client: Any, rest: str) -> Any:
    """The ModelVersion of ``name/N``, ``name/latest`` or ``name@alias``."""
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, version = rest.rsplit("/", 1)
    if version == "latest":
        return max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    return client.get_model_version(name, version)


def find_model_record(source: str, generator_file: Path | None) -> ModelRecord | None:
    """The LoggedModel (and registered version) behind an evaluated model, or None when it was never logged.

    ``models:/`` URIs are looked up in the registry; a ``runs:/`` URI, a generator file or a
    training output folder by the sha256 of the generator file, which the training export tags.
    """
    tracking.configure()
    client = mlflow.MlflowClient()
    try:
        if source.startswith("models:/"):
            rest = source[len("models:/") :].strip("/")
            if "@" in rest or "/" in rest:
                mv = _registry_version(client, rest)
                return ModelRecord(_model_id_of(mv), mv.name, str(mv.version))
            logged = client.get_logged_model(rest)
            return ModelRecord(logged.model_id, *_version_of(client, logged.model_id, logged.source_run_id))
        if generator_file is None or not Path(generator_file).is_file():
            return None
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return None
        found = client.search_logged_models(
            experiment_ids=experiments, filter_string=f"tags.{SHA_TAG} = '{file_sha256(Path(generator_file))}'",
            order_by=[{"field_name": "creation_timestamp", "ascending": False}], max_results=1,
        )
    except mlflow.exceptions.MlflowException:
        return None
    if not found:
        return None
    logged = found[0]
    return ModelRecord(logged.model_id, *_version_of(client, logged.model_id, logged.source_run_id))


def _description(tags: dict[str, str]) -> str:
    """One line per evaluated scope (split or benchmark), rebuilt from the version's ``eval.*`` tags."""
    scopes = sorted({k.split(".")[1] for k in tags if k.startswith("eval.") and k.count(".") >= 2})
    lines = []
    for scope in scopes:
        def tag(key: str) -> str | None:
            return tags.get(f"eval.{scope}.{key}")

        parts = []
        for metric in (METRIC_TABLE[name] for name in metric_names(grey=False)):
            value, gain = tag(f"model.{metric.name}"), tag(f"model_minus_bicubic.{metric.name}")
            if value is not None:
                text = f"{metric.label} {metric.fmt.format(float(value))}"
                parts.append(text + (f" ({float(gain):+.3g} vs bicubic)" if gain is not None else ""))
        where = f"dataset {tag('dataset_hash')}, " if tag("dataset_hash") else ""
        lines.append(f"- {scope} ({where}{tag('n_images') or '?'} images, evaluate run {tag('run_id')}): " + ", ".join(parts))
    return "Evaluations (oct-srgan evaluate):\n" + "\n".join(lines) if lines else ""


def record_evaluation(record: ModelRecord, scope: str, metrics: dict[str, float], info: dict[str, str],
                      set_alias: bool) -> None:
    """Write an evaluation onto the registered version: ``eval.<scope>.*`` tags, a description listing
    every evaluated scope and, when ``set_alias``, the ``evaluated`` alias (the LoggedModel's metrics
    are logged by the evaluate run itself, with ``model_id``)."""
    if not (record.name and record.version):
        return
    client = mlflow.MlflowClient()
    for key, value in {**{k: f"{v:.6g}" for k, v in metrics.items()}, **info}.items():
        client.set_model_version_tag(record.name, record.version, f"eval.{scope}.{key}", str(value))
    tags = dict(client.get_model_version(record.name, record.version).tags)
    client.update_model_version(record.name, record.version, description=_description(tags))
    if set_alias:
        client.set_registered_model_alias(record.name, EVALUATED_ALIAS, record.version)
