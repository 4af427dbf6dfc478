"""The MLflow run of ``preprocess``: the dataset's params (counts and options), its splits as MLflow
datasets, the manifest, ``dataset.json`` and the preview, logged through ``tracking`` like every stage.

Only hashes, counts and options are recorded: group folders name subjects, so joined groups reach
the run as a count, never by name.
"""

from __future__ import annotations

from oct_srgan import tracking
from oct_srgan.prepare import SPLITS, PrepareOptions, PrepareReport


def log_preparation(report: PrepareReport, options: PrepareOptions) -> str:
    """Log a finished ``prepare_dataset`` as one ``preprocess`` run; its run id."""
    with tracking.run("preprocess", f"preprocess-{report.dataset_hash[:8]}",
                      tags={"dataset_hash": report.dataset_hash}) as active:
        tracking.log_params(tracking_params(report, options))
        tracking.log_dataset_splits(report.manifest, report.dataset_hash)
        tracking.log_artifact(report.out / "manifest.csv", "dataset")
        tracking.log_artifact(report.out / "dataset.json", "dataset")
        if report.preview is not None:
            tracking.log_artifact(report.preview, "figures")
    return str(active.info.run_id)


def tracking_params(report: PrepareReport, options: PrepareOptions) -> dict[str, object]:
    """The params logged for a preprocess run: counts and options, no names or paths."""
    m = report.manifest
    params: dict[str, object] = {
        "scale": options.scale,
        "seed": options.seed,
        "folds": options.folds,
        "fold": options.fold,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "group_pattern": options.group_pattern or "parent-folder",
        "bscan_axis": options.bscan_axis if options.bscan_axis is not None else "auto",
        "degradation.mode": options.degradation.mode,
        "degradation.axes": options.degradation.axes,
        "degradation.speckle": options.degradation.speckle,
        "n_scans": int(m["scan_id"].nunique()),
        "n_bscans": len(m),
        "n_groups": int(m["group_id"].nunique()),
        "n_skipped": len(report.skipped),
        "reference": "yes" if options.reference else "no",
        "n_bscans_with_reference": int((m["ref_path"] != "").sum()),
        "register": options.register if options.reference else "n/a",
        "intensity_match": options.intensity_match if options.reference else "n/a",
        "ref_gain_range": (f"{m['ref_gain'].min():.3f}-{m['ref_gain'].max():.3f}" if len(m) else "n/a"),
        "max_abs_ref_shift_px": int(m[["ref_shift_y", "ref_shift_x"]].abs().to_numpy().max()) if len(m) else 0,
        "n_joined_group_pairs": len(report.joined),
    }
    for s in SPLITS:
        part = m[m["split"] == s]
        params[f"n_bscans.{s}"] = len(part)
        params[f"n_groups.{s}"] = int(part["group_id"].nunique())
    return params
