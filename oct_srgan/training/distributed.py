"""This process's place in a ``torchrun`` job and the collectives the loop needs (DDP, rank 0 logs).

A single process is a job of one: every helper here is then a no-op, so the loop has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """This process's place in a (possibly single-process) DDP job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_dist(device: torch.device) -> Dist:
    """Join the ``torchrun`` process group (NCCL on CUDA, gloo on CPU), or a job of one without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Dist(rank=rank, world=world, local_rank=local_rank, owns_group=owns)


def wait_for_all(ranks: Dist) -> None:
    """Hold every rank until all have finished (rank 0 still exports after the loop): a rank that
    tore the gloo group down under a busy peer was seen to abort (SIGABRT) at exit."""
    if ranks.active:
        dist.barrier()


def release(ranks: Dist) -> None:
    """Leave the process group this job created (one made by the caller stays theirs)."""
    if ranks.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (state dicts and direct calls skip DDP's hooks)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` under DDP on ``device`` (its gradients are averaged over the ranks)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def all_reduce_mean(values: torch.Tensor, ranks: Dist) -> torch.Tensor:
    """The mean of ``values`` over all ranks (a copy; the input is left as it was)."""
    values = values.clone()
    dist.all_reduce(values)
    return values / ranks.world


def agree_stop(local_stop: bool, ranks: Dist, device: torch.device) -> bool:
    """Stop when any rank was asked to, so all ranks leave the loop after the same step."""
    if not ranks.active:
        return local_stop
    flag = torch.tensor([1.0 if local_stop else 0.0], device=device)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


def param_max_abs_diff(modules: list[nn.Module]) -> float:
    """How far this rank's parameters are from rank 0's, the largest over ranks (0 when in lock-step)."""
    with torch.no_grad():
        mine = torch.cat([p.detach().float().reshape(-1) for m in modules for p in unwrap(m).parameters()])
        ref = mine.clone()
        dist.broadcast(ref, src=0)
        diff = (mine - ref).abs().max().reshape(1)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
