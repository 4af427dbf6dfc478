"""One optimisation step of G (and D in stage srgan): the unit the loop repeats and the bench times."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .distributed import unwrap

if TYPE_CHECKING:
    from .state import Losses, Nets


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_step(
    nets: Nets,
    losses: Losses,
    lr: torch.Tensor,
    hr: torch.Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[dict[str, float], bool]:
    """One update of G (and D in stage srgan). Returns (loss values, finite).

    Losses are checked (after ``reduce``, e.g. a DDP mean, so all ranks agree) before any
    optimiser step; when one is not finite nothing is stepped and BatchNorm statistics are put
    back, so the networks are still in their state before this step.
    """
    device, w = lr.device, losses.weights
    saved_buffers = [b.clone() for b in nets.buffers()]
    nets.optim_g.zero_grad(set_to_none=True)
    disc = unwrap(nets.discriminator) if nets.discriminator is not None else None
    terms: dict[str, torch.Tensor] = {}
    if disc is not None:
        _set_requires_grad(disc, False)
    with _autocast(device, amp_dtype):
        sr = nets.generator(lr)
        loss_g = torch.zeros((), device=device)
        if losses.stage == "srresnet" or w.pixel_weight > 0:
            terms["pixel"] = losses.pixel(sr.float(), hr)
            loss_g = loss_g + w.pixel_weight * terms["pixel"]
        if disc is not None:
            if losses.content is not None:
                terms["content"] = losses.content(sr, hr)
                loss_g = loss_g + w.content_weight * terms["content"]
            if w.adversarial_weight > 0:
                real = disc(hr).detach() if losses.adversarial.kind == "relativistic" else None
                terms["adv_g"] = losses.adversarial.generator(real, disc(sr))
                loss_g = loss_g + w.adversarial_weight * terms["adv_g"]
    terms["loss_g"] = loss_g
    nets.scaler_g.scale(loss_g).backward()
    loss_d = None
    if disc is not None:
        _set_requires_grad(disc, True)
        nets.optim_d.zero_grad(set_to_none=True)
        with _autocast(device, amp_dtype):
            real_logits = nets.discriminator(hr)
            fake_logits = nets.discriminator(sr.detach())
            loss_d = losses.adversarial.discriminator(real_logits, fake_logits)
        terms["loss_d"] = loss_d
        terms["d_real"] = torch.sigmoid(real_logits.detach().float()).mean()
        terms["d_fake"] = torch.sigmoid(fake_logits.detach().float()).mean()
    names = list(terms)
    values = torch.stack([terms[k].detach().float() for k in names])
    if reduce is not None:
        values = reduce(values)
    result = dict(zip(names, values.tolist()))
    if not bool(torch.isfinite(values).all()):
        with torch.no_grad():
            for b, saved in zip(nets.buffers(), saved_buffers, strict=True):
                b.copy_(saved)
        return result, False
    nets.scaler_g.step(nets.optim_g)
    nets.scaler_g.update()
    nets.sched_g.step()
    if loss_d is not None:
        nets.scaler_d.scale(loss_d).backward()
        nets.scaler_d.step(nets.optim_d)
        nets.scaler_d.update()
        nets.sched_d.step()
    nets.ema.update_parameters(unwrap(nets.generator))
    return result, True
