"""Weight initialisation shared by the generator and the discriminator."""

from __future__ import annotations

from torch import nn


def kaiming_init(root: nn.Module, slope: float) -> None:
    """Kaiming normal (gain for a leaky ReLU / PReLU of ``slope``) for every conv and dense layer in
    ``root`` with zero bias, and BatchNorm weight 1 bias 0: the init the SRGAN paper's nets train from."""
    for module in root.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=slope, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
