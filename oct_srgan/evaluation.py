"""Evaluate a generator against bicubic and nearest-neighbour upscaling (the library side of ``evaluate``).

Two protocols:

- **OCT split** of a prepared dataset: every full B-scan of the split, its fixed LR from
  preprocess, tiled inference; grey channel, data range 1, ``scale`` pixels shaved.
- **Natural-image benchmark** (Set5, Set14 or a folder of RGB images) as in Ledig et al. 2017: HR
  cropped to a multiple of the scale, LR made with MATLAB-compatible bicubic and rounded to 8 bit,
  SR rounded to 8 bit, scored on the MATLAB Y channel with a 4-pixel border shaved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from oct_srgan.errors import DataError, WeightsNotFoundError
from oct_srgan.fsutil import atomic_path
from oct_srgan.metrics import METRICS, content_distance, quantize, summarize
from oct_srgan.transforms import downscale, upscale_bicubic, upscale_linear, upscale_nearest

if TYPE_CHECKING:
    from oct_srgan.inference import SRInferer

BENCHMARKS = ("set5", "set14")
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


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

    def mean(self, method: str, metric: str) -> float:
        sel = self.summary[(self.summary["method"] == method) & (self.summary["metric"] == metric)]
        return float(sel["mean"].iloc[0]) if len(sel) else float("nan")


def headline(folder: Path) -> str:
    """One line from an evaluate folder's headline table: model and bicubic PSNR/SSIM and the gain."""
    table = pd.read_csv(Path(folder) / "summary.csv")

    def mean(method: str, metric: str) -> float:
        sel = table[(table["method"] == method) & (table["metric"] == metric)]
        return float(sel["mean"].iloc[0]) if len(sel) else float("nan")

    return (f"{mean('model', 'psnr'):.2f} dB / SSIM {mean('model', 'ssim'):.3f} "
            f"({mean('model - bicubic', 'psnr'):+.2f} dB, {mean('model - bicubic', 'ssim'):+.3f} SSIM vs bicubic "
            f"{mean('bicubic', 'psnr'):.2f} dB / {mean('bicubic', 'ssim'):.3f})")


def methods_for(inferer: SRInferer) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
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


def benchmark_folder(name_or_path: str, data_root: Path) -> Path:
    """``set5``/``set14`` → the shared copy under ``data_root/sr_benchmarks``; anything else is a path."""
    key = name_or_path.lower()
    if key in BENCHMARKS:
        folder = data_root / "sr_benchmarks" / {"set5": "Set5", "set14": "Set14"}[key]
    else:
        folder = Path(name_or_path)
    if not folder.is_dir():
        raise DataError(f"{folder}: benchmark folder not found")
    return folder


def benchmark_items(folder: Path, scale: int = 4) -> list[dict[str, Any]]:
    """HR RGB images cropped to a multiple of ``scale``, with 8-bit bicubic LR (the paper's protocol)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    items = []
    for path in files:
        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None
        h, w = rgb.shape[0] - rgb.shape[0] % scale, rgb.shape[1] - rgb.shape[1] % scale
        hr = torch.from_numpy(np.ascontiguousarray(rgb[:h, :w].transpose(2, 0, 1)))
        lr = quantize(downscale(hr, scale, "bicubic", "both"), 8)
        items.append({"id": path.stem, "lr": lr, "hr": hr})
    return items


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
            f"| {r.method} | {r.metric} | {r.n} | {r.mean:.4f} ± {r.std:.4f} | [{r.ci_low:.4f}, {r.ci_high:.4f}] |"
        )
    return "\n".join(lines) + "\n"


def comparison_figure(item: dict[str, Any], sr: torch.Tensor, bicubic: torch.Tensor, title: str) -> Any:
    """LR | bicubic | SR | HR with a zoomed inset of the same region in each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1.inset_locator import inset_axes

    def show(t: torch.Tensor) -> np.ndarray:
        a = t.detach().float().clamp(0, 1).cpu().numpy()
        return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)

    hr = item["hr"]
    hr_name = "reference (average)" if item.get("reference") is not None and hr is item["reference"] else "HR"
    panels = [("LR", item["lr"]), ("bicubic", bicubic), ("SR", sr), (hr_name, hr)]
    H, W = hr.shape[-2:]
    zh, zw = max(H // 5, 8), max(W // 6, 8)
    y0, x0 = (H - zh) // 2, (W - zw) // 2
    fig, axes = plt.subplots(1, 4, figsize=(18, 18 * H / W / 4 + 0.8), constrained_layout=True)
    for ax, (name, img) in zip(axes, panels):
        arr = show(img)
        sy, sx = arr.shape[0] / H, arr.shape[1] / W
        ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=(0, W, H, 0))
        ax.set_title(name)
        ax.axis("off")
        ins = inset_axes(ax, width="40%", height="40%", loc="lower right", borderpad=0.3)
        crop = arr[int(y0 * sy) : int((y0 + zh) * sy), int(x0 * sx) : int((x0 + zw) * sx)]
        ins.imshow(crop, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ins.set_xticks([])
        ins.set_yticks([])
        for spine in ins.spines.values():
            spine.set_edgecolor("yellow")
        ax.add_patch(plt.Rectangle((x0, y0), zw, zh, fill=False, edgecolor="yellow", linewidth=1))
    fig.suptitle(title)
    return fig


def gain_histogram(rows: pd.DataFrame, baseline: str = "bicubic") -> Any:
    """Histogram of the per-image PSNR gain of the model over ``baseline``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = rows.pivot(index="id", columns="method", values="psnr")
    gain = (table["model"] - table[baseline]).to_numpy(float)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.hist(gain[np.isfinite(gain)], bins=min(30, max(5, len(gain) // 2)), color="tab:blue", edgecolor="white")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel(f"PSNR gain over {baseline} (dB)")
    ax.set_ylabel("images")
    ax.set_title(f"model − {baseline}: mean {np.nanmean(gain):+.3f} dB over {len(gain)} images")
    return fig


def _content_rows(
    items: list[dict[str, Any]], methods: dict[str, Callable], extractor: nn.Module, shave: int
) -> pd.DataFrame:
    rows = []
    with torch.no_grad():
        for item in items:
            lr, hr = item["lr"][None].float(), item["hr"][None].float()
            for name, method in methods.items():
                sr = method(lr).clamp(0, 1)
                rows.append({"id": item["id"], "method": name, "content": float(content_distance(extractor, sr, hr)[0])})
    return pd.DataFrame(rows)


def _score(sr: torch.Tensor, target: torch.Tensor, *, shave: int, y_channel: bool, oct_measures: bool) -> dict[str, float]:
    """PSNR/SSIM/MS-SSIM (and, for grey OCT, CNR/ENL/EPI) of one [1, C, H, W] output against its target."""
    from oct_srgan.metrics import ms_ssim, oct_quality, psnr, rgb_to_y, ssim

    a, b = (rgb_to_y(sr), rgb_to_y(target)) if y_channel else (sr, target)
    row = {
        "psnr": float(psnr(a, b, 1.0, shave)[0]),
        "ssim": float(ssim(a, b, 1.0, shave)[0]),
        "ms_ssim": float(ms_ssim(a, b, 1.0, shave)[0]),
    }
    if oct_measures:
        row.update(oct_quality(a[0], b[0], shave))
    return row


def _targets(item: dict[str, Any]) -> dict[str, torch.Tensor]:
    """What an item is scored against: its clean reference and its own scan, or just its HR."""
    if item.get("reference") is not None and item.get("self") is not None:
        return {"reference": item["reference"], "self": item["self"]}
    return {"self": item["hr"]}


def score_items(
    items: list[dict[str, Any]],
    methods: dict[str, Callable[[torch.Tensor], torch.Tensor]],
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


def evaluate(
    items: list[dict[str, Any]],
    methods: dict[str, Callable[[torch.Tensor], torch.Tensor]],
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
    metrics = [m for m in (*METRICS, "cnr", "enl", "epi") if m in table.columns]
    headline = "reference" if "reference" in set(table["target"]) else "self"
    if extractor is not None:
        content = _content_rows(items, methods, extractor, shave)
        table = table.merge(content.assign(target=headline), on=["id", "method", "target"], how="left")
        metrics.append("content")
    result = EvaluationResult(rows=table[table["target"] == headline].drop(columns="target").reset_index(drop=True),
                              summary=pd.DataFrame())
    result.target = headline
    md = []
    targets = [(headline, out_dir)] + ([("self", out_dir / "vs_self")] if headline == "reference" else [])
    for target_name, folder in targets:
        part = table[table["target"] == target_name].drop(columns="target")
        summary = summarize(part, baseline="bicubic", method="model", metrics=metrics)
        subjects = subject_summary(part, metrics)
        folder.mkdir(parents=True, exist_ok=True)
        key = "" if folder == out_dir else "self_"
        result.files[f"{key}per_image"] = _write_csv(_wide(part.drop(columns="group_id")), folder / "per_image.csv")
        result.files[f"{key}summary"] = _write_csv(summary, folder / "summary.csv")
        result.files[f"{key}summary_subjects"] = _write_csv(subjects, folder / "summary_subjects.csv")
        result.summaries[target_name] = summary
        result.subject_summaries[target_name] = subjects
        label = "the clean reference (registered average)" if target_name == "reference" else "each input's own full-resolution scan"
        n_groups = part["group_id"].nunique()
        md += [f"## Against {label}", "", f"Per B-scan ({part['id'].nunique()} B-scans):", "", summary_markdown(summary),
               f"Subjects as the unit ({n_groups} subjects; the interval uses t with {max(n_groups - 1, 0)} degrees of freedom):",
               "", summary_markdown(subjects)]
    result.summary = result.summaries[headline]
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text("\n".join(md))
    result.files["summary_md"] = out_dir / "summary.md"
    _write_figures(result, items, outputs, out_dir, figures, title)
    return result


def _write_figures(result: EvaluationResult, items: list[dict[str, Any]], outputs: dict[str, dict[str, torch.Tensor]],
                   out_dir: Path, figures: int, title: str) -> None:
    """Comparison figures of the best, worst and first images by PSNR gain, and the gain histogram."""
    import matplotlib.pyplot as plt

    table = result.rows
    gains = table.pivot(index="id", columns="method", values="psnr")
    order = (gains["model"] - gains["bicubic"]).sort_values()
    chosen = list(dict.fromkeys([order.index[-1], order.index[0], *order.index[: max(figures - 2, 0)]]))[:figures]
    by_id = {it["id"]: it for it in items}
    target_label = "reference" if result.target == "reference" else "HR"
    for k, image_id in enumerate(chosen):
        item = by_id[image_id]
        fig = comparison_figure(
            item, outputs[image_id]["model"], outputs[image_id]["bicubic"],
            f"{title} {image_id}: PSNR vs {target_label} model {gains.loc[image_id, 'model']:.2f} dB, "
            f"bicubic {gains.loc[image_id, 'bicubic']:.2f} dB",
        )
        path = out_dir / f"compare_{k}_{image_id}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90)
        plt.close(fig)
        result.files[f"compare_{k}"] = path
    fig = gain_histogram(table)
    with atomic_path(out_dir / "psnr_gain_hist.png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    result.files["histogram"] = out_dir / "psnr_gain_hist.png"


def optional_extractor(weights: str | None, in_channels: int) -> tuple[nn.Module | None, str]:
    """The VGG19-54 content extractor when its ImageNet weights are here, else None and the reason."""
    from oct_srgan.extractors import build_extractor

    try:
        return build_extractor("vgg19", layers=["relu5_4"], weights=weights, in_channels=in_channels), "vgg19 relu5_4"
    except WeightsNotFoundError as exc:
        return None, f"content distance not computed: {exc}"
