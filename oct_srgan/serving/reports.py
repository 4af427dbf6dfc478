"""What the page is told as JSON: a scan's progress, a B-scan's scores and the model box."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..loading import LoadedModel
from ..metric_table import metric_names
from .errors import UserError
from .jobs import Upload
from .panels import DIFF_PERCENTILE

MB = 1024 * 1024


def finite(value: float) -> float | None:
    """``value``, or None (JSON null) when it is not finite."""
    return float(value) if math.isfinite(value) else None


def progress(upload: Upload) -> dict[str, Any]:
    """The scan's job state, its finished B-scans (shown as soon as each is done) and whether it can be downloaded."""
    job = upload.job
    if job is None:
        return {"state": "idle", "mode": None, "done": 0, "total": int(upload.scan.pixels.shape[0]),
                "finished": [], "diff_scale": [], "error": None, "download": False}
    return {"state": job.state, "mode": job.mode, "done": job.done, "total": job.total,
            "finished": job.finished(), "diff_scale": list(job.diff_scale), "error": job.error,
            "download": job.mode == "enhance" and job.output is not None and job.state == "done"}


def scores(upload: Upload, k: int, shave: int) -> dict[str, Any]:
    """B-scan ``k``'s headline metrics (PSNR/SSIM) of bicubic and SR and their means over the B-scans done
    (check mode only), and what they were scored against: ``"self"`` (the upload's own noisy scan) or
    ``"reference"``."""
    job = upload.job
    if job is None or job.mode != "check":
        raise UserError(409, "metrics exist in check mode only (process the scan with mode=check)")
    if not 0 <= k < job.total:
        raise UserError(404, f"B-scan {k} does not exist (the scan has {job.total})")
    done = [s for s in job.scores if s is not None]
    mean = {
        name: {m: _mean([s[name][m] for s in done]) for m in metric_names(headline=True)} for name in ("bicubic", "sr")
    } if done else None
    return {"k": k, "scores": job.scores[k], "mean": mean, "n_done": len(done), "shave": shave,
            "target": "reference" if job.reference is not None else "self"}


def model_info(model: LoadedModel, *, max_bytes: int) -> dict[str, Any]:
    """The model box: source, geometry, the model card's numbers (non-finite ones as null) and the upload limit."""
    meta = model.meta or {}
    evaluation = meta.get("evaluation") if isinstance(meta, dict) else None
    card = None
    if isinstance(evaluation, dict):
        card = {str(k): (finite(v) if isinstance(v, float) else v) for k, v in evaluation.items()
                if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    return {"source": model.source, "scale": model.scale, "upsample_axes": model.axes,
            "channels": model.channels, "card": card, "card_target": _card_target(meta),
            "diff_percentile": DIFF_PERCENTILE, "max_upload_mb": max_bytes / MB}


def _card_target(meta: Any) -> str | None:
    """What the model card's numbers were scored against ("reference": clean registered averages,
    "self": the noisy scans), as far as the meta says, else None. The evaluation's own ``target``
    counts first. Without it, a model trained on references whose card evaluated that same dataset
    was scored against them: training on references needs a dataset that has them, and model_card.py
    scores the test split against the references whenever the dataset has them."""
    if not isinstance(meta, dict) or not isinstance(meta.get("evaluation"), dict):
        return None
    evaluation = meta["evaluation"]
    target = evaluation.get("target")
    if target in ("reference", "self"):
        return target
    same_data = bool(evaluation.get("dataset_hash")) and evaluation.get("dataset_hash") == meta.get("dataset_hash")
    return "reference" if same_data and meta.get("target") == "reference" else None


def _mean(values: list[float | None]) -> float | None:
    finite_values = [v for v in values if v is not None]
    return float(np.mean(finite_values)) if finite_values else None
