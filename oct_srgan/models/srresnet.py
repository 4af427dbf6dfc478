"""The ``srresnet`` entry of the architecture table: the SRGAN generator (``generator.SRResNet``),
its defaults for files saved before a key existed, and its CPU inference form (``fused``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .architectures import Architecture, register_architecture
from .fused import can_fuse, fuse_pointwise
from .generator import SRResNet


def _for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """On the CPU, PReLUs fused into their convs and residual additions done in place."""
    return fuse_pointwise(model) if can_fuse(device) else model


SRRESNET = register_architecture(Architecture(
    "srresnet", SRResNet, for_inference=_for_inference,
    # ``upsample`` was added after the first generator files were saved; they hold the paper's layout.
    defaults={"upsample": "paper"},
))


def srresnet(**kwargs: Any) -> SRResNet:
    """The SRGAN generator; the defaults are the paper's network for one grey channel.

    ``upsample="lr_shuffle"`` puts the output conv at LR resolution followed by one pixel shuffle
    (no conv at HR resolution; see :class:`~oct_srgan.models.generator.SubPixelTail`).
    """
    return SRRESNET.build(**kwargs)
