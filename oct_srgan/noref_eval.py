"""``oct-srgan evaluate --scans``: a model on native scans that have no reference, beside bicubic and linear.

Every B-scan of every scan is upscaled at its native resolution by the model, bicubic and linear
interpolation, and each output is judged against its own input with the no-reference measures of
:mod:`oct_srgan.noref` (consistency, background shift, focus contrast kept). Tables and figures go
in one folder and, when tracked, into an MLflow run. Images are named by keyed hashes of their
source files, never by file names or patient identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oct_srgan import io as scan_io
from oct_srgan.errors import DataError
from oct_srgan.evaluation import EvalOptions, ModelUnderTest, model_label
from oct_srgan.figures import enhance_comparison, save_figure
from oct_srgan.fsutil import atomic_path
from oct_srgan.metrics import summarize
from oct_srgan.noref import MEASURES, measure
from oct_srgan.scaling import scale_factors
from oct_srgan.splitting import dataset_key, keyed_id
from oct_srgan.transforms import upscale_bicubic, upscale_linear

BASELINES = ("bicubic", "linear")


@dataclass
class NoRefEvaluation:
    """The per-image rows (id, scan, method, measures), their summary and where everything went."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    out: Path
    files: dict[str, Path]
    run_id: str | None = None

    def mean(self, method: str, name: str) -> float:
        sel = self.summary[(self.summary["method"] == method) & (self.summary["metric"] == name)]
        return float(sel["mean"].iloc[0]) if len(sel) else float("nan")

    def report(self) -> list[str]:
        """The lines ``oct-srgan evaluate --scans`` prints."""
        n = self.rows["id"].nunique()
        lines = [f"{n} B-scans from {self.rows['scan'].nunique()} scans, judged against their own input:"]
        for method in ("model", *BASELINES):
            lines.append(f"  {method:8s} " + ", ".join(f"{label.split(' (')[0]} {self.mean(method, key):.2f} {unit}"
                                                       for key, (label, unit) in MEASURES.items()))
        lines.append(f"tables and figures in {self.out}" + (f"; MLflow run {self.run_id}" if self.run_id else ""))
        return lines


def scan_items(inputs: list[Path], limit: int = 0) -> list[dict[str, Any]]:
    """Every B-scan of the scans under ``inputs``: ``{"id", "scan", "lr" [H, W]}``, ids keyed hashes."""
    files = scan_io.find_scans(inputs)
    if not files:
        raise DataError(f"{', '.join(map(str, inputs))}: no scans found")
    key = dataset_key(files)
    items = []
    for path in files:
        scan = scan_io.read_scan(path)
        scan_id = keyed_id(key, "scan", str(path.resolve()), 10)
        for index, bscan in enumerate(scan.pixels):
            items.append({"id": f"{scan_id}_{index:03d}", "scan": scan_id, "lr": np.asarray(bscan, dtype=np.float32)})
    return items[: limit or None]


def _outputs(model: ModelUnderTest, options: EvalOptions, lr: np.ndarray) -> dict[str, np.ndarray]:
    """The model's, bicubic's and linear's upscaling of one B-scan [H, W], clipped to [0, 1]."""
    loaded = model.model
    x = torch.from_numpy(np.ascontiguousarray(lr))[None, None]
    with torch.no_grad():
        made = {
            "model": model.inferer(options)(x),
            "bicubic": upscale_bicubic(x, loaded.scale, loaded.axes),
            "linear": upscale_linear(x, loaded.scale, loaded.axes),
        }
    return {name: t[0, 0].detach().float().cpu().clamp(0, 1).numpy() for name, t in made.items()}


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    return path


def summary_markdown(summary: pd.DataFrame) -> str:
    """One row per method: each measure's mean ± sd over B-scans."""
    lines = ["| method | " + " | ".join(label for label, _ in MEASURES.values()) + " |",
             "|---|" + "---|" * len(MEASURES)]
    for method in dict.fromkeys(summary["method"]):
        cells = []
        for key in MEASURES:
            sel = summary[(summary["method"] == method) & (summary["metric"] == key)]
            cells.append(f"{sel['mean'].iloc[0]:.2f} ± {sel['std'].iloc[0]:.2f}" if len(sel) else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def score_scans(model: ModelUnderTest, items: list[dict[str, Any]], out: Path, options: EvalOptions) -> NoRefEvaluation:
    """Measure every method on every item; write per_image.csv, summary.csv/.md and comparison figures."""
    loaded = model.model
    factors = scale_factors(loaded.scale, loaded.axes)
    rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    out.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(items):
        made = _outputs(model, options, item["lr"])
        for method, output in made.items():
            rows.append({"id": item["id"], "scan": item["scan"], "method": method, **measure(item["lr"], output, factors)})
        if i < options.figures:
            fig = enhance_comparison(item["lr"], made["model"], loaded.scale, loaded.axes,
                                     title=f"B-scan {item['id']}: input | bicubic | {model_label(model.name)}")
            files[f"compare_{i}"] = save_figure(fig, out / f"compare_{i}_{item['id']}.png", dpi=90)
    table = pd.DataFrame(rows)
    summary = summarize(table, baseline="bicubic", method="model", metrics=list(MEASURES))
    wide = table.pivot(index="id", columns="method", values=list(MEASURES))
    wide.columns = [f"{name}_{method}" for name, method in wide.columns]
    files["per_image"] = _write_csv(wide.reset_index(), out / "per_image.csv")
    files["summary"] = _write_csv(summary, out / "summary.csv")
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(f"## No-reference measures ({table['id'].nunique()} B-scans, each against its own input)\n\n"
                       + summary_markdown(summary))
    files["summary_md"] = out / "summary.md"
    return NoRefEvaluation(table, summary, out, files)


def evaluate_scans(model: ModelUnderTest, inputs: list[Path], options: EvalOptions = EvalOptions()) -> NoRefEvaluation:
    """Judge ``model`` on the native scans under ``inputs`` (files or folders), tracked in MLflow when asked."""
    if not model.model.takes_grey:
        raise DataError(f"model {model.model.source}: takes {model.model.channels} channels; --scans needs a grey model")
    items = scan_items(inputs, options.limit)
    out = options.out or Path("outputs") / "evaluate" / f"scans-{model_label(model.name)}"
    if out.exists() and any(out.iterdir()) and not options.overwrite:
        raise DataError(f"{out}: output folder exists (results of an earlier evaluation); pass --overwrite to replace it or choose another --out")
    if not options.track:
        return score_scans(model, items, out, options)
    from oct_srgan import tracking

    loaded = model.model
    with tracking.run("evaluate", f"evaluate-scans-{model_label(model.name)}",
                      tags={"model_source": loaded.source, "device": str(model.device)}) as run:
        tracking.log_params({"model": loaded.source, "model.scale": loaded.scale, "model.upsample_axes": loaded.axes,
                             "protocol": "noref", "n_images": len(items), "n_scans": len({it["scan"] for it in items}),
                             "tile": options.tile, "overlap": options.overlap, "precision": model.precision})
        result = score_scans(model, items, out, options)
        tracking.log_metrics({f"noref.{r.method.replace(' - ', '_minus_')}.{r.metric}": float(r.mean)
                              for r in result.summary.itertuples() if r.mean == r.mean})
        for path in result.files.values():
            tracking.log_artifact(path, "figures" if path.suffix == ".png" else "tables")
    result.run_id = run.info.run_id
    return result
