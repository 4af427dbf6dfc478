"""Degradations, baselines and paired random transforms for HR/LR B-scans (MONAI dictionary style).

How LR is made lives in the degradation table (:mod:`oct_srgan.degradations`); this module wraps it
for tensors with MONAI metadata and adds the interpolation baselines and the training transforms.

Spatial layout is channel-first ``[C, H, W]`` (or ``[B, C, H, W]``): H is axial depth, W is lateral
(A-scans). ``axes='lateral'`` keeps every axial sample and resamples the width only.
"""

from __future__ import annotations

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
    RandomizableTransform,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    ScaleIntensityRanged,
    Transform,
)
from monai.transforms.utils import scale_affine
from monai.utils import ensure_tuple_rep
from monai.utils.misc import get_seed

from .config import ConfigError, DataConfig, DegradationConfig, LesionConfig, MixConfig, SpeckleKeptConfig
from .degradations import DEGRADATIONS, RandomDegradation, add_speckle, resize_bicubic
from .degradations.speckle import RandomSource
from .enums import DegradationMode, look_up_option
from .intensity import match_intensity
from .lesions import LesionSpec, RandLesionsd
from .scaling import scale_factors as _factors

Mode = Literal["bicubic", "area", "decimate"]
Axes = Literal["both", "lateral"]

def _plain(x: torch.Tensor) -> torch.Tensor:
    """The data of ``x`` without MONAI metadata, so pure tensor maths stays cheap and predictable."""
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _check_image(x: torch.Tensor, what: str) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(f"{what} needs [C, H, W] or [B, C, H, W], got shape {tuple(x.shape)}")


def downscale(x: torch.Tensor, scale: int = 4, mode: Mode = "bicubic", axes: Axes = "both") -> torch.Tensor:
    """Make the LR image by ``scale`` with the degradation table's ``mode`` (bicubic, area, decimate).

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
    return DEGRADATIONS[mode].reduce(data, fh, fw)


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


class Degrade(Randomizable, Transform):
    """LR of one image ``[C, H, W]`` (or ``[B, C, H, W]``): downscale, then optional speckle, clipped to [0, 1].

    Random only through speckle. With ``seed`` set, each image gets noise seeded by ``seed`` and a
    checksum of its pixels, so the fixed val/test LR does not depend on the order images come in.
    Clipping mirrors MATLAB writing a uint8 image: the bicubic lobes overshoot [0, 1] at edges.
    """

    def __init__(self, scale: int = 4, mode: Mode = "bicubic", axes: Axes = "both", speckle: float = 0.0,
                 seed: int | None = None) -> None:
        look_up_option(mode, DegradationMode, "mode")
        _factors(scale, axes)
        if speckle < 0:
            raise ValueError(f"speckle must be >= 0, got {speckle}")
        self.scale, self.mode, self.axes, self.speckle, self.seed = scale, mode, axes, float(speckle), seed
        self.set_random_state(seed=get_seed())

    def randomize(self, data: None = None) -> None:
        """No per-call state: the noise is drawn from ``self.R`` while it is applied."""

    def _noise_source(self, hr: torch.Tensor) -> RandomSource:
        if self.seed is None:
            return self.R
        checksum = zlib.crc32(np.ascontiguousarray(hr.detach().cpu().numpy()).tobytes())
        return np.random.default_rng([self.seed, checksum])

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        lr = downscale(hr, self.scale, self.mode, self.axes)
        if self.speckle > 0:
            lr = add_speckle(lr, self.speckle, self._noise_source(_plain(hr)))
        return _with_meta_of(hr, lr.clamp(0.0, 1.0).to(dtype=hr.dtype))


class Degraded(Randomizable, MapTransform):
    """Dictionary form of :class:`Degrade`: add ``lr_key`` = the LR of each of ``keys``."""

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
        self.lr_keys = ensure_tuple_rep(lr_key, len(self.keys))
        self.degrade = Degrade(scale, mode, axes, speckle, seed)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Degraded:
        self.degrade.set_random_state(seed, state)
        return self

    def randomize(self, data: None = None) -> None:
        """No per-call state: :class:`Degrade` draws its noise while it is applied."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key, lr_key in self.key_iterator(d, self.lr_keys):
            d[lr_key] = self.degrade(d[key])
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

    Random HR crop, random lateral flip, random gain/offset, then the configured (or mixed) degradation. Outputs are plain
    contiguous float32 tensors. Seeded by ``monai.utils.set_determinism`` (before building) or
    ``Compose.set_random_state``.
    """
    _check_crop(data_cfg)
    crop = (data_cfg.hr_crop, data_cfg.hr_crop)
    return Compose(
        [
            EnsureTyped(keys="hr", dtype=torch.float32),
            RequireSized(keys="hr", size=crop),
            RandSpatialCropd(keys="hr", roi_size=crop, random_size=False),
            PairedRandFlipd(keys="hr", prob=0.5, spatial_axis=1),
            *_lesions(data_cfg, ("hr",), "hr"),
            *_intensity(data_cfg, ("hr",)),
            _degrade(data_cfg, "hr"),
            PlainTensord(keys=("lr", "hr")),
        ]
    )


class MatchIntensityd(MapTransform):
    """Bring ``keys`` (the reference) to its input's grey levels with the item's fitted gain and offset.

    The gain and offset come with each item (``gain_key``/``offset_key``, from the manifest's
    ``ref_gain``/``ref_offset``); both keys are removed so that only images are batched.
    """

    def __init__(self, keys: KeysCollection = "hr", gain_key: str = "ref_gain", offset_key: str = "ref_offset",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.gain_key, self.offset_key = gain_key, offset_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        gain, offset = float(d.pop(self.gain_key, 1.0)), float(d.pop(self.offset_key, 0.0))
        for key in self.key_iterator(d):
            d[key] = match_intensity(d[key], gain, offset)
        return d


class RandDegradedd(Randomizable, MapTransform):
    """Add ``lr_key`` = a randomly degraded copy of ``keys`` (:class:`~oct_srgan.degradations.RandomDegradation`)."""

    def __init__(self, keys: KeysCollection, lr_key: str, scale: int, axes: Axes, mix: MixConfig,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        fh, fw = _factors(scale, axes)
        self.lr_key = lr_key
        self.degrade = RandomDegradation(fh, fw, mix.modes, mix.blur, mix.blur_prob, mix.speckle, mix.speckle_prob)
        self.set_random_state(seed=get_seed())

    def randomize(self, data: None = None) -> None:
        """No per-call state: :class:`RandomDegradation` draws from ``self.R`` while it is applied."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            hr = d[key]
            d[self.lr_key] = _with_meta_of(hr, self.degrade(_plain(hr), self.R).to(dtype=hr.dtype))
        return d


def keep_speckle(noisy: torch.Tensor, clean: torch.Tensor, kept: float) -> torch.Tensor:
    """``clean + kept * (noisy - clean)``: ``noisy`` with a share ``kept`` of its speckle, as if averaged over ~1/kept**2 frames."""
    return clean + float(kept) * (noisy - clean)


class RandSpeckleKeptd(RandomizableTransform, MapTransform):
    """With probability ``prob``, keep a random share ``kept`` in ``kept_range`` of the speckle of ``keys``.

    ``keys`` (the noisy input) becomes ``clean + kept * (input - clean)`` with ``clean_key`` the clean
    target it is registered to: an input averaged over about 1/kept**2 frames (kept 0: the clean
    target itself). Mixed with full-speckle pairs, the model learns to despeckle only as much as its
    input needs. ``last`` is the share drawn by the previous call (1.0 when it changed nothing).
    """

    def __init__(self, keys: KeysCollection, clean_key: str, prob: float, kept_range: Sequence[float] = (0.0, 1.0),
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.clean_key = clean_key
        self.kept_range = (float(kept_range[0]), float(kept_range[1]))
        self.last = 1.0
        self.set_random_state(seed=get_seed())

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        self.last = float(self.R.uniform(*self.kept_range)) if self._do_transform else 1.0
        if self._do_transform:
            clean = d[self.clean_key]
            for key in self.key_iterator(d):
                d[key] = keep_speckle(d[key], clean, self.last)
        return d


def _lesions(data_cfg: DataConfig, keys: tuple[str, ...], clean_key: str) -> list[MapTransform]:
    cfg: LesionConfig | None = data_cfg.lesions
    if cfg is None or cfg.prob <= 0:
        return []
    return [RandLesionsd(keys=keys, clean_key=clean_key, spec=LesionSpec(cysts=cfg.cysts, foci=cfg.foci), prob=cfg.prob)]


def _speckle_kept(data_cfg: DataConfig, key: str, clean_key: str) -> list[MapTransform]:
    cfg: SpeckleKeptConfig | None = data_cfg.speckle_kept
    if cfg is None or cfg.prob <= 0:
        return []
    return [RandSpeckleKeptd(keys=key, clean_key=clean_key, prob=cfg.prob, kept_range=cfg.range)]


def _intensity(data_cfg: DataConfig, keys: tuple[str, ...]) -> list[MapTransform]:
    """One random gain and offset for all ``keys`` (input and target alike), then a clip to [0, 1]."""
    out: list[MapTransform] = []
    if data_cfg.gain > 0:
        out.append(RandScaleIntensityd(keys=keys, factors=data_cfg.gain, prob=1.0))
    if data_cfg.offset > 0:
        out.append(RandShiftIntensityd(keys=keys, offsets=data_cfg.offset, prob=1.0))
    if out:
        out.append(ScaleIntensityRanged(keys=keys, a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True))
    return out


def _degrade(data_cfg: DataConfig, key: str) -> MapTransform:
    deg = data_cfg.degradation or DegradationConfig()
    if data_cfg.mix is not None:
        return RandDegradedd(keys=key, lr_key="lr", scale=data_cfg.scale, axes=deg.axes, mix=data_cfg.mix)
    return Degraded(keys=key, lr_key="lr", scale=data_cfg.scale, mode=deg.mode, axes=deg.axes, speckle=deg.speckle)


def reference_train_transforms(data_cfg: DataConfig) -> Compose:
    """{"input": noisy [C, H, W], "hr": clean reference [C, H, W]} -> {"lr", "hr"} training pairs.

    The reference is first matched to its input's grey levels (when the items carry a fitted gain
    and offset); then one random crop position for both images (they are registered pixel for
    pixel), one flip decision, the same synthetic lesions (``data.lesions``), on a share of pairs
    part of the input's speckle only (``data.speckle_kept``), one random gain/offset for both, then the
    degradation of the *input* crop: noisy LR in, clean HR target out, exactly aligned and at the
    input's grey levels.
    """
    _check_crop(data_cfg)
    crop = (data_cfg.hr_crop, data_cfg.hr_crop)
    keys = ("input", "hr")
    return Compose(
        [
            EnsureTyped(keys=keys, dtype=torch.float32),
            MatchIntensityd(keys="hr"),
            RequireSized(keys=keys, size=crop),
            RandSpatialCropd(keys=keys, roi_size=crop, random_size=False),
            PairedRandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            *_lesions(data_cfg, keys, "hr"),
            *_speckle_kept(data_cfg, "input", "hr"),
            *_intensity(data_cfg, keys),
            _degrade(data_cfg, "input"),
            DeleteItemsd(keys="input"),
            PlainTensord(keys=("lr", "hr")),
        ]
    )
