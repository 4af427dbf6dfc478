"""Input fidelity: pull an upscaled B-scan back towards its own input at scales coarser than speckle.

A despeckling model also flattens what is larger than a speckle grain but rare in its training
scans (small cysts, hyperreflective foci, an unusual background level). One step of low-pass back
projection (Irani & Peleg's iterative back-projection, with the residual smoothed first) puts back
``strength`` of what the output, averaged over each ``fh x fw`` block, misses of the input at
scales above ``sigma`` input pixels: grey levels, lesions and layers come back, the speckle the
model removed (finer than ``sigma``) mostly stays removed. ``strength`` 0 is the model as trained,
1 makes the output's block mean match the input's smoothed image closely; what it costs against
clean references is in the model card.
"""

from __future__ import annotations

import torch

from ..degradations.area import block_mean
from ..degradations.bicubic import resize_bicubic
from ..degradations.mixed import gaussian_blur

DEFAULT_SIGMA = 1.0


def keep_input(sr: torch.Tensor, lr: torch.Tensor, factors: tuple[int, int], strength: float,
               sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """``sr`` [N,C,H*fh,W*fw] with ``strength`` of its smoothed block-mean residual to ``lr`` [N,C,H,W] added back, in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"fidelity must be between 0 and 1, got {strength}")
    fh, fw = factors
    if sr.shape[-2:] != (lr.shape[-2] * fh, lr.shape[-1] * fw):
        raise ValueError(f"output {tuple(sr.shape[-2:])} is not input {tuple(lr.shape[-2:])} times {factors}")
    if strength == 0.0:
        return sr
    residual = gaussian_blur(lr.float() - block_mean(sr.float(), fh, fw), sigma, sigma)
    return (sr + strength * resize_bicubic(residual, tuple(sr.shape[-2:]))).clamp_(0.0, 1.0)
