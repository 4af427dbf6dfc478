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


class Norm(StrEnum):
    """Normalisation after the convs of the generator and the discriminator."""

    BATCH = "batch"
    NONE = "none"


class Axes(StrEnum):
    """Axes a degradation reduces and the generator upsamples: both, or the lateral (A-scan) axis only."""

    BOTH = "both"
    LATERAL = "lateral"


class UpsampleMode(StrEnum):
    """The generator's upsampling layout: the paper's stages and 9x9 HR tail, or one LR sub-pixel conv."""

    PAPER = "paper"
    LR_SHUFFLE = "lr_shuffle"


class DegradationMode(StrEnum):
    """How LR is made from HR: MATLAB bicubic or block mean."""

    BICUBIC = "bicubic"
    AREA = "area"


class PixelLoss(StrEnum):
    MSE = "mse"
    L1 = "l1"


class AdversarialLoss(StrEnum):
    """Standard GAN (binary cross-entropy) or relativistic average discriminator."""

    BCE = "bce"
    RELATIVISTIC = "relativistic"


class Precision(StrEnum):
    """Number format of inference."""

    FP32 = "fp32"
    BF16 = "bf16"


class InferencePrecision(StrEnum):
    """A requested inference precision: ``auto`` picks bf16 only where it is native and the output is 8-bit."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class BlendMode(StrEnum):
    """How overlapping tiles are blended: smooth Gaussian weights or a step (plain cropping)."""

    GAUSSIAN = "gaussian"
    CONSTANT = "constant"


class Target(StrEnum):
    """What training and evaluation score against: the clean reference, the scan itself, or ``auto``."""

    AUTO = "auto"
    REFERENCE = "reference"
    SELF = "self"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Stage(StrEnum):
    SRRESNET = "srresnet"
    SRGAN = "srgan"


class SsimKind(StrEnum):
    """SSIM window: MONAI's Gaussian 11x11 (what SR papers report) or scikit-image's uniform 7x7."""

    GAUSSIAN = "gaussian"
    UNIFORM = "uniform"


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
