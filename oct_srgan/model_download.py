"""An MLflow model back to a local generator file: what ``--model runs:/…`` / ``models:/…`` loads."""

from __future__ import annotations

from pathlib import Path

import mlflow

from . import tracking
from .errors import ModelError

# The artifact name of the generator file inside a logged model.
ARTIFACT_KEY = "generator"


def download_generator_file(model_uri: str, dst: Path | None = None) -> Path:
    """Download an MLflow model's artifacts (``runs:/``, ``models:/name/N``, ``models:/name@alias``,
    ``models:/m-…``) and return the generator file inside them."""
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
