"""Multiplicative speckle: what an OCT pixel's intensity carries on top of the tissue's reflectivity."""

from __future__ import annotations

import numpy as np
import torch

RandomSource = torch.Generator | np.random.RandomState | np.random.Generator


def add_speckle(x: torch.Tensor, sigma: float, generator: RandomSource | None = None) -> torch.Tensor:
    """Multiply by gamma-distributed speckle (mean 1, std ``sigma``) and clip to [0, 1].

    Gamma with shape 1/sigma^2 is the intensity law of L-look speckle (L = 1/sigma^2); sigma = 1 is
    fully developed single-look speckle. ``generator`` (torch or numpy) makes the noise reproducible.
    """
    if sigma < 0:
        raise ValueError(f"speckle sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clamp(0.0, 1.0)
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        rng: np.random.RandomState | np.random.Generator = np.random.default_rng(seed)
    elif generator is None:
        rng = np.random.default_rng()
    else:
        rng = generator
    shape = 1.0 / sigma**2
    noise = rng.gamma(shape, 1.0 / shape, size=tuple(x.shape))
    return (x * torch.as_tensor(noise, dtype=x.dtype, device=x.device)).clamp(0.0, 1.0)
