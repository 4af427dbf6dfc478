"""Degradations, baselines and paired random transforms for HR/LR B-scans (MONAI dictionary style).

The bicubic resize reproduces MATLAB ``imresize`` (Keys cubic with a = -0.5, kernel widened by
1/scale when shrinking, symmetric border padding), the protocol behind the SRGAN paper's numbers:
bicubic x4 on Set5 gives 28.42 dB here against 28.43 dB in the paper. PyTorch's antialiased bicubic
uses the same kernel and matches MATLAB to 1e-12 away from the border, but shortens and renormalises
the kernel at the border (differences up to 15/255 in the outer LR rows); padding the input
symmetrically first, as MATLAB does, removes that difference.

Spatial layout is channel-first ``[C, H, W]`` (or ``[B, C, H, W]``): H is axial depth, W is lateral
(A-scans). ``axes='lateral'`` keeps every axial sample and resamples the width only.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    DeleteItemsd,
    EnsureTyped,
    MapTransform,
    Randomizable,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    SpatialCrop,
)
from monai.transforms.utils import scale_affine
from monai.utils import ensure_tuple, ensure_tuple_rep
from monai.utils.misc import get_seed

from .config import ConfigError, DataConfig, DegradationConfig
from .enums import DegradationMode, look_up_option
from .scaling import scale_factors as _factors

Mode = Literal["bicubic", "area"]
Axes = Literal["both", "lateral"]
RandomSource = torch.Generator | np.random.RandomState | np.random.Generator



def _plain(x: torch.Tensor) -> torch.Tensor:
    """The data of ``x`` without MONAI metadata, so pure tensor maths stays cheap and predictable."""
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _symmetric_index(length: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of ``range(-pad, length + pad)`` mirrored MATLAB-style (edge sample repeated)."""
    mirror = torch.cat([torch.arange(length, device=device), torch.arange(length - 1, -1, -1, device=device)])
    return mirror[torch.remainder(torch.arange(-pad, length + pad, device=device), 2 * length)]


def _border_pad(in_len: int, out_len: int) -> tuple[int, int]:
    """Input padding ``p`` (covering the kernel support) such that ``p * out / in`` is a whole number.

    Only then does the padded output grid contain the unpadded grid exactly, so the padded resize
    can be cropped back. Returns ``(p, p * out // in)``; no padding when the length is unchanged.
    """
    if in_len == out_len:
        return 0, 0
    support = math.ceil(2.0 * max(in_len / out_len, 1.0)) + 1
    step = in_len // math.gcd(in_len, out_len)
    pad = math.ceil(support / step) * step
    return pad, pad * out_len // in_len


def resize_bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize the last two axes of ``x`` to ``size`` like MATLAB ``imresize(x, size, 'bicubic')``.

    Antialiased when shrinking; borders are handled by symmetric padding. Values are not rounded or
    clipped (MATLAB does both only for integer images). Returns a plain float tensor.
    """
    data = _plain(x)
    if data.ndim < 2:
        raise ValueError(f"resize_bicubic needs a tensor [..., H, W], got shape {tuple(data.shape)}")
    if not data.is_floating_point():
        raise ValueError(f"resize_bicubic needs a floating-point tensor, got {data.dtype}")
    out_h, out_w = (int(s) for s in size)
    in_h, in_w = data.shape[-2:]
    if min(out_h, out_w, in_h, in_w) < 1:
        raise ValueError(f"cannot resize spatial size {(in_h, in_w)} to {(out_h, out_w)}")
    if (in_h, in_w) == (out_h, out_w):
        return data.clone()
    pad_h, crop_h = _border_pad(in_h, out_h)
    pad_w, crop_w = _border_pad(in_w, out_w)
    lead = data.shape[:-2]
    flat = data.reshape(1, -1, in_h, in_w)
    if pad_h:
        flat = flat.index_select(2, _symmetric_index(in_h, pad_h, flat.device))
    if pad_w:
        flat = flat.index_select(3, _symmetric_index(in_w, pad_w, flat.device))
    padded_size = (out_h + 2 * crop_h, out_w + 2 * crop_w)
    out = F.interpolate(flat, size=padded_size, mode="bicubic", antialias=True, align_corners=False)
    out = out[:, :, crop_h : crop_h + out_h, crop_w : crop_w + out_w]
    return out.reshape(*lead, out_h, out_w).contiguous()




def _check_image(x: torch.Tensor, what: str) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(f"{what} needs [C, H, W] or [B, C, H, W], got shape {tuple(x.shape)}")


def downscale(x: torch.Tensor, scale: int = 4, mode: Mode = "bicubic", axes: Axes = "both") -> torch.Tensor:
    """Make the LR image: bicubic (MATLAB imresize) or area (mean of blocks) reduction by ``scale``.

    ``axes='lateral'`` reduces the width only (A-scan decimation, 1 x scale blocks for area).
    Sizes must divide exactly so that LR pixel ``i`` covers HR pixels ``scale*i .. scale*i+scale-1``.
    """
    look_up_option(mode, DegradationMode, "mode")
    fh, fw = _factors(scale, axes)
    data = _plain(x)
    _check_image(data, "downscale")
    h, w = data.shape[-2:]
    if h % fh or w % fw:
        which = f"width {w}" if axes == "lateral" else f"height {h} and width {w}"
        raise ValueError(
            f"downscale x{scale} ({axes}) needs {which} divisible by {scale}, got shape {tuple(data.shape)}"
        )
    if mode == "area":
        blocks = data.reshape(*data.shape[:-2], h // fh, fh, w // fw, fw)
        return blocks.mean(dim=(-3, -1))
    return resize_bicubic(data, (h // fh, w // fw))


def upscale_bicubic(x: torch.Tensor, scale: int = 4, axes: Axes = "both") -> torch.Tensor:
    """Bicubic baseline (MATLAB imresize); not clipped, so clamp to [0, 1] before display or saving."""
    fh, fw = _factors(scale, axes)
    data = _plain(x)
    _check_image(data, "upscale_bicubic")
    h, w = data.shape[-2:]
    return resize_bicubic(data, (h * fh, w * fw))


def upscale_linear(x: torch.Tensor, scale: int = 4, axes: Axes = "both") -> torch.Tensor:
    """Linear-interpolation baseline (half-pixel centres, as MATLAB's imresize 'bilinear' without antialiasing)."""
    fh, fw = _factors(scale, axes)
    data = _plain(x)
    _check_image(data, "upscale_linear")
    h, w = data.shape[-2:]
    flat = data.reshape(-1, 1, h, w)
    out = F.interpolate(flat, size=(h * fh, w * fw), mode="bilinear", align_corners=False)
    return out.reshape(*data.shape[:-2], h * fh, w * fw)


def upscale_nearest(x: torch.Tensor, scale: int = 4, axes: Axes = "both") -> torch.Tensor:
    """Pixel-replication baseline: every LR pixel becomes a block of identical HR pixels."""
    fh, fw = _factors(scale, axes)
    data = _plain(x)
    _check_image(data, "upscale_nearest")
    return data.repeat_interleave(fh, dim=-2).repeat_interleave(fw, dim=-1)


def add_speckle(x: torch.Tensor, sigma: float, generator: RandomSource | None = None) -> torch.Tensor:
    """Multiply by gamma-distributed speckle (mean 1, std ``sigma``) and clip to [0, 1].

    Gamma with shape 1/sigma^2 is the intensity law of L-look speckle (L = 1/sigma^2); sigma = 1 is
    fully developed single-look speckle. ``generator`` (torch or numpy) makes the noise reproducible.
    """
    if sigma < 0:
        raise ValueError(f"speckle sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clamp(0.0, 1.0)
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        rng: np.random.RandomState | np.random.Generator = np.random.default_rng(seed)
    elif generator is None:
        rng = np.random.default_rng()
    else:
        rng = generator
    shape = 1.0 / sigma**2
    noise = rng.gamma(shape, 1.0 / shape, size=tuple(x.shape))
    return (x * torch.as_tensor(noise, dtype=x.dtype, device=x.device)).clamp(0.0, 1.0)


def _with_meta_of(src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Give ``out`` the metadata of ``src`` with the affine rescaled to the new pixel grid."""
    if not isinstance(src, MetaTensor):
        return out
    old, new = tuple(src.shape[-2:]), tuple(out.shape[-2:])
    affine = src.affine
    rank = affine.shape[-1] - 1
    scaling = np.eye(rank + 1)
    small = scale_affine(old, new)
    scaling[:2, :2] = small[:2, :2]
    scaling[:2, -1] = small[:2, -1]
    meta = {k: v for k, v in src.meta.items() if k != "affine"}
    return MetaTensor(out, affine=affine @ torch.as_tensor(scaling, dtype=affine.dtype), meta=meta)


class Degraded(Randomizable, MapTransform):
    """Add ``lr_key`` = degraded copy of ``keys`` (downscale, then optional speckle, clipped to [0, 1]).

    Random only through speckle. With ``seed`` set, each image gets noise seeded by ``seed`` and a
    checksum of its pixels, so the fixed val/test LR does not depend on the order images come in.
    Clipping mirrors MATLAB writing a uint8 image: the bicubic lobes overshoot [0, 1] at edges.
    """

    def __init__(
        self,
        keys: KeysCollection = "hr",
        lr_key: str | Sequence[str] = "lr",
        scale: int = 4,
        mode: Mode = "bicubic",
        axes: Axes = "both",
        speckle: float = 0.0,
        seed: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        look_up_option(mode, DegradationMode, "mode")
        _factors(scale, axes)
        if speckle < 0:
            raise ValueError(f"speckle must be >= 0, got {speckle}")
        self.lr_keys = ensure_tuple_rep(lr_key, len(self.keys))
        self.scale, self.mode, self.axes, self.speckle, self.seed = scale, mode, axes, float(speckle), seed
        self.set_random_state(seed=get_seed())

    def randomize(self, data: None = None) -> None:
        """No per-call state: the noise is drawn from ``self.R`` while it is applied."""

    def _noise_source(self, hr: torch.Tensor) -> RandomSource:
        if self.seed is None:
            return self.R
        checksum = zlib.crc32(np.ascontiguousarray(hr.detach().cpu().numpy()).tobytes())
        return np.random.default_rng([self.seed, checksum])

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key, lr_key in self.key_iterator(d, self.lr_keys):
            hr = d[key]
            lr = downscale(hr, self.scale, self.mode, self.axes)
            if self.speckle > 0:
                lr = add_speckle(lr, self.speckle, self._noise_source(_plain(hr)))
            d[lr_key] = _with_meta_of(hr, lr.clamp(0.0, 1.0).to(dtype=hr.dtype))
        return d


class PairedRandCropd(Randomizable, MapTransform):
    """Crop LR at a random position and HR at exactly ``scale`` times that position and size.

    For data whose LR is already made (fixed degradations, precomputed speckle). Nothing is padded:
    an image smaller than the crop is an error, not a silently smaller patch.
    """

    def __init__(
        self,
        lr_key: str = "lr",
        hr_key: str = "hr",
        lr_size: Sequence[int] = (24, 24),
        scale: int = 4,
        axes: Axes = "both",
    ) -> None:
        MapTransform.__init__(self, (lr_key, hr_key))
        self.lr_key, self.hr_key = lr_key, hr_key
        self.lr_size = tuple(int(s) for s in ensure_tuple(lr_size))
        if len(self.lr_size) != 2 or min(self.lr_size) < 1:
            raise ValueError(f"lr_size must be two positive integers (h, w), got {lr_size!r}")
        self.factors = _factors(scale, axes)
        self.scale, self.axes = scale, axes
        self._start = (0, 0)
        self.set_random_state(seed=get_seed())

    def randomize(self, lr_shape: Sequence[int]) -> None:
        self._start = tuple(int(self.R.randint(0, n - c + 1)) for n, c in zip(lr_shape, self.lr_size))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        lr, hr = d[self.lr_key], d[self.hr_key]
        lr_shape, hr_shape = tuple(lr.shape[-2:]), tuple(hr.shape[-2:])
        expected = tuple(n * f for n, f in zip(lr_shape, self.factors))
        if hr_shape != expected:
            raise ValueError(
                f"{self.hr_key!r} is {hr_shape} but {self.lr_key!r} {lr_shape} "
                f"x{self.scale} ({self.axes}) needs {expected}"
            )
        if any(n < c for n, c in zip(lr_shape, self.lr_size)):
            raise ValueError(f"{self.lr_key!r} of size {lr_shape} is smaller than the crop {self.lr_size}")
        self.randomize(lr_shape)
        end = tuple(s + c for s, c in zip(self._start, self.lr_size))
        d[self.lr_key] = SpatialCrop(roi_start=self._start, roi_end=end)(lr)
        hr_start = tuple(s * f for s, f in zip(self._start, self.factors))
        hr_end = tuple(e * f for e, f in zip(end, self.factors))
        d[self.hr_key] = SpatialCrop(roi_start=hr_start, roi_end=hr_end)(hr)
        return d


class PairedRandFlipd(RandFlipd):
    """Flip all ``keys`` together (one random decision per call), laterally by default.

    Only the lateral axis (``spatial_axis=1``, W) is flipped by default: a mirrored B-scan is still a
    plausible retina, an upside-down one (vitreous below the RPE) is not and would teach the model
    anatomy it never sees.
    """

    def __init__(
        self,
        keys: KeysCollection = ("lr", "hr"),
        prob: float = 0.5,
        spatial_axis: Sequence[int] | int | None = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob=prob, spatial_axis=spatial_axis, allow_missing_keys=allow_missing_keys)
        self.set_random_state(seed=get_seed())


class RequireSized(MapTransform):
    """Refuse images smaller than ``size``: MONAI's random crop would silently return a smaller patch."""

    def __init__(self, keys: KeysCollection, size: Sequence[int], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.size = tuple(int(s) for s in size)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            shape = tuple(d[key].shape[-len(self.size) :])
            if any(n < c for n, c in zip(shape, self.size)):
                raise ValueError(f"{key!r} of size {shape} is smaller than the crop {self.size}")
        return d


class PlainTensord(MapTransform):
    """Contiguous float32 ``torch.Tensor`` without metadata: what the training loop batches."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _plain(torch.as_tensor(d[key])).to(dtype=torch.float32).contiguous()
        return d


def _check_crop(data_cfg: DataConfig) -> None:
    if data_cfg.hr_crop % data_cfg.scale:
        raise ConfigError(f"data.hr_crop ({data_cfg.hr_crop}) must be divisible by data.scale ({data_cfg.scale})")


def train_transforms(data_cfg: DataConfig) -> Compose:
    """{"hr": [C, H, W] in [0, 1]} -> {"lr": [C, crop/s, crop/s] (lateral: [C, crop, crop/s]), "hr": [C, crop, crop]}.

    Random HR crop, random lateral flip, then the configured degradation. Outputs are plain
    contiguous float32 tensors. Seeded by ``monai.utils.set_determinism`` (before building) or
    ``Compose.set_random_state``.
    """
    _check_crop(data_cfg)
    crop = (data_cfg.hr_crop, data_cfg.hr_crop)
    deg = data_cfg.degradation or DegradationConfig()
    return Compose(
        [
            EnsureTyped(keys="hr", dtype=torch.float32),
            RequireSized(keys="hr", size=crop),
            RandSpatialCropd(keys="hr", roi_size=crop, random_size=False),
            PairedRandFlipd(keys="hr", prob=0.5, spatial_axis=1),
            Degraded(keys="hr", lr_key="lr", scale=data_cfg.scale, mode=deg.mode, axes=deg.axes, speckle=deg.speckle),
            PlainTensord(keys=("lr", "hr")),
        ]
    )


def _input_intensity(data_cfg: DataConfig) -> list[MapTransform]:
    """Random gain and offset of the noisy input (never the reference target), as MONAI transforms."""
    out: list[MapTransform] = []
    if data_cfg.input_gain > 0:
        out.append(RandScaleIntensityd(keys="input", factors=data_cfg.input_gain, prob=1.0))
    if data_cfg.input_offset > 0:
        out.append(RandShiftIntensityd(keys="input", offsets=data_cfg.input_offset, prob=1.0))
    return out


def reference_train_transforms(data_cfg: DataConfig) -> Compose:
    """{"input": noisy [C, H, W], "hr": clean reference [C, H, W]} -> {"lr", "hr"} training pairs.

    One random crop position for both images (they are registered pixel for pixel), one flip
    decision for both, then the configured degradation of the *input* crop: noisy LR in, clean HR
    target out, exactly aligned.
    """
    _check_crop(data_cfg)
    crop = (data_cfg.hr_crop, data_cfg.hr_crop)
    deg = data_cfg.degradation or DegradationConfig()
    keys = ("input", "hr")
    return Compose(
        [
            EnsureTyped(keys=keys, dtype=torch.float32),
            RequireSized(keys=keys, size=crop),
            RandSpatialCropd(keys=keys, roi_size=crop, random_size=False),
            PairedRandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            *_input_intensity(data_cfg),
            Degraded(keys="input", lr_key="lr", scale=data_cfg.scale, mode=deg.mode, axes=deg.axes, speckle=deg.speckle),
            DeleteItemsd(keys="input"),
            PlainTensord(keys=("lr", "hr")),
        ]
    )


def eval_degradation(data_cfg: DataConfig, seed: int = 0) -> Degraded:
    """The fixed degradation for val/test LR: same image in, same LR out, whatever the order."""
    deg = data_cfg.degradation or DegradationConfig()
    return Degraded(
        keys="hr", lr_key="lr", scale=data_cfg.scale, mode=deg.mode, axes=deg.axes, speckle=deg.speckle, seed=seed
    )
