"""Losses for both training stages: pixel, content (feature-space) and adversarial.

Content losses compare features of an extractor from :mod:`oct_srgan.extractors`. Loss weights
(content 1, adversarial 1e-3 in the paper) come from the config; this module only provides the terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import SSIMLoss
from torch import nn

from .enums import AdversarialLoss as AdversarialLossKind
from .enums import PixelLoss as PixelLossKind
from .enums import look_up_option

__all__ = ["AdversarialLoss", "ContentLoss", "PixelLoss"]


class PixelLoss(nn.Module):
    """Per-pixel MSE (the paper's SRResNet loss) or L1, optionally + ``ssim_weight`` x (1 - SSIM).

    The SSIM term (MONAI's ``SSIMLoss``: Gaussian 11x11, sigma 1.5, the window the evaluation scores
    with) follows Zhao et al., "Loss functions for image restoration with neural networks" (IEEE TCI
    2017): a pixel loss alone under-weights local structure, which is what SSIM against a clean OCT
    reference rewards. It is computed in fp32 outside autocast (variances of bf16 values are too coarse).
    """

    def __init__(self, kind: str = "mse", ssim_weight: float = 0.0) -> None:
        super().__init__()
        look_up_option(kind, PixelLossKind, "pixel loss")
        if ssim_weight < 0:
            raise ValueError(f"ssim weight must be >= 0, got {ssim_weight}")
        self.kind = kind
        self.ssim_weight = ssim_weight
        self.ssim = SSIMLoss(spatial_dims=2, data_range=1.0) if ssim_weight > 0 else None

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(sr, hr) if self.kind == "mse" else F.l1_loss(sr, hr)
        if self.ssim is not None:
            with torch.autocast(device_type=sr.device.type, enabled=False):
                loss = loss + self.ssim_weight * self.ssim(sr.float(), hr.float())
        return loss


class ContentLoss(nn.Module):
    """MSE between extractor features of SR and HR, averaged over the extractor's layers.

    HR features are computed without autograd (they are targets); SR features keep the graph so
    gradients reach the generator.
    """

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    @staticmethod
    def _as_list(feats: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [feats] if isinstance(feats, torch.Tensor) else list(feats)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._as_list(self.extractor(hr))
        pred = self._as_list(self.extractor(sr))
        losses = [F.mse_loss(p.float(), t.float()) for p, t in zip(pred, target, strict=True)]
        return torch.stack(losses).mean()


class AdversarialLoss(nn.Module):
    """GAN losses on discriminator logits.

    ``bce``: the standard GAN of the SRGAN paper; G minimises -log D(G(z)), D minimises
    -log D(x) - log(1 - D(G(z))) (sum of the two terms).
    ``relativistic``: the relativistic average GAN of ESRGAN (Wang et al. 2018, eqs. 1-2), with
    D_Ra(a, b) = sigmoid(a - mean(b)); D: -E log D_Ra(real, fake) - E log(1 - D_Ra(fake, real)),
    G: the same with real and fake swapped.

    The caller decides what carries gradients: ``fake_logits`` from a detached SR image for the D
    step, and for G the real logits need no gradient.
    """

    def __init__(self, kind: str = "bce") -> None:
        super().__init__()
        look_up_option(kind, AdversarialLossKind, "adversarial loss")
        self.kind = kind

    @staticmethod
    def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        logits = logits.float()
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def generator(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss for the generator step (``real_logits`` may be None for ``bce``)."""
        if self.kind == "bce":
            return self._bce(fake_logits, 1.0)
        if real_logits is None:
            raise ValueError("the relativistic generator loss needs the real logits")
        return self._bce(real_logits - fake_logits.mean(), 0.0) + self._bce(
            fake_logits - real_logits.mean(), 1.0
        )

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss for the discriminator step."""
        if self.kind == "bce":
            return self._bce(real_logits, 1.0) + self._bce(fake_logits, 0.0)
        return self._bce(real_logits - fake_logits.mean(), 1.0) + self._bce(
            fake_logits - real_logits.mean(), 0.0
        )
