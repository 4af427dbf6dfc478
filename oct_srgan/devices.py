"""Device choice shared by every stage: CUDA when present, else CPU; an explicit name wins."""

from __future__ import annotations

import torch

from oct_srgan.errors import OctSrganError


def resolve_device(name: str | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; bad names are one line."""
    name = name or "auto"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OctSrganError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OctSrganError(f"device '{name}' requested but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise OctSrganError(f"device {name!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return device
