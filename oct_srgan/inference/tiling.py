"""Tile layout, blend weights and the memory budget of tiled super-resolution.

Tiling uses MONAI's ``sliding_window_inference``, which accepts a predictor whose output is larger
than its input (here ``scale`` times in H and W, or in W only for lateral-only models). Memory is
bounded by the tile size and the batch size, not by the scan.

Why tiles agree with untiled inference: a window's outputs within the generator's receptive field
of a cut edge differ from the untiled result (the convs see zero padding there instead of image;
for a random-init paper SRResNet the error is 4 at the edge, 7e-3 at 8 LR pixels, below 1e-5 from
12 pixels on; the theoretical radius is about 38 LR pixels). MONAI's own blend modes cannot hide
that: "constant" averages the bad edge outputs in, and "gaussian" floors its weights at 1e-3 of the
peak, which near the image's top and bottom rows makes it constant too. So every window gets our
weight map instead (``blend_weights``): 1 in the window's core, falling to 1e-6 within overlap/2
of its edges, and the window layout (``axis_layout``) puts every pixel in some window's core.
With ``DEFAULT_OVERLAP`` = 32 LR pixels (core 16 pixels from any cut) tiled and untiled float32
outputs of the paper-size net agree to about 1e-6 on a Duke B-scan; a trained net whose response
reaches further needs a larger overlap (at most half the tile).
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..enums import BlendMode, values

DEFAULT_OVERLAP = 32
EDGE_WEIGHT = 1e-6
BLEND_MODES = values(BlendMode)
# Activation memory one forward pass may use when tiles are sized automatically (tile="auto"):
# a quarter of the machine's memory, at most 8 GiB, so whole B-scans run untiled on ordinary PCs.
MEMORY_FRACTION = 0.25
MAX_MEMORY_BUDGET = 8 << 30


def activation_bytes_per_pixel(model: nn.Module, in_channels: int, device: str | torch.device = "cpu") -> float:
    """Peak float32 activation bytes per LR input pixel of one forward pass, from a probe run.

    Hooks record every leaf module's output size on a small input; the peak is taken as the
    largest input + output pair of one module (what must coexist), which holds for a feed-forward
    net whose residual sums keep at most one extra LR-sized map alive.
    """
    probe = 16
    sizes: list[tuple[int, int]] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor) and inputs and isinstance(inputs[0], torch.Tensor):
            sizes.append((inputs[0].numel(), output.numel()))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, probe, probe, device=device))
    finally:
        for handle in handles:
            handle.remove()
    peak = max((a + b for a, b in sizes), default=in_channels)
    return 4.0 * peak / probe**2 * 1.25


def memory_budget() -> int:
    """Bytes of activations to allow per forward pass: a share of physical memory, capped."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(min(total * MEMORY_FRACTION, MAX_MEMORY_BUDGET))


def auto_tile(size: tuple[int, int], bytes_per_pixel: float, budget: int | None = None) -> int | None:
    """None (whole B-scans) when one B-scan of ``size`` LR pixels fits the budget, else the tile side."""
    budget = memory_budget() if budget is None else budget
    if size[0] * size[1] * bytes_per_pixel <= budget:
        return None
    return max(32, int(math.sqrt(budget / bytes_per_pixel)))


def overlap_pixels(overlap: float | int, tile: int) -> int:
    """Overlap in LR pixels from a fraction of the tile (< 1) or a pixel count (>= 1), capped at tile/2.

    Beyond half the tile, some image sizes have no window layout that keeps every pixel in a core.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    pixels = round(overlap * tile) if overlap < 1 else int(overlap)
    return min(pixels, tile // 2)


def axis_layout(size: int, tile: int, overlap: int) -> tuple[int, int]:
    """Window size (at most ``tile``) and step along one axis, so every pixel lies in some window's core.

    The core is what lies at least overlap/2 from the window's edges. MONAI places windows every
    ``step`` and then one last window flush with the image end; if the window before it ends
    within overlap/2 of that end, the pixels between lie in no core. Of the layouts without that
    gap (and with at least ``overlap`` between neighbours) this picks the one that computes the
    fewest pixels, larger windows first on ties. An axis no longer than the tile is one window.
    """
    if size <= tile:
        return size, size
    margin = overlap // 2
    best: tuple[int, int, int] | None = None
    for roi in range(tile, overlap + max(margin, 1) - 1, -1):
        rest = size - roi
        for step in range(roi - overlap, max(margin, 1) - 1, -1):
            if rest % step == 0 or rest % step >= margin:
                cost = (math.ceil(rest / step) + 1) * roi
                if best is None or cost < best[0]:
                    best = (cost, roi, step)
                break
    return (best[1], best[2]) if best else (size, size)


def _blend_profile(roi: int, cut: bool, overlap: int, mode: str) -> torch.Tensor:
    """1-D window weights: 1 in the core, down to ``EDGE_WEIGHT`` within overlap/2 of each edge."""
    margin = overlap // 2
    if not cut or margin == 0:
        return torch.ones(roi, dtype=torch.float64)
    index = torch.arange(roi, dtype=torch.float64)
    distance = torch.minimum(index, roi - 1 - index)
    if mode == "constant":
        return torch.where(distance < margin, EDGE_WEIGHT, 1.0)
    sigma = margin / 2 / math.sqrt(2 * math.log(1 / EDGE_WEIGHT))
    rise = torch.exp(-((margin - distance) ** 2) / (2 * sigma**2)).clamp(min=EDGE_WEIGHT)
    return torch.where(distance < margin, rise, 1.0)


def blend_weights(roi: tuple[int, int], size: tuple[int, int], overlap: int, mode: str = "gaussian") -> torch.Tensor:
    """The [h, w] weight map MONAI multiplies every window by before normalising the sum.

    It is a product of per-axis profiles, so at an image border, where a window keeps its small
    edge weights because no other window covers those pixels, the normalisation divides them out
    exactly. Where windows overlap, the one whose core holds a pixel outweighs the others by
    1/EDGE_WEIGHT, so outputs within the receptive field of a cut edge do not reach the result.
    """
    profiles = [_blend_profile(r, r < s, overlap, mode) for r, s in zip(roi, size)]
    return torch.outer(profiles[0], profiles[1]).float()


def tiles_per_image(size: tuple[int, int], tile: int | None, overlap: float | int = DEFAULT_OVERLAP) -> int:
    """Windows ``super_resolve`` runs over one [h, w] image (1 untiled), so progress has a total up front.

    MONAI places windows every ``step`` plus one flush with the image end: ceil((size - roi) / step) + 1
    per axis, with ``roi`` and ``step`` from :func:`axis_layout`.
    """
    if not tile:
        return 1
    pixels = overlap_pixels(overlap, tile)
    count = 1
    for extent in size:
        roi, step = axis_layout(extent, tile, pixels)
        count *= 1 if extent <= roi else math.ceil((extent - roi) / step) + 1
    return count


def window_plan(size: tuple[int, int], tile: int, overlap: float | int, mode: str = "gaussian"
                ) -> tuple[tuple[int, int], tuple[float, float], torch.Tensor]:
    """MONAI's ``roi_size``, ``overlap`` fractions and ``roi_weight_map`` for tiling one [h, w] image.

    MONAI steps by ``int(roi * (1 - fraction))``; the half pixel makes that exactly our step.
    """
    pixels = overlap_pixels(overlap, tile)
    layout = [axis_layout(extent, tile, pixels) for extent in size]
    roi = (layout[0][0], layout[1][0])
    fractions = tuple((r - step - 0.5) / r if step < r else 0.0 for r, step in layout)
    return roi, (fractions[0], fractions[1]), blend_weights(roi, size, pixels, mode)
