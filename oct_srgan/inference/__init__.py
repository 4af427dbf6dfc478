"""Whole-scan super-resolution: tiles and their blending (``tiling``), one model's inference
(``inferer``: :func:`super_resolve`, :class:`SRInferer`), and scans and files (``enhance``).

Models are loaded by :func:`oct_srgan.loading.load_model`.
"""

from ..limits import DEFAULT_TILE
from .enhance import EnhanceReport, enhance_files, enhance_scan, output_plan, write_comparison
from .inferer import SRInferer, prepare_for_inference, super_resolve
from .tiling import (
    BLEND_MODES,
    DEFAULT_OVERLAP,
    activation_bytes_per_pixel,
    auto_tile,
    axis_layout,
    blend_weights,
    memory_budget,
    overlap_pixels,
    tiles_per_image,
)

__all__ = [
    "BLEND_MODES",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "EnhanceReport",
    "SRInferer",
    "activation_bytes_per_pixel",
    "auto_tile",
    "axis_layout",
    "blend_weights",
    "enhance_files",
    "enhance_scan",
    "memory_budget",
    "output_plan",
    "prepare_for_inference",
    "super_resolve",
    "tiles_per_image",
    "write_comparison",
]
