"""Everything a run learns or resumes: networks, EMA, optimisers, loss terms, and their checkpoints.

A run starts from scratch, from a generator named by ``train.init_from`` (needed by stage srgan;
in stage srresnet it fine-tunes that generator, e.g. the shipped ``default``) or from its own
newest intact checkpoint (``--resume``); a checkpoint holds every piece of state the
loop does not recompute from ``(seed, step, rank)``, so resuming is exact.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..checkpoint import (
    _STEP_NAME,
    check_spec,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_generator_file,
    load_weights,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ..config import Config, LossConfig, to_dict
from ..errors import ModelError, TrainingError
from ..loading import OctSrganWeights, locate_model_file, resolve_model_file
from .distributed import unwrap

KEEP_CHECKPOINTS = 3


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

    def modules(self) -> list[nn.Module]:
        """The trained networks: G, and D in stage srgan."""
        return [self.generator] + ([self.discriminator] if self.discriminator is not None else [])

    def buffers(self) -> list[torch.Tensor]:
        return [b for m in self.modules() for b in m.buffers()]


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
        # The fused kernel (CPU and CUDA) updates all parameters in one vectorised pass: same rule.
        return torch.optim.Adam(module.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                                fused=device.type in ("cpu", "cuda"))

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
    from ..extractors import build_extractor as build

    ext = cfg.loss.extractor
    extractor = build(
        ext.name,
        layers=ext.layers,
        weights=weights if weights is not None else ext.weights,
        in_channels=cfg.model.in_channels,
        discriminator=unwrap(discriminator) if discriminator is not None else None,
    )
    if any(p.requires_grad for p in extractor.parameters()):
        return extractor.to(device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.preserve_format
    return extractor.to(device, dtype=amp_dtype, memory_format=memory_format)


def extractor_source(cfg: Config, extractor: nn.Module | None) -> str:
    """Where the content extractor's weights came from, for the run's params (``none`` without one)."""
    if extractor is None:
        return "none"
    return str(getattr(extractor, "weights_source", cfg.loss.extractor.weights or cfg.loss.extractor.name))


def make_losses(cfg: Config, extractor: nn.Module | None, device: torch.device) -> Losses:
    from ..losses import AdversarialLoss, ContentLoss, PixelLoss

    content = ContentLoss(extractor).to(device) if extractor is not None else None
    return Losses(cfg.train.stage, cfg.loss, PixelLoss(cfg.loss.pixel, cfg.loss.ssim_weight), AdversarialLoss(cfg.loss.adversarial), content)


# ------------------------------------------------------------------------- where a run starts


@dataclass
class Resume:
    """The checkpoint a resumed run continues from."""

    state: dict[str, Any]
    path: Path

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def run_id(self) -> str | None:
        return self.state.get("run_id")


def check_init_source(cfg: Config) -> None:
    """Stage srgan starts from an SRResNet; a recipe may leave it to ``--set``, so say how."""
    if cfg.train.stage == "srgan" and not cfg.train.init_from:
        raise TrainingError(
            "stage srgan needs train.init_from (an SRResNet checkpoint, generator file or models:/ URI), "
            "e.g. --set train.init_from=runs/srresnet/generator.pt"
        )


def find_resume(ckpt_dir: Path, spec: dict[str, Any], stage: str) -> Resume:
    """The newest intact checkpoint in ``ckpt_dir``, refused when it is of another network or stage."""
    if latest_checkpoint(ckpt_dir) is None:
        raise TrainingError(f"{ckpt_dir}: no checkpoint to resume from (train without --resume first)")
    state, path = _newest_intact(ckpt_dir)
    check_spec(path, state["model_spec"], spec)
    if state.get("stage", stage) != stage:
        raise TrainingError(f"{path}: checkpoint is from stage {state.get('stage')}, the config trains {stage}")
    return Resume(state, path)


def _init_generator(generator: nn.Module, source: str, spec: dict[str, Any]) -> None:
    """Load an SRResNet into ``generator``: shipped weights (``default``), a checkpoint, generator file
    or MLflow model URI; weights of another architecture are refused naming the differing field."""
    weights = OctSrganWeights.from_name(source)
    path = resolve_model_file(weights)[0] if weights is not None else locate_model_file(source, what="train.init_from")[0]
    weights, file_spec, _ = load_generator_file(path)
    check_spec(path, file_spec, spec)
    load_weights(generator, weights, path)


def build_nets(cfg: Config, spec: dict[str, Any], device: torch.device, amp_dtype: torch.dtype | None,
               resume: Resume | None) -> Nets:
    """The stage's networks, started as the run says (scratch, init_from or resume), with their training state."""
    from ..models import build_discriminator, build_generator

    generator = build_generator(spec)
    disc = build_discriminator(cfg) if cfg.train.stage == "srgan" else None
    if resume is not None:
        load_weights(generator, resume.state["generator"], resume.path)
        if disc is not None:
            load_weights(disc, resume.state["discriminator"], resume.path)
    elif cfg.train.init_from:
        _init_generator(generator, str(cfg.train.init_from), spec)
    nets = make_nets(cfg, generator, disc, device, amp_dtype)
    if resume is not None:
        _load_training_state(nets, resume)
    return nets


def _load_training_state(nets: Nets, resume: Resume) -> None:
    state = resume.state
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
        raise ModelError(f"{resume.path}: checkpoint state does not fit this training setup ({detail})") from None
    set_rng_state(state["rng"])


# ------------------------------------------------------------------------------ checkpoints


@dataclass
class RunInfo:
    """What a checkpoint records about its run besides the learnt state."""

    cfg: Config
    spec: dict[str, Any]
    dataset_hash: str
    run_id: str | None


def checkpoint_state(nets: Nets, step: int, run: RunInfo) -> dict[str, Any]:
    """Every piece of state a resumed run needs, as a weights-only loadable mapping."""
    disc = unwrap(nets.discriminator) if nets.discriminator is not None else None
    return {
        "generator": unwrap(nets.generator).state_dict(),
        "discriminator": disc.state_dict() if disc is not None else None,
        "ema": nets.ema.state_dict(),
        "optim_g": nets.optim_g.state_dict(),
        "optim_d": nets.optim_d.state_dict() if nets.optim_d is not None else None,
        "sched_g": nets.sched_g.state_dict(),
        "sched_d": nets.sched_d.state_dict() if nets.sched_d is not None else None,
        "scaler_g": nets.scaler_g.state_dict(),
        "scaler_d": nets.scaler_d.state_dict(),
        "step": step,
        "rng": {**rng_state(), "data": {"seed": run.cfg.seed, "next_step": step}},
        "config": to_dict(run.cfg),
        "model_spec": dict(run.spec),
        "stage": run.cfg.train.stage,
        "dataset_hash": run.dataset_hash,
        "run_id": run.run_id,
    }


def save(ckpt_dir: Path, nets: Nets, step: int, run: RunInfo) -> Path:
    """Write the checkpoint of ``step`` and keep only the newest :data:`KEEP_CHECKPOINTS`."""
    path = save_checkpoint(ckpt_dir / checkpoint_name(step), checkpoint_state(nets, step, run))
    prune_checkpoints(ckpt_dir, KEEP_CHECKPOINTS)
    return path


def _by_step(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """The step checkpoints in ``ckpt_dir``, newest first."""
    return sorted(((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_NAME.match(p.name))), reverse=True)


def last_good_checkpoint(ckpt_dir: Path, failed_from: int) -> Path | None:
    """The newest checkpoint older than the weights that gave a non-finite loss, with finite weights.

    The weights after ``failed_from`` steps produced the bad loss, so they (and a checkpoint of
    them) are never called good; nothing is saved at a failure.
    """
    if not ckpt_dir.is_dir():
        return None
    for step, path in _by_step(ckpt_dir):
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
    first_error: ModelError | None = None
    for _, path in _by_step(ckpt_dir):
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
