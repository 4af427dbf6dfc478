"""Whole-scan super-resolution: load a generator, run it tile by tile, write enhanced scans.

Tiling uses MONAI's ``sliding_window_inference``, which accepts a predictor whose output is larger
than its input (here ``scale`` times in H and W, or in W only for lateral-only models). Memory is
bounded by the tile size and ``batch_size``, not by the scan.

Why tiles agree with untiled inference: a window's outputs within the generator's receptive field
of a cut edge differ from the untiled result (the convs see zero padding there instead of image;
for a random-init paper SRResNet the error is 4 at the edge, 7e-3 at 8 LR pixels, below 1e-5 from
12 pixels on; the theoretical radius is about 38 LR pixels). MONAI's own blend modes cannot hide
that: "constant" averages the bad edge outputs in, and "gaussian" floors its weights at 1e-3 of the
peak, which near the image's top and bottom rows makes it constant too. So every window gets our
weight map instead (``blend_weights``): 1 in the window's core, falling to 1e-6 within overlap/2
of its edges, and the window layout (``axis_layout``) puts every pixel in some window's core.
With ``DEFAULT_OVERLAP`` = 32 LR pixels (core 16 pixels from any cut) tiled and untiled float32
outputs of the paper-size net agree to about 1e-6 on a Duke B-scan; a trained net whose response
reaches further needs a larger overlap (at most half the tile).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import io as scan_io
from .checkpoint import load_generator_file, load_weights
from .errors import ModelError, OctSrganError, ScanError, WriteError
from .models import build_generator, fold_batchnorm
from .precision import choose_inference_precision

DEFAULT_MODEL_FILE = Path(__file__).parent / "weights" / "oct_srgan_x4.pt"
DEFAULT_TILE = 128
DEFAULT_OVERLAP = 32
EDGE_WEIGHT = 1e-6
PRECISIONS = ("fp32", "bf16")
# Activation memory one forward pass may use when tiles are sized automatically (tile="auto"):
# a quarter of the machine's memory, at most 8 GiB, so whole B-scans run untiled on ordinary PCs.
MEMORY_FRACTION = 0.25
MAX_MEMORY_BUDGET = 8 << 30
BLEND_MODES = ("gaussian", "constant")
MLFLOW_SCHEMES = ("runs:/", "models:/")


def _resolve_model_file(spec: str | Path) -> tuple[Path, str]:
    """The local generator/checkpoint file for a model spec, and a short name for provenance."""
    text = str(spec)
    if text == "default":
        if not DEFAULT_MODEL_FILE.is_file():
            raise ModelError(f"{DEFAULT_MODEL_FILE}: the default model is not installed yet; pass a checkpoint, "
                             "generator file or MLflow model URI instead")
        return DEFAULT_MODEL_FILE, f"default ({DEFAULT_MODEL_FILE.name})"
    if text.startswith(MLFLOW_SCHEMES):
        from .mlflow_model import download_generator_file

        return download_generator_file(text), text
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return path, path.name


def load_generator(spec: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """An eval-mode generator and its info from a checkpoint, generator file, MLflow URI or 'default'.

    Training checkpoints give their EMA weights (what validation measured). ``info`` holds scale,
    in_channels, upsample_axes, source (a name safe to write into output headers), spec and meta.
    """
    path, source = _resolve_model_file(spec)
    state_dict, model_spec, meta = load_generator_file(path)
    try:
        generator = build_generator(model_spec)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    load_weights(generator, state_dict, path)
    info = {
        "scale": model_spec["scale"],
        "in_channels": model_spec["in_channels"],
        "upsample_axes": model_spec["upsample_axes"],
        "source": source,
        "spec": model_spec,
        "meta": meta,
    }
    return generator.to(device).eval(), info


def prepare_for_inference(
    generator: nn.Module,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = True,
    fold_bn: bool = True,
) -> nn.Module:
    """An eval-mode copy tuned for inference: BatchNorm folded into the convs, channels-last weights.

    ``precision`` is checked here and applied by :func:`super_resolve` (bf16 autocast); fp32 is the
    default because bf16 costs about 7e-3 max abs error, visible in 16-bit outputs, and is faster
    only with native bf16 (AVX512-BF16/AMX CPUs, GPUs): on an AVX2-only CPU it is emulated and
    about 5x slower than fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model = fold_batchnorm(generator) if fold_bn else copy.deepcopy(generator)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _uses_channels_last(model: nn.Module) -> bool:
    """True when the model's spatial conv weights are stored channels-last (feed it NHWC too)."""
    for param in model.parameters():
        if param.ndim == 4 and param.shape[-1] > 1:
            return param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous()
    return False


def activation_bytes_per_pixel(model: nn.Module, in_channels: int, device: str | torch.device = "cpu") -> float:
    """Peak float32 activation bytes per LR input pixel of one forward pass, from a probe run.

    Hooks record every leaf module's output size on a small input; the peak is taken as the
    largest input + output pair of one module (what must coexist), which holds for a feed-forward
    net whose residual sums keep at most one extra LR-sized map alive.
    """
    probe = 16
    sizes: list[tuple[int, int]] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor) and inputs and isinstance(inputs[0], torch.Tensor):
            sizes.append((inputs[0].numel(), output.numel()))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, probe, probe, device=device))
    finally:
        for handle in handles:
            handle.remove()
    peak = max((a + b for a, b in sizes), default=in_channels)
    return 4.0 * peak / probe**2 * 1.25


def memory_budget() -> int:
    """Bytes of activations to allow per forward pass: a share of physical memory, capped."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(min(total * MEMORY_FRACTION, MAX_MEMORY_BUDGET))


def auto_tile(size: tuple[int, int], bytes_per_pixel: float, budget: int | None = None) -> int | None:
    """None (whole B-scans) when one B-scan of ``size`` LR pixels fits the budget, else the tile side."""
    budget = memory_budget() if budget is None else budget
    if size[0] * size[1] * bytes_per_pixel <= budget:
        return None
    return max(32, int(math.sqrt(budget / bytes_per_pixel)))


def overlap_pixels(overlap: float | int, tile: int) -> int:
    """Overlap in LR pixels from a fraction of the tile (< 1) or a pixel count (>= 1), capped at tile/2.

    Beyond half the tile, some image sizes have no window layout that keeps every pixel in a core.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    pixels = round(overlap * tile) if overlap < 1 else int(overlap)
    return min(pixels, tile // 2)


def axis_layout(size: int, tile: int, overlap: int) -> tuple[int, int]:
    """Window size (at most ``tile``) and step along one axis, so every pixel lies in some window's core.

    The core is what lies at least overlap/2 from the window's edges. MONAI places windows every
    ``step`` and then one last window flush with the image end; if the window before it ends
    within overlap/2 of that end, the pixels between lie in no core. Of the layouts without that
    gap (and with at least ``overlap`` between neighbours) this picks the one that computes the
    fewest pixels, larger windows first on ties. An axis no longer than the tile is one window.
    """
    if size <= tile:
        return size, size
    margin = overlap // 2
    best: tuple[int, int, int] | None = None
    for roi in range(tile, overlap + max(margin, 1) - 1, -1):
        rest = size - roi
        for step in range(roi - overlap, max(margin, 1) - 1, -1):
            if rest % step == 0 or rest % step >= margin:
                cost = (math.ceil(rest / step) + 1) * roi
                if best is None or cost < best[0]:
                    best = (cost, roi, step)
                break
    return (best[1], best[2]) if best else (size, size)


def _blend_profile(roi: int, cut: bool, overlap: int, mode: str) -> torch.Tensor:
    """1-D window weights: 1 in the core, down to ``EDGE_WEIGHT`` within overlap/2 of each edge."""
    margin = overlap // 2
    if not cut or margin == 0:
        return torch.ones(roi, dtype=torch.float64)
    index = torch.arange(roi, dtype=torch.float64)
    distance = torch.minimum(index, roi - 1 - index)
    if mode == "constant":
        return torch.where(distance < margin, EDGE_WEIGHT, 1.0)
    sigma = margin / 2 / math.sqrt(2 * math.log(1 / EDGE_WEIGHT))
    rise = torch.exp(-((margin - distance) ** 2) / (2 * sigma**2)).clamp(min=EDGE_WEIGHT)
    return torch.where(distance < margin, rise, 1.0)


def blend_weights(roi: tuple[int, int], size: tuple[int, int], overlap: int, mode: str = "gaussian") -> torch.Tensor:
    """The [h, w] weight map MONAI multiplies every window by before normalising the sum.

    It is a product of per-axis profiles, so at an image border, where a window keeps its small
    edge weights because no other window covers those pixels, the normalisation divides them out
    exactly. Where windows overlap, the one whose core holds a pixel outweighs the others by
    1/EDGE_WEIGHT, so outputs within the receptive field of a cut edge do not reach the result.
    """
    profiles = [_blend_profile(r, r < s, overlap, mode) for r, s in zip(roi, size)]
    return torch.outer(profiles[0], profiles[1]).float()


def tiles_per_image(size: tuple[int, int], tile: int | None, overlap: float | int = DEFAULT_OVERLAP) -> int:
    """Windows :func:`super_resolve` runs over one [h, w] image (1 untiled), so progress has a total up front.

    MONAI places windows every ``step`` plus one flush with the image end: ceil((size - roi) / step) + 1
    per axis, with ``roi`` and ``step`` from :func:`axis_layout`.
    """
    if not tile:
        return 1
    pixels = overlap_pixels(overlap, tile)
    count = 1
    for extent in size:
        roi, step = axis_layout(extent, tile, pixels)
        count *= 1 if extent <= roi else math.ceil((extent - roi) / step) + 1
    return count


def super_resolve(
    generator: nn.Module,
    lr: torch.Tensor,
    *,
    scale: int,
    upsample_axes: str = "both",
    tile: int | str | None = "auto",
    overlap: float | int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    mode: str = "gaussian",
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Super-resolve [N,C,h,w] in [0, 1] to [N,C,H,W] clamped to [0, 1] (float32, on the CPU).

    ``tile`` is the largest window side in LR pixels (0/None: whole images; "auto": whole images when
    they fit :func:`memory_budget`, else the largest tile that does); windows may be a few
    pixels smaller so they fit the image evenly, and a side shorter than the tile is one window, so
    nothing is ever padded. ``overlap`` is a fraction of the tile (< 1) or LR pixels (>= 1), capped
    at half the tile. ``mode`` shapes the fall of the window weights inside the overlap: "gaussian"
    (smooth) or "constant" (a step at overlap/2, i.e. plain cropping). ``progress(k)`` is called after
    every forward pass with the k images (untiled) or windows (tiled) it finished, so a progress bar
    moves while one large image is still being tiled (:func:`tiles_per_image` gives the total).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if mode not in BLEND_MODES:
        raise ValueError(f"mode must be one of {BLEND_MODES}, got {mode!r}")
    if lr.ndim != 4:
        raise ValueError(f"expected LR images [N,C,h,w], got shape {tuple(lr.shape)}")
    device = torch.device(device)
    memory_format = torch.channels_last if _uses_channels_last(generator) else torch.contiguous_format

    def predict(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = generator(x)
        y = y.float().contiguous()
        if progress is not None:
            progress(int(x.shape[0]))
        return y

    lr = lr.detach().float().cpu()
    n, c, h, w = lr.shape
    if tile == "auto":
        tile = auto_tile((h, w), activation_bytes_per_pixel(generator, c, device) * min(batch_size, n))
    out_h = h * scale if upsample_axes == "both" else h
    out = torch.empty((n, c, out_h, w * scale), dtype=torch.float32)
    if tile:
        pixels = overlap_pixels(overlap, tile)
        layout = [axis_layout(size, tile, pixels) for size in (h, w)]
        roi = tuple(r for r, _ in layout)
        # MONAI steps by int(roi * (1 - fraction)); the half pixel makes that exactly our step.
        fractions = tuple((r - step - 0.5) / r if step < r else 0.0 for r, step in layout)
        weights = blend_weights(roi, (h, w), pixels, mode)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            chunk = lr[start : start + batch_size]
            if not tile:
                sr = predict(chunk).cpu()
            else:
                from monai.inferers import sliding_window_inference  # 5 s of imports, only when tiling

                sr = sliding_window_inference(chunk, roi, batch_size, predict, overlap=fractions,
                                              roi_weight_map=weights, sw_device=device, device="cpu")
            if sr.shape[1:] != out.shape[1:]:
                raise ModelError(f"generator made {tuple(sr.shape[1:])} from {tuple(chunk.shape[1:])}, "
                                 f"expected {tuple(out.shape[1:])} (scale {scale}, axes {upsample_axes})")
            out[start : start + batch_size] = sr.clamp_(0.0, 1.0)
    return out


def enhance_scan(
    scan: scan_io.Scan,
    generator: nn.Module,
    info: dict[str, Any],
    *,
    tile: int | str | None = "auto",
    overlap: float | int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[int, str], None] | None = None,
) -> scan_io.Scan:
    """Super-resolve every B-scan of ``scan``; the result's geometry is rescaled by ``Scan.with_pixels``.

    Grey scans go straight into a 1-channel model; a 3-channel (natural-image) model gets the grey
    B-scan repeated to RGB and its output averaged back to grey. ``tile="auto"`` runs whole B-scans
    when they fit :func:`memory_budget` and tiles only otherwise. B-scans run one at a time
    (``batch_size`` tiles per pass when tiled). ``progress(done, total)`` counts what really
    finishes: tile windows after every forward pass when B-scans are tiled, else B-scans, with
    ``total`` fixed before the first pass, so a progress bar's rate and estimate are real;
    ``on_start(total, unit)`` says beforehand which it is ("tile" or "B-scan").
    """
    channels = int(info["in_channels"])
    if channels not in (1, 3):
        raise ModelError(f"model {info.get('source', '?')}: takes {channels} input channels; "
                         f"{scan.path or 'the scan'} is grey (1 channel)")
    scale, axes = int(info["scale"]), info["upsample_axes"]
    pixels = scan.pixels
    total, h, w = pixels.shape
    if tile == "auto":
        tile = auto_tile((h, w), activation_bytes_per_pixel(generator, channels, device))
    out = np.empty((total, h * scale if axes == "both" else h, w * scale), dtype=np.float32)
    windows = tiles_per_image((h, w), tile, overlap)
    if on_start is not None:
        on_start(total * windows, "tile" if windows > 1 else "B-scan")
    done = 0

    def finished(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total * windows)

    for index in range(total):
        lr = torch.from_numpy(np.ascontiguousarray(pixels[index], dtype=np.float32))[None, None]
        sr = super_resolve(generator, lr.expand(-1, channels, -1, -1), scale=scale, upsample_axes=axes, tile=tile,
                           overlap=overlap, batch_size=batch_size, device=device, precision=precision,
                           progress=finished)
        out[index] = sr[0, 0].numpy() if channels == 1 else sr[0].mean(dim=0).numpy()
    return scan.with_pixels(out)


@dataclass
class EnhanceReport:
    """What :func:`enhance_files` did: outputs written, inputs skipped with a one-line reason."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    comparisons: list[Path] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)


def _split_name(path: Path) -> tuple[str, str]:
    """File stem and extension, treating ``.nii.gz`` as one extension."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")], name[-len(".nii.gz") :]
    return path.stem, path.suffix


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OctSrganError(f"{out_dir}: cannot create output folder ({exc.strerror or exc})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise OctSrganError(f"{out_dir}: output folder is not writable")


def write_comparison(path: Path, lr: np.ndarray, sr: np.ndarray, scale: int, axes: str, *, title: str) -> Path:
    """Labelled PNG of one B-scan: input (nearest) | bicubic | SR, with the retina zoomed below."""
    from oct_srgan.figures import enhance_comparison, save_figure

    return save_figure(enhance_comparison(lr, sr, scale, axes, title=title), path)


def output_plan(inputs: list[Path], out: Path, suffix: str = "_sr") -> Path | None:
    """The one output file ``out`` names, or None when ``out`` is a folder; refuses what cannot work.

    ``out`` with a scan extension (``.dcm``, ``.nii.gz``, ``.png``...) that is not an existing folder
    names the output file itself: allowed for exactly one input file of the same format, so that
    ``-o out.dcm`` never becomes a folder called ``out.dcm`` nor a DICOM saved under another format.
    """
    if not suffix or any(sep in suffix for sep in ("/", "\\", os.sep)):
        raise OctSrganError(f"--suffix {suffix!r}: must be non-empty text without a path separator")
    wanted = scan_io.format_of_name(out)
    if wanted is None or out.is_dir():
        return None
    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        what = "the input is a folder" if len(inputs) == 1 else f"there are {len(inputs)} inputs"
        raise OctSrganError(f"{out}: -o names one output file, but {what}; give -o a folder instead")
    source = scan_io.scan_format(inputs[0])
    if source != wanted:
        raise OctSrganError(f"{out}: -o is a {wanted} file name but {inputs[0]} is {source}; "
                            f"name the output with the input's extension (a scan keeps its format)")
    return out


def enhance_files(
    inputs: list[Path],
    out_dir: Path | None = None,
    model: str | Path = "default",
    *,
    tile: int | str | None = "auto",
    overlap: float | int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    overwrite: bool = False,
    compare: bool = False,
    progress: Callable[[Path, int, int], None] | None = None,
    max_pixels: int | None = scan_io.DEFAULT_MAX_PIXELS,
    notify: Callable[[str], None] | None = None,
    suffix: str = "_sr",
    on_start: Callable[[Path, int, str], None] | None = None,
) -> EnhanceReport:
    """Enhance every scan found under ``inputs`` into ``out_dir`` (default ``./enhanced``).

    Each output is ``<stem><suffix><ext>`` in the input's format, written atomically by
    ``io.write_scan``; an ``out_dir`` with a scan extension is the output file itself for one input
    file (see :func:`output_plan`). Existing outputs are kept unless ``overwrite``, and an input is
    never written over; unreadable or unsupported files are skipped with their one-line reason.
    ``compare`` also writes ``<output stem>_compare.png`` (bicubic | SR of the middle B-scan).
    ``progress(path, done, total)`` reports tiles or B-scans done within each file, and
    ``on_start(path, total, unit)`` which of the two before its first (see :func:`enhance_scan`). ``precision`` "auto" picks per file by
    :func:`oct_srgan.precision.choose_inference_precision` (bf16 only with native bf16 and 8-bit
    output); ``notify`` receives one line saying what it chose.
    """
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of auto, {', '.join(PRECISIONS)}, got {precision!r}")
    out_dir = Path(out_dir) if out_dir is not None else Path("enhanced")
    out_file = output_plan([Path(p) for p in inputs], out_dir, suffix)
    if out_file is not None:
        out_dir = out_file.parent
    report = EnhanceReport()
    found: dict[Path, None] = {}
    for item in inputs:
        try:
            found.update(dict.fromkeys(scan_io.find_scans([item])))
        except ScanError as exc:
            report.skipped.append((Path(item), str(exc)))
    _check_writable(out_dir)
    generator, info = load_generator(model, device)
    generator = prepare_for_inference(generator, device, "fp32" if precision == "auto" else precision)
    scale, axes = int(info["scale"]), info["upsample_axes"]
    derivation = f"oct-srgan x{scale} super-resolution (model {info['source']})"
    report.model = info
    claimed: dict[Path, Path] = {}
    for path in found:
        stem, ext = _split_name(path)
        target = out_file if out_file is not None else out_dir / f"{stem}{suffix}{ext}"
        if target in claimed:
            report.skipped.append((path, f"{path}: same output name {target.name} as {claimed[target]}"))
            continue
        claimed[target] = path
        if target.resolve() == path.resolve():
            report.skipped.append((path, f"{path}: the output would replace the input; choose another -o or --suffix"))
            continue
        if target.exists() and not overwrite:
            report.skipped.append((path, f"{path}: output {target} already exists (use --overwrite to replace it)"))
            continue
        try:
            scan = scan_io.read_scan(path, max_pixels=max_pixels)
            chosen, why = choose_inference_precision(precision, device, scan.bit_depth)
            if notify is not None:
                notify(f"{path.name}: precision {chosen} ({why})")
            per_file = (lambda done, total, p=path: progress(p, done, total)) if progress else None
            starting = (lambda total, unit, p=path: on_start(p, total, unit)) if on_start else None
            enhanced = enhance_scan(scan, generator, info, tile=tile, overlap=overlap, batch_size=batch_size,
                                    device=device, precision=chosen, progress=per_file, on_start=starting)
            scan_io.write_scan(enhanced, target, derivation=derivation, overwrite=overwrite)
        except WriteError:
            raise
        except ScanError as exc:
            report.skipped.append((path, str(exc)))
            continue
        report.written.append((path, target))
        if compare:
            mid = scan.pixels.shape[0] // 2
            compare_path = target.parent / f"{_split_name(target)[0]}_compare.png"
            title = f"{path.name}: B-scan {mid + 1} of {scan.pixels.shape[0]}, x{scale} with {info['source']}"
            report.comparisons.append(write_comparison(compare_path, scan.pixels[mid], enhanced.pixels[mid], scale, axes,
                                                       title=title))
    return report
