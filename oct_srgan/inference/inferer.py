"""Super-resolve LR tensors: :func:`super_resolve` runs one generator, :class:`SRInferer` runs a loaded model.

:class:`SRInferer` follows MONAI's ``SlidingWindowInferer`` (``monai/inferers/inferer.py``):
settings in ``__init__``, the work in ``__call__``, around the functional form (there
``sliding_window_inference``, here :func:`super_resolve`). It is bound to one
:class:`~oct_srgan.loading.LoadedModel` because what it sets up, a copy with BatchNorm folded into
the convs and channels-last weights, belongs to that model. It owns what callers used to repeat:
grey images into a 1- or 3-channel model and back, the memory layout, the precision, and tiles
sized to the memory budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..enums import BlendMode, Precision, look_up_option
from ..errors import ModelError
from ..loading import LoadedModel
from ..models import fold_batchnorm, for_inference
from ..scaling import scale_factors
from .fidelity import keep_input
from .tiling import DEFAULT_OVERLAP, activation_bytes_per_pixel, auto_tile, tiles_per_image, window_plan



def prepare_for_inference(
    generator: nn.Module,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = True,
    fold_bn: bool = True,
) -> nn.Module:
    """An eval-mode copy tuned for inference: BatchNorm folded into the convs, channels-last weights
    and the architecture's own inference form (``Architecture.for_inference``; SRResNet on the CPU:
    PReLUs fused into their convs, :mod:`oct_srgan.models.fused`).

    ``precision`` is checked here and applied by :func:`super_resolve` (bf16 autocast); fp32 is the
    default because bf16 costs about 7e-3 max abs error, visible in 16-bit outputs, and is faster
    only with native bf16 (AVX512-BF16/AMX CPUs, GPUs): on an AVX2-only CPU it is emulated and
    about 5x slower than fp32.
    """
    look_up_option(precision, Precision, "precision")
    model = fold_batchnorm(generator) if fold_bn else copy.deepcopy(generator)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        model = for_inference(model, device)
    return model


def _uses_channels_last(model: nn.Module) -> bool:
    """True when the model's spatial conv weights are stored channels-last (feed it NHWC too)."""
    for param in model.parameters():
        if param.ndim == 4 and param.shape[-1] > 1:
            return param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous()
    return False


def _check_options(lr: torch.Tensor, precision: str, mode: str) -> None:
    look_up_option(precision, Precision, "precision")
    look_up_option(mode, BlendMode, "mode")
    if lr.ndim != 4:
        raise ValueError(f"expected LR images [N,C,h,w], got shape {tuple(lr.shape)}")


def _check_output(sr: torch.Tensor, chunk: torch.Tensor, out: torch.Tensor, geometry: str) -> None:
    """A generator whose output does not have the expected size is the wrong model for these options."""
    if sr.shape[1:] != out.shape[1:]:
        raise ModelError(f"generator made {tuple(sr.shape[1:])} from {tuple(chunk.shape[1:])}, "
                         f"expected {tuple(out.shape[1:])} ({geometry})")


def super_resolve(
    generator: nn.Module,
    lr: torch.Tensor,
    *,
    scale: int,
    upsample_axes: str = "both",
    tile: int | None = None,
    overlap: float | int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    mode: str = "gaussian",
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Super-resolve [N,C,h,w] in [0, 1] to [N,C,H,W] clamped to [0, 1] (float32, on the CPU).

    ``tile`` is the largest window side in LR pixels (0/None: whole images; :class:`SRInferer` sizes
    it to the memory budget); windows may be a few pixels smaller so they fit the image evenly, and
    a side shorter than the tile is one window, so nothing is ever padded. ``overlap`` is a fraction
    of the tile (< 1) or LR pixels (>= 1), capped at half the tile. ``mode`` shapes the fall of the
    window weights inside the overlap: "gaussian" (smooth) or "constant" (a step at overlap/2, i.e.
    plain cropping). ``progress(k)`` is called after every forward pass with the k images (untiled)
    or windows (tiled) it finished, so a progress bar moves while one large image is still being
    tiled (:func:`~oct_srgan.inference.tiling.tiles_per_image` gives the total).
    """
    _check_options(lr, precision, mode)
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
    fh, fw = scale_factors(scale, upsample_axes)
    out = torch.empty((n, c, h * fh, w * fw), dtype=torch.float32)
    if tile:
        roi, fractions, weights = window_plan((h, w), tile, overlap, mode)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            chunk = lr[start : start + batch_size]
            if not tile:
                sr = predict(chunk).cpu()
            else:
                from monai.inferers import sliding_window_inference  # 5 s of imports, only when tiling

                sr = sliding_window_inference(chunk, roi, batch_size, predict, overlap=fractions,
                                              roi_weight_map=weights, sw_device=device, device="cpu")
            _check_output(sr, chunk, out, f"scale {scale}, axes {upsample_axes}")
            out[start : start + batch_size] = sr.clamp_(0.0, 1.0)
    return out


class SRInferer:
    """LR images [N,C,h,w] in [0, 1] -> SR images [N,C,H,W] clamped to [0, 1] with one loaded model.

    Settings: ``tile`` (LR window side; 0/None whole images; "auto" whole images when they fit
    ``memory_budget`` bytes of activations, default :func:`~oct_srgan.inference.tiling.memory_budget`,
    else the largest tile that does), ``overlap`` and ``mode`` (blending, see :func:`super_resolve`),
    ``batch_size`` (images or windows per forward pass), ``precision`` ("fp32" or "bf16" autocast),
    ``device``, the model copy's ``channels_last`` layout and ``fold_bn``, and ``fidelity`` (0-1: how
    much of what the output misses of its input at scales coarser than speckle is put back, see
    :mod:`~oct_srgan.inference.fidelity`; 0 is the model as trained).

    Channels: images with the model's channel count go straight in; a grey image goes into a
    3-channel model repeated to RGB and comes back as the mean of the three outputs; a 1-channel
    model super-resolves each channel of a multi-channel image on its own.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        tile: int | str | None = "auto",
        overlap: float | int = DEFAULT_OVERLAP,
        mode: str = "gaussian",
        batch_size: int = 4,
        precision: str = "fp32",
        device: str | torch.device = "cpu",
        channels_last: bool = True,
        fold_bn: bool = True,
        memory_budget: int | None = None,
        fidelity: float = 0.0,
    ) -> None:
        look_up_option(mode, BlendMode, "mode")
        if not 0.0 <= fidelity <= 1.0:
            raise ValueError(f"fidelity must be between 0 and 1, got {fidelity}")
        if isinstance(tile, str) and tile != "auto":
            raise ValueError(f"tile must be a number of LR pixels, 0/None or 'auto', got {tile!r}")
        self.model = model
        self.module = prepare_for_inference(model.module, device, precision, channels_last, fold_bn)
        self.tile, self.overlap, self.mode, self.batch_size = tile, overlap, mode, batch_size
        self.precision, self.device, self.memory_budget = precision, device, memory_budget
        self.fidelity = fidelity
        self._bytes_per_pixel: float | None = None

    def with_precision(self, precision: str) -> SRInferer:
        """The same prepared model and settings at another precision (``enhance`` chooses it per file)."""
        look_up_option(precision, Precision, "precision")
        other = copy.copy(self)
        other.precision = precision
        return other

    def tile_for(self, size: tuple[int, int], images: int = 1) -> int | None:
        """The window side for ``images`` LR images of ``size`` [h, w] (None: whole images)."""
        if self.tile != "auto":
            return self.tile or None
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = activation_bytes_per_pixel(self.module, self.model.channels, self.device)
        return auto_tile(size, self._bytes_per_pixel * min(self.batch_size, images), budget=self.memory_budget)

    def windows(self, size: tuple[int, int]) -> int:
        """Forward-pass windows one image of ``size`` takes (1 untiled), so progress has a total up front."""
        return tiles_per_image(size, self.tile_for(size), self.overlap)

    def __call__(self, lr: torch.Tensor, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        x, restore = self._adapt(lr)
        sr = super_resolve(
            self.module, x, scale=self.model.scale, upsample_axes=self.model.axes,
            tile=self.tile_for((x.shape[-2], x.shape[-1]), x.shape[0]), overlap=self.overlap,
            batch_size=self.batch_size, device=self.device, precision=self.precision, mode=self.mode,
            progress=progress,
        )
        if self.fidelity:
            sr = keep_input(sr, x.float().cpu(), scale_factors(self.model.scale, self.model.axes), self.fidelity)
        return restore(sr)

    def _adapt(self, lr: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``lr`` in the model's channels, and how to bring its output back to ``lr``'s channels."""
        if lr.ndim != 4:
            raise ValueError(f"expected LR images [N,C,h,w], got shape {tuple(lr.shape)}")
        n, c, h, w = lr.shape
        wanted = self.model.channels
        if c == wanted:
            return lr, lambda sr: sr
        if c == 1 and self.model.takes_grey:
            return lr.expand(-1, wanted, -1, -1), lambda sr: sr.mean(dim=1, keepdim=True)
        if wanted == 1:
            return lr.reshape(n * c, 1, h, w), lambda sr: sr.reshape(n, c, *sr.shape[-2:])
        raise ModelError(f"model {self.model.source} takes {wanted} channels, the images have {c}")
