"""Random-init generators whose outputs are worth comparing: tiled against untiled, folded against plain."""

from __future__ import annotations

import torch

from oct_srgan.models import srresnet


def random_net(seed: int = 0, **spec) -> torch.nn.Module:
    """A random-init generator in eval mode whose outputs sit inside (0, 1), so the clamp hides nothing.

    BatchNorm gets random running statistics so folding and eval-mode BN are exercised for real.
    """
    torch.manual_seed(seed)
    net = srresnet(**spec).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        net.tail.weight.mul_(0.05)
        net.tail.bias.fill_(0.5)
    return net


def untiled(net: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(lr)
