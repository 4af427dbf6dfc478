"""``oct-srgan evaluate``: PSNR/SSIM/MS-SSIM of a model against bicubic and nearest, logged to MLflow."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from oct_srgan.pipelines.common import Precision, user_errors

if TYPE_CHECKING:
    from oct_srgan.mlflow_model import ModelRecord

app = typer.Typer(add_completion=False)
# Rows of the summary whose means are also recorded on the evaluated model.
HEADLINE_METHODS = ("model", "model_minus_bicubic")


def _data_root() -> Path:
    return Path(os.environ.get("OCT_SRGAN_DATA", "../shared/data"))


def _model_record(model: str, local: Path | None) -> ModelRecord | None:
    """The MLflow LoggedModel / registered version the evaluated weights (read from ``local``) came from, if any."""
    from oct_srgan.errors import ModelError
    from oct_srgan.mlflow_model import find_model_record

    try:
        return find_model_record(model, None if model.startswith("models:/") else local)
    except ModelError:
        return None


def model_label(model: str) -> str:
    """A short file-name-safe name of the model argument, so two models never share an output folder."""
    text = model.rstrip("/")
    if "://" not in text and ":/" not in text:
        path = Path(text)
        text = f"{path.parent.name}-{path.stem}" if path.parent.name not in ("", ".") else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "model"


@app.command()
@user_errors
def evaluate(
    model: str = typer.Option(
        "default", "--model", "-m",
        help="Checkpoint, generator file, training output folder, runs:/… or models:/… URI (models:/oct-srgan/3, models:/oct-srgan@evaluated), or 'default'.",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder from 'oct-srgan preprocess'."),
    split: str = typer.Option("test", "--split", help="Split of --data to evaluate."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="set5 | set14 | folder of RGB images (paper protocol)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for tables and figures (default outputs/evaluate/<name>)."),
    tile: int = typer.Option(128, "--tile", help="Tile side in LR pixels (0 = whole images)."),
    overlap: int = typer.Option(32, "--overlap", help="Tile overlap in LR pixels (at most half the tile)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help="fp32 | bf16"),
    limit: int = typer.Option(0, "--limit", help="Evaluate only the first N images (0 = all)."),
    extractor_weights: Optional[str] = typer.Option(None, "--extractor-weights", help="VGG19 weights for the content distance (default: torch hub cache)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder's tables and figures."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Score a model on every full B-scan of a split (or a natural-image benchmark) against bicubic."""
    from tqdm import tqdm

    from oct_srgan import tracking
    from oct_srgan.data import check_model_degradation, eval_items, open_dataset
    from oct_srgan.evaluation import (
        benchmark_folder,
        benchmark_items,
        evaluate as run_evaluation,
        methods_for,
        optional_extractor,
    )
    from oct_srgan.errors import DataError
    from oct_srgan.inference import SRInferer
    from oct_srgan.loading import load_model
    from oct_srgan.devices import resolve_device

    if (data is None) == (benchmark is None):
        raise DataError("give exactly one of --data DIR or --benchmark set5|set14|PATH")
    model_dir = Path(model).expanduser()
    if ":/" not in model and model_dir.is_dir() and (model_dir / "generator.pt").is_file():
        model = str(model_dir / "generator.pt")
    dev = resolve_device(device)
    loaded = load_model(model, dev)
    record = _model_record(model, loaded.file)
    inferer = SRInferer(loaded, tile=tile or None, overlap=overlap, device=dev, precision=precision.value)
    scale = loaded.scale
    tags: dict[str, str] = {"model_source": loaded.source, "device": str(dev)}
    if record is not None and record.model_id:
        tags["model_id"] = record.model_id
    if record is not None and record.registered_uri:
        tags["registered_model"] = record.registered_uri
    if data is not None:
        dataset = open_dataset(data)
        if dataset.scale != scale or dataset.axes != loaded.axes:
            raise DataError(f"{data}: dataset is x{dataset.scale} ({dataset.axes}) but the model is x{scale} ({loaded.axes})")
        check_model_degradation(dataset, loaded.meta, loaded.source)
        items = eval_items(dataset, split, limit)
        name, protocol, scope = f"{split}-{dataset.dataset_hash[:8]}", "oct", split
        tags["dataset_hash"] = dataset.dataset_hash
        shave, y_channel, bits = scale, False, None
    else:
        folder = benchmark_folder(benchmark, _data_root())
        items = benchmark_items(folder, scale)[: limit or None]
        name, protocol = f"benchmark-{folder.name.lower()}", "srgan-paper"
        scope = name
        shave, y_channel, bits = 4, True, 8
    name = f"{name}-{model_label(model)}"
    out = out or Path("outputs") / "evaluate" / name
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: output folder exists (results of an earlier evaluation); pass --overwrite to replace it or choose another --out")
    extractor, extractor_note = optional_extractor(extractor_weights, loaded.channels)
    methods = methods_for(inferer)
    bar = tqdm(total=len(items), desc="evaluate", unit="img", disable=no_progress, dynamic_ncols=True)

    def step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    with tracking.run("evaluate", f"evaluate-{name}", tags=tags) as run:
        lineage = tracking.log_dataset_splits(dataset.manifest, dataset.dataset_hash, (split,)).get(split) if data else None
        result = run_evaluation(
            items, methods, out, shave=shave, y_channel=y_channel, quantize_bits=bits, extractor=extractor,
            title=name, progress=step,
        )
        bar.close()
        tracking.log_params({
            "model": loaded.source, "model.scale": scale, "model.upsample_axes": loaded.axes,
            "model.train_run_id": loaded.meta.get("run_id", "unknown"), "protocol": protocol, "split": split if data else "-",
            "benchmark": benchmark or "-", "n_images": len(items), "shave": shave, "y_channel": y_channel,
            "tile": tile, "overlap": overlap, "precision": precision.value, "content_extractor": extractor_note[:250],
        })
        tracking.log_params({"target": result.target})
        headline: dict[str, float] = {}
        for target_name, table in result.summaries.items():
            prefix = "" if target_name == result.target else f"{target_name}."
            metrics = {
                f"{prefix}{r.method.replace(' - ', '_minus_')}.{r.metric}": float(r.mean)
                for r in table.itertuples() if r.mean == r.mean
            }
            if target_name == result.target:
                headline = {k: v for k, v in metrics.items() if k.split(".")[0] in HEADLINE_METHODS}
            tracking.log_metrics({k: v for k, v in metrics.items() if k not in headline}, dataset=lineage)
        # The headline numbers also go on the LoggedModel (and are linked to the evaluated split).
        tracking.log_metrics(headline, model_id=record.model_id if record else None, dataset=lineage)
        for key, path in result.files.items():
            tracking.log_artifact(path, "figures" if path.suffix == ".png" else "tables")
    if record is not None and headline:
        from oct_srgan.mlflow_model import record_evaluation

        details = {"run_id": run.info.run_id, "n_images": str(len(items)), "target": result.target}
        if data:
            details["dataset_hash"] = dataset.dataset_hash
        record_evaluation(record, scope, headline, details, set_alias=bool(data) and split == "test")
    typer.echo((out / "summary.md").read_text())
    if extractor is None:
        typer.echo(extractor_note.split(":")[0])
    for target_name, table in result.summaries.items():
        def mean(method: str, metric: str) -> float:
            return float(table[(table["method"] == method) & (table["metric"] == metric)]["mean"].iloc[0])

        gain = table[(table["method"] == "model - bicubic") & (table["metric"] == "psnr")].iloc[0]
        label = "clean reference" if target_name == "reference" else "own noisy scan" if result.target == "reference" else "HR"
        typer.echo(
            f"against the {label}: model {mean('model', 'psnr'):.2f} dB / SSIM {mean('model', 'ssim'):.3f} vs bicubic "
            f"{mean('bicubic', 'psnr'):.2f} dB / {mean('bicubic', 'ssim'):.3f} (gain {gain['mean']:+.2f} dB, 95% CI over "
            f"B-scans [{gain['ci_low']:+.2f}, {gain['ci_high']:+.2f}]) on {len(items)} images"
        )
    typer.echo(f"tables and figures in {out}; MLflow run {run.info.run_id}")
    if record is not None and record.registered_uri:
        alias = " (alias @evaluated)" if data and split == "test" else ""
        typer.echo(f"metrics recorded on {record.registered_uri}{alias}")
