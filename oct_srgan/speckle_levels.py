"""How a model treats inputs with less speckle than one acquisition: its gain over bicubic per speckle level.

Clinical scans are averaged over a few to many frames, so what ``enhance`` gets lies between a Duke
single acquisition (speckle kept 1) and its registered average (kept 0). Each test B-scan of a
reference dataset is given a share ``kept`` of its speckle (:func:`oct_srgan.transforms.keep_speckle`),
reduced by the paper's bicubic x4, and the model and bicubic are scored against the matched reference.
A model that despeckles only as much as its input needs gains at every level; one that smooths
whatever it gets falls under bicubic on clean inputs, where it erases real detail (cysts, foci).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from .metric_table import score
from .transforms import downscale, keep_speckle, upscale_bicubic

LEVELS = (0.0, 0.25, 0.5, 1.0)


def level_rows(items: list[dict[str, Any]], run_model: Callable[[torch.Tensor], torch.Tensor],
               levels: Sequence[float] = LEVELS, scale: int = 4) -> pd.DataFrame:
    """One row per (level, B-scan): PSNR of the model and of bicubic against the matched reference, and the gain."""
    rows = []
    with torch.no_grad():
        for item in items:
            if item.get("reference_matched") is None:
                continue
            h, w = (item["self"].shape[-2] // scale) * scale, (item["self"].shape[-1] // scale) * scale
            clean = item["reference_matched"][None].float()[..., :h, :w]
            noisy = item["self"][None].float()[..., :h, :w]
            for kept in levels:
                lr = downscale(keep_speckle(noisy, clean, kept), scale, "bicubic", "both")
                outputs = {"model": run_model(lr), "bicubic": upscale_bicubic(lr, scale, "both")}
                rows.append({"kept": float(kept), "id": item["id"], **{
                    name: score(out.detach().float().cpu().clamp(0, 1), clean, shave=scale, names=("psnr",))["psnr"]
                    for name, out in outputs.items()}})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["gain"] = table["model"] - table["bicubic"]
    return table


def level_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR of model and bicubic and the mean gain per level."""
    return rows.groupby("kept")[["model", "bicubic", "gain"]].mean()


def level_markdown(table: pd.DataFrame) -> str:
    """The per-level table in Markdown."""
    lines = ["| speckle kept | model PSNR (dB) | bicubic PSNR (dB) | model - bicubic |", "|---|---|---|---|"]
    lines += [f"| {kept:g} | {r.model:.2f} | {r.bicubic:.2f} | {r.gain:+.2f} |" for kept, r in table.iterrows()]
    return "\n".join(lines) + "\n"
