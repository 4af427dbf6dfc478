"""The generator's PReLU, with a faster backward for the one-slope form SRGAN uses (CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _OneSlopePReLU(torch.autograd.Function):
    """``prelu(x, a)`` for one slope ``a``; the backward is ATen's leaky-ReLU backward plus one fp32 sum.

    ATen's PReLU backward kernel also reduces the slope gradient and is several times slower on CPU
    (``bench/train_step.py`` measures the step). The input gradient is identical; the slope gradient
    is summed in fp32 (ATen sums a bf16 map in bf16).
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.leaky_relu_backward(grad, x, float(weight), False)
        if ctx.needs_input_grad[1]:
            grad_w = (grad * x.clamp(max=0)).sum(dtype=torch.float32).reshape(weight.shape).to(weight.dtype)
        return grad_x, grad_w


class PReLU(nn.PReLU):
    """``nn.PReLU`` (same parameter and state-dict key) whose one-slope backward on the CPU is faster.

    The custom backward reads the slope as a Python number, so it runs on the CPU only; elsewhere,
    with several slopes or without gradients, this is ``nn.PReLU``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.num_parameters == 1 and x.device.type == "cpu" and torch.is_grad_enabled()
                and (x.requires_grad or self.weight.requires_grad)):
            return _OneSlopePReLU.apply(x, self.weight)
        return super().forward(x)
