"""Whole-volume enhancement speed: output megapixels per second, against baselines in the same run.

Enhances the shared 6-frame 450 x 900 OCT DICOM volume x4 (to 1800 x 3600 per frame) through
``oct_srgan.inference.enhance_scan`` with the paper-size SRResNet (the shipped default weights if
installed, else a random init), and times:

- bicubic upscaling (``transforms.upscale_bicubic``), the baseline every SR number is judged against;
- fp32 eager (BatchNorm as separate layers, NCHW) -- the reference for the ratio and error columns;
- fp32 with BatchNorm folded into the convs and channels-last weights;
- bf16 autocast + folded + channels-last (fast only where the CPU has native bf16, AVX512-BF16 or
  AMX, or on a GPU; on an AVX2-only CPU it is emulated and several times slower than fp32).

Ratios are against fp32 eager in the same process. The glibc allocator settings from
``docs/architecture.md`` (Speed) make timings faster and steadier; the script prints whether they are set:

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000 \\
        python bench/enhance.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from oct_srgan import inference
from oct_srgan.errors import ModelError
from oct_srgan.io import Scan, read_scan
from oct_srgan.loading import LoadedModel, load_model
from oct_srgan.models import srresnet
from oct_srgan.transforms import upscale_bicubic

VOLUME = Path(__file__).resolve().parents[2] / "shared" / "data" / "oct" / "formats" / "oct_volume_s14.dcm"
MALLOC_VARS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def paper_model() -> tuple[LoadedModel, str]:
    """The default model if installed, else the paper's SRResNet at random init.

    The random net's tail is scaled so its outputs land inside (0, 1), otherwise clamping would
    hide most of the bf16 error this benchmark reports.
    """
    try:
        model = load_model("default")
        return model, model.source
    except ModelError:
        torch.manual_seed(0)
        generator = srresnet(in_channels=1, channels=64, num_blocks=16, scale=4, norm="batch").eval()
        with torch.no_grad():
            generator.tail.weight.mul_(0.05)
            generator.tail.bias.fill_(0.5)
        model = LoadedModel(generator, scale=4, axes="both", channels=1, source="random init", spec=generator.spec)
        return model, "paper SRResNet, random init (no default weights installed)"


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 frame instead of 6")
    parser.add_argument("--frames", type=int, default=None, help="number of B-scans to enhance")
    parser.add_argument("--tile", type=int, default=inference.DEFAULT_TILE, help="tile side in LR pixels")
    parser.add_argument("--overlap", type=int, default=inference.DEFAULT_OVERLAP, help="tile overlap in LR pixels")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    frames = args.frames or (1 if args.quick else 6)
    volume = read_scan(VOLUME)
    scan = volume.with_pixels(volume.pixels[:frames])
    model, source = paper_model()
    scale = model.scale
    n, h, w = scan.pixels.shape
    out_mp = n * h * w * scale * scale / 1e6

    print(f"volume   {VOLUME.name}: {n} x {h} x {w} -> {n} x {h * scale} x {w * scale} ({out_mp:.1f} output MP)")
    print(f"model    {source}")
    print(f"tiling   tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {torch.backends.cpu.get_cpu_capability()}")
    print(f"malloc   {'tuned' if all(v in os.environ for v in MALLOC_VARS) else 'glibc defaults (see docstring)'}")

    def run(inferer: inference.SRInferer, precision: str) -> Callable[[], np.ndarray]:
        def go() -> np.ndarray:
            out: Scan = inference.enhance_scan(scan, inferer.with_precision(precision))
            return out.pixels
        return go

    def bicubic() -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(scan.pixels)
            return upscale_bicubic(x, scale).clamp_(0, 1).numpy()

    settings = {"tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size}
    eager = inference.SRInferer(model, fold_bn=False, channels_last=False, **settings)
    folded = inference.SRInferer(model, **settings)
    variants = [
        ("bicubic (transforms.upscale_bicubic)", bicubic),
        ("fp32 eager (reference)", run(eager, "fp32")),
        ("fp32 + folded BN + channels-last", run(folded, "fp32")),
        ("bf16 + folded BN + channels-last", run(folded, "bf16")),
    ]
    warm = volume.with_pixels(volume.pixels[:1, :64, :64])
    for inferer, precision in ((eager, "fp32"), (folded, "fp32"), (folded, "bf16")):
        inference.enhance_scan(warm, inferer.with_precision(precision))

    results = []
    reference = None
    for name, fn in variants:
        out, seconds = timed(fn)
        if name.startswith("fp32 eager"):
            reference, ref_seconds = out, seconds
        results.append((name, out, seconds))

    print()
    print(f"{'method':<40} {'seconds':>8} {'out MP/s':>9} {'vs fp32':>8} {'max |diff|':>11}")
    for name, out, seconds in results:
        diff = "" if name.startswith("bicubic") else f"{float(np.abs(out - reference).max()):.1e}"
        print(f"{name:<40} {seconds:8.2f} {out_mp / seconds:9.3f} {ref_seconds / seconds:7.2f}x {diff:>11}")


if __name__ == "__main__":
    main()
