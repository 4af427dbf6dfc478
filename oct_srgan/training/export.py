"""What a finished run hands on: the EMA generator as the portable file, logged (and registered) in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .. import __version__
from ..checkpoint import save_generator_file
from ..config import Config, to_dict

EXAMPLE_LR = 24


def input_example(val_items: list[dict[str, Any]], in_channels: int) -> np.ndarray:
    """A centre LR crop of the first val item for the model's signature example (grey 0.5 without one)."""
    c = in_channels
    if val_items:
        lr = val_items[0]["lr"]
        if lr.shape[0] == c and min(lr.shape[-2:]) >= EXAMPLE_LR:
            h, w = lr.shape[-2:]
            y, x = (h - EXAMPLE_LR) // 2, (w - EXAMPLE_LR) // 2
            return lr[None, :, y : y + EXAMPLE_LR, x : x + EXAMPLE_LR].float().numpy().copy()
    return np.full((1, c, EXAMPLE_LR, EXAMPLE_LR), 0.5, dtype=np.float32)


def export_generator(out_dir: Path, ema: nn.Module, spec: dict[str, Any], cfg: Config, *, step: int,
                     run_id: str | None, dataset_hash: str, metrics: dict[str, float],
                     example: np.ndarray) -> tuple[Path, str]:
    """Write ``out_dir/generator.pt`` from the EMA weights and log it as an MLflow model; returns (path, model URI)."""
    from ..model_registry import log_generator_model

    stage = cfg.train.stage
    meta = {
        "stage": stage,
        "step": step,
        "config_name": cfg.name,
        "run_id": run_id,
        "dataset_hash": dataset_hash,
        "degradation": {**to_dict(cfg.data.degradation), **({"mix": to_dict(cfg.data.mix)} if cfg.data.mix else {})},
        "intensity": {"match": cfg.data.intensity_match, "gain": cfg.data.gain, "offset": cfg.data.offset},
        "target": cfg.data.target,
        "created_with": f"oct-srgan {__version__}",
        **{k.replace("/", "_"): v for k, v in metrics.items()},
    }
    path = save_generator_file(out_dir / "generator.pt", ema.state_dict(), spec, meta)
    name = cfg.tracking.model_name if cfg.tracking.register_model else None
    model_uri = log_generator_model(path, name, example, stage)
    return path, model_uri
