"""Issue-11 speed rows, as ratios against baselines measured in the same run.

Rows (medians of ``--reps`` interleaved repetitions, output megapixels per second):

- conv limit: a 3x3 64->64 conv, channels-last, fp32 and bf16 autocast, in GFLOP/s;
- paper SRResNet (1 channel, x4, random init) 256 -> 1024: fp32 eager NCHW untiled (the baseline),
  the project's default path (``prepare_for_inference`` + ``SRInferer`` with ``tile="auto"``)
  in fp32 and bf16, and the old default tiling (128 / overlap 32) for comparison; each with its
  share of the conv limit (its conv FLOPs per output pixel x MP/s / the conv's GFLOP/s);
- the ``lr_shuffle`` layout at the lead's size (48 channels, ``--blocks``) through the default path;
- with ``--cli``: ``oct-srgan enhance`` of the shared 6-frame DICOM end to end (fresh process, fp32)
  for the shipped model and a random ``lr_shuffle`` model, against a bicubic read-resize-write script
  (run first, before minutes of full load slow a shared machine down).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000 \\
        python bench/speed.py [--reps 5] [--cli]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from oct_srgan import inference
from oct_srgan.checkpoint import save_generator_file
from oct_srgan.loading import LoadedModel
from oct_srgan.models import srresnet
from oct_srgan.precision import native_bf16

VOLUME = Path(__file__).resolve().parents[2] / "shared" / "data" / "oct" / "formats" / "oct_volume_s14.dcm"
MALLOC_VARS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
BICUBIC_SCRIPT = """
import sys, numpy as np, pydicom, torch, torch.nn.functional as F
ds = pydicom.dcmread(sys.argv[1]); x = torch.from_numpy(ds.pixel_array.astype(np.float32) / 255)[:, None]
y = F.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 1).mul(255).round().to(torch.uint8)[:, 0].numpy()
ds.Rows, ds.Columns = y.shape[1:]; ds.PixelData = y.tobytes(); ds.save_as(sys.argv[2])
"""


def conv_flops_per_output_pixel(model: torch.nn.Module, lr: int = 16) -> float:
    """Conv FLOPs (2 x MACs) of one forward pass per output pixel, counted with hooks."""
    total = [0.0]

    def hook(module: torch.nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2.0 * module.in_channels // module.groups * k * output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        out = model(torch.zeros(1, 1, lr, lr))
    for handle in handles:
        handle.remove()
    tail = getattr(model, "tail", None)
    if hasattr(model, "tail_index") and isinstance(tail, torch.nn.Conv2d):
        # The paper's 9x9 HR tail runs in its sub-pixel form (functional conv, no hook): count
        # its nominal FLOPs, as the paper layout computes them at HR.
        total[0] += 2.0 * tail.in_channels * tail.kernel_size[0] * tail.kernel_size[1] * out.numel()
    return total[0] / out[0, 0].numel()


def random_paper_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = srresnet(channels=64, num_blocks=16, norm="batch").eval()
    with torch.no_grad():
        net.tail.weight.mul_(0.05)
        net.tail.bias.fill_(0.5)
    return net


def median_times(jobs: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds of each job, the jobs interleaved rep by rep (after one warm-up each)."""
    for job in jobs.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(reps):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cli_rows(reps: int, blocks: int) -> None:
    exe = Path(sys.executable).with_name("oct-srgan")
    with tempfile.TemporaryDirectory() as tmp:
        shuffle_file = Path(tmp) / "lr_shuffle.pt"
        net = srresnet(channels=48, num_blocks=blocks, norm="none", upsample="lr_shuffle")
        save_generator_file(shuffle_file, net.state_dict(), net.spec, {"source": "random init"})
        commands = {
            "bicubic read-resize-write (baseline)": [sys.executable, "-c", BICUBIC_SCRIPT, str(VOLUME), f"{tmp}/b.dcm"],
            "enhance, shipped model, fp32": [str(exe), "enhance", str(VOLUME), "-o", f"{tmp}/a", "--precision", "fp32",
                                             "--overwrite", "--no-progress"],
            f"enhance, lr_shuffle 48x{blocks} random, fp32": [str(exe), "enhance", str(VOLUME), "-o", f"{tmp}/c",
                                                             "-m", str(shuffle_file), "--precision", "fp32",
                                                             "--overwrite", "--no-progress"],
            "enhance, shipped model, --precision auto": [str(exe), "enhance", str(VOLUME), "-o", f"{tmp}/d",
                                                         "--overwrite", "--no-progress"],
            "import oct_srgan.pipelines.cli only": [sys.executable, "-c", "import oct_srgan.pipelines.cli"],
        }
        jobs = {name: (lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True)) for name, cmd in commands.items()}
        result = median_times(jobs, reps)
    base = result["bicubic read-resize-write (baseline)"]
    out_mp = 6 * 1800 * 3600 / 1e6
    print(f"\n{'end to end (fresh process)':<44} {'seconds':>8} {'out MP/s':>9} {'x bicubic time':>15}")
    for name, seconds in result.items():
        print(f"{name:<44} {seconds:8.2f} {out_mp / seconds:9.2f} {seconds / base:14.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="LR side of the paper-net rows")
    parser.add_argument("--blocks", type=int, default=8, help="residual blocks of the lr_shuffle row (shipped model: 8)")
    parser.add_argument("--cli", action="store_true", help="also time the oct-srgan enhance CLI end to end")
    args = parser.parse_args()
    bf16 = native_bf16("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16 {bf16}, malloc {'tuned' if all(v in os.environ for v in MALLOC_VARS) else 'glibc defaults'}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.cli:
        # First, while the machine is as a user's single command finds it: minutes of full load
        # slow shared 2-core machines down by up to a third, and the rows below are minutes long.
        cli_rows(max(3, args.reps // 2), args.blocks)

    cl = torch.channels_last
    feat = torch.rand(1, 64, args.size, args.size).contiguous(memory_format=cl)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=cl).eval()
    lr = torch.rand(1, 1, args.size, args.size)
    paper = random_paper_net()
    fast = inference.prepare_for_inference(paper)
    shuffle_net = srresnet(channels=48, num_blocks=args.blocks, norm="none", upsample="lr_shuffle")
    shuffle = inference.prepare_for_inference(shuffle_net)

    def autocast(enabled: bool) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)

    def conv_job(use_bf16: bool) -> Callable[[], object]:
        def go() -> object:
            with torch.inference_mode(), autocast(use_bf16):
                return conv(feat)
        return go

    def sr(model: torch.nn.Module, precision: str, tile: object) -> Callable[[], object]:
        loaded = LoadedModel(model, scale=4, axes="both", channels=1, source="bench")
        inferer = inference.SRInferer(loaded, tile=tile, precision=precision, batch_size=4, fold_bn=False, channels_last=False)
        return lambda: inferer(lr)

    jobs: dict[str, Callable[[], object]] = {"conv fp32": conv_job(False)}
    if bf16:
        jobs["conv bf16"] = conv_job(True)
    jobs.update({
        "paper fp32 eager NCHW untiled (baseline)": sr(paper, "fp32", None),
        "paper fp32 default path": sr(fast, "fp32", "auto"),
        "paper fp32 old default tiling 128/32": sr(fast, "fp32", 128),
        f"lr_shuffle 48x{args.blocks} fp32 default path": sr(shuffle, "fp32", "auto"),
    })
    if bf16:
        jobs["paper bf16 default path"] = sr(fast, "bf16", "auto")
    result = median_times(jobs, args.reps)

    conv_flops = 2 * 64 * 64 * 9 * args.size * args.size
    limit = {"fp32": conv_flops / result["conv fp32"] / 1e9}
    if bf16:
        limit["bf16"] = conv_flops / result["conv bf16"] / 1e9
    print("conv 3x3 64->64 limit: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in limit.items()))
    out_mp = args.size * args.size * 16 / 1e6
    base = result["paper fp32 eager NCHW untiled (baseline)"]
    flops = {"paper": conv_flops_per_output_pixel(paper), "lr_shuffle": conv_flops_per_output_pixel(shuffle_net)}
    print(f"\n{'model / path':<44} {'seconds':>8} {'out MP/s':>9} {'vs eager':>9} {'% conv limit':>13}")
    for name, seconds in result.items():
        if name.startswith("conv"):
            continue
        rate = out_mp / seconds
        pct = 100 * flops[name.split()[0]] * rate * 1e6 / (limit["bf16" if "bf16" in name else "fp32"] * 1e9)
        print(f"{name:<44} {seconds:8.3f} {rate:9.3f} {base / seconds:8.2f}x {pct:12.0f}%")
    print(f"(conv kFLOP per output pixel: paper {flops['paper'] / 1e3:.0f}, lr_shuffle {flops['lr_shuffle'] / 1e3:.0f})")


if __name__ == "__main__":
    main()
