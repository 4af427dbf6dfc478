"""Figures a reader looks at to judge super-resolution on OCT: layers, not speckle.

Every figure is a row of labelled grey panels on one image grid (input, baselines, output,
target), drawn by :func:`panel_figure`; the comparisons also outline one :class:`Window` in every
panel and show it enlarged, on a row below or as an inset. The functions named after a stage only
choose the panels, the window and the size.

Zoomed views of a B-scan are placed on the retina (:mod:`oct_srgan.retina`: the window of highest
smoothed-intensity variance outside a screenshot's canvas), not at the image centre, which in a
B-scan is often vitreous or choroid. Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from oct_srgan.fsutil import atomic_path
from oct_srgan.retina import inset_corner, retina_window
from oct_srgan.transforms import upscale_bicubic, upscale_nearest

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Window:
    """A region of the panels' grid outlined in every panel and shown enlarged.

    ``inset`` puts the enlarged view in the panel corner farthest from the window instead of on a row below;
    ``label`` titles each enlarged view ("<panel>: <label>, rows a-b, columns c-d").
    """

    y0: int
    x0: int
    height: int
    width: int
    colour: str = "yellow"
    inset: bool = False
    label: str | None = None

    def crop(self, image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """The window of ``image``, which may be smaller than the grid (an LR panel)."""
        sy, sx = image.shape[0] / grid[0], image.shape[1] / grid[1]
        return image[int(self.y0 * sy) : int((self.y0 + self.height) * sy),
                     int(self.x0 * sx) : int((self.x0 + self.width) * sx)]


def _frame(ax: Axes, colour: str | None) -> None:
    """No ticks, the frame kept (in ``colour`` when given)."""
    ax.set_xticks([])
    ax.set_yticks([])
    if colour is not None:
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)


def _enlarge(ax: Axes, below: Axes | None, name: str, image: np.ndarray, window: Window,
             grid: tuple[int, int], framed: bool) -> None:
    """Outline ``window`` on ``ax`` and show it enlarged (inset of ``ax``, or on ``below``)."""
    from mpl_toolkits.axes_grid1.inset_locator import inset_axes

    ax.add_patch(Rectangle((window.x0, window.y0), window.width, window.height, fill=False,
                           edgecolor=window.colour, linewidth=1))
    corner = inset_corner((window.y0 + window.height / 2, window.x0 + window.width / 2), grid)
    zoom = inset_axes(ax, width="40%", height="40%", loc=corner, borderpad=0.3) if window.inset else below
    zoom.imshow(window.crop(image, grid), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if window.label:
        w = window
        zoom.set_title(f"{name}: {w.label}, rows {w.y0}-{w.y0 + w.height}, columns {w.x0}-{w.x0 + w.width}", fontsize=9)
    if window.inset or framed:
        _frame(zoom, window.colour)
    else:
        zoom.axis("off")


def panel_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    size: tuple[float, float],
    title: str | None = None,
    window: Window | None = None,
    height_ratios: Sequence[float] | None = None,
    framed: bool = False,
    grid: tuple[int, int] | None = None,
) -> Figure:
    """Titled grey panels side by side in [0, 1], each with ``window`` outlined and enlarged.

    ``grid`` (H, W) stretches every panel over one H x W grid, so an LR panel lines up with the HR
    ones; without it the panels already share their grid. ``framed`` keeps the panels' frames
    (ticks hidden) instead of hiding the axes.
    """
    fig = Figure(figsize=size, layout="constrained")
    below = window is not None and not window.inset
    axes = fig.subplots(2 if below else 1, len(panels), squeeze=False, height_ratios=height_ratios)
    for col, (name, image) in enumerate(panels):
        ax = axes[0, col]
        extent = (0, grid[1], grid[0], 0) if grid is not None else None
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=extent)
        ax.set_title(name)
        if framed:
            _frame(ax, None)
        else:
            ax.axis("off")
        if window is not None:
            _enlarge(ax, axes[1, col] if below else None, name, image, window, grid or image.shape[:2], framed)
    if title:
        fig.suptitle(title)
    return fig


def _to_gray(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0)


def enhance_comparison(lr: np.ndarray, sr: np.ndarray, scale: int, axes: str, *, title: str) -> Figure:
    """Figure: input (nearest ×s) | bicubic ×s | super-resolved, whole B-scans above, the retina zoomed below."""
    lr_t = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None]
    panels = [
        (f"input (nearest ×{scale})", _to_gray(upscale_nearest(lr_t, scale, axes)[0])),
        (f"bicubic ×{scale}", _to_gray(upscale_bicubic(lr_t, scale, axes)[0])),
        (f"oct-srgan ×{scale}", _to_gray(sr)),
    ]
    h, w = panels[2][1].shape
    zh, zw = max(h // 4, 16), max(w // 5, 16)
    y0, x0 = retina_window(panels[1][1], zh, zw)
    fig_w = 15.0
    return panel_figure(panels, size=(fig_w, fig_w / 3 * (h / w + zh / zw) + 1.0), title=title,
                        window=Window(y0, x0, zh, zw, label="retina"), height_ratios=[h / w, zh / zw], framed=True)


def validation_comparison(lr: torch.Tensor, bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, *, scale: int,
                          axes: str, psnr_bicubic: float, psnr_sr: float, title: str) -> Figure:
    """LR (nearest) | bicubic | SR | HR of one validation B-scan [1, 1, H, W], the centre zoomed below."""
    h, w = hr.shape[-2:]
    panels = [
        ("LR (nearest)", upscale_nearest(lr, scale, axes)[..., :h, :w]),
        (f"bicubic {psnr_bicubic:.2f} dB", bicubic),
        (f"SR (EMA) {psnr_sr:.2f} dB", sr),
        ("HR", hr),
    ]
    side = max(16, min(h, w) // 4)
    window = Window((h - side) // 2, (w - side) // 2, side, side, colour="red")
    return panel_figure([(name, t[0, 0].numpy()) for name, t in panels], size=(16, 6.5), title=title, window=window,
                        height_ratios=[h / w * 4, 1.6])


def _image(t: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] as an image array: [H, W] grey or [H, W, 3] colour."""
    a = t.detach().float().clamp(0, 1).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def evaluation_comparison(lr: torch.Tensor, bicubic: torch.Tensor, sr: torch.Tensor, target: torch.Tensor, *,
                          target_name: str, title: str) -> Figure:
    """LR | bicubic | SR | target ([C, H, W] each) with an inset of the same retina region in each panel."""
    H, W = target.shape[-2:]
    zh, zw = max(H // 5, 8), max(W // 6, 8)
    y0, x0 = retina_window(_image(target).mean(axis=-1) if target.shape[0] > 1 else _image(target), zh, zw)
    window = Window(y0, x0, zh, zw, inset=True)
    panels = [("LR", lr), ("bicubic", bicubic), ("SR", sr), (target_name, target)]
    return panel_figure([(name, _image(t)) for name, t in panels], size=(18, 18 * H / W / 4 + 0.8), title=title,
                        window=window, grid=(H, W))


def degradation_preview(hr: np.ndarray, lr: np.ndarray, *, scale: int, axes: str, mode: str) -> Figure:
    """HR | bicubic-from-LR side by side, so a reviewer sees what the degradation removes."""
    up = upscale_bicubic(torch.from_numpy(lr)[None, None], scale, axes)[0, 0].clamp(0, 1).numpy()
    return panel_figure([("HR", hr), (f"bicubic x{scale} from LR ({mode}, {axes})", up)], size=(12, 3.6))


def gain_histogram(rows: pd.DataFrame, baseline: str = "bicubic") -> Figure:
    """Histogram of the per-image PSNR gain of the model over ``baseline``."""
    table = rows.pivot(index="id", columns="method", values="psnr")
    gain = (table["model"] - table[baseline]).to_numpy(float)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.hist(gain[np.isfinite(gain)], bins=min(30, max(5, len(gain) // 2)), color="tab:blue", edgecolor="white")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel(f"PSNR gain over {baseline} (dB)")
    ax.set_ylabel("images")
    ax.set_title(f"model − {baseline}: mean {np.nanmean(gain):+.3f} dB over {len(gain)} images")
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path
