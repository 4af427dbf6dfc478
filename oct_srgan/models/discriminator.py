"""VGG-style SRGAN discriminator (Ledig et al. 2017, Fig. 4), with global pooling.

Eight conv layers: conv3x3 64 + LeakyReLU(0.2) without BN, then seven conv-BN-LeakyReLU blocks
64(s2), 128, 128(s2), 256, 256(s2), 512, 512(s2) (all scaled by ``channels / 64``). The paper
flattens a fixed 96x96 patch into its dense layer; global average pooling instead lets any patch
size through with the same weights. Dense 1024 -> LeakyReLU -> dense 1 gives logits; the loss
applies the sigmoid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..enums import Norm, look_up_option
from .init import kaiming_init

if TYPE_CHECKING:
    from ..config import Config

LEAKY_SLOPE = 0.2
# (width multiplier of ``channels``, stride) of the seven conv-BN-LeakyReLU blocks after the first conv.
BLOCKS = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))


def _conv_block(in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Sequential:
    use_bn = norm == "batch"
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not use_bn)
    ]
    if use_bn:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """Patch -> one real/fake logit per image ([B, 1])."""

    def __init__(self, in_channels: int = 1, channels: int = 64, norm: str = "batch") -> None:
        super().__init__()
        look_up_option(norm, Norm, "norm")
        for name, value in (("in_channels", in_channels), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_channels = in_channels
        self.channels = channels
        self.norm = norm
        blocks = [_conv_block(in_channels, channels, 1, "none")]
        width = channels
        for mult, stride in BLOCKS:
            blocks.append(_conv_block(width, channels * mult, stride, norm))
            width = channels * mult
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width, 1024),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(1024, 1),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming normal (gain for LeakyReLU 0.2) for convs and dense layers, BN weight 1 bias 0."""
        kaiming_init(self, LEAKY_SLOPE)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each of the eight conv blocks ('block0' .. 'block7'), for feature matching."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.pool(x))


def discriminator(*, in_channels: int = 1, channels: int = 64, norm: str = "batch") -> Discriminator:
    """The SRGAN discriminator; the defaults are the paper's widths for one grey channel."""
    return Discriminator(in_channels=in_channels, channels=channels, norm=norm)


def build_discriminator(cfg: Config) -> Discriminator:
    """The discriminator for a config (same input channels and norm as the generator)."""
    return discriminator(in_channels=cfg.model.in_channels, channels=cfg.model.disc_channels, norm=cfg.model.norm)
