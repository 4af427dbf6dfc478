"""Training and inference speed, as ratios against a plain fp32 eager NCHW baseline in the same run.

Training rows time ``oct_srgan.training.train_step`` (the trainer's own step: G + D + content
extractor for srgan) at batch 16, HR crop 96 on the paper's networks, and report HR kilopixels/s.
Inference rows time the generator on one 450x900 B-scan at x4 (LR 112x225 -> 448x900) and report
output megapixels/s, plus the max abs difference from the fp32 baseline output.

The glibc allocator's defaults make large passes page-fault constantly and timings swing 30-50 %
(docs/architecture.md, 'Speed'); run with the tunables for stable, faster figures:

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000 \\
        python bench/train_step.py            # --quick: fewer repeats; --only srresnet|srgan|inference

VGG19 runs with random weights here (``weights='random'``): the speed is the same and the bench
never needs the ImageNet file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

from oct_srgan import training
from oct_srgan.config import load_config
from oct_srgan.precision import training_dtype
from oct_srgan.models import build_discriminator, build_generator, fold_batchnorm, generator_spec
from oct_srgan.transforms import downscale

REPO = Path(__file__).resolve().parents[1]
BSCAN = REPO.parent / "shared" / "data" / "oct" / "duke_bioptigen" / "subject01" / "average.tif"
MALLOC_VARS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
SCALE = 4


@dataclass
class Row:
    what: str
    setting: str
    seconds: float
    rate: float
    unit: str
    ratio: float
    note: str = ""


def _timeit(fn: Callable[[], None], warmup: int, repeats: int) -> float:
    """Median seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _crops(device: torch.device, batch: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of real HR crops and their bicubic x4 LR, as the data pipeline would give."""
    image = torch.from_numpy(tifffile.imread(BSCAN).astype(np.float32) / 255.0)
    h, w = image.shape
    ys, xs = rng.integers(0, h - crop, batch), rng.integers(0, w - crop, batch)
    hr = torch.stack([image[y : y + crop, x : x + crop] for y, x in zip(ys, xs)])[:, None]
    lr = downscale(hr, SCALE).clamp(0, 1)
    return lr.to(device), hr.to(device)


def _train_settings(device: torch.device) -> list[tuple[str, bool, torch.dtype | None, str]]:
    """(name, channels_last, autocast dtype, note); the first is the baseline."""
    settings = [("fp32 eager NCHW", False, None, "baseline")]
    if device.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        settings.append((f"{str(amp)[6:]} autocast + channels_last", True, amp, "trainer default on CUDA"))
    else:
        native = training_dtype(device) == torch.bfloat16
        settings.append(("fp32 channels_last", True, None,
                         "trainer default on this CPU (no native bf16)" if not native else "fp32 on this CPU"))
        settings.append(("bf16 autocast + channels_last", True, torch.bfloat16,
                         "trainer default on this CPU (native bf16)" if native else "emulated bf16: not used here"))
    return settings


def bench_training(device: torch.device, stage: str, batch: int, crop: int, warmup: int, repeats: int) -> Iterator[Row]:
    overrides = [f"train.stage={stage}", f"train.batch_size={batch}", f"data.hr_crop={crop}"]
    if stage == "srgan":
        overrides += ["loss.pixel_weight=0", "loss.content_weight=1", "loss.adversarial_weight=1e-3"]
    base = None
    for name, channels_last, amp, note in _train_settings(device):
        cfg = load_config(REPO / "configs" / "default.yaml", [*overrides, f"train.channels_last={channels_last}"])
        torch.manual_seed(0)
        generator = build_generator(generator_spec(cfg))
        disc = build_discriminator(cfg) if stage == "srgan" else None
        nets = training.make_nets(cfg, generator, disc, device, amp)
        extractor = training.build_extractor(cfg, nets.discriminator, device, weights="random", amp_dtype=amp)
        losses = training.make_losses(cfg, extractor, device)
        lr, hr = _crops(device, batch, crop, np.random.default_rng(0))
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        lr, hr = lr.contiguous(memory_format=memory_format), hr.contiguous(memory_format=memory_format)

        def step() -> None:
            training.train_step(nets, losses, lr, hr, amp_dtype=amp)
            _sync(device)

        seconds = _timeit(step, warmup, repeats)
        base = base or seconds
        rate = batch * crop * crop / seconds
        yield Row(f"train {stage}", name, seconds, rate / 1e3, "HR kpx/s", base / seconds, note)


def bench_inference(device: torch.device, warmup: int, repeats: int) -> Iterator[Row]:
    cfg = load_config(REPO / "configs" / "default.yaml")
    torch.manual_seed(0)
    generator = build_generator(generator_spec(cfg)).to(device).eval()
    image = torch.from_numpy(tifffile.imread(BSCAN).astype(np.float32) / 255.0)[None, None]
    h, w = image.shape[-2:]
    lr = downscale(image[..., : h - h % SCALE, : w - w % SCALE], SCALE).clamp(0, 1).to(device)
    out_pixels = lr.shape[-2] * lr.shape[-1] * SCALE * SCALE
    amp = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    settings = [
        ("fp32 eager NCHW", generator, False, None, "baseline"),
        ("fp32 channels_last + fold_batchnorm", fold_batchnorm(generator), True, None, ""),
        (f"{str(amp)[6:]} autocast + channels_last + fold_batchnorm", fold_batchnorm(generator), True, amp, ""),
    ]
    reference = None
    base = None
    for name, model, channels_last, dtype, note in settings:
        x = lr
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = lr.contiguous(memory_format=torch.channels_last)
        context = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        result: dict[str, torch.Tensor] = {}

        def run() -> None:
            with torch.inference_mode(), context:
                result["y"] = model(x)
            _sync(device)

        seconds = _timeit(run, warmup, repeats)
        y = result["y"].float()
        reference = y if reference is None else reference
        base = base or seconds
        err = float((y - reference).abs().max())
        extra = note or f"max abs diff {err:.1e}"
        yield Row(f"infer {lr.shape[-2]}x{lr.shape[-1]} -> x{SCALE}", name, seconds, out_pixels / seconds / 1e6,
                  "out MP/s", base / seconds, extra)


def conv_limit_gflops(dtype: torch.dtype | None, warmup: int, repeats: int, size: int = 128) -> float:
    """GFLOP/s of a channels-last 3x3 64->64 conv (under autocast to ``dtype``): how fast the machine is right now."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.rand(4, 64, size, size).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            conv(x)

    return 2 * 64 * 64 * 9 * 4 * size * size / _timeit(run, warmup, repeats) / 1e9


HEADER = f"{'benchmark':<26} {'setting':<48} {'s/iter':>8} {'rate':>9} {'unit':<9} {'x base':>7}  note"


def _line(r: Row) -> str:
    return f"{r.what:<26} {r.setting:<48} {r.seconds:>8.3f} {r.rate:>9.3f} {r.unit:<9} {r.ratio:>7.2f}  {r.note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (rough numbers)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda when present)")
    parser.add_argument("--only", choices=("srresnet", "srgan", "inference"), action="append",
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=16, help="training batch size (paper: 16)")
    parser.add_argument("--crop", type=int, default=96, help="training HR crop (paper: 96)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parts = args.only or ["srresnet", "srgan", "inference"]
    warmup, repeats = (1, 2) if args.quick else (2, 5)
    malloc = "set" if all(v in os.environ for v in MALLOC_VARS) else "NOT set (see the module docstring)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, glibc malloc tunables {malloc}")
    print(f"training: batch {args.batch}, HR crop {args.crop}, SRResNet 64x16 (+ discriminator + VGG19-54 for srgan); "
          f"median of {repeats} after {warmup} warm-up")
    limits = {"fp32": None} | ({"bf16": torch.bfloat16} if training_dtype("cpu") == torch.bfloat16 else {})
    print("CPU conv 3x3 64->64 now (the machine's speed drifts; compare rows of one run): "
          + ", ".join(f"{k} {conv_limit_gflops(v, warmup, repeats * 4):.0f} GFLOP/s" for k, v in limits.items()))
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    for name in devices:
        device = torch.device(name)
        for part in parts:
            if part == "inference":
                rows = bench_inference(device, warmup, repeats)
            else:
                rows = bench_training(device, part, args.batch, args.crop, warmup, repeats)
            for row in rows:
                print(_line(row), flush=True)


if __name__ == "__main__":
    main()
