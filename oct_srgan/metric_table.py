"""The metric table: name -> how to score one output against its target, how to print it, and
whether it is a headline number. Scoring (``evaluate``), training validation, serve's check mode,
the model card and the registered model's description all read it, so a new metric is one entry
(its function may live in its own module) and every one of them reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from . import metrics
from .tables import Table

# score(output, target, shave): one [1, C, H, W] output against its target, both in [0, 1].
Score = Callable[[torch.Tensor, torch.Tensor, int], float]


@dataclass(frozen=True)
class Metric:
    """One metric. ``fmt`` prints a value; ``headline`` metrics are the ones summaries quote (serve's
    check mode, the model card, validation); ``grey_only`` ones need a grey OCT B-scan (not RGB)."""

    name: str
    label: str
    score: Score
    fmt: str = "{:.4f}"
    headline: bool = False
    grey_only: bool = False


METRIC_TABLE: Table[Metric] = Table("metric", KeyError)
register_metric = METRIC_TABLE.register


def metric_names(*, grey: bool = True, headline: bool = False) -> tuple[str, ...]:
    """Names in table order: all, without the grey-only ones (``grey=False``), or headline only."""
    return tuple(m.name for m in METRIC_TABLE.values()
                 if (grey or not m.grey_only) and (m.headline or not headline))


def score(output: torch.Tensor, target: torch.Tensor, *, shave: int = 0, names: tuple[str, ...] | None = None,
          grey: bool = False) -> dict[str, float]:
    """The named metrics (default: every one that applies; grey-only ones when ``grey``) of one output."""
    chosen = names if names is not None else metric_names(grey=grey)
    return {name: float(METRIC_TABLE[name].score(output, target, shave)) for name in chosen}


def score_against(target: torch.Tensor, outputs: Mapping[str, torch.Tensor], *, shave: int = 0) -> dict[str, dict[str, float]]:
    """The headline metrics of each named [1,C,H,W] output (e.g. model and bicubic) against one target.

    Training validation and the server's check mode both report a model next to its bicubic
    baseline this way, so their numbers agree for the same images.
    """
    names = metric_names(headline=True)
    return {name: score(out, target, shave=shave, names=names) for name, out in outputs.items()}


def _grey(fn: Callable[..., float]) -> Score:
    """A numpy OCT measure of one grey B-scan as a table score (borders shaved first)."""
    def scored(output: torch.Tensor, target: torch.Tensor, shave: int) -> float:
        img = output.detach().float().cpu().numpy().reshape(output.shape[-2:])
        ref = target.detach().float().cpu().numpy().reshape(target.shape[-2:])
        if shave:
            img, ref = img[shave:-shave, shave:-shave], ref[shave:-shave, shave:-shave]
        return fn(img, ref)
    return scored


def _cnr(img: np.ndarray, ref: np.ndarray) -> float:
    signal, background = metrics.oct_rois(ref)
    return metrics.cnr(img, signal, background)


def _enl(img: np.ndarray, ref: np.ndarray) -> float:
    return metrics.enl(img, metrics.oct_rois(ref)[0])


for _entry in (
    Metric("psnr", "PSNR", lambda o, t, s: float(metrics.psnr(o, t, 1.0, s)[0]), "{:.2f} dB", headline=True),
    Metric("ssim", "SSIM", lambda o, t, s: float(metrics.ssim(o, t, 1.0, s)[0]), "{:.3f}", headline=True),
    Metric("ms_ssim", "MS-SSIM", lambda o, t, s: float(metrics.ms_ssim(o, t, 1.0, s)[0]), "{:.3f}"),
    Metric("cnr", "CNR", _grey(_cnr), "{:.2f} dB", grey_only=True),
    Metric("enl", "ENL", _grey(_enl), "{:.2f}", grey_only=True),
    Metric("epi", "EPI", _grey(metrics.epi), "{:.4f}", grey_only=True),
):
    register_metric(_entry)
