"""``oct-srgan preprocess``: scan files → split-by-subject dataset of HR/LR PNGs + manifest, logged to MLflow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from oct_srgan.pipelines.common import user_errors

app = typer.Typer(add_completion=False)


@app.command()
@user_errors
def preprocess(
    inputs: list[Path] = typer.Argument(..., help="Scan files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="Fraction of groups (subjects) for validation."),
    test_fraction: float = typer.Option(0.15, "--test-fraction", help="Fraction of groups (subjects) for test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the group split and of LR speckle."),
    folds: int = typer.Option(0, "--folds", help="Cross-validation: split the train+val groups into this many folds (the plain split's test groups are left out)."),
    fold: int = typer.Option(0, "--fold", help="Cross-validation: the fold (0-based) that becomes the test split."),
    scale: int = typer.Option(4, "--scale", help="Super-resolution factor of the LR pairs."),
    group_pattern: Optional[str] = typer.Option(
        None, "--group-pattern", help="Regex on the path relative to the input; group 1 (or the match) names the subject. Default: parent folder."
    ),
    bscan_axis: Optional[int] = typer.Option(None, "--bscan-axis", help="NIfTI axis that holds the B-scans (default: coarsest-sampled axis)."),
    reference: Optional[str] = typer.Option(
        None, "--reference", help="Regex on the file name stem marking each group's clean reference scan (e.g. 'average'): every scan of the group is paired with it."
    ),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Align each input B-scan to its reference by an integer translation (phase correlation) and crop both to their overlap."
    ),
    intensity_match: bool = typer.Option(
        True, "--intensity-match/--no-intensity-match",
        help="Fit each input's gain/offset against its reference (smoothed, over the retina) and record it, so training targets keep the input's grey levels.",
    ),
    degradation: str = typer.Option("bicubic", "--degradation", help="bicubic | area | decimate (strided sampling: native speckle)"),
    axes: str = typer.Option("both", "--axes", help="both | lateral (A-scan decimation only)"),
    speckle: float = typer.Option(0.0, "--speckle", help="Std of multiplicative speckle added to the LR (0 = none)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty --out."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Load OCT scans, split them by subject, write HR and 4x LR PNGs, a manifest, and an MLflow run."""
    from tqdm import tqdm

    from oct_srgan import tracking
    from oct_srgan.config import ConfigError, DegradationConfig, make
    from oct_srgan.prepare import PrepareOptions, prepare_dataset
    from oct_srgan.prepare_run import log_preparation

    deg = make(DegradationConfig, {"mode": degradation, "axes": axes, "speckle": speckle}, "degradation")
    options = PrepareOptions(
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        folds=folds,
        fold=fold,
        scale=scale,
        group_pattern=group_pattern,
        bscan_axis=bscan_axis,
        reference=reference,
        register=register,
        intensity_match=intensity_match,
        degradation=deg,
    )
    import re

    for flag, pattern in (("--group-pattern", group_pattern), ("--reference", reference)):
        try:
            if pattern:
                re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{flag} {pattern!r} is not a valid regex ({exc})") from None
    show = not no_progress

    def bar(items):  # type: ignore[no-untyped-def]
        return tqdm(items, desc="preprocess", unit="scan", disable=not show, dynamic_ncols=True)

    def on_skip(path: Path, reason: str) -> None:
        tqdm.write(f"skipped: {reason}", file=sys.stderr)

    tracking.check_store()
    report = prepare_dataset(inputs, out, options, overwrite=overwrite, progress=bar, on_skip=on_skip)
    # Folder names identify subjects: the console only, never the MLflow run (which gets the count).
    for pair in report.joined:
        typer.echo(
            f"warning: {pair.n_bscans} identical B-scan(s) in {pair.folders[0]} and {pair.folders[1]}; "
            "both groups kept in one split",
            err=True,
        )
    run_id = log_preparation(report, options)
    counts = report.counts
    typer.echo(
        f"dataset {report.dataset_hash} written to {report.out}: "
        f"{counts['train']} train / {counts['val']} val / {counts['test']} test B-scans "
        f"from {len(report.groups['train'])}/{len(report.groups['val'])}/{len(report.groups['test'])} groups"
        + (f"; {int((report.manifest['ref_path'] != '').sum())} paired with a reference" if reference else "")
        + (f"; {len(report.skipped)} file(s) skipped (see {report.out / 'skipped.csv'})" if report.skipped else "")
    )
    typer.echo(f"MLflow run {run_id} in {tracking.tracking_uri()}")
