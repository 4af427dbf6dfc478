"""Networks: the generator architectures behind one table (``architectures``), the SRResNet
generator (``generator``, registered by ``srresnet``), the VGG-style discriminator, BN folding and
the CPU fusions.

Builders take explicit arguments (like torchvision's ``resnet50(...)``); ``generator_spec`` turns a
config into the plain dict stored in checkpoints and model files, and ``build_generator`` rebuilds
the network from such a dict through the table, refusing specs it does not understand.
"""

from __future__ import annotations

from .architectures import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    Architecture,
    build_generator,
    for_inference,
    full_spec,
    generator_spec,
    register_architecture,
    resolve_architecture,
)
from .discriminator import Discriminator, build_discriminator, discriminator
from .folding import fold_batchnorm
from .generator import UPSAMPLE_MODES, LateralPixelShuffle, ResidualBlock, SRResNet, SubPixelTail, UpsampleBlock
from .srresnet import srresnet

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "Architecture",
    "Discriminator",
    "LateralPixelShuffle",
    "ResidualBlock",
    "SRResNet",
    "SubPixelTail",
    "UPSAMPLE_MODES",
    "UpsampleBlock",
    "build_discriminator",
    "build_generator",
    "discriminator",
    "fold_batchnorm",
    "for_inference",
    "full_spec",
    "generator_spec",
    "register_architecture",
    "resolve_architecture",
    "srresnet",
]
