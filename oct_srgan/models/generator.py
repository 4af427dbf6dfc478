"""SRResNet generator (Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017), with options for OCT.

Layout: 9x9 conv head + PReLU, ``num_blocks`` residual blocks (conv3x3-BN-PReLU-conv3x3-BN + skip),
conv3x3-BN + long skip, log2(scale) upsampling stages (conv3x3, pixel shuffle x2, PReLU), 9x9 tail
conv back to ``in_channels``. ``norm='none'`` drops every BatchNorm (convs then carry a bias).
``upsample_axes='lateral'`` upsamples the width (A-scan axis) only, for OCT whose resolution is lost
by lateral A-scan undersampling.

``upsample='lr_shuffle'`` replaces the upsampling stages and the 9x9 HR tail by one 3x3 conv at LR
resolution to ``in_channels * scale**2`` channels (``in_channels * scale`` for lateral) and a single
pixel shuffle (sub-pixel convolution, Shi et al. 2016): no conv runs at HR resolution, which on CPU
cuts the paper net's cost per output pixel by about 40 %. ``upsample='paper'`` (the default, and
what every file saved without the key means) is the paper's layout.

Every conv followed by a BatchNorm is a child of the same ``nn.Sequential`` right before it, so
:func:`oct_srgan.models.fold_batchnorm` can fold them for inference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..enums import Axes, Norm, UpsampleMode, look_up_option, values
from .activations import PReLU
from .fast_tail import strided_index, subpixel_index, subpixel_tail
from .init import kaiming_init

UPSAMPLE_MODES = values(UpsampleMode)
PRELU_INIT = 0.25
RESIDUAL_INIT_SCALE = 0.1


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, norm: str) -> list[nn.Module]:
    """A conv (bias only when no BatchNorm follows, where it would be cancelled) and its BN."""
    use_bn = norm == "batch"
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not use_bn)
    return [conv, nn.BatchNorm2d(out_channels)] if use_bn else [conv]


class ResidualBlock(nn.Module):
    """conv3x3-BN-PReLU-conv3x3-BN plus identity skip (SRGAN paper, Fig. 4)."""

    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_norm(channels, channels, 3, norm),
            PReLU(init=PRELU_INIT),
            *_conv_norm(channels, channels, 3, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LateralPixelShuffle(nn.Module):
    """1-D pixel shuffle along the width: [B, C*r, H, W] -> [B, C, H, W*r].

    Channel ``c*r + k`` becomes column offset ``k`` of output channel ``c``, the same channel order
    as :class:`torch.nn.PixelShuffle` restricted to one axis.
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, cr, h, w = x.shape
        r = self.upscale_factor
        x = x.reshape(b, cr // r, r, h, w).permute(0, 1, 3, 4, 2)
        return x.reshape(b, cr // r, h, w * r)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class UpsampleBlock(nn.Module):
    """One x2 stage: conv3x3 to r*C channels, pixel shuffle, PReLU (r = 4 for both axes, 2 lateral)."""

    def __init__(self, channels: int, axes: str = "both") -> None:
        super().__init__()
        look_up_option(axes, Axes, "upsample_axes")
        factor = 4 if axes == "both" else 2
        self.conv = nn.Conv2d(channels, channels * factor, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2) if axes == "both" else LateralPixelShuffle(2)
        self.act = PReLU(init=PRELU_INIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class SubPixelTail(nn.Module):
    """Output at LR resolution, pixel-shuffled to HR: conv3x3 to ``out_channels * r`` channels + shuffle.

    ``r`` is ``scale**2`` (both axes) or ``scale`` (lateral). The conv starts ICNR-initialised
    (Aitken et al. 2017): the ``r`` sub-pixel kernels of one output channel are equal, so the
    untrained tail is a nearest-neighbour upsampling of one conv and shows no checkerboard.
    """

    def __init__(self, channels: int, out_channels: int, scale: int, axes: str = "both") -> None:
        super().__init__()
        look_up_option(axes, Axes, "upsample_axes")
        self.factor = scale * scale if axes == "both" else scale
        self.conv = nn.Conv2d(channels, out_channels * self.factor, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale) if axes == "both" else LateralPixelShuffle(scale)

    def icnr_(self) -> None:
        """Copy the first sub-pixel kernel of each output channel to its other ``factor - 1``."""
        with torch.no_grad():
            weight = self.conv.weight.view(-1, self.factor, *self.conv.weight.shape[1:])
            weight.copy_(weight[:, :1].expand_as(weight))
            if self.conv.bias is not None:
                bias = self.conv.bias.view(-1, self.factor)
                bias.copy_(bias[:, :1].expand_as(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class SRResNet(nn.Module):
    """The SRGAN generator. Input and output are [B, in_channels, ...] in the data's [0, 1] range;
    the output is not clamped so the pixel loss sees the true error. The constructor's arguments are
    the spec keys of the ``srresnet`` architecture (``models/srresnet.py``)."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 64,
        num_blocks: int = 16,
        scale: int = 4,
        norm: str = "batch",
        upsample_axes: str = "both",
        upsample: str = "paper",
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of 2 (2, 4, 8, ...), got {scale!r}")
        for name, value in (("in_channels", in_channels), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"num_blocks must be a non-negative integer, got {num_blocks!r}")
        look_up_option(norm, Norm, "norm")
        look_up_option(upsample_axes, Axes, "upsample_axes")
        look_up_option(upsample, UpsampleMode, "upsample")
        self.in_channels = in_channels
        self.channels = channels
        self.num_blocks = num_blocks
        self.scale = scale
        self.norm = norm
        self.upsample_axes = upsample_axes

        self.head = nn.Sequential(
            nn.Conv2d(in_channels, channels, 9, padding=4), PReLU(init=PRELU_INIT)
        )
        self.blocks = nn.Sequential(*(ResidualBlock(channels, norm) for _ in range(num_blocks)))
        self.body_tail = nn.Sequential(*_conv_norm(channels, channels, 3, norm))
        if upsample == "paper":
            self.upsample = nn.Sequential(
                *(UpsampleBlock(channels, upsample_axes) for _ in range(int(math.log2(scale))))
            )
            self.tail: nn.Module = nn.Conv2d(channels, in_channels, 9, padding=4)
            if upsample_axes == "both" and scale > 1:
                # The HR tail runs in its sub-pixel form (models/fast_tail.py); not a saved tensor.
                self.register_buffer("tail_index", subpixel_index(in_channels, channels, 9), persistent=False)
                self.register_buffer("tail_index_s2", strided_index(in_channels, channels, 9), persistent=False)
        else:
            self.upsample = nn.Sequential()
            self.tail = SubPixelTail(channels, in_channels, scale, upsample_axes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming normal for convs (gain for PReLU slope 0.25), PReLU 0.25, BN weight 1 bias 0.

        Convs inside residual blocks are scaled by 0.1 (as in EDSR/ESRGAN) so that with
        ``norm='none'`` the 16 residual additions start near identity instead of growing the
        activations block by block; with BatchNorm the scale is normalised away.
        """
        kaiming_init(self, PRELU_INIT)
        for module in self.modules():
            if isinstance(module, nn.PReLU):
                nn.init.constant_(module.weight, PRELU_INIT)
        with torch.no_grad():
            for block in self.blocks:
                for module in block.modules():
                    if isinstance(module, nn.Conv2d):
                        module.weight.mul_(RESIDUAL_INIT_SCALE)
        if isinstance(self.tail, SubPixelTail):
            self.tail.icnr_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        body = self.body_tail(self.blocks(head)) + head
        last = self.upsample[-1] if len(self.upsample) else None
        if hasattr(self, "tail_index") and (isinstance(last.act, nn.Identity) or (
                isinstance(last.act, nn.PReLU) and last.act.num_parameters == 1)):
            # PReLU with one slope (or none: fused into the conv) commutes with the shuffle; the
            # tail then reads the 2x map.
            x = last.act(last.conv(self.upsample[:-1](body)))
            return subpixel_tail(x, self.tail.weight, self.tail.bias, self.tail_index, self.tail_index_s2)
        return self.tail(self.upsample(body))
