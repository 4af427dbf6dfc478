"""The shape of one degradation entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Degradation:
    """One way of making LR: ``reduce(x, fh, fw)`` shrinks the last two axes by ``fh`` x ``fw``.

    ``speckle`` says what happens to the speckle of a noisy scan: ``averaged`` (antialiasing mixes
    many grains into one LR pixel, as no scanner does) or ``native`` (every LR pixel is one sample
    with full speckle, the statistics of a natively or sparsely sampled scan).
    """

    name: str
    reduce: Callable[[torch.Tensor, int, int], torch.Tensor]
    speckle: str
    summary: str
