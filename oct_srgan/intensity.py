"""Grey-level matching of a clean reference to its noisy input: fit once in preprocess, apply in training.

A single acquisition and the registered average of the same location differ by a gain and an
offset (0.71 to 1.06 on Duke subjects) besides noise. A model trained on the raw pair learns to
move every input to the average's brightness, which on other devices lifts the background by tens
of grey levels. Fitting ``input ~ gain * reference + offset`` on smoothed images over the retina and
training against the matched reference leaves only noise and resolution for the model to learn.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

# Smoothing of both images before the fit (pixels): averages speckle out of the input.
FIT_SIGMA = 4.0
# Fits outside these bounds mean the pair is not one location; they are refused by the caller.
GAIN_RANGE = (0.3, 3.0)


def fit_gain_offset(noisy: np.ndarray, reference: np.ndarray, sigma: float = FIT_SIGMA) -> tuple[float, float]:
    """Least-squares ``(gain, offset)`` with ``smooth(noisy) ~ gain * smooth(reference) + offset``.

    Both images are [H, W] in [0, 1] and registered pixel for pixel. A flat reference has no
    gain to fit and gives ``(1.0, 0.0)``.
    """
    a = gaussian_filter(np.asarray(reference, dtype=np.float64), sigma)
    b = gaussian_filter(np.asarray(noisy, dtype=np.float64), sigma)
    x, y = a.ravel(), b.ravel()
    if float(x.std()) < 1e-6:
        return 1.0, 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(gain), float(offset)


def match_intensity(x: torch.Tensor, gain: float, offset: float) -> torch.Tensor:
    """``gain * x + offset`` clipped to [0, 1]: the reference brought to its input's grey levels."""
    return (x * float(gain) + float(offset)).clamp(0.0, 1.0)


def unmatch_intensity(x: torch.Tensor, gain: float, offset: float) -> torch.Tensor:
    """The inverse of :func:`match_intensity` (where nothing was clipped): back to the stored reference."""
    return (x - float(offset)) / float(gain)
