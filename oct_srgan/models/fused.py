"""Inference-only fusion of the generator's pointwise ops into its convs (oneDNN post-ops on CPU).

After BatchNorm folding, every conv of the SRResNet body is followed by a one-slope PReLU (= a leaky
ReLU) or by the residual addition. Run eagerly, each of those is one more pass over a full feature
map, a noticeable share of the net's CPU time (``bench/speed.py``). oneDNN applies the activation
inside the conv's own output loop (``torch.ops.mkldnn._convolution_pointwise``, the op Inductor's
CPU fusion emits), with the same arithmetic. The residual addition is not a post-op: oneDNN's
binary-add post-op measured slower than the conv followed by an in-place add (fp32 and bf16), so
it is done in place on the conv's fresh output. Models or devices where this does not apply are left as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .generator import ResidualBlock, SRResNet, UpsampleBlock


def can_fuse(device: torch.device | str) -> bool:
    """oneDNN's fused conv exists on this torch build and the model runs on the CPU."""
    return torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise")


class FusedConv2d(nn.Module):
    """A conv with an optional leaky-ReLU (one-slope PReLU) fused in, and an optional tensor added in place after it.

    ``forward(x, other)`` equals ``act(conv(x)) + other`` (``other`` None: ``act(conv(x))``). Under
    CPU autocast the inputs are cast to the autocast dtype, as autocast does for ``conv2d``.
    """

    def __init__(self, conv: nn.Conv2d, slope: float | None = None) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only plain zero-padded convs with explicit padding are fused")
        self.weight, self.bias = conv.weight, conv.bias
        self.padding, self.stride, self.dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        self.slope = slope

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
            other = other.to(dtype) if other is not None else None
        args = (self.padding, self.stride, self.dilation, 1)
        unary, scalars = ("leaky_relu", [self.slope]) if self.slope is not None else ("none", [])
        out = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *args, unary, scalars, "")
        return out if other is None else out.add_(other)


class FusedResidualBlock(nn.Module):
    """conv-PReLU-conv + skip: the PReLU fused into the first conv, the skip added in place to the second's output."""

    def __init__(self, block: ResidualBlock) -> None:
        super().__init__()
        conv1, act, conv2 = _layers(block)
        self.conv1 = FusedConv2d(conv1, float(act.weight.detach()))
        self.conv2 = FusedConv2d(conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x), x)


def _one_slope(module: nn.Module) -> bool:
    return isinstance(module, nn.PReLU) and module.num_parameters == 1


def _layers(block: ResidualBlock) -> list[nn.Module]:
    """The block's body without the Identity left where BatchNorm was folded away."""
    return [m for m in block.body if not isinstance(m, nn.Identity)]


def _fusable_block(block: nn.Module) -> bool:
    if not isinstance(block, ResidualBlock):
        return False
    body = _layers(block)
    return (len(body) == 3 and isinstance(body[0], nn.Conv2d) and _one_slope(body[1])
            and isinstance(body[2], nn.Conv2d))


def fuse_pointwise(model: nn.Module) -> nn.Module:
    """A copy of a BatchNorm-free (or folded) ``SRResNet`` whose conv + PReLU / residual-add pairs run
    fused; anything else comes back as a plain copy. Inference only (no gradients through the op)."""
    fused = copy.deepcopy(model)
    if not isinstance(fused, SRResNet) or not all(_fusable_block(b) for b in fused.blocks):
        return fused
    if len(fused.head) != 2 or not (isinstance(fused.head[0], nn.Conv2d) and _one_slope(fused.head[1])):
        return fused
    head_conv, head_act = fused.head
    fused.head = nn.Sequential(FusedConv2d(head_conv, float(head_act.weight.detach())))
    fused.blocks = nn.Sequential(*(FusedResidualBlock(b) for b in fused.blocks))
    for stage in fused.upsample:
        if isinstance(stage, UpsampleBlock) and _one_slope(stage.act):
            # One slope commutes with the (lateral) pixel shuffle, so the PReLU moves into the conv.
            stage.conv, stage.act = FusedConv2d(stage.conv, float(stage.act.weight.detach())), nn.Identity()
    return fused
