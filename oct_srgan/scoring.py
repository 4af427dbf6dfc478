"""Score upscalers against their targets and write the tables and figures of one evaluation.

Every method (the model, bicubic, linear, nearest) runs once per item; its output is scored against
each of the item's targets (the clean reference and the scan itself when the dataset has
references, else the HR image), and the paired ``model - bicubic`` differences get a t-interval
over B-scans and over subjects. :mod:`oct_srgan.evaluation` chooses the items and the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from oct_srgan.errors import DataError, WeightsNotFoundError
from oct_srgan.figures import evaluation_comparison, gain_histogram, save_figure
from oct_srgan.fsutil import atomic_path
from oct_srgan.metric_table import metric_names, score
from oct_srgan.metrics import MIN_INTERVAL_UNITS, content_distance, interval_text, quantize, rgb_to_y, summarize
from oct_srgan.transforms import upscale_bicubic, upscale_linear, upscale_nearest

if TYPE_CHECKING:
    from oct_srgan.inference import SRInferer

Method = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvaluationResult:
    """Per-image rows (long format: id, method, metric columns), the summary, and written files."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    target: str = "self"
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    subject_summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    protocols: pd.DataFrame | None = None

    def mean(self, method: str, metric: str) -> float:
        return table_mean(self.summary, method, metric)


def table_mean(table: pd.DataFrame, method: str, metric: str) -> float:
    """The mean of one (method, metric) row of a summary table, NaN when it has none."""
    sel = table[(table["method"] == method) & (table["metric"] == metric)]
    return float(sel["mean"].iloc[0]) if len(sel) else float("nan")


def methods_for(inferer: SRInferer) -> dict[str, Method]:
    """The upscalers compared: the model (through ``inferer``: tiles, precision, channels), bicubic,
    linear and nearest neighbour of the same LR.

    A 1-channel (OCT) model applied to RGB images super-resolves each colour channel on its own.
    """
    scale, axes = inferer.model.scale, inferer.model.axes
    return {
        "model": inferer,
        "bicubic": lambda lr: upscale_bicubic(lr, scale, axes),
        "linear": lambda lr: upscale_linear(lr, scale, axes),
        "nearest": lambda lr: upscale_nearest(lr, scale, axes),
    }


def optional_extractor(weights: str | None, in_channels: int) -> tuple[nn.Module | None, str]:
    """The VGG19-54 content extractor when its ImageNet weights are here, else None and the reason."""
    from oct_srgan.extractors import build_extractor

    try:
        return build_extractor("vgg19", layers=["relu5_4"], weights=weights, in_channels=in_channels), "vgg19 relu5_4"
    except WeightsNotFoundError as exc:
        return None, f"content distance not computed: {exc}"


def _wide(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per image, ``<metric>_<method>`` columns, for the per-image CSV."""
    metrics = [m for m in rows.columns if m not in ("id", "method")]
    wide = rows.pivot(index="id", columns="method", values=metrics)
    wide.columns = [f"{metric}_{method}" for metric, method in wide.columns]
    return wide.reset_index()


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    return path


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: mean ± std, and the 95% interval of the differences."""
    lines = ["| method | metric | n | mean ± std | 95% CI of mean |", "|---|---|---|---|---|"]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| {r.method} | {r.metric} | {r.n} | {r.mean:.4f} ± {r.std:.4f} | {interval_text(r.ci_low, r.ci_high, r.n)} |"
        )
    return "\n".join(lines) + "\n"


def _content_rows(items: list[dict[str, Any]], methods: dict[str, Method], extractor: nn.Module) -> pd.DataFrame:
    rows = []
    with torch.no_grad():
        for item in items:
            lr, hr = item["lr"][None].float(), item["hr"][None].float()
            for name, method in methods.items():
                sr = method(lr).clamp(0, 1)
                rows.append({"id": item["id"], "method": name, "content": float(content_distance(extractor, sr, hr)[0])})
    return pd.DataFrame(rows)


def _score(sr: torch.Tensor, target: torch.Tensor, *, shave: int, y_channel: bool, oct_measures: bool) -> dict[str, float]:
    """Every metric of the table (the grey-only ones for grey OCT) of one [1, C, H, W] output against its target."""
    a, b = (rgb_to_y(sr), rgb_to_y(target)) if y_channel else (sr, target)
    return score(a, b, shave=shave, grey=oct_measures)


def _targets(item: dict[str, Any]) -> dict[str, torch.Tensor]:
    """What an item is scored against: its clean reference and its own scan, or just its HR."""
    if item.get("reference") is not None and item.get("self") is not None:
        return {"reference": item["reference"], "self": item["self"]}
    return {"self": item["hr"]}


def score_items(
    items: list[dict[str, Any]],
    methods: dict[str, Method],
    *,
    shave: int,
    y_channel: bool = False,
    quantize_bits: int | None = None,
    oct_measures: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """Long table (id, group_id, target, method, metrics): every method runs once per item, scored per target."""
    rows: list[dict[str, Any]] = []
    outputs: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for i, item in enumerate(items):
            lr = item["lr"][None].float()
            targets = {k: (quantize(v, quantize_bits) if quantize_bits else v)[None].float() for k, v in _targets(item).items()}
            outputs[item["id"]] = {}
            for name, method in methods.items():
                sr = method(lr).detach().float().cpu().clamp(0, 1)
                if quantize_bits:
                    sr = quantize(sr, quantize_bits)
                outputs[item["id"]][name] = sr[0]
                for target_name, target in targets.items():
                    if sr.shape != target.shape:
                        raise ValueError(f"{name} made {tuple(sr.shape)} for image {item['id']}, HR is {tuple(target.shape)}")
                    rows.append({
                        "id": item["id"], "group_id": item.get("group_id", item["id"]), "target": target_name,
                        "method": name,
                        **_score(sr, target, shave=shave, y_channel=y_channel, oct_measures=oct_measures),
                    })
            if progress:
                progress(i + 1, len(items))
    return pd.DataFrame(rows), outputs


def subject_summary(rows: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The summary with subjects (groups) as the independent unit: per-group means, then the t-interval."""
    grouped = rows.groupby(["group_id", "method"], sort=False)[metrics].mean().reset_index()
    return summarize(grouped.rename(columns={"group_id": "id"}), baseline="bicubic", method="model", metrics=metrics)


def evaluate_items(
    items: list[dict[str, Any]],
    methods: dict[str, Method],
    out_dir: Path,
    *,
    shave: int,
    y_channel: bool = False,
    quantize_bits: int | None = None,
    extractor: nn.Module | None = None,
    figures: int = 3,
    title: str = "",
    progress: Callable[[int, int], None] | None = None,
    oct_measures: bool | None = None,
) -> EvaluationResult:
    """Score every item with every method; write tables and figures to ``out_dir``.

    With clean references (datasets made with ``preprocess --reference``) the headline tables in
    ``out_dir`` score against the reference and ``out_dir/vs_self`` holds the same against each
    input's own noisy full-resolution scan; without references the scan itself is the only target.
    ``summary_subjects.csv`` repeats the summary with subjects, not B-scans, as the unit.
    """
    if not items:
        raise DataError("nothing to evaluate: the split or benchmark has no images")
    oct_measures = (not y_channel) if oct_measures is None else oct_measures
    out_dir.mkdir(parents=True, exist_ok=True)
    table, outputs = score_items(items, methods, shave=shave, y_channel=y_channel, quantize_bits=quantize_bits,
                                 oct_measures=oct_measures, progress=progress)
    metrics = [m for m in metric_names() if m in table.columns]
    headline = "reference" if "reference" in set(table["target"]) else "self"
    if extractor is not None:
        content = _content_rows(items, methods, extractor)
        table = table.merge(content.assign(target=headline), on=["id", "method", "target"], how="left")
        metrics.append("content")
    result = EvaluationResult(rows=table[table["target"] == headline].drop(columns="target").reset_index(drop=True),
                              summary=pd.DataFrame(), target=headline)
    targets = [(headline, out_dir)] + ([("self", out_dir / "vs_self")] if headline == "reference" else [])
    md = [line for target_name, folder in targets
          for line in _write_tables(result, table, target_name, folder, "" if folder == out_dir else "self_", metrics)]
    result.summary = result.summaries[headline]
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text("\n".join(md))
    result.files["summary_md"] = out_dir / "summary.md"
    _write_figures(result, items, outputs, out_dir, figures, title)
    return result


def _write_tables(result: EvaluationResult, table: pd.DataFrame, target_name: str, folder: Path, key: str,
                  metrics: list[str]) -> list[str]:
    """Per-image, summary and per-subject CSVs of one target into ``folder``; returns their Markdown section."""
    part = table[table["target"] == target_name].drop(columns="target")
    summary = summarize(part, baseline="bicubic", method="model", metrics=metrics)
    subjects = subject_summary(part, metrics)
    folder.mkdir(parents=True, exist_ok=True)
    result.files[f"{key}per_image"] = _write_csv(_wide(part.drop(columns="group_id")), folder / "per_image.csv")
    result.files[f"{key}summary"] = _write_csv(summary, folder / "summary.csv")
    result.files[f"{key}summary_subjects"] = _write_csv(subjects, folder / "summary_subjects.csv")
    result.summaries[target_name] = summary
    result.subject_summaries[target_name] = subjects
    label = "the clean reference (registered average)" if target_name == "reference" else "each input's own full-resolution scan"
    n_groups = part["group_id"].nunique()
    return [f"## Against {label}", "", f"Per B-scan ({part['id'].nunique()} B-scans):", "", summary_markdown(summary),
            f"Subjects as the unit ({n_groups} subjects; {_interval_note(n_groups)}):",
            "", summary_markdown(subjects)]


def _interval_note(units: int) -> str:
    if units < MIN_INTERVAL_UNITS:
        return f"too few for a 95% interval, which needs at least {MIN_INTERVAL_UNITS}"
    return f"the interval uses t with {units - 1} degrees of freedom"


def _write_figures(result: EvaluationResult, items: list[dict[str, Any]], outputs: dict[str, dict[str, torch.Tensor]],
                   out_dir: Path, figures: int, title: str) -> None:
    """Comparison figures of the best, worst and first images by PSNR gain, and the gain histogram."""
    table = result.rows
    gains = table.pivot(index="id", columns="method", values="psnr")
    order = (gains["model"] - gains["bicubic"]).sort_values()
    chosen = list(dict.fromkeys([order.index[-1], order.index[0], *order.index[: max(figures - 2, 0)]]))[:figures]
    by_id = {it["id"]: it for it in items}
    target_label = "reference" if result.target == "reference" else "HR"
    for k, image_id in enumerate(chosen):
        item = by_id[image_id]
        is_reference = item.get("reference") is not None and item["hr"] is item["reference"]
        fig = evaluation_comparison(
            item["lr"], outputs[image_id]["bicubic"], outputs[image_id]["model"], item["hr"],
            target_name="reference (average)" if is_reference else "HR",
            title=f"{title} {image_id}: PSNR vs {target_label} model {gains.loc[image_id, 'model']:.2f} dB, "
                  f"bicubic {gains.loc[image_id, 'bicubic']:.2f} dB",
        )
        result.files[f"compare_{k}"] = save_figure(fig, out_dir / f"compare_{k}_{image_id}.png", dpi=90)
    result.files["histogram"] = save_figure(gain_histogram(table), out_dir / "psnr_gain_hist.png", dpi=90)
