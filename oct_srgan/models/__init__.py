"""Networks: the SRResNet generator, the VGG-style discriminator, their builders, BN folding.

Builders take explicit arguments (like torchvision's ``resnet50(...)``); ``generator_spec`` turns a
config into the plain dict stored in checkpoints and model files, and ``build_generator`` rebuilds
the network from such a dict, refusing specs it does not understand.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from oct_srgan.errors import ModelError
from oct_srgan.models.discriminator import Discriminator
from oct_srgan.models.generator import (
    SPEC_DEFAULTS,
    UPSAMPLE_MODES,
    LateralPixelShuffle,
    ResidualBlock,
    SRResNet,
    SubPixelTail,
    UpsampleBlock,
)

if TYPE_CHECKING:
    from oct_srgan.config import Config

__all__ = [
    "Discriminator",
    "LateralPixelShuffle",
    "ResidualBlock",
    "SRResNet",
    "SPEC_DEFAULTS",
    "SubPixelTail",
    "UPSAMPLE_MODES",
    "UpsampleBlock",
    "GENERATOR_SPEC_KEYS",
    "build_discriminator",
    "build_generator",
    "discriminator",
    "fold_batchnorm",
    "generator_spec",
    "srresnet",
]

GENERATOR_SPEC_KEYS = ("in_channels", "channels", "num_blocks", "scale", "norm", "upsample_axes", "upsample")


def srresnet(
    *,
    in_channels: int = 1,
    channels: int = 64,
    num_blocks: int = 16,
    scale: int = 4,
    norm: str = "batch",
    upsample_axes: str = "both",
    upsample: str = "paper",
) -> SRResNet:
    """The SRGAN generator; the defaults are the paper's network for one grey channel.

    ``upsample="lr_shuffle"`` puts the output conv at LR resolution followed by one pixel shuffle
    (no conv at HR resolution; see :class:`SubPixelTail`).
    """
    return SRResNet(
        in_channels=in_channels,
        channels=channels,
        num_blocks=num_blocks,
        scale=scale,
        norm=norm,
        upsample_axes=upsample_axes,
        upsample=upsample,
    )


def discriminator(*, in_channels: int = 1, channels: int = 64, norm: str = "batch") -> Discriminator:
    """The SRGAN discriminator; the defaults are the paper's widths for one grey channel."""
    return Discriminator(in_channels=in_channels, channels=channels, norm=norm)


def generator_spec(cfg: Config) -> dict:
    """The generator's architecture from a config, as stored with every checkpoint."""
    return {
        "in_channels": cfg.model.in_channels,
        "channels": cfg.model.channels,
        "num_blocks": cfg.model.num_blocks,
        "scale": cfg.data.scale,
        "norm": cfg.model.norm,
        "upsample_axes": cfg.data.degradation.axes,
        "upsample": cfg.model.upsample,
    }


def build_generator(spec: dict) -> SRResNet:
    """Rebuild a generator from a spec dict (e.g. read from a checkpoint); ModelError if unusable."""
    if not isinstance(spec, dict):
        raise ModelError(f"model spec: expected a mapping, got {type(spec).__name__}")
    spec = {**SPEC_DEFAULTS, **spec}
    missing = [k for k in GENERATOR_SPEC_KEYS if k not in spec]
    unknown = sorted(str(k) for k in spec if k not in GENERATOR_SPEC_KEYS)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing key(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown key(s) {', '.join(unknown)}")
        raise ModelError(
            f"model spec: {'; '.join(parts)} (expected: {', '.join(GENERATOR_SPEC_KEYS)})"
        )
    try:
        return srresnet(**spec)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model spec: {exc}") from None


def build_discriminator(cfg: Config) -> Discriminator:
    """The discriminator for a config (same input channels and norm as the generator)."""
    return discriminator(
        in_channels=cfg.model.in_channels, channels=cfg.model.disc_channels, norm=cfg.model.norm
    )


def _fold_children(module: nn.Module) -> None:
    children = list(module.named_children())
    for (name, child), (next_name, nxt) in zip(children, children[1:]):
        if (
            type(child) is nn.Conv2d
            and isinstance(nxt, nn.BatchNorm2d)
            and nxt.running_mean is not None
            and nxt.num_features == child.out_channels
        ):
            setattr(module, name, fuse_conv_bn_eval(child, nxt))
            setattr(module, next_name, nn.Identity())
    for _, child in module.named_children():
        _fold_children(child)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each BatchNorm2d folded into the Conv2d right before it.

    "Right before" means the previous sibling in registration order, which in our models is the
    execution order (conv and BN share an ``nn.Sequential``). Folded BNs become ``nn.Identity``, so
    the copy keeps the original's class and attributes. Inference only: the copy cannot be trained
    as the original (BN statistics are frozen into the weights); ``model`` itself is untouched.
    """
    folded = copy.deepcopy(model).eval()
    _fold_children(folded)
    return folded
