"""``decimate``: strided sampling, one HR sample per LR pixel, so the LR keeps native speckle.

LR pixel ``i`` is HR sample ``f*i + (f-1)//2``, the sample nearest the block centre (rounded down),
so the LR grid sits where the bicubic baseline and the generator expect its pixel centres. This is
what a scanner that acquires ``f`` times fewer A-scans (or depth samples) records.
"""

from __future__ import annotations

import torch

from .base import Degradation


def strided_sample(x: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
    return x[..., (fh - 1) // 2 :: fh, (fw - 1) // 2 :: fw].contiguous()


DECIMATE = Degradation("decimate", strided_sample, "native", "strided sampling (native speckle)")
