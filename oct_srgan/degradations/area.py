"""``area``: the mean of each ``fh`` x ``fw`` block (a detector integrating over its footprint)."""

from __future__ import annotations

import torch

from .base import Degradation


def block_mean(x: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x.reshape(*x.shape[:-2], h // fh, fh, w // fw, fw).mean(dim=(-3, -1))


AREA = Degradation("area", block_mean, "averaged", "mean of blocks")
