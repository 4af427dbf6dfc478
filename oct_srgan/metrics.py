"""Image-quality metrics for super-resolution and paired comparisons against a baseline.

Which SSIM is which:

- ``kind="gaussian"`` (default) is MONAI's ``SSIMMetric`` with an 11x11 Gaussian window, sigma 1.5,
  K1 0.01, K2 0.03, averaged over the valid (unpadded) region: the SSIM of Wang et al. 2004 and of
  their MATLAB ``ssim_index`` code, which most SR papers use.
- ``kind="uniform"`` is scikit-image's default ``structural_similarity`` (7x7 uniform window, sample
  covariance). It gives systematically higher numbers; use it only to compare with tools that use
  scikit-image defaults.

Measured on Set5, bicubic x4, Y channel, 4-pixel border shaved, 8-bit LR and SR (the SRGAN
paper's protocol; ``tests/integration/test_metrics.py`` checks these): PSNR 28.43 dB (paper 28.43), Gaussian
SSIM 0.8113 (the value most SR papers list for bicubic, computed with MATLAB, is 0.8104), uniform
SSIM 0.8232. The SRGAN paper's bicubic SSIM, 0.8211, matches neither exactly; compare SSIMs only
when they come from the same implementation.

``shave`` removes that many pixels from every border (both axes, also for lateral-only SR, so one
setting serves both) before any metric, as SR papers do to ignore border effects.

The functions here compute; ``metric_table`` says which of them evaluations report and how.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from monai.metrics import MultiScaleSSIMMetric, PSNRMetric, SSIMMetric
from scipy import stats
from skimage.metrics import structural_similarity

from oct_srgan.enums import SsimKind, look_up_option

# MS-SSIM uses five scales (2x average pooling between them) with an 11-pixel window; MONAI requires
# each side // 16 > 10, so images with a side under 176 pixels get NaN rather than a number computed
# on fewer scales, which would not be comparable with the standard five-scale MS-SSIM.
# Below this many independent units (B-scans, subjects) a t-interval is not reported: over 2 subjects
# t(0.975, 1) = 12.7 turned a 2 dB spread into [-0.55, 51.24] dB, which says nothing.
MIN_INTERVAL_UNITS = 3
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_KERNEL = 11
MS_SSIM_MIN_SIZE = MS_SSIM_KERNEL * (len(MS_SSIM_WEIGHTS) - 1) ** 2


def _prepare(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, cast to float32 and remove ``shave`` pixels from every border."""
    if sr.ndim != 4 or sr.shape != hr.shape:
        raise ValueError(
            f"expected two [B,C,H,W] tensors of the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )
    if shave < 0 or 2 * shave >= min(sr.shape[-2:]):
        raise ValueError(f"shave={shave} leaves nothing of a {sr.shape[-2]}x{sr.shape[-1]} image")
    if shave:
        sr = sr[..., shave:-shave, shave:-shave]
        hr = hr[..., shave:-shave, shave:-shave]
    return sr.detach().float(), hr.detach().float()


def psnr(sr: torch.Tensor, hr: torch.Tensor, data_range: float = 1.0, shave: int = 0) -> torch.Tensor:
    """Per-image PSNR in dB, shape [B]; identical images give ``inf``."""
    sr, hr = _prepare(sr, hr, shave)
    return PSNRMetric(max_val=data_range, reduction="none")(sr, hr).reshape(-1).double()


def ssim(
    sr: torch.Tensor, hr: torch.Tensor, data_range: float = 1.0, shave: int = 0, kind: str = "gaussian"
) -> torch.Tensor:
    """Per-image SSIM, shape [B], averaged over channels (see the module docstring for ``kind``)."""
    look_up_option(kind, SsimKind, "ssim kind")
    sr, hr = _prepare(sr, hr, shave)
    if kind == "gaussian":
        metric = SSIMMetric(spatial_dims=2, data_range=data_range, kernel_type="gaussian", win_size=11,
                            kernel_sigma=1.5, reduction="none")
        return metric(sr, hr).reshape(-1).double()
    values = [
        structural_similarity(a.cpu().numpy(), b.cpu().numpy(), data_range=data_range, channel_axis=0)
        for a, b in zip(sr, hr)
    ]
    return torch.tensor(values, dtype=torch.float64)


def ms_ssim(sr: torch.Tensor, hr: torch.Tensor, data_range: float = 1.0, shave: int = 0) -> torch.Tensor:
    """Per-image five-scale MS-SSIM (MONAI), shape [B]; NaN when a side is under ``MS_SSIM_MIN_SIZE``."""
    sr, hr = _prepare(sr, hr, shave)
    if min(sr.shape[-2:]) < MS_SSIM_MIN_SIZE:
        return torch.full((sr.shape[0],), math.nan, dtype=torch.float64)
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=data_range, kernel_size=MS_SSIM_KERNEL,
                                  kernel_sigma=1.5, weights=MS_SSIM_WEIGHTS, reduction="none")
    return metric(sr, hr).reshape(-1).double()


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma of MATLAB ``rgb2ycbcr`` for RGB in [0, 1]: Y in [16/255, 235/255], channel dim kept.

    Works on [..., 3, H, W]; a single grey channel is treated as R = G = B, which is what SR
    benchmarks do for the grey images of Set14.
    """
    if x.ndim < 3 or x.shape[-3] not in (1, 3):
        raise ValueError(f"rgb_to_y expects [..., 3, H, W] (or one grey channel), got {tuple(x.shape)}")
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    coeffs = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (16.0 + (x * coeffs).sum(dim=-3, keepdim=True)) / 255.0


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round [0, 1] values to ``bits``-bit levels, as saving an SR output to an image file does."""
    levels = 2**bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


def crop_to_common(*images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The images cropped at their top-left corner to the height and width all of them have."""
    h = min(x.shape[-2] for x in images)
    w = min(x.shape[-1] for x in images)
    return tuple(x[..., :h, :w] for x in images)


def _stats(values: np.ndarray, confidence: float) -> dict:
    """n, mean, sample std and the t-distribution confidence interval of the mean of finite values
    (NaN below :data:`MIN_INTERVAL_UNITS` values: see :func:`interval_text`)."""
    values = values[np.isfinite(values)]
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    meaningful = n >= MIN_INTERVAL_UNITS
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if meaningful else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def interval_text(low: float, high: float, n: int, fmt: str = ".4f", unit: str = "units") -> str:
    """``[low, high]``, or why there is none: fewer than :data:`MIN_INTERVAL_UNITS` units."""
    if n < MIN_INTERVAL_UNITS or not (math.isfinite(low) and math.isfinite(high)):
        return f"not meaningful ({n} {unit}, fewer than {MIN_INTERVAL_UNITS})"
    return f"[{low:{fmt}}, {high:{fmt}}]"


def summarize(
    rows: pd.DataFrame,
    baseline: str = "bicubic",
    method: str = "model",
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean ± std per method and metric, plus the paired ``method - baseline`` difference with its CI.

    Columns: method, metric, n, mean, std, ci_low, ci_high. The difference rows are named
    ``"<method> - <baseline>"`` and pair images by ``id``; their CI is mean ± t(n-1) * std / sqrt(n),
    NaN when fewer than :data:`MIN_INTERVAL_UNITS` values were used.
    Non-finite values (PSNR of identical images, MS-SSIM of small images) are left out of every
    statistic, and ``n`` says how many were used.
    """
    keys = ("id", "method", "group_id", "target")
    metrics = [m for m in (metrics or [c for c in rows.columns if c not in keys]) if m in rows.columns]
    out = []
    for name, group in rows.groupby("method", sort=False):
        for metric in metrics:
            out.append({"method": name, "metric": metric, **_stats(group[metric].to_numpy(float), confidence)})
    names = set(rows["method"])
    if baseline in names and method in names:
        for metric in metrics:
            table = rows.pivot(index="id", columns="method", values=metric)
            diff = (table[method] - table[baseline]).to_numpy(float)
            out.append({"method": f"{method} - {baseline}", "metric": metric, **_stats(diff, confidence)})
    columns = ["method", "metric", "n", "mean", "std", "ci_low", "ci_high"]
    return pd.DataFrame(out, columns=columns)


def content_distance(extractor: torch.nn.Module, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Per-image feature MSE, shape [B], averaged over the extractor's feature maps."""
    param = next(extractor.parameters(), None)
    device = param.device if param is not None else sr.device
    with torch.no_grad():
        fs = extractor(sr.float().to(device))
        fh = extractor(hr.float().to(device))
        per_layer = [((a - b) ** 2).flatten(1).mean(1) for a, b in zip(fs, fh)]
    return torch.stack(per_layer).mean(0).double().cpu()


# ----------------------------------------------------------------------------- OCT quality measures
#
# The OCT denoising/SR literature (Fang et al., IEEE TMI 32(11), 2013; Huang et al., Opt. Express
# 27(9), 2019) reports, besides PSNR/SSIM against a registered average:
#   CNR = 10 log10(|mu_s - mu_b| / sqrt(var_s + var_b))   (dB; signal ROI s vs background ROI b)
#   ENL = mu_s^2 / var_s                                  (smoothness of a homogeneous bright ROI)
#   EPI = corr(Laplacian(image), Laplacian(reference))    (edge preservation, Sattar et al. 1997)
#         taken here on the Laplacian of Gaussian at sigma = EPI_SIGMA px: a registered average still
#         holds pixel-scale residual speckle, and the plain Laplacian of it scores every method near
#         0.01 (noise against noise); at sigma 2 px (about the width of a retinal layer boundary at
#         HR) it measures the layer edges a reader looks at. ``epi(..., sigma=0)`` is the plain one.
# The ROIs are chosen once per B-scan on the *reference* and used for every method, by this rule:
#   - smooth the reference (Gaussian sigma 2 px) and threshold it with Otsu: the first pixel of each
#     column above the threshold is the top of the retina (the inner limiting membrane);
#   - background = the pixels of each column more than ``margin`` rows above that top (the vitreous:
#     the darkest band above the retina);
#   - signal = the brightest band: pixels of the smoothed reference at or above its
#     ``signal_quantile`` quantile (the RPE / nerve-fibre-layer reflections).


def oct_rois(reference: np.ndarray, margin: int = 8, signal_quantile: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (signal, background) masks of a [H, W] reference B-scan, by the rule above."""
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    ref = np.asarray(reference, dtype=np.float64)
    smooth = gaussian_filter(ref, 2.0)
    above = smooth > threshold_otsu(smooth)
    rows = np.arange(ref.shape[0])[:, None]
    top = np.where(above.any(axis=0), above.argmax(axis=0), -1)[None, :]
    background = rows < (top - margin)
    signal = smooth >= np.quantile(smooth, signal_quantile)
    return signal, background


def cnr(image: np.ndarray, signal: np.ndarray, background: np.ndarray) -> float:
    """Contrast-to-noise ratio in dB between two ROIs (NaN if an ROI is empty or has no spread)."""
    img = np.asarray(image, dtype=np.float64)
    if not signal.any() or not background.any():
        return math.nan
    s, b = img[signal], img[background]
    spread = math.sqrt(s.var() + b.var())
    contrast = abs(s.mean() - b.mean())
    return 10.0 * math.log10(contrast / spread) if spread > 0 and contrast > 0 else math.nan


def enl(image: np.ndarray, roi: np.ndarray) -> float:
    """Equivalent number of looks mu^2 / var of an ROI (NaN if empty or constant)."""
    values = np.asarray(image, dtype=np.float64)[roi]
    return float(values.mean() ** 2 / values.var()) if values.size and values.var() > 0 else math.nan


EPI_SIGMA = 2.0


def epi(image: np.ndarray, reference: np.ndarray, sigma: float = EPI_SIGMA) -> float:
    """Edge preservation index: correlation of the (Gaussian-smoothed) Laplacians of image and reference (1 = same edges)."""
    from scipy.ndimage import gaussian_laplace, laplace

    def edges(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return gaussian_laplace(x, sigma) if sigma > 0 else laplace(x)

    a, b = edges(image), edges(reference)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan
