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
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from oct_srgan.errors import DataError, OctSrganError, WeightsNotFoundError
from oct_srgan.fsutil import atomic_path
from oct_srgan.inference import DEFAULT_OVERLAP, DEFAULT_TILE, super_resolve
from oct_srgan.metrics import METRICS, content_distance, evaluate_images, quantize, summarize
from oct_srgan.transforms import downscale, upscale_bicubic, upscale_nearest

BENCHMARKS = ("set5", "set14")
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class EvaluationResult:
    """Per-image rows (long format: id, method, metric columns), the summary, and written files."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mean(self, method: str, metric: str) -> float:
        sel = self.summary[(self.summary["method"] == method) & (self.summary["metric"] == metric)]
        return float(sel["mean"].iloc[0]) if len(sel) else float("nan")


def methods_for(
    generator: nn.Module,
    info: dict[str, Any],
    *,
    tile: int | None = DEFAULT_TILE,
    overlap: float | int = DEFAULT_OVERLAP,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The upscalers compared: the model (tiled), bicubic and nearest neighbour of the same LR.

    A 1-channel (OCT) model applied to RGB images super-resolves each colour channel on its own.
    """
    scale, axes, channels = int(info["scale"]), str(info["upsample_axes"]), int(info["in_channels"])

    def model(lr: torch.Tensor) -> torch.Tensor:
        n, c, h, w = lr.shape
        if c == channels:
            return super_resolve(generator, lr, scale=scale, upsample_axes=axes, tile=tile, overlap=overlap,
                                 device=device, precision=precision)
        if channels == 1:
            sr = super_resolve(generator, lr.reshape(n * c, 1, h, w), scale=scale, upsample_axes=axes, tile=tile,
                               overlap=overlap, device=device, precision=precision)
            return sr.reshape(n, c, *sr.shape[-2:])
        raise OctSrganError(f"model {info.get('source', '?')} takes {channels} channels, the images have {c}")

    return {
        "model": model,
        "bicubic": lambda lr: upscale_bicubic(lr, scale, axes),
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
    panels = [("LR", item["lr"]), ("bicubic", bicubic), ("SR", sr), ("HR", hr)]
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
) -> EvaluationResult:
    """Score every item with every method; write per_image.csv, summary.csv/.md and figures to ``out_dir``."""
    if not items:
        raise DataError("nothing to evaluate: the split or benchmark has no images")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for i, item in enumerate(items):
        rows.extend(evaluate_images([item], methods, shave=shave, y_channel=y_channel, quantize_bits=quantize_bits))
        if progress:
            progress(i + 1, len(items))
    table = pd.DataFrame(rows)
    metrics = list(METRICS)
    if extractor is not None:
        table = table.merge(_content_rows(items, methods, extractor, shave), on=["id", "method"])
        metrics.append("content")
    summary = summarize(table, baseline="bicubic", method="model", metrics=metrics)
    result = EvaluationResult(rows=table, summary=summary)
    result.files["per_image"] = _write_csv(_wide(table), out_dir / "per_image.csv")
    result.files["summary"] = _write_csv(summary, out_dir / "summary.csv")
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary))
    result.files["summary_md"] = out_dir / "summary.md"
    gains = table.pivot(index="id", columns="method", values="psnr")
    order = (gains["model"] - gains["bicubic"]).sort_values()
    chosen = list(dict.fromkeys([order.index[-1], order.index[0], *order.index[: max(figures - 2, 0)]]))[:figures]
    import matplotlib.pyplot as plt

    by_id = {it["id"]: it for it in items}
    for k, image_id in enumerate(chosen):
        item = by_id[image_id]
        lr = item["lr"][None].float()
        fig = comparison_figure(
            item, methods["model"](lr)[0], methods["bicubic"](lr)[0].clamp(0, 1),
            f"{title} {image_id}: PSNR model {gains.loc[image_id, 'model']:.2f} dB, bicubic {gains.loc[image_id, 'bicubic']:.2f} dB",
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
    return result


def optional_extractor(weights: str | None, in_channels: int) -> tuple[nn.Module | None, str]:
    """The VGG19-54 content extractor when its ImageNet weights are here, else None and the reason."""
    from oct_srgan.losses import build_extractor

    try:
        return build_extractor("vgg19", layers=["relu5_4"], weights=weights, in_channels=in_channels), "vgg19 relu5_4"
    except WeightsNotFoundError as exc:
        return None, f"content distance not computed: {exc}"
