"""The generator as an MLflow model (pyfunc), so ``mlflow models serve`` works: the wrapper and its
input checks. Logging and registering it is ``model_registry``; fetching it back, ``model_download``.

The weights travel as the portable generator file (an artifact of the model), never as a pickled
module: the wrapper only holds code and reads that file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from .inference import SRInferer
from .loading import load_model
from .model_download import ARTIFACT_KEY


class OctSrganModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: float32 [N, C, h, w] in [0, 1] → float32 [N, C, H, W] clamped to [0, 1].

    Large inputs are tiled by :class:`oct_srgan.inference.SRInferer` (tiles sized to the memory
    budget), so a whole B-scan or volume stack does not exhaust a server's memory. The generator
    runs as trained (no BatchNorm folding, NCHW), in float32.
    """

    # Inputs are checked against the tensor signature given at logging time; this tells MLflow not to
    # look for type hints on ``predict`` (it otherwise warns on every import and log).
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.model = load_model(context.artifacts[ARTIFACT_KEY])
        self.inferer = SRInferer(self.model, tile="auto", fold_bn=False, channels_last=False)

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        x = check_input(model_input, self.model.channels)
        return self.inferer(torch.from_numpy(x)).numpy()


def check_input(model_input: Any, in_channels: int) -> np.ndarray:
    """The input as float32 [N, C, h, w]; a wrong shape, NaN/inf or values outside [0, 1] are a ValueError.

    The generator was trained on intensities scaled to [0, 1]; 8/16-bit counts or NaN would give
    silently wrong images, so they are refused with a message saying what was found.
    """
    x = np.asarray(model_input, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != in_channels or x.size == 0:
        raise ValueError(f"expected a non-empty float array [N, {in_channels}, h, w], got shape {tuple(x.shape)}")
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"input holds {int((~finite).sum())} NaN or infinite value(s); expected intensities in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"input values must lie in [0, 1] (intensities divided by the bit depth's maximum), "
                         f"found [{lo:.6g}, {hi:.6g}]")
    return np.ascontiguousarray(x)


def signature(in_channels: int) -> ModelSignature:
    """Any batch and spatial size: a signature inferred from one example would pin them."""
    spec = TensorSpec(np.dtype(np.float32), (-1, in_channels, -1, -1))
    return ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
