"""``oct-srgan evaluate``: PSNR/SSIM/MS-SSIM of a model against bicubic and nearest, logged to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from oct_srgan.limits import DEFAULT_TILE
from oct_srgan.enums import Precision
from oct_srgan.pipelines.common import user_errors
from oct_srgan.pipelines.options import SHIPPED_NAMES, overlap_option, tile_option

app = typer.Typer(add_completion=False)


@app.command()
@user_errors
def evaluate(
    model: str = typer.Option(
        "default", "--model", "-m",
        help="Checkpoint, generator file, training output folder, runs:/… or models:/… URI (models:/oct-srgan/3, models:/oct-srgan@evaluated), or a shipped model: " + SHIPPED_NAMES + ".",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder from 'oct-srgan preprocess'."),
    split: str = typer.Option("test", "--split", help="Split of --data to evaluate."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="set5 | set14 | folder of RGB images (paper protocol)."),
    scans: Optional[List[Path]] = typer.Option(None, "--scans", help="Native scans (files or folders, any readable format) without references: no-reference measures. Repeatable."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for tables and figures (default outputs/evaluate/<name>)."),
    tile: int = tile_option(DEFAULT_TILE, help="Tile side in LR pixels (0 = whole images)."),
    overlap: int = overlap_option(32, help="Tile overlap in LR pixels (at most half the tile)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    precision: Precision = typer.Option(Precision.FP32, "--precision", help="fp32 | bf16"),
    fidelity: float = typer.Option(0.0, "--fidelity", min=0.0, max=1.0, help="Score the model with this input fidelity (see enhance --fidelity); 0 = the model as trained."),
    limit: int = typer.Option(0, "--limit", min=0, help="Evaluate only the first N images (0 = all)."),
    extractor_weights: Optional[str] = typer.Option(None, "--extractor-weights", help="VGG19 weights for the content distance (default: torch hub cache)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder's tables and figures."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Score a model on every full B-scan of a split (or a natural-image benchmark) against bicubic, or judge it on native scans without references (--scans)."""
    from oct_srgan.data import open_dataset
    from oct_srgan import tracking
    from oct_srgan.errors import DataError
    from oct_srgan.evaluation import EvalOptions, evaluate_benchmark, evaluate_split, open_model

    if sum(x is not None and x != [] for x in (data, benchmark, scans)) != 1:
        raise DataError("give exactly one of --data DIR, --benchmark set5|set14|PATH or --scans DIR_OR_FILES")
    tracking.check_store()
    options = EvalOptions(out=out, tile=tile, overlap=overlap, limit=limit, extractor_weights=extractor_weights,
                          overwrite=overwrite, progress=not no_progress, fidelity=fidelity)
    loaded = open_model(model, device, precision.value)
    if scans:
        from oct_srgan.noref_eval import evaluate_scans

        evaluation = evaluate_scans(loaded, list(scans), options)
    elif data is not None:
        evaluation = evaluate_split(loaded, open_dataset(data), split, options)
    else:
        evaluation = evaluate_benchmark(loaded, benchmark, options)
    for line in evaluation.report():
        typer.echo(line)
