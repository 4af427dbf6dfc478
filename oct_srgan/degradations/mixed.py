"""``mixed``: a random degradation per training sample (mode, blur strength, extra speckle).

After Real-ESRGAN's lesson that a model only handles the degradations it was trained on: native
scans reach ``enhance`` with full speckle in every pixel (``decimate``), published protocols use
antialiased ``bicubic``; drawing both, with a random optical blur before sampling and sometimes
extra speckle, trains one model for all of them. Val/test LR stay fixed per dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .speckle import add_speckle
from .table import DEGRADATIONS


def gaussian_blur(x: torch.Tensor, sigma_h: float, sigma_w: float) -> torch.Tensor:
    """Separable Gaussian blur of the last two axes (reflect padding); a zero sigma leaves that axis alone."""
    out = x.reshape(-1, 1, *x.shape[-2:])
    for axis, sigma in ((-2, sigma_h), (-1, sigma_w)):
        if sigma <= 0:
            continue
        radius = max(1, int(3 * sigma + 0.5))
        taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        kernel = (kernel / kernel.sum()).reshape(1, 1, *((1, -1) if axis == -1 else (-1, 1)))
        pad = (radius, radius, 0, 0) if axis == -1 else (0, 0, radius, radius)
        out = F.conv2d(F.pad(out, pad, mode="reflect"), kernel)
    return out.reshape(x.shape)


class RandomDegradation:
    """Draw one degradation per call: ``mode`` from ``modes``, a blur of sigma in ``blur`` (HR pixels,
    upsampled axes only) with probability ``blur_prob``, extra speckle of sigma in ``speckle`` with
    probability ``speckle_prob``. ``last`` holds what the previous call drew (for logging and tests).
    """

    def __init__(self, fh: int, fw: int, modes: Sequence[str], blur: Sequence[float] = (0.0, 0.0),
                 blur_prob: float = 0.0, speckle: Sequence[float] = (0.0, 0.0), speckle_prob: float = 0.0) -> None:
        unknown = [m for m in modes if m not in DEGRADATIONS]
        if not modes or unknown:
            raise ValueError(f"mixed degradation modes must be some of {', '.join(DEGRADATIONS)}, got {list(modes)!r}")
        for name, pair in (("blur", blur), ("speckle", speckle)):
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise ValueError(f"mixed degradation {name} must be [low, high] with 0 <= low <= high, got {list(pair)!r}")
        for name, p in (("blur_prob", blur_prob), ("speckle_prob", speckle_prob)):
            if not 0 <= p <= 1:
                raise ValueError(f"mixed degradation {name} must be in [0, 1], got {p}")
        self.fh, self.fw, self.modes = fh, fw, list(modes)
        self.blur, self.blur_prob = (float(blur[0]), float(blur[1])), float(blur_prob)
        self.speckle, self.speckle_prob = (float(speckle[0]), float(speckle[1])), float(speckle_prob)
        self.last: dict[str, object] = {}

    def __call__(self, x: torch.Tensor, rng: np.random.RandomState) -> torch.Tensor:
        mode = self.modes[int(rng.randint(len(self.modes)))]
        sigma = float(rng.uniform(*self.blur)) if rng.uniform() < self.blur_prob else 0.0
        noise = float(rng.uniform(*self.speckle)) if rng.uniform() < self.speckle_prob else 0.0
        if sigma > 0:
            x = gaussian_blur(x, sigma if self.fh > 1 else 0.0, sigma if self.fw > 1 else 0.0)
        lr = DEGRADATIONS[mode].reduce(x, self.fh, self.fw)
        if noise > 0:
            lr = add_speckle(lr, noise, rng)
        self.last = {"mode": mode, "blur": sigma, "speckle": noise}
        return lr.clamp(0.0, 1.0)
