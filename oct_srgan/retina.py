"""Where the retina is in a B-scan, so zoomed views show layers rather than a screenshot's canvas,
the vitreous or featureless choroid.

A B-scan [H, W] in [0, 1] may sit on a canvas: the flat, constant margin of a screenshot or export
(white, black or grey, possibly with flat annotation areas). Real OCT pixels are never flat (speckle),
so the canvas is the large flat regions touching the image border. Inside the rest, the layers are
where the smoothed intensity varies most: a window across the retina holds the bright RPE and nerve
fibre layer beside dark nuclear layers, while vitreous, choroid and canvas are uniform.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FLAT_STD = 1.0 / 512.0  # local std (5 x 5) below half an 8-bit level: flat, never speckle
MIN_CANVAS_PART = 0.02  # a flat border region smaller than this share of the image is not canvas
MIN_SCAN_PART = 0.10  # below this share of non-canvas pixels the image is all flat (synthetic): use all of it
MAX_CANVAS_IN_WINDOW = 0.005
WORK_SIDE = 512  # larger images are judged on block means, so a 4x output costs what its input does
NEAR_BEST = 0.95  # windows scoring at least this share of the best form the plateau whose middle is chosen


def canvas_mask(image: np.ndarray) -> np.ndarray:
    """True where a pixel belongs to a flat region of the border that covers at least 2 % of the image."""
    img = np.asarray(image, dtype=np.float64)
    mean = ndimage.uniform_filter(img, 5, mode="nearest")
    var = ndimage.uniform_filter(img * img, 5, mode="nearest") - mean * mean
    flat = var < FLAT_STD**2
    labels, _ = ndimage.label(flat)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    if border.size == 0:
        return np.zeros(img.shape, dtype=bool)
    sizes = ndimage.sum_labels(np.ones(img.shape), labels, index=border)
    canvas_labels = border[sizes >= MIN_CANVAS_PART * img.size]
    # The 5 x 5 std is not flat within 2 pixels of the scan's edge: those pixels are canvas too.
    return ndimage.binary_dilation(np.isin(labels, canvas_labels), np.ones((5, 5), dtype=bool))


def _window_sums(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sum of ``values`` over every height x width window, indexed by the window's top-left corner."""
    s = np.pad(np.cumsum(np.cumsum(values, axis=0), axis=1), ((1, 0), (1, 0)))
    return s[height:, width:] - s[:-height, width:] - s[height:, :-width] + s[:-height, :-width]


def _block_means(img: np.ndarray, f: int) -> np.ndarray:
    """Means of f x f blocks (the last partial row/column of blocks dropped)."""
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def retina_window(image: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left (y, x) of a ``height`` x ``width`` window on the retina of a B-scan [H, W], clipped to it.

    Among windows with (almost) no canvas, those whose smoothed-intensity variance is within 5 % of the
    highest form a plateau; the one nearest the plateau's middle is chosen, so a band that several
    windows hold equally sits in the window's middle.
    """
    full = np.asarray(image, dtype=np.float64)
    f = -(-max(full.shape) // WORK_SIDE)
    if f > 1:
        y0, x0 = retina_window(_block_means(full, f), max(1, round(height / f)), max(1, round(width / f)))
        hh, ww = min(height, full.shape[0]), min(width, full.shape[1])
        return int(np.clip(y0 * f, 0, full.shape[0] - hh)), int(np.clip(x0 * f, 0, full.shape[1] - ww))
    img = full
    h, w = img.shape
    height, width = max(1, min(height, h)), max(1, min(width, w))
    canvas = canvas_mask(img)
    if (~canvas).mean() < MIN_SCAN_PART:
        canvas[:] = False
    smooth = ndimage.gaussian_filter(img, max(1.0, min(h, w) / 200.0))
    n = float(height * width)
    mean = _window_sums(smooth, height, width) / n
    score = _window_sums(smooth * smooth, height, width) / n - mean * mean
    in_canvas = _window_sums(canvas.astype(np.float64), height, width) / n
    # A window larger than the scan area takes the least canvas it can.
    allowed = in_canvas <= max(MAX_CANVAS_IN_WINDOW, float(in_canvas.min()))
    score = np.where(allowed, score, -np.inf)
    top = score.max()
    near = np.argwhere(score >= top - (1.0 - NEAR_BEST) * abs(top)) if np.isfinite(top) else np.argwhere(allowed)
    middle = near.mean(axis=0)
    y0, x0 = near[np.argmin(((near - middle) ** 2).sum(axis=1))]
    return int(y0), int(x0)


def inset_corner(window_centre: tuple[float, float], shape: tuple[int, int]) -> str:
    """The panel corner (matplotlib ``loc``) farthest from the window, so an inset never hides its outline."""
    cy, cx = window_centre
    return f"{'lower' if cy < shape[0] / 2 else 'upper'} {'right' if cx < shape[1] / 2 else 'left'}"
