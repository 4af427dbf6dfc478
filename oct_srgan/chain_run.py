"""What the parent ``chain-…`` MLflow run shows at a glance: the dataset, the trained model, the gains.

The stages run as child runs; without this the parent held only a name and a tag, and a reader had
to open every child to learn what the chain produced. Only hashes, counts and scores are recorded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from oct_srgan import tracking
from oct_srgan.data import open_dataset
from oct_srgan.errors import ModelError

# Metric on the parent run -> (method, metric) row of an evaluation's summary.csv.
HEADLINE = {
    "psnr_gain_db": ("model - bicubic", "psnr"),
    "ssim_gain": ("model - bicubic", "ssim"),
    "psnr_db": ("model", "psnr"),
    "bicubic_psnr_db": ("bicubic", "psnr"),
}


def headline_metrics(label: str, summary_csv: Path) -> dict[str, float]:
    """``<label>.<metric>`` for each :data:`HEADLINE` row found in an evaluation's summary table."""
    table = pd.read_csv(summary_csv)
    key = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
    found = {}
    for name, (method, metric) in HEADLINE.items():
        rows = table[(table["method"] == method) & (table["metric"] == metric)]
        if len(rows) and math.isfinite(float(rows["mean"].iloc[0])):
            found[f"{key}.{name}"] = float(rows["mean"].iloc[0])
    return found


def record_chain(dataset_dir: Path, evaluations: Mapping[str, Path], model_file: Path | None) -> None:
    """Log onto the active (parent) run the dataset's splits, each evaluation's headline gains and the
    trained model as the run's output (its LoggedModel and registered version, when it has them)."""
    from oct_srgan.model_registry import find_model_record

    dataset = open_dataset(dataset_dir)
    tracking.log_dataset_splits(dataset.manifest, dataset.dataset_hash)
    tags = {"dataset_hash": dataset.dataset_hash,
            "target": "clean reference" if dataset.has_references else "own scan"}
    metrics: dict[str, float] = {}
    for label, folder in evaluations.items():
        if (Path(folder) / "summary.csv").is_file():
            metrics.update(headline_metrics(label, Path(folder) / "summary.csv"))
    tracking.log_metrics(metrics)
    if model_file is not None and Path(model_file).is_file():
        try:
            record = find_model_record(str(model_file), Path(model_file))
        except ModelError:
            record = None
        if record is not None and record.model_id:
            tracking.log_model_output(record.model_id)
            tags["model_id"] = record.model_id
            if record.registered_uri:
                tags["registered_model"] = record.registered_uri
    tracking.set_tags(tags)
