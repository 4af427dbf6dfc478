"""The training loop and its schedule: step, log, validate, checkpoint, stop, export.

Everything else is composed: the state and where it starts (``state``), the step (``step``), the
batches (``sampler``), the ranks (``distributed``), validation, export, and the MLflow record and
progress bar as hooks called at events (``hooks``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_name
from ..config import Config, to_dict
from ..errors import TrainingError
from ..precision import training_dtype
from . import distributed
from .export import export_generator, input_example
from .hooks import Hook, Hooks, MLflowHook, ProgressBar
from .sampler import TORCH_STREAM, make_loader, mix_seed, open_train_split
from .state import (
    RunInfo,
    build_extractor,
    build_nets,
    check_init_source,
    extractor_source,
    find_resume,
    last_good_checkpoint,
    make_losses,
    save,
)
from .validation import Validator


@dataclass
class TrainResult:
    """What a training call produced; paths are None on ranks other than 0 and when interrupted."""

    generator_path: Path | None
    checkpoint_path: Path | None
    metrics: dict[str, float]
    run_id: str | None
    step: int
    model_uri: str | None = None
    interrupted: bool = False
    stopped_by: str | None = None  # the signal's name (SIGINT, SIGTERM) when this rank received one


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, Any]]:
    """SIGINT/SIGTERM set a flag instead of killing the step; handlers are restored afterwards."""
    flag: dict[str, Any] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Trainer:
    """One stage's run on this rank, from its setup to the exported generator (rank 0 logs and writes).

    ``step_fn`` is :func:`~oct_srgan.training.step.train_step` or a stand-in with its signature.
    """

    def __init__(self, cfg: Config, data_dir: Path, out_dir: Path, device: torch.device, ranks: distributed.Dist,
                 resume: bool, progress: bool, step_fn: Callable[..., tuple[dict[str, float], bool]]) -> None:
        from ..data import eval_items, open_dataset, resolve_config
        from ..models import generator_spec

        self.info = open_dataset(data_dir)
        self.cfg = cfg = resolve_config(self.info, cfg)
        self.device, self.ranks, self.step_fn = device, ranks, step_fn
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        # bf16 where native (CUDA, AVX512-BF16/AMX CPUs), fp16 on other GPUs, fp32 where bf16 would
        # only be emulated; master weights stay fp32.
        self.amp_dtype = training_dtype(device) if cfg.train.amp else None
        self.spec = generator_spec(cfg)
        check_init_source(cfg)
        resume_from = find_resume(self.ckpt_dir, self.spec, cfg.train.stage) if resume else None
        self.resume_path = resume_from.path if resume_from else None
        self.run_id = resume_from.run_id if resume_from else None
        self.start_step = resume_from.step if resume_from else 0

        torch.manual_seed(cfg.seed)
        self.nets = build_nets(cfg, self.spec, device, self.amp_dtype, resume_from)
        if ranks.active:
            self.nets.generator = distributed.wrap(self.nets.generator, device)
            if self.nets.discriminator is not None:
                self.nets.discriminator = distributed.wrap(self.nets.discriminator, device)
        extractor = build_extractor(cfg, self.nets.discriminator, device, amp_dtype=self.amp_dtype)
        self.losses = make_losses(cfg, extractor, device)
        self.dataset = open_train_split(self.info, cfg)
        val_items = eval_items(self.info, "val", cfg.data.max_val_images, cfg.data.target) if ranks.main else []
        self.validator = Validator(val_items, self.spec, to_dict(cfg.data.degradation), cfg.train.stage, device)
        self.hooks = Hooks(self._hooks(extractor_source(cfg, extractor), progress) if ranks.main else [])
        self.last_metrics: dict[str, float] = {}

    def _hooks(self, weights_source: str, progress: bool) -> list[Hook]:
        """Rank 0's observers: the MLflow run (with these facts besides the config) and the progress bar."""
        params = {
            "extractor.weights_source": weights_source,
            "device": str(self.device),
            "world_size": self.ranks.world,
            "precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
            "dataset_hash": self.info.dataset_hash,
            "n_train_bscans": len(self.dataset),
            "n_val_bscans": len(self.validator.items),
        }
        tags = {"dataset_hash": self.info.dataset_hash, "device": self.device.type}
        train = self.cfg.train
        return [MLflowHook(self.cfg, tags, params, self.info.manifest, self.info.dataset_hash),
                ProgressBar(train.iterations, self.start_step, train.stage, enabled=progress)]

    def run(self) -> TrainResult:
        with contextlib.ExitStack() as stack:
            self.run_id = stack.enter_context(self.hooks.session(self.run_id))
            flag = stack.enter_context(stop_on_signals())
            return self._loop(flag)

    def _due(self, step: int, interval: int) -> bool:
        """Every ``interval`` steps, and at the last step."""
        return step % interval == 0 or step == self.cfg.train.iterations

    def _loop(self, flag: dict[str, Any]) -> TrainResult:
        train = self.cfg.train
        step, last_ckpt = self.start_step, self.resume_path
        sums: dict[str, float] = {}
        count = 0
        for net in self.nets.modules():
            net.train()
        validated_at = -1
        for batch in make_loader(self.dataset, self.cfg, step, self.ranks, self.device):
            for k, v in self._step(batch, step).items():
                sums[k] = sums.get(k, 0.0) + v
            step += 1
            count += 1
            means = None
            if self._due(step, train.log_interval):
                means = {f"train/{k}": v / count for k, v in sums.items()}
                means["train/lr"] = self.nets.optim_g.param_groups[0]["lr"]
                sums, count = {}, 0
            self.hooks.iteration_completed(step, means)
            if self.ranks.main and self._due(step, train.val_interval):
                self._validate(step)
                validated_at = step
            if self._due(step, train.checkpoint_interval):
                last_ckpt = self.save(step) or last_ckpt
            if distributed.agree_stop(flag["signal"] is not None, self.ranks, self.device):
                if not self._due(step, train.checkpoint_interval):
                    last_ckpt = self.save(step) or last_ckpt
                self.hooks.interrupted(step)
                return TrainResult(None, last_ckpt if self.ranks.main else None, dict(self.last_metrics),
                                   self.run_id, step, interrupted=True, stopped_by=flag["signal"])
        return self._finish(step, last_ckpt, validated_at)

    def _step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """Step ``step + 1`` on one batch, its torch RNG seeded from (seed, step, rank); stops on a non-finite loss."""
        memory_format = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        lr = batch["lr"].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
        hr = batch["hr"].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
        torch.manual_seed(mix_seed(self.cfg.seed, TORCH_STREAM, step, self.ranks.rank))
        reduce = functools.partial(distributed.all_reduce_mean, ranks=self.ranks) if self.ranks.active else None
        losses, finite = self.step_fn(self.nets, self.losses, lr, hr, amp_dtype=self.amp_dtype, reduce=reduce)
        if not finite:
            bad = ", ".join(f"{k}={v}" for k, v in losses.items() if not math.isfinite(v))
            good = last_good_checkpoint(self.ckpt_dir, step)
            raise TrainingError(
                f"non-finite loss at step {step + 1} ({bad}); last good checkpoint: "
                + (str(good) if good else "none (lower train.checkpoint_interval)")
            )
        return losses

    def _validate(self, step: int) -> None:
        metrics, figure = self.validator(self.nets.ema.module, step)
        self.hooks.validation_completed(step, metrics, figure)
        self.last_metrics.update(metrics)

    def save(self, step: int) -> Path | None:
        """Checkpoint ``step`` (rank 0 writes; other ranks get None)."""
        if not self.ranks.main:
            return None
        return save(self.ckpt_dir, self.nets, step, RunInfo(self.cfg, self.spec, self.info.dataset_hash, self.run_id))

    def _finish(self, step: int, last_ckpt: Path | None, validated_at: int) -> TrainResult:
        """After the last step: validate and checkpoint it if not done yet, compare ranks, export (rank 0)."""
        if self.ranks.main and validated_at != step and self.validator.items:
            self._validate(step)
        if self.ranks.main and (last_ckpt is None or not str(last_ckpt).endswith(checkpoint_name(step))):
            last_ckpt = self.save(step)
        if self.ranks.active:
            self.hooks.ranks_compared(step, distributed.param_max_abs_diff(self.nets.modules()))
        if not self.ranks.main:
            return TrainResult(None, None, dict(self.last_metrics), None, step)
        self.hooks.completed(step)
        generator_path, model_uri = export_generator(
            self.out_dir, self.nets.ema.module, self.spec, self.cfg, step=step, run_id=self.run_id,
            dataset_hash=self.info.dataset_hash, metrics=self.last_metrics,
            example=input_example(self.validator.items, self.cfg.model.in_channels),
        )
        return TrainResult(generator_path, last_ckpt, dict(self.last_metrics), self.run_id, step, model_uri=model_uri)
