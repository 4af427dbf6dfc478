"""BatchNorm folding for inference: each BatchNorm2d merged into the Conv2d right before it."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


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
