"""No-reference measures of an upscaled native scan: does the output stay faithful to its input?

Scans from other devices have no clean reference, but an upscaler that is faithful to its input
must (1) average back to the input, (2) keep its dark background dark and (3) keep its small bright
foci as contrasted. Each measure compares the output, brought back to the input grid by the mean
of each ``fh x fw`` block (4 x 4 for a x4 model, 1 x 4 for a lateral one), with the input itself;
all images are grey in [0, 1]:

- **consistency** (dB): PSNR (data range 1) between the block mean of the output and the input,
  both Gaussian-smoothed at sigma = 2 input pixels, so speckle the model removes does not count
  but shifted intensities, erased lesions and new streaks do. Capped at 100 dB (identical images).
- **background shift** (8-bit grey levels): mean of the output's block mean minus the mean of the
  input, over the darkest 30 % of the pixels of the smoothed input (vitreous and the dark canvas).
- **focus contrast kept** (ratio): contrast of the output's block mean over that of the input,
  where contrast is the 99.5th minus the 50th percentile of a sigma 1 - sigma 4 (input pixels)
  difference of Gaussians: the local peak height of small bright foci and thin bright layers.
  It is computed on the block mean (not on the full-resolution output with sigmas x4), so it is
  exactly the gain ``a`` for an output ``a * replicate(input) + b`` and needs no resampling.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SMOOTH_SIGMA = 2.0
DARK_FRACTION = 0.30
DOG_SIGMAS = (1.0, 4.0)
FOCUS_PERCENTILES = (99.5, 50.0)
MAX_DB = 100.0
LEVELS = 255.0

# Name -> (label, unit) of each measure, in report order.
MEASURES: dict[str, tuple[str, str]] = {
    "consistency_db": ("consistency (dB, higher is better)", "dB"),
    "background_shift": ("background shift (of 255, 0 is ideal)", "levels"),
    "focus_kept": ("focus contrast kept (1 is ideal)", "ratio"),
}


def block_mean(output: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """The mean of each ``factors`` block of ``output`` [H*fh, W*fw]: the output on the input's grid."""
    fh, fw = factors
    h, w = output.shape[0] // fh, output.shape[1] // fw
    if (h * fh, w * fw) != output.shape:
        raise ValueError(f"output shape {output.shape} is not a multiple of the scale factors {factors}")
    return output.astype(np.float64).reshape(h, fh, w, fw).mean(axis=(1, 3))


def _smooth(image: np.ndarray) -> np.ndarray:
    return gaussian_filter(np.asarray(image, dtype=np.float64), SMOOTH_SIGMA, mode="reflect")


def consistency(lr: np.ndarray, output: np.ndarray, factors: tuple[int, int]) -> float:
    """PSNR (dB, range 1) of the smoothed block mean of ``output`` against the smoothed input ``lr``."""
    mse = float(np.mean((_smooth(block_mean(output, factors)) - _smooth(lr)) ** 2))
    return MAX_DB if mse <= 10 ** (-MAX_DB / 10) else float(-10.0 * np.log10(mse))


def dark_mask(lr: np.ndarray) -> np.ndarray:
    """The darkest :data:`DARK_FRACTION` of the pixels of the smoothed input (exactly that many pixels)."""
    smooth = _smooth(lr).ravel()
    count = max(1, int(round(DARK_FRACTION * smooth.size)))
    mask = np.zeros(smooth.size, dtype=bool)
    mask[np.argsort(smooth, kind="stable")[:count]] = True
    return mask.reshape(lr.shape)


def background_shift(lr: np.ndarray, output: np.ndarray, factors: tuple[int, int]) -> float:
    """Mean of the output's block mean minus the input's mean over the dark mask, in 8-bit levels."""
    mask = dark_mask(lr)
    back = block_mean(output, factors)
    return float((back[mask].mean() - np.asarray(lr, dtype=np.float64)[mask].mean()) * LEVELS)


def dog_contrast(image: np.ndarray) -> float:
    """99.5th minus 50th percentile of the sigma 1 - sigma 4 difference of Gaussians of ``image``."""
    img = np.asarray(image, dtype=np.float64)
    dog = gaussian_filter(img, DOG_SIGMAS[0], mode="reflect") - gaussian_filter(img, DOG_SIGMAS[1], mode="reflect")
    high, mid = np.percentile(dog, FOCUS_PERCENTILES)
    return float(high - mid)


def focus_kept(lr: np.ndarray, output: np.ndarray, factors: tuple[int, int]) -> float:
    """Focus contrast of the output's block mean over that of the input (NaN for a flat input)."""
    base = dog_contrast(lr)
    return float(dog_contrast(block_mean(output, factors)) / base) if base > 0 else float("nan")


def measure(lr: np.ndarray, output: np.ndarray, factors: tuple[int, int]) -> dict[str, float]:
    """All three measures of one output [H*fh, W*fw] of one input B-scan ``lr`` [H, W]."""
    return {
        "consistency_db": consistency(lr, output, factors),
        "background_shift": background_shift(lr, output, factors),
        "focus_kept": focus_kept(lr, output, factors),
    }
