"""Figures a reader looks at to judge super-resolution on OCT: layers, not speckle.

Zoomed views are placed on the retina (the brightest band of rows around the lateral centre, where
the RPE / photoreceptor complex lies in a B-scan), not at the image centre, which in a B-scan is often
vitreous or choroid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from oct_srgan.fsutil import atomic_path
from oct_srgan.transforms import upscale_bicubic, upscale_nearest


def retina_window(image: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left (y, x) of a ``height`` x ``width`` window centred on the retina of a B-scan [H, W].

    The column band is the lateral centre; the row is where the smoothed mean intensity of that band
    peaks (the hyper-reflective outer retina), clipped to the image.
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    height, width = min(height, h), min(width, w)
    x0 = (w - width) // 2
    profile = img[:, x0 : x0 + width].mean(axis=1)
    kernel = np.ones(max(3, h // 40)) / max(3, h // 40)
    smooth = np.convolve(profile, kernel, mode="same")
    y_peak = int(np.argmax(smooth))
    y0 = int(np.clip(y_peak - height // 2, 0, h - height))
    return y0, x0


def _to_gray(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0)


def enhance_comparison(lr: np.ndarray, sr: np.ndarray, scale: int, axes: str, *, title: str) -> Any:
    """Figure: input (nearest ×s) | bicubic ×s | super-resolved, whole B-scans above, the retina zoomed below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

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
    fig_h = fig_w / 3 * (h / w + zh / zw) + 1.0
    fig, grid = plt.subplots(2, 3, figsize=(fig_w, fig_h), constrained_layout=True,
                             gridspec_kw={"height_ratios": [h / w, zh / zw]})
    for col, (name, img) in enumerate(panels):
        top, zoom = grid[0, col], grid[1, col]
        top.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        top.add_patch(Rectangle((x0, y0), zw, zh, fill=False, edgecolor="yellow", linewidth=1))
        top.set_title(name)
        zoom.imshow(img[y0 : y0 + zh, x0 : x0 + zw], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        zoom.set_title(f"{name}: retina, rows {y0}-{y0 + zh}, columns {x0}-{x0 + zw}", fontsize=9)
        for ax in (top, zoom):
            ax.set_xticks([])
            ax.set_yticks([])
        for spine in zoom.spines.values():
            spine.set_edgecolor("yellow")
    fig.suptitle(title)
    return fig


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
