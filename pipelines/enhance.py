"""``oct-srgan enhance``: super-resolve whole scans and write each back in its own format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from oct_srgan.limits import DEFAULT_MAX_PIXELS
from oct_srgan.enums import InferencePrecision
from oct_srgan.pipelines.common import fail, user_errors
from oct_srgan.pipelines.options import SHIPPED_NAMES, max_pixels_option, overlap_option, tile_option

app = typer.Typer(add_completion=False)


@app.command()
@user_errors
def enhance(
    inputs: list[Path] = typer.Argument(..., help="Scan files or folders (DICOM, NIfTI, PNG/TIFF/JPEG/BMP, scanner exports .vol/.e2e/.fds/.fda/.img/.oct)."),
    out: Path = typer.Option(Path("enhanced"), "--out", "-o", help="Output folder, or the output file (e.g. out.dcm) for one input file of that format."),
    suffix: str = typer.Option("_sr", "--suffix", help="Appended to each input's name for its output in the folder (scan.dcm -> scan_sr.dcm)."),
    model: str = typer.Option("default", "--model", "-m", help="Checkpoint, generator file, runs:/… or models:/… URI, or a shipped model: " + SHIPPED_NAMES + "."),
    tile: Optional[int] = tile_option(None, help="Tile side in LR pixels (0 = whole B-scans; default: whole B-scans when they fit in memory)."),
    overlap: Optional[int] = overlap_option(None, help="Tile overlap in LR pixels (blended; at most half the tile; default 32, capped at half the tile)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Tiles per forward pass when a B-scan is tiled."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    precision: InferencePrecision = typer.Option(InferencePrecision.AUTO, "--precision", help="auto | fp32 | bf16 (auto: bf16 only with native bf16 and 8-bit output; bf16 ~7.5e-3 max error)."),
    fidelity: float = typer.Option(0.0, "--fidelity", min=0.0, max=1.0, help="0-1: put back this much of what the output misses of the input at scales coarser than speckle (lesions, grey levels); 0 = the model as trained."),
    compare: bool = typer.Option(False, "--compare", help="Also write a bicubic | SR side-by-side PNG."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar (it counts tiles, or B-scans when untiled, then each B-scan written)."),
    max_pixels: int = max_pixels_option(DEFAULT_MAX_PIXELS, help="Largest decoded scan (samples over all B-scans) read; 0 = no limit."),
) -> None:
    """Super-resolve scans 4x, keeping format, bit depth and geometry (spacing / affine updated)."""
    from tqdm import tqdm

    from oct_srgan.devices import resolve_device
    from oct_srgan.inference import DEFAULT_OVERLAP, enhance_files
    from oct_srgan.inference.distributed import gather, share_from_env

    for p in inputs:
        if not p.exists():
            raise fail(f"{p}: input path does not exist")
    share = share_from_env()
    dev = resolve_device(device, share.local_rank)
    no_progress = no_progress or share.rank != 0  # one bar, not one per rank over each other
    bars: dict[Path, tqdm] = {}

    def start(path: Path, total: int, unit: str) -> None:
        for old in bars.values():
            old.close()
        bars[path] = tqdm(total=total, desc=path.name[:40], unit=unit, disable=no_progress, dynamic_ncols=True)

    def progress(path: Path, done: int, total: int) -> None:
        bar = bars[path]
        bar.update(done - bar.n)

    report = enhance_files(
        inputs, out, model, tile="auto" if tile is None else tile or None,
        overlap=DEFAULT_OVERLAP if overlap is None else overlap, batch_size=batch_size, device=dev,
        fidelity=fidelity, precision=precision.value, overwrite=overwrite, compare=compare, progress=progress, on_start=start,
        max_pixels=max_pixels or None, suffix=suffix,
        notify=lambda line: tqdm.write(share.label + line, file=sys.stderr), share=share,
    )
    for bar in bars.values():
        bar.close()
    for src, reason in report.skipped:
        typer.echo(f"{share.label}skipped: {reason}", err=True)
    for src, dst in report.written:
        typer.echo(f"{share.label}{src} -> {dst}")
    for path in report.comparisons:
        typer.echo(f"{share.label}comparison: {path}")
    counts = gather((len(report.written), len(report.skipped)), share)
    written, skipped = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if not written:
        raise fail(f"nothing was enhanced ({skipped} input(s) skipped)", 1)
    if share.rank == 0:
        ranks = f" by {share.world} ranks" if share.world > 1 else ""
        typer.echo(f"{written} scan(s) enhanced x{report.model.scale} with {report.model.source} into {out}{ranks}")
    sys.stdout.flush()
