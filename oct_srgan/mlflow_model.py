"""The generator as an MLflow model (pyfunc), so ``mlflow models serve`` and the registry work.

The weights travel as the portable generator file (an artifact of the model), never as a pickled
module: our own inference downloads the artifacts and reads that file with
``torch.load(weights_only=True)``; the pyfunc wrapper only holds code, imported from the installed
``oct_srgan`` package.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from . import tracking
from .checkpoint import load_generator_file
from .errors import ModelError

ARTIFACT_KEY = "generator"
MODEL_NAME = "model"


class OctSrganModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: float32 [N, 1, h, w] in [0, 1] → float32 [N, 1, H, W] clamped to [0, 1]."""

    # Inputs are checked against the tensor signature given at logging time; this tells MLflow not to
    # look for type hints on ``predict`` (it otherwise warns on every import and log).
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        from .models import build_generator

        state_dict, spec, _ = load_generator_file(context.artifacts[ARTIFACT_KEY])
        self.generator = build_generator(spec).eval()
        self.generator.load_state_dict(state_dict)

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if x.ndim != 4:
            raise ValueError(f"expected an array [N, C, h, w], got shape {tuple(x.shape)}")
        with torch.inference_mode():
            y = self.generator(x).clamp_(0.0, 1.0)
        return y.numpy()


def _signature(in_channels: int) -> ModelSignature:
    """Any batch and spatial size: a signature inferred from one example would pin them."""
    spec = TensorSpec(np.dtype(np.float32), (-1, in_channels, -1, -1))
    return ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))


def _requirements() -> list[str]:
    pins = []
    for dist in ("torch", "monai", "numpy", "mlflow"):
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(dist)
    return pins + ["oct-srgan"]


def log_generator_model(
    generator_file: Path,
    registered_name: str | None,
    input_example: np.ndarray,
    stage: str,
) -> str:
    """Log the generator file as a pyfunc model in the active run; register it when a name is given.

    Returns the model URI (``models:/<name>/<version>`` when registered, else the logged model's URI).
    """
    generator_file = Path(generator_file)
    _, spec, _ = load_generator_file(generator_file)
    info = mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=OctSrganModel(),
        artifacts={ARTIFACT_KEY: str(generator_file)},
        signature=_signature(int(spec.get("in_channels", 1))),
        input_example=np.asarray(input_example, dtype=np.float32),
        pip_requirements=_requirements(),
        registered_model_name=registered_name,
        tags={"stage": stage},
    )
    if registered_name and info.registered_model_version is not None:
        version = str(info.registered_model_version)
        mlflow.MlflowClient().set_model_version_tag(registered_name, version, "stage", stage)
        return f"models:/{registered_name}/{version}"
    return info.model_uri


def download_generator_file(model_uri: str, dst: Path | None = None) -> Path:
    """Download an MLflow model's artifacts and return the generator file inside them."""
    tracking.configure()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst) if dst else None))
    except Exception as exc:  # MLflow raises several unrelated types for a bad URI
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model_uri}: cannot download MLflow model ({first})") from None
    found = sorted((local / "artifacts").glob(f"{ARTIFACT_KEY}*.pt")) or sorted(local.rglob(f"{ARTIFACT_KEY}*.pt"))
    if not found:
        raise ModelError(f"{model_uri}: MLflow model has no artifacts/{ARTIFACT_KEY}*.pt file")
    return found[0]
