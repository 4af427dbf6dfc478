"""One training loop for both stages (docs/architecture.md, 'Training').

Stage ``srresnet`` trains the generator on the pixel loss; stage ``srgan`` starts from an SRResNet
and adds the content and adversarial terms with a discriminator step. The same code runs on CPU,
on CUDA (AMP, channels-last) and under ``torchrun`` (DDP, rank 0 logs and writes).

Resume is exact: the batch of step ``t`` on rank ``r`` is a function of ``(seed, t, r)`` only (a
step-indexed sampler over per-epoch permutations, and per-sample transform seeds), the torch RNG is
re-seeded from ``(seed, t, r)`` at every step, and checkpoints hold every other piece of state.
A run stopped at step k and resumed therefore reaches the same weights as an unbroken run.

Modules: ``state`` (networks, losses, checkpoints), ``step`` (one update), ``sampler`` (batches),
``distributed`` (DDP), ``validation``, ``export``, ``hooks`` (MLflow, progress), ``trainer`` (the loop).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config import Config, check_config
from ..devices import resolve_device
from ..errors import TrainingError
from ..fsutil import refuse_overlap
from .distributed import init_dist, release, wait_for_all
from .sampler import StepBatchSampler
from .state import Losses, Nets, build_extractor, make_losses, make_nets
from .step import train_step
from .trainer import Trainer, TrainResult

__all__ = [
    "Losses", "Nets", "StepBatchSampler", "TrainResult", "build_extractor", "make_losses", "make_nets", "train",
    "train_step",
]


def train(
    cfg: Config,
    data_dir: Path,
    out_dir: Path,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train one stage as ``cfg`` says; with ``resume`` continue from the newest checkpoint in ``out_dir``.

    A non-empty ``out_dir`` is refused unless ``resume`` or ``overwrite`` (which drops its old
    checkpoints), and the folder is locked for the run so a second run on it stops at once.
    The step is this module's ``train_step``, looked up per call so it can be swapped.
    """
    check_config(cfg)
    refuse_overlap(out_dir, [data_dir])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device or cfg.train.device, local_rank)
    ranks = init_dist(dev)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as claim:
            if ranks.main:
                claim.enter_context(_claim_out_dir(Path(out_dir), resume, overwrite))
            with _determinism(cfg):
                trainer = Trainer(cfg, Path(data_dir), Path(out_dir), dev, ranks, resume, progress, train_step)
                result = trainer.run()
            wait_for_all(ranks)
    finally:
        release(ranks)
    result.metrics.setdefault("train_seconds", time.perf_counter() - started)
    return result


@contextlib.contextmanager
def _claim_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> Iterator[None]:
    """Lock ``out_dir`` for this run; refuse another run's folder; clear leftovers of killed writes."""
    from ..fsutil import LOCK_NAME, exclusive_dir, remove_stale_temps

    existing = [p for p in out_dir.iterdir() if p.name != LOCK_NAME] if out_dir.is_dir() else []
    if existing and not (resume or overwrite):
        raise TrainingError(f"{out_dir}: folder is not empty (it holds another run): use --resume to continue it, "
                            "--overwrite to replace it, or another --out")
    with exclusive_dir(out_dir, "training run"):
        ckpt_dir = out_dir / "checkpoints"
        if overwrite and not resume and ckpt_dir.is_dir():
            shutil.rmtree(ckpt_dir)
        remove_stale_temps(out_dir)
        remove_stale_temps(ckpt_dir)
        yield


@contextlib.contextmanager
def _determinism(cfg: Config) -> Iterator[None]:
    """``train.deterministic``: MONAI set_determinism + deterministic torch kernels, undone afterwards."""
    if not cfg.train.deterministic:
        yield
        return
    from monai.utils import set_determinism

    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    set_determinism(seed=cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
        set_determinism(seed=None)
