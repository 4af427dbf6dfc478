"""The per-axis scale rule of x``scale`` super-resolution, shared by degradation, baselines and inference.

It lives apart from ``transforms`` because that module imports MONAI, which ``enhance`` must not
pay for just to know an output size.
"""

from __future__ import annotations

from .enums import Axes, look_up_option


def scale_factors(scale: int, axes: str) -> tuple[int, int]:
    """Per-axis (H, W) scale factors: lateral degradation leaves the axial axis alone."""
    look_up_option(axes, Axes, "axes")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return (1, scale) if axes == "lateral" else (scale, scale)
