"""One evaluation, three protocols: the LR a model meets in practice, made on the fly from the noisy inputs.

Each protocol is one way of making LR from a noisy full-resolution input B-scan (``downscale(input,
scale, mode, axes)``); the model (only where it upsamples the protocol's axes), bicubic and linear
interpolation upscale it, and each output is scored against the clean reference as stored and
against the reference matched to the input's grey levels (``reference_matched``, the same for every
method). The table has one row per protocol x method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oct_srgan.fsutil import atomic_path
from oct_srgan.metric_table import score
from oct_srgan.transforms import downscale, upscale_bicubic, upscale_linear


@dataclass(frozen=True)
class LRProtocol:
    """How one protocol makes LR: the degradation mode and the axes it reduces, and what it stands for."""

    mode: str
    axes: str
    stands_for: str


PROTOCOLS: dict[str, LRProtocol] = {
    "bicubic": LRProtocol("bicubic", "both", "antialiased bicubic /4 (the SRGAN paper's degradation)"),
    "decimate": LRProtocol("decimate", "both", "strided sampling with full speckle per pixel (native scans)"),
    "lateral": LRProtocol("decimate", "lateral", "every 4th A-scan kept (fast, sparse acquisition)"),
}
BASELINES = ("bicubic", "linear")
COLUMNS = ("psnr", "ssim", "psnr_matched", "ssim_matched")


def protocols_for(axes: str) -> list[str]:
    """The protocols a model upsampling ``axes`` runs on (the others show the baselines only)."""
    return [name for name, p in PROTOCOLS.items() if p.axes == axes]


def _score(sr: torch.Tensor, reference: torch.Tensor, matched: torch.Tensor, shave: int) -> dict[str, float]:
    plain = score(sr, reference[None].float(), shave=shave, names=("psnr", "ssim"))
    fitted = score(sr, matched[None].float(), shave=shave, names=("psnr", "ssim"))
    return {**plain, "psnr_matched": fitted["psnr"], "ssim_matched": fitted["ssim"]}


def protocol_rows(items: list[dict[str, Any]], model: Callable[[torch.Tensor], torch.Tensor], model_axes: str,
                  scale: int, shave: int) -> pd.DataFrame:
    """Long table (protocol, method, id, psnr, ssim, psnr_matched, ssim_matched) over items with references."""
    rows = []
    runs_model = protocols_for(model_axes)
    with torch.no_grad():
        for item in items:
            if item.get("reference") is None:
                continue
            # Every protocol needs a multiple of the scale on both axes (a lateral dataset keeps 450 rows).
            h, w = (item["self"].shape[-2] // scale) * scale, (item["self"].shape[-1] // scale) * scale
            noisy = item["self"][None].float()[..., :h, :w]
            reference = item["reference"][..., :h, :w]
            matched = item.get("reference_matched")
            matched = reference if matched is None else matched[..., :h, :w]
            for name, p in PROTOCOLS.items():
                lr = downscale(noisy, scale, p.mode, p.axes)
                methods: dict[str, Callable[[], torch.Tensor]] = {
                    "bicubic": lambda: upscale_bicubic(lr, scale, p.axes),
                    "linear": lambda: upscale_linear(lr, scale, p.axes),
                }
                if name in runs_model:
                    methods = {"model": lambda: model(lr), **methods}
                for method, run in methods.items():
                    sr = run().detach().float().cpu().clamp(0, 1)
                    rows.append({"protocol": name, "method": method, "id": item["id"],
                                 **_score(sr, reference, matched, shave)})
    return pd.DataFrame(rows)


def protocol_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean per protocol x method, and the model's paired gains over bicubic and linear (``model - <baseline>``)."""
    means = rows.groupby(["protocol", "method"], sort=False)[list(COLUMNS)].mean()
    counts = rows.groupby(["protocol", "method"], sort=False)["id"].nunique().rename("n")
    table = means.join(counts).reset_index()
    gains = []
    for name in rows.loc[rows["method"] == "model", "protocol"].unique():
        part = rows[rows["protocol"] == name].set_index(["method", "id"])[list(COLUMNS)]
        for baseline in BASELINES:
            diff = (part.loc["model"] - part.loc[baseline]).mean()
            gains.append({"protocol": name, "method": f"model - {baseline}", **diff.to_dict(),
                          "n": int(len(part.loc["model"]))})
    table = pd.concat([table, pd.DataFrame(gains)], ignore_index=True) if gains else table
    order = {name: i for i, name in enumerate(PROTOCOLS)}
    return table.sort_values("protocol", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def table_markdown(table: pd.DataFrame) -> str:
    """The protocol table in Markdown: PSNR/SSIM against the references as stored and as matched."""
    lines = ["| protocol | method | n | PSNR (dB) | SSIM | PSNR matched (dB) | SSIM matched |", "|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        sign = "+" if r.method.startswith("model - ") else ""
        lines.append(f"| {r.protocol} | {r.method} | {int(r.n)} | {r.psnr:{sign}.2f} | {r.ssim:{sign}.4f} | "
                     f"{r.psnr_matched:{sign}.2f} | {r.ssim_matched:{sign}.4f} |")
    legend = "; ".join(f"`{name}`: {p.stands_for}" for name, p in PROTOCOLS.items())
    return "\n".join(lines) + f"\n\nLR made from each noisy input B-scan: {legend}.\n"


def headline_metrics(table: pd.DataFrame, split: str) -> dict[str, float]:
    """MLflow metrics: ``<split>.<protocol>.<method>.<column>`` and ``<split>.<protocol>.gain_psnr`` / ``gain_ssim``."""
    out: dict[str, float] = {}
    for r in table.itertuples(index=False):
        method = r.method.replace("model - ", "gain_") if r.method.startswith("model - ") else r.method
        for column in COLUMNS:
            out[f"{split}.{r.protocol}.{method}.{column}"] = float(getattr(r, column))
        if r.method == "model":
            out.update({f"{split}.{r.protocol}.{c}": float(getattr(r, c)) for c in ("psnr", "ssim")})
        if r.method == "model - bicubic":
            out.update({f"{split}.{r.protocol}.gain_{c}": float(getattr(r, c)) for c in ("psnr", "ssim")})
    return out


def write_protocols(table: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """``protocols.csv`` and ``protocols.md`` in ``out_dir``, written atomically."""
    csv_path, md_path = out_dir / "protocols.csv", out_dir / "protocols.md"
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(md_path) as tmp:
        tmp.write_text("## Three protocols (LR made from the noisy inputs)\n\n" + table_markdown(table))
    return {"protocols": csv_path, "protocols_md": md_path}
