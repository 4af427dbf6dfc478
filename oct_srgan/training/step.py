"""One optimisation step of G (and D in stage srgan): the unit the loop repeats and the bench times."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .distributed import unwrap

if TYPE_CHECKING:
    from .state import Losses, Nets


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


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

    The discriminator sees HR and SR once per step, and both losses use those logits: G's
    backward reaches only G's parameters and D's only D's (``backward(inputs=...)``), which is the
    classic G step on a frozen D followed by a D step on the detached SR image (D is not updated in
    between, so its logits are the same) with one D forward on SR fewer.

    Losses are checked (after ``reduce``, e.g. a DDP mean, so all ranks agree) before any
    optimiser step; when one is not finite nothing is stepped and BatchNorm statistics are put
    back, so the networks are still in their state before this step.
    """
    device, w = lr.device, losses.weights
    saved_buffers = [b.clone() for b in nets.buffers()]
    nets.optim_g.zero_grad(set_to_none=True)
    terms: dict[str, torch.Tensor] = {}
    loss_d = None
    with _autocast(device, amp_dtype):
        sr = nets.generator(lr)
        loss_g = torch.zeros((), device=device)
        if losses.stage == "srresnet" or w.pixel_weight > 0:
            terms["pixel"] = losses.pixel(sr.float(), hr)
            loss_g = loss_g + w.pixel_weight * terms["pixel"]
        if nets.discriminator is not None:
            if losses.content is not None:
                terms["content"] = losses.content(sr, hr)
                loss_g = loss_g + w.content_weight * terms["content"]
            real_logits = nets.discriminator(hr)
            fake_logits = nets.discriminator(sr)
            if w.adversarial_weight > 0:
                terms["adv_g"] = losses.adversarial.generator(real_logits.detach(), fake_logits)
                loss_g = loss_g + w.adversarial_weight * terms["adv_g"]
            loss_d = losses.adversarial.discriminator(real_logits, fake_logits)
            terms["d_real"] = torch.sigmoid(real_logits.detach().float()).mean()
            terms["d_fake"] = torch.sigmoid(fake_logits.detach().float()).mean()
    terms["loss_g"] = loss_g
    nets.scaler_g.scale(loss_g).backward(inputs=list(nets.generator.parameters()), retain_graph=loss_d is not None)
    if loss_d is not None:
        terms["loss_d"] = loss_d
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
    _step_optimisers(nets, loss_d)
    return result, True


def _step_optimisers(nets: Nets, loss_d: torch.Tensor | None) -> None:
    """G's step (its gradients are in place), then D's backward and step, then the EMA of G."""
    nets.scaler_g.step(nets.optim_g)
    nets.scaler_g.update()
    nets.sched_g.step()
    if loss_d is not None:
        nets.optim_d.zero_grad(set_to_none=True)
        nets.scaler_d.scale(loss_d).backward(inputs=list(nets.discriminator.parameters()))
        nets.scaler_d.step(nets.optim_d)
        nets.scaler_d.update()
        nets.sched_d.step()
    nets.ema.update_parameters(unwrap(nets.generator))
