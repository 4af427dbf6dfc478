"""The named choices of oct-srgan, and the one check that a value is one of them.

Each choice is a :class:`StrEnum` whose members are plain strings ("batch" == ``Norm.BATCH``), so
configs, specs saved with checkpoints and CLI options keep their text values. :func:`look_up_option`
is modelled on MONAI's ``monai.utils.look_up_option`` (an enum or a collection of choices, a member
or its value accepted) but returns the plain value and raises one line in the package's shape:
``<name> must be one of 'a', 'b', got 'x'``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection


class StrEnum(str, enum.Enum):
    """A string enum whose members print as their values (Python 3.10 has no ``enum.StrEnum``)."""

    def __str__(self) -> str:
        return str(self.value)


# Normalisation after the convs of the generator and the discriminator.
Norm = StrEnum("Norm", {"BATCH": "batch", "NONE": "none"})
# Axes a degradation reduces and the generator upsamples: both, or the lateral (A-scan) axis only.
Axes = StrEnum("Axes", {"BOTH": "both", "LATERAL": "lateral"})
# The generator's upsampling layout: the paper's stages and 9x9 HR tail, or one sub-pixel conv at LR.
UpsampleMode = StrEnum("UpsampleMode", {"PAPER": "paper", "LR_SHUFFLE": "lr_shuffle"})
# How LR is made from HR: the entries of oct_srgan.degradations.DEGRADATIONS.
DegradationMode = StrEnum("DegradationMode", {"BICUBIC": "bicubic", "AREA": "area", "DECIMATE": "decimate"})
# The pixel loss of training.
PixelLoss = StrEnum("PixelLoss", {"MSE": "mse", "L1": "l1"})
# Standard GAN (binary cross-entropy) or relativistic average discriminator.
AdversarialLoss = StrEnum("AdversarialLoss", {"BCE": "bce", "RELATIVISTIC": "relativistic"})
# Number format of inference.
Precision = StrEnum("Precision", {"FP32": "fp32", "BF16": "bf16"})
# A requested inference precision: ``auto`` picks bf16 only where it is native and the output is 8-bit.
InferencePrecision = StrEnum("InferencePrecision", {"AUTO": "auto", "FP32": "fp32", "BF16": "bf16"})
# How overlapping tiles are blended: smooth Gaussian weights or a step (plain cropping).
BlendMode = StrEnum("BlendMode", {"GAUSSIAN": "gaussian", "CONSTANT": "constant"})
# What the generator learns to produce: the group's clean reference, the scan itself, or whichever the dataset has.
Target = StrEnum("Target", {"AUTO": "auto", "REFERENCE": "reference", "SELF": "self"})
# A training stage: SRResNet (pixel loss) or SRGAN (adds content and adversarial losses).
Stage = StrEnum("Stage", {"SRRESNET": "srresnet", "SRGAN": "srgan"})
# The splits of a prepared dataset.
Split = StrEnum("Split", {"TRAIN": "train", "VAL": "val", "TEST": "test"})
# SSIM window: MONAI's Gaussian 11x11 (what SR papers report) or scikit-image's uniform 7x7.
SsimKind = StrEnum("SsimKind", {"GAUSSIAN": "gaussian", "UNIFORM": "uniform"})


def values(choices: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values of an enum, in definition order."""
    return tuple(str(member.value) for member in choices)


def look_up_option(value: object, supported: type[StrEnum] | Collection[str], name: str = "option") -> str:
    """``value`` as a plain string if it is one of ``supported``, else ValueError naming the choices.

    ``supported`` is a :class:`StrEnum` class or a collection of strings; ``value`` may be a member
    or its value. The message is ``<name> must be one of 'a', 'b', got <value>``.
    """
    choices = values(supported) if isinstance(supported, enum.EnumMeta) else tuple(supported)
    text = value.value if isinstance(value, enum.Enum) else value
    if isinstance(text, str) and text in choices:
        return str(text)
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
