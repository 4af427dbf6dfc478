"""One training loop for both stages (design.md, 'Two stages, one loop').

Stage ``srresnet`` trains the generator on the pixel loss; stage ``srgan`` starts from an SRResNet
and adds the content and adversarial terms with a discriminator step. The same code runs on CPU,
on CUDA (AMP, channels-last) and under ``torchrun`` (DDP, rank 0 logs and writes).

Resume is exact: the batch of step ``t`` on rank ``r`` is a function of ``(seed, t, r)`` only (a
step-indexed sampler over per-epoch permutations, and per-sample transform seeds), the torch RNG is
re-seeded from ``(seed, t, r)`` at every step, and checkpoints hold every other piece of state.
A run stopped at step k and resumed therefore reaches the same weights as an unbroken run.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, Sampler

from . import __version__
from .checkpoint import (
    check_spec,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_generator_file,
    load_weights,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    save_generator_file,
    set_rng_state,
)
from .config import Config, LossConfig, dump_yaml, flatten, to_dict
from .devices import resolve_device
from .errors import DataError, ModelError, TrainingError
from .precision import training_dtype

KEEP_CHECKPOINTS = 3
MLFLOW_SCHEMES = ("runs:/", "models:/")
EXAMPLE_LR = 24
SAMPLE_STREAM, TORCH_STREAM = 0, 1  # separate seed streams for transforms and for torch's RNG


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


# ------------------------------------------------------------------------------ devices, DDP


@dataclass
class _Dist:
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


def _init_dist(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return _Dist(rank=rank, world=world, local_rank=local_rank, owns_group=owns)


def _precision(device: torch.device, amp: bool) -> torch.dtype | None:
    """Autocast dtype with ``amp``: bf16 where native (CUDA, AVX512-BF16/AMX CPUs), fp16 on other
    GPUs, None (fp32) on CPUs that would only emulate bf16. Master weights stay fp32."""
    return training_dtype(device) if amp else None


# ------------------------------------------------------------------------------------- data


def _mix(*values: int) -> int:
    """A 32-bit seed from several integers (independent streams per seed/step/rank/sample)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches for steps ``start..stop-1``; step ``t`` on rank ``r`` depends only on (seed, t, r).

    Positions ``t * B * world + r * B + j`` index an endless stream of per-epoch permutations
    (seeded by (seed, epoch)), so every epoch visits each sample once across all ranks, like
    DistributedSampler, but resuming at any step needs no iterator state. Each item carries its own
    seed for the random transforms.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        cache: dict[int, np.ndarray] = {}
        for step in range(self.start, self.stop):
            batch = []
            for j in range(self.batch_size):
                pos = (step * self.world + self.rank) * self.batch_size + j
                epoch = pos // self.n
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._perm(epoch)
                batch.append((int(cache[epoch][pos % self.n]), _mix(self.seed, SAMPLE_STREAM, step, self.rank, j)))
            yield batch


class _SeededItems(Dataset):
    """Item ``(index, seed)`` of a MONAI dataset, its random transforms seeded with ``seed``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        self.dataset.transform.set_random_state(seed=seed)
        item = self.dataset[index]
        return {k: torch.as_tensor(item[k]).as_subclass(torch.Tensor) for k in ("lr", "hr")}


# ------------------------------------------------------------------------------------- EMA


def _ema_fn(decay: float):
    """EMA with warm-up: decay_t = min(decay, (1 + n) / (10 + n)), so short runs get a useful average."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if ema[0].is_floating_point():
            n = float(n_averaged)
            torch._foreach_lerp_(ema, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))
        else:
            for e, c in zip(ema, current, strict=True):
                e.copy_(c)

    return update


# ----------------------------------------------------------------------------------- signals


def _ignore_sigint(worker_id: int) -> None:
    """Data-loader workers leave Ctrl-C to the main process, which finishes the step and saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[dict[str, Any]]:
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


# -------------------------------------------------------------------------------- the trainer


def _config_hash(cfg: Config) -> str:
    return hashlib.sha256(dump_yaml(cfg).encode("utf-8")).hexdigest()[:8]


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@dataclass
class Nets:
    """Everything that learns: networks (DDP-wrapped under torchrun), EMA, optimisers, schedulers, scalers."""

    generator: nn.Module
    discriminator: nn.Module | None
    ema: AveragedModel
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer | None
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler | None
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler

    def buffers(self) -> list[torch.Tensor]:
        modules = [self.generator] + ([self.discriminator] if self.discriminator is not None else [])
        return [b for m in modules for b in m.buffers()]


def make_nets(
    cfg: Config,
    generator: nn.Module,
    discriminator: nn.Module | None,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> Nets:
    """Move the networks to ``device`` (channels-last if configured) and add EMA, Adam, MultiStepLR, scalers."""
    memory_format = torch.channels_last if cfg.train.channels_last else torch.preserve_format
    generator = generator.to(device, memory_format=memory_format)
    if discriminator is not None:
        discriminator = discriminator.to(device, memory_format=memory_format)
    ema = AveragedModel(generator, multi_avg_fn=_ema_fn(cfg.train.ema_decay), use_buffers=True)
    ema.eval()

    def adam(module: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas))

    def sched(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.train.lr_milestones), gamma=cfg.train.lr_gamma)

    fp16 = amp_dtype == torch.float16
    optim_g = adam(generator)
    optim_d = adam(discriminator) if discriminator is not None else None
    return Nets(
        generator=generator,
        discriminator=discriminator,
        ema=ema,
        optim_g=optim_g,
        optim_d=optim_d,
        sched_g=sched(optim_g),
        sched_d=sched(optim_d) if optim_d is not None else None,
        scaler_g=torch.amp.GradScaler(device.type, enabled=fp16),
        scaler_d=torch.amp.GradScaler(device.type, enabled=fp16),
    )


@dataclass
class Losses:
    """The loss terms of a stage and their weights."""

    stage: str
    weights: LossConfig
    pixel: nn.Module
    adversarial: nn.Module
    content: nn.Module | None = None


def build_extractor(cfg: Config, discriminator: nn.Module | None, device: torch.device,
                    weights: str | None = None, amp_dtype: torch.dtype | None = None) -> nn.Module | None:
    """The content-loss extractor of stage srgan (None when unused); ``weights`` overrides the config's.

    A frozen extractor (VGG19) is stored in the generator's memory format and, under bf16/fp16
    autocast, in that dtype: autocast re-casts weights that need no gradient on every call (it
    caches only trainable leaves), two VGG19 passes per step.
    """
    if cfg.train.stage != "srgan" or cfg.loss.content_weight <= 0:
        return None
    from .losses import build_extractor as build

    ext = cfg.loss.extractor
    extractor = build(
        ext.name,
        layers=ext.layers,
        weights=weights if weights is not None else ext.weights,
        in_channels=cfg.model.in_channels,
        discriminator=_unwrap(discriminator) if discriminator is not None else None,
    )
    if any(p.requires_grad for p in extractor.parameters()):
        return extractor.to(device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.preserve_format
    return extractor.to(device, dtype=amp_dtype, memory_format=memory_format)


def make_losses(cfg: Config, extractor: nn.Module | None, device: torch.device) -> Losses:
    from .losses import AdversarialLoss, ContentLoss, PixelLoss

    content = ContentLoss(extractor).to(device) if extractor is not None else None
    return Losses(cfg.train.stage, cfg.loss, PixelLoss(cfg.loss.pixel, cfg.loss.ssim_weight), AdversarialLoss(cfg.loss.adversarial), content)


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

    Losses are checked (after ``reduce``, e.g. a DDP mean, so all ranks agree) before any
    optimiser step; when one is not finite nothing is stepped and BatchNorm statistics are put
    back, so the networks are still in their state before this step.
    """
    device, w = lr.device, losses.weights
    saved_buffers = [b.clone() for b in nets.buffers()]
    nets.optim_g.zero_grad(set_to_none=True)
    disc = _unwrap(nets.discriminator) if nets.discriminator is not None else None
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
    nets.ema.update_parameters(_unwrap(nets.generator))
    return result, True


class _Trainer:
    def __init__(self, cfg: Config, data_dir: Path, out_dir: Path, device: torch.device, ranks: _Dist, resume: bool,
                 progress: bool) -> None:
        from .data import eval_items, open_dataset, resolve_config, train_dataset
        from .models import generator_spec

        self.info = open_dataset(data_dir)
        cfg = resolve_config(self.info, cfg)
        self.cfg, self.device, self.ranks, self.progress = cfg, device, ranks, progress
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.stage = cfg.train.stage
        self.scale, self.axes = cfg.data.scale, cfg.data.degradation.axes
        self.amp_dtype = _precision(device, cfg.train.amp)
        self.spec = generator_spec(cfg)
        self._check_config()

        self.resume_state, self.resume_path = self._resume_state() if resume else (None, None)
        self.run_id: str | None = self.resume_state.get("run_id") if self.resume_state else None
        self.start_step = int(self.resume_state["step"]) if self.resume_state else 0

        torch.manual_seed(cfg.seed)
        self.nets = self._build_nets()
        self.extractor = build_extractor(cfg, self.nets.discriminator, device, amp_dtype=self.amp_dtype)
        self.losses = make_losses(cfg, self.extractor, device)

        self._check_crop_fits()
        self.dataset = train_dataset(self.info, cfg)
        if len(self.dataset) == 0:
            raise DataError(f"{self.info.root}: the 'train' split is empty")
        self.val_items = eval_items(self.info, "val", cfg.data.max_val_images, cfg.data.target) if ranks.main else []
        self._bicubic_cache: dict[str, torch.Tensor] = {}
        self.last_metrics: dict[str, float] = {}

    # ---------------------------------------------------------------- setup

    def _check_config(self) -> None:
        cfg = self.cfg
        if cfg.train.iterations < 1 or cfg.train.batch_size < 1:
            raise TrainingError(f"train.iterations ({cfg.train.iterations}) and train.batch_size ({cfg.train.batch_size}) must be positive")
        for key in ("val_interval", "checkpoint_interval", "log_interval"):
            if getattr(cfg.train, key) < 1:
                raise TrainingError(f"train.{key} must be positive, got {getattr(cfg.train, key)}")
        if self.stage == "srgan":
            if not cfg.train.init_from:
                raise TrainingError(
                    "stage srgan needs train.init_from (an SRResNet checkpoint, generator file or models:/ URI), "
                    "e.g. --set train.init_from=runs/srresnet/generator.pt"
                )
            if cfg.loss.content_weight <= 0 and cfg.loss.adversarial_weight <= 0 and cfg.loss.pixel_weight <= 0:
                raise TrainingError("stage srgan: all loss weights are zero")
        elif cfg.loss.pixel_weight <= 0:
            raise TrainingError("stage srresnet trains on the pixel loss only, but loss.pixel_weight is not positive")

    def _check_crop_fits(self) -> None:
        """Every training B-scan must hold one HR crop; say so before the data loader trips over it."""
        rows = self.info.split("train")
        crop = self.cfg.data.hr_crop
        if len(rows) and min(int(rows["height"].min()), int(rows["width"].min())) < crop:
            small = rows.loc[(rows["height"] < crop) | (rows["width"] < crop)].iloc[0]
            raise DataError(
                f"{self.info.root / small['hr_path']}: B-scan of {small['height']}x{small['width']} is smaller than "
                f"data.hr_crop={crop}; lower data.hr_crop or leave such scans out of the dataset"
            )

    def _resume_state(self) -> tuple[dict[str, Any], Path]:
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            raise TrainingError(f"{self.ckpt_dir}: no checkpoint to resume from (train without --resume first)")
        state, path = _newest_intact(self.ckpt_dir)
        check_spec(path, state["model_spec"], self.spec)
        if state.get("stage", self.stage) != self.stage:
            raise TrainingError(f"{path}: checkpoint is from stage {state.get('stage')}, the config trains {self.stage}")
        return state, path

    def _init_generator(self, generator: nn.Module) -> None:
        """Stage srgan starts from an SRResNet: a checkpoint, generator file or MLflow model URI."""
        source = str(self.cfg.train.init_from)
        if source.startswith(MLFLOW_SCHEMES):
            from .mlflow_model import download_generator_file

            path = download_generator_file(source)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise ModelError(f"{path}: train.init_from file not found")
        weights, spec, _ = load_generator_file(path)
        check_spec(path, spec, self.spec)
        load_weights(generator, weights, path)

    def _build_nets(self) -> Nets:
        from .models import build_discriminator, build_generator

        cfg, device = self.cfg, self.device
        generator = build_generator(self.spec)
        disc = build_discriminator(cfg) if self.stage == "srgan" else None
        if self.resume_state is not None:
            load_weights(generator, self.resume_state["generator"], self.resume_path)
            if disc is not None:
                load_weights(disc, self.resume_state["discriminator"], self.resume_path)
        elif self.stage == "srgan":
            self._init_generator(generator)
        nets = make_nets(cfg, generator, disc, device, self.amp_dtype)
        if self.resume_state is not None:
            self._load_training_state(nets, self.resume_state)
        if self.ranks.active:
            ids = [device.index] if device.type == "cuda" else None
            nets.generator = nn.parallel.DistributedDataParallel(nets.generator, device_ids=ids)
            if disc is not None:
                nets.discriminator = nn.parallel.DistributedDataParallel(nets.discriminator, device_ids=ids)
        return nets

    def _load_training_state(self, nets: Nets, state: dict[str, Any]) -> None:
        path = self.resume_path
        try:
            nets.ema.load_state_dict(state["ema"])
            nets.optim_g.load_state_dict(state["optim_g"])
            nets.sched_g.load_state_dict(state["sched_g"])
            nets.scaler_g.load_state_dict(state["scaler_g"])
            if nets.optim_d is not None:
                nets.optim_d.load_state_dict(state["optim_d"])
                nets.sched_d.load_state_dict(state["sched_d"])
                nets.scaler_d.load_state_dict(state["scaler_d"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ModelError(f"{path}: checkpoint state does not fit this training setup ({detail})") from None
        set_rng_state(state["rng"])

    @property
    def extractor_source(self) -> str:
        if self.extractor is None:
            return "none"
        return str(getattr(self.extractor, "weights_source", self.cfg.loss.extractor.weights or self.cfg.loss.extractor.name))

    def _loader(self) -> DataLoader:
        cfg = self.cfg
        sampler = StepBatchSampler(
            len(self.dataset), cfg.train.batch_size, cfg.seed, self.start_step, cfg.train.iterations,
            self.ranks.rank, self.ranks.world,
        )
        workers = cfg.data.num_workers
        return DataLoader(
            _SeededItems(self.dataset),
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            worker_init_fn=_ignore_sigint if workers > 0 else None,
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    # ----------------------------------------------------------------- steps

    def _all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        values = values.clone()
        dist.all_reduce(values)
        return values / self.ranks.world

    def _agree_stop(self, local_stop: bool) -> bool:
        if not self.ranks.active:
            return local_stop
        flag = torch.tensor([1.0 if local_stop else 0.0], device=self.device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    # ------------------------------------------------------------ validation

    def _bicubic(self, item: dict[str, Any]) -> torch.Tensor:
        from .transforms import upscale_bicubic

        key = item["id"]
        if key not in self._bicubic_cache:
            self._bicubic_cache[key] = upscale_bicubic(item["lr"][None].float(), self.scale, self.axes).clamp(0, 1)
        return self._bicubic_cache[key]

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """PSNR/SSIM of the EMA generator vs bicubic on full val B-scans, and a comparison figure."""
        from . import metrics

        model = self.nets.ema.module
        model.eval()
        rows = []
        first = None
        for item in self.val_items:
            lr = item["lr"][None].float()
            hr = item["hr"][None].float()
            sr = model(lr.to(self.device)).float().clamp(0, 1).cpu()
            bic = self._bicubic(item)
            h, w = (min(a, b, c) for a, b, c in zip(sr.shape[-2:], bic.shape[-2:], hr.shape[-2:]))
            sr, bic, hr = sr[..., :h, :w], bic[..., :h, :w], hr[..., :h, :w]
            shave = self.scale
            rows.append(
                (
                    float(metrics.psnr(sr, hr, data_range=1.0, shave=shave)[0]),
                    float(metrics.ssim(sr, hr, data_range=1.0, shave=shave)[0]),
                    float(metrics.psnr(bic, hr, data_range=1.0, shave=shave)[0]),
                    float(metrics.ssim(bic, hr, data_range=1.0, shave=shave)[0]),
                )
            )
            if first is None:
                first = (lr, bic, sr, hr)
        mean = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
        result = {
            "val/psnr": float(mean[0]),
            "val/ssim": float(mean[1]),
            "val/psnr_bicubic": float(mean[2]),
            "val/ssim_bicubic": float(mean[3]),
            "val/psnr_gain": float(mean[0] - mean[2]),
        }
        from . import tracking

        tracking.log_metrics(result, step=step)
        if first is not None:
            tracking.log_figure(self._figure(*first, result, step), f"figures/val_step_{step:07d}.png")
        return result

    def _figure(self, lr: torch.Tensor, bic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor,
                result: dict[str, float], step: int) -> Any:
        """LR | bicubic | SR | HR, each with a zoomed crop of the centre underneath."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        from .transforms import upscale_nearest

        h, w = hr.shape[-2:]
        lr_up = upscale_nearest(lr, self.scale, self.axes)[..., :h, :w]
        panels = [
            ("LR (nearest)", lr_up),
            (f"bicubic {result['val/psnr_bicubic']:.2f} dB", bic),
            (f"SR (EMA) {result['val/psnr']:.2f} dB", sr),
            ("HR", hr),
        ]
        size = max(16, min(h, w) // 4)
        y0, x0 = (h - size) // 2, (w - size) // 2
        fig = Figure(figsize=(16, 6.5), layout="constrained")
        axes = fig.subplots(2, 4, height_ratios=[h / w * 4, 1.6])
        for col, (title, img) in enumerate(panels):
            arr = img[0, 0].numpy()
            top, bottom = axes[0, col], axes[1, col]
            top.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            top.add_patch(Rectangle((x0, y0), size, size, fill=False, edgecolor="red", linewidth=1))
            top.set_title(title)
            bottom.imshow(arr[y0 : y0 + size, x0 : x0 + size], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            for a in (top, bottom):
                a.axis("off")
        fig.suptitle(f"{self.stage} step {step}: validation B-scan, x{self.scale} ({self.axes})")
        return fig

    # ----------------------------------------------------------- checkpoints

    def _state(self, step: int) -> dict[str, Any]:
        nets = self.nets
        disc = _unwrap(nets.discriminator) if nets.discriminator is not None else None
        return {
            "generator": _unwrap(nets.generator).state_dict(),
            "discriminator": disc.state_dict() if disc is not None else None,
            "ema": nets.ema.state_dict(),
            "optim_g": nets.optim_g.state_dict(),
            "optim_d": nets.optim_d.state_dict() if nets.optim_d is not None else None,
            "sched_g": nets.sched_g.state_dict(),
            "sched_d": nets.sched_d.state_dict() if nets.sched_d is not None else None,
            "scaler_g": nets.scaler_g.state_dict(),
            "scaler_d": nets.scaler_d.state_dict(),
            "step": step,
            "rng": {**rng_state(), "data": {"seed": self.cfg.seed, "next_step": step}},
            "config": to_dict(self.cfg),
            "model_spec": dict(self.spec),
            "stage": self.stage,
            "dataset_hash": self.info.dataset_hash,
            "run_id": self.run_id,
        }

    def save(self, step: int) -> Path | None:
        if not self.ranks.main:
            return None
        path = save_checkpoint(self.ckpt_dir / checkpoint_name(step), self._state(step))
        prune_checkpoints(self.ckpt_dir, KEEP_CHECKPOINTS)
        return path

    # ------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        from . import tracking

        cfg = self.cfg
        with contextlib.ExitStack() as stack:
            if self.ranks.main:
                run_name = f"{self.stage}-{cfg.name}-{_config_hash(cfg)}"
                tags = {"dataset_hash": self.info.dataset_hash, "device": self.device.type}
                active = stack.enter_context(
                    tracking.run(self.stage, run_name, tags=tags, experiment=cfg.tracking.experiment, run_id=self.run_id)
                )
                self.run_id = active.info.run_id
                self._log_setup()
            flag = stack.enter_context(_stop_on_signals())
            return self._loop(flag)

    def _log_setup(self) -> None:
        from . import tracking

        params = flatten(to_dict(self.cfg))
        params.update(
            {
                "extractor.weights_source": self.extractor_source,
                "device": str(self.device),
                "world_size": self.ranks.world,
                "precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
                "dataset_hash": self.info.dataset_hash,
                "n_train_bscans": len(self.dataset),
                "n_val_bscans": len(self.val_items),
            }
        )
        tracking.log_params(params)
        tracking.log_text(dump_yaml(self.cfg), "config.yaml")

    def _loop(self, flag: dict[str, Any]) -> TrainResult:
        from tqdm import tqdm

        from . import tracking

        cfg = self.cfg
        step = self.start_step
        last_ckpt = self.resume_path
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(
            total=cfg.train.iterations, initial=step, desc=self.stage, unit="it", dynamic_ncols=True,
            disable=not (self.progress and self.ranks.main), file=sys.stderr,
        )
        self.nets.generator.train()
        if self.nets.discriminator is not None:
            self.nets.discriminator.train()
        memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        validated_at = -1
        try:
            for batch in self._loader():
                lr = batch["lr"].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
                hr = batch["hr"].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
                torch.manual_seed(_mix(cfg.seed, TORCH_STREAM, step, self.ranks.rank))
                losses, finite = train_step(self.nets, self.losses, lr, hr, amp_dtype=self.amp_dtype,
                                            reduce=self._all_reduce_mean if self.ranks.active else None)
                if not finite:
                    bad = ", ".join(f"{k}={v}" for k, v in losses.items() if not math.isfinite(v))
                    good = _last_good_checkpoint(self.ckpt_dir, step)
                    raise TrainingError(
                        f"non-finite loss at step {step + 1} ({bad}); last good checkpoint: "
                        + (str(good) if good else "none (lower train.checkpoint_interval)")
                    )
                step += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                bar.update(1)
                if step % cfg.train.log_interval == 0 or step == cfg.train.iterations:
                    means = {f"train/{k}": v / count for k, v in sums.items()}
                    means["train/lr"] = self.nets.optim_g.param_groups[0]["lr"]
                    if self.ranks.main:
                        tracking.log_metrics(means, step=step)
                        bar.set_postfix({k.split("/")[1]: f"{v:.4g}" for k, v in means.items() if k != "train/lr"}, refresh=False)
                    sums, count = {}, 0
                if self.ranks.main and (step % cfg.train.val_interval == 0 or step == cfg.train.iterations):
                    self.last_metrics.update(self.validate(step))
                    validated_at = step
                if step % cfg.train.checkpoint_interval == 0 or step == cfg.train.iterations:
                    last_ckpt = self.save(step) or last_ckpt
                if self._agree_stop(flag["signal"] is not None):
                    if not (step % cfg.train.checkpoint_interval == 0 or step == cfg.train.iterations):
                        last_ckpt = self.save(step) or last_ckpt
                    if self.ranks.main:
                        tracking.set_tags({"interrupted_at_step": step})
                    return TrainResult(None, last_ckpt if self.ranks.main else None, dict(self.last_metrics),
                                       self.run_id, step, interrupted=True)
        finally:
            bar.close()
        if self.ranks.main and validated_at != step and self.val_items:
            self.last_metrics.update(self.validate(step))
        if self.ranks.main and (last_ckpt is None or not str(last_ckpt).endswith(checkpoint_name(step))):
            last_ckpt = self.save(step)
        self._check_ranks_agree(step)
        if not self.ranks.main:
            return TrainResult(None, None, dict(self.last_metrics), None, step)
        generator_path, model_uri = self._export(step)
        return TrainResult(generator_path, last_ckpt, dict(self.last_metrics), self.run_id, step, model_uri=model_uri)

    def _check_ranks_agree(self, step: int) -> None:
        """Under DDP, measure how far each rank's G and D parameters are from rank 0's (should be 0)."""
        if not self.ranks.active:
            return
        from . import tracking

        modules = [self.nets.generator] + ([self.nets.discriminator] if self.nets.discriminator is not None else [])
        with torch.no_grad():
            mine = torch.cat([p.detach().float().reshape(-1) for m in modules for p in _unwrap(m).parameters()])
            ref = mine.clone()
            dist.broadcast(ref, src=0)
            diff = (mine - ref).abs().max().reshape(1)
            dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        if self.ranks.main:
            tracking.log_metrics({"ddp/param_max_abs_diff": float(diff.item())}, step=step)

    def _export(self, step: int) -> tuple[Path, str]:
        """The EMA generator as the portable file, logged (and registered) as an MLflow model."""
        from . import tracking
        from .mlflow_model import log_generator_model

        cfg = self.cfg
        tracking.log_dataset_splits(self.info.manifest, self.info.dataset_hash, ("train", "val"))
        meta = {
            "stage": self.stage,
            "step": step,
            "config_name": cfg.name,
            "run_id": self.run_id,
            "dataset_hash": self.info.dataset_hash,
            "degradation": to_dict(cfg.data.degradation),
            "target": cfg.data.target,
            "created_with": f"oct-srgan {__version__}",
            **{k.replace("/", "_"): v for k, v in self.last_metrics.items()},
        }
        path = save_generator_file(self.out_dir / "generator.pt", self.nets.ema.module.state_dict(), self.spec, meta)
        example = self._input_example()
        name = cfg.tracking.model_name if cfg.tracking.register_model else None
        model_uri = log_generator_model(path, name, example, self.stage)
        return path, model_uri

    def _input_example(self) -> np.ndarray:
        c = self.cfg.model.in_channels
        if self.val_items:
            lr = self.val_items[0]["lr"]
            if lr.shape[0] == c and min(lr.shape[-2:]) >= EXAMPLE_LR:
                h, w = lr.shape[-2:]
                y, x = (h - EXAMPLE_LR) // 2, (w - EXAMPLE_LR) // 2
                return lr[None, :, y : y + EXAMPLE_LR, x : x + EXAMPLE_LR].float().numpy().copy()
        return np.full((1, c, EXAMPLE_LR, EXAMPLE_LR), 0.5, dtype=np.float32)


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
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device or cfg.train.device, local_rank)
    ranks = _init_dist(dev)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as claim:
            if ranks.main:
                claim.enter_context(_claim_out_dir(Path(out_dir), resume, overwrite))
            with _determinism(cfg):
                result = _Trainer(cfg, Path(data_dir), Path(out_dir), dev, ranks, resume, progress).run()
    finally:
        if ranks.owns_group and dist.is_initialized():
            dist.destroy_process_group()
    result.metrics.setdefault("train_seconds", time.perf_counter() - started)
    return result


@contextlib.contextmanager
def _claim_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> Iterator[None]:
    """Lock ``out_dir`` for this run; refuse another run's folder; clear leftovers of killed writes."""
    from .fsutil import LOCK_NAME, exclusive_dir, remove_stale_temps

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


def _last_good_checkpoint(ckpt_dir: Path, failed_from: int) -> Path | None:
    """The newest checkpoint older than the weights that gave a non-finite loss, with finite weights.

    The weights after ``failed_from`` steps produced the bad loss, so they (and a checkpoint of
    them) are never called good; nothing is saved at a failure.
    """
    from .checkpoint import _STEP_NAME

    if not ckpt_dir.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_NAME.match(p.name))), reverse=True)
    for step, path in found:
        if step >= failed_from:
            continue
        try:
            weights = load_checkpoint(path)["generator"]
        except ModelError:
            continue
        if all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point()):
            return path
    return None


def _newest_intact(ckpt_dir: Path) -> tuple[dict[str, Any], Path]:
    """Load the newest checkpoint that reads; a corrupt newer one is reported and skipped."""
    from .checkpoint import _STEP_NAME

    found = sorted(((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_NAME.match(p.name))), reverse=True)
    first_error: ModelError | None = None
    for _, path in found:
        try:
            state = load_checkpoint(path)
        except ModelError as exc:
            first_error = first_error or exc
            print(f"warning: {exc}; trying an older checkpoint", file=sys.stderr)
            continue
        if first_error is not None:
            print(f"warning: resuming from {path} instead", file=sys.stderr)
        return state, path
    raise TrainingError(f"{ckpt_dir}: no intact checkpoint to resume from ({first_error})")
