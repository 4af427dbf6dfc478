"""Validation during training: the EMA generator against bicubic on whole val B-scans, and a figure.

Runs on rank 0 only. The generator runs through :class:`~oct_srgan.inference.SRInferer`, as in
enhance, evaluate and serve, and is scored by :func:`oct_srgan.metric_table.score_against`, as in serve.
The bicubic baseline of each item is computed once and kept: it does not change while the generator
learns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..loading import LoadedModel

if TYPE_CHECKING:
    from ..inference import SRInferer

SOURCE = "training EMA"


class Validator:
    """PSNR/SSIM of a generator vs bicubic on the val items, and the LR | bicubic | SR | HR figure.

    ``spec`` is the generator's architecture (scale, axes, channels); ``degradation`` is how the
    dataset made its LR images, recorded with the model as its exported file would record it.
    """

    def __init__(self, items: list[dict[str, Any]], spec: dict[str, Any], degradation: dict[str, Any] | None,
                 stage: str, device: torch.device) -> None:
        self.items, self.spec, self.degradation, self.stage, self.device = items, spec, degradation, stage, device
        self.scale, self.axes = int(spec["scale"]), str(spec["upsample_axes"])
        self._bicubic_cache: dict[str, torch.Tensor] = {}

    def _bicubic(self, item: dict[str, Any]) -> torch.Tensor:
        from ..transforms import upscale_bicubic

        key = item["id"]
        if key not in self._bicubic_cache:
            self._bicubic_cache[key] = upscale_bicubic(item["lr"][None].float(), self.scale, self.axes).clamp(0, 1)
        return self._bicubic_cache[key]

    def inferer(self, model: nn.Module) -> SRInferer:
        """A whole-image fp32 :class:`~oct_srgan.inference.SRInferer` of ``model`` as it is now (it copies the weights)."""
        from ..inference import SRInferer

        loaded = LoadedModel(model, scale=self.scale, axes=self.axes, channels=int(self.spec["in_channels"]),
                             source=SOURCE, degradation=self.degradation, spec=dict(self.spec))
        return SRInferer(loaded, tile=None, precision="fp32", device=self.device)

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int) -> tuple[dict[str, float], Any]:
        """The ``val/*`` metrics of ``model`` (its eval-mode copy) and the figure of the first item (None without items)."""
        from .. import metric_table, metrics

        infer = self.inferer(model)
        rows = []
        first = None
        for item in self.items:
            lr = item["lr"][None].float()
            bic, sr, hr = metrics.crop_to_common(self._bicubic(item), infer(lr), item["hr"][None].float())
            scored = metric_table.score_against(hr, {"sr": sr, "bicubic": bic}, shave=self.scale)
            rows.append((scored["sr"]["psnr"], scored["sr"]["ssim"], scored["bicubic"]["psnr"], scored["bicubic"]["ssim"]))
            if first is None:
                first = (lr, bic, sr, hr)
        mean = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
        result = {
            "val/psnr": float(mean[0]),
            "val/ssim": float(mean[1]),
            "val/psnr_bicubic": float(mean[2]),
            "val/ssim_bicubic": float(mean[3]),
            "val/psnr_gain": float(mean[0] - mean[2]),
        }
        return result, (self._figure(*first, result, step) if first is not None else None)

    def _figure(self, lr: torch.Tensor, bic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor,
                result: dict[str, float], step: int) -> Any:
        """LR | bicubic | SR | HR, each with a zoomed crop of the centre underneath."""
        from ..figures import validation_comparison

        return validation_comparison(lr, bic, sr, hr, scale=self.scale, axes=self.axes,
                                     psnr_bicubic=result["val/psnr_bicubic"], psnr_sr=result["val/psnr"],
                                     title=f"{self.stage} step {step}: validation B-scan, x{self.scale} ({self.axes})")
