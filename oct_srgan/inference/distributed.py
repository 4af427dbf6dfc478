"""Enhance across processes: under ``torchrun`` each rank takes every N-th input, none twice, none lost.

A clinic archive holds thousands of volumes; ``torchrun --nproc-per-node N -m oct_srgan.pipelines.cli
enhance DIR -o OUT`` runs N copies. Every rank lists the same inputs in the same order and plans the
same output names, then enhances only its share (``rank::world``); the reports are gathered over a
gloo group so the ranks agree on the total.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from oct_srgan.errors import OctSrganError

T = TypeVar("T")


@dataclass(frozen=True)
class Share:
    """This process's place among the ranks of a ``torchrun`` job (a job of one without it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world``-th from ``rank``, so the shares are disjoint and cover all."""
        return list(items[self.rank :: self.world])

    @property
    def label(self) -> str:
        return f"[rank {self.rank}/{self.world}] " if self.world > 1 else ""


def share_from_env() -> Share:
    """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` sets them; bad values are one line."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise OctSrganError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise OctSrganError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return Share(rank, world, local)


def gather(values: Any, share: Share) -> list[Any]:
    """Every rank's ``values``, in rank order (collected over a gloo group, which any device can use)."""
    if share.world == 1:
        return [values]
    import torch.distributed as dist

    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="gloo")
    gathered: list[Any] = [None] * share.world
    try:
        dist.all_gather_object(gathered, values)
        dist.barrier()
    finally:
        if owns:
            dist.destroy_process_group()
    return gathered
