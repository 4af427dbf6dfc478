"""Synthetic lesions painted into a training input and its target alike, so the model learns to keep them.

The Duke training scans hold no intraretinal cysts and few hyperreflective foci. A despeckling model
trained on them alone treats any small dark or bright blob inside the retina as speckle and smooths
it away, which erases exactly the pathology a clinician looks for on another device's scans. Painting
the same dark ellipses (fluid-filled cysts) and bright dots (foci) into the noisy input and the clean
target shows the model that a blob its input holds is tissue, to be kept at its own contrast.

The painted field multiplies the images (the scanner's speckle is multiplicative, so a cyst darkens
the speckle inside it rather than replacing it) and sits only where the clean target is tissue:
lesions in the vitreous would teach nothing true.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor
from monai.utils.misc import get_seed

# Pixels at or above this quantile of the clean target count as tissue where a lesion may sit.
TISSUE_QUANTILE = 0.6
# Width of a cyst's soft edge, as a fraction of its radius.
CYST_EDGE = 0.15


@dataclass(frozen=True)
class LesionSpec:
    """How many lesions of each kind, and how large and strong (sizes in HR pixels)."""

    cysts: int = 3                                         # up to this many dark ellipses
    foci: int = 4                                          # up to this many bright dots
    cyst_radius: tuple[float, float] = (4.0, 24.0)         # semi-axes, drawn separately per axis
    cyst_depth: tuple[float, float] = (0.05, 0.4)          # the factor inside a cyst (0 = black)
    focus_sigma: tuple[float, float] = (2.0, 5.0)          # Gaussian sigma of a focus (about an LR pixel or more)
    focus_gain: tuple[float, float] = (1.8, 3.5)           # the factor at a focus's centre


def lesion_field(clean: torch.Tensor, spec: LesionSpec, rng: np.random.RandomState) -> torch.Tensor:
    """A multiplicative field [H, W] (1 = unchanged) with random cysts and foci inside the tissue of ``clean`` [..., H, W]."""
    plane = clean.reshape(-1, *clean.shape[-2:]).float().mean(0)
    h, w = plane.shape
    field = torch.ones(h, w)
    tissue = torch.nonzero(plane >= torch.quantile(plane, TISSUE_QUANTILE))
    if len(tissue) == 0 or plane.max() <= plane.min():
        return field
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]

    def centre() -> tuple[float, float]:
        y, x = tissue[int(rng.randint(len(tissue)))].tolist()
        return float(y), float(x)

    for _ in range(int(rng.randint(spec.cysts + 1))):
        cy, cx = centre()
        ry, rx = (float(rng.uniform(*spec.cyst_radius)) for _ in range(2))
        radius = torch.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        inside = torch.sigmoid((1.0 - radius) / CYST_EDGE)
        field *= 1.0 - (1.0 - float(rng.uniform(*spec.cyst_depth))) * inside
    for _ in range(int(rng.randint(spec.foci + 1))):
        cy, cx = centre()
        sigma = float(rng.uniform(*spec.focus_sigma))
        spot = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma**2))
        field *= 1.0 + (float(rng.uniform(*spec.focus_gain)) - 1.0) * spot
    return field


def paint(images: Sequence[torch.Tensor], field: torch.Tensor) -> list[torch.Tensor]:
    """Each image [..., H, W] times ``field`` [H, W], clipped to [0, 1]: the same lesions in every image."""
    return [(x * field.to(dtype=x.dtype, device=x.device)).clamp_(0.0, 1.0) for x in images]


class RandLesionsd(RandomizableTransform, MapTransform):
    """Paint the same random cysts and foci (:mod:`oct_srgan.lesions`) into every one of ``keys``, with probability ``prob``.

    They sit in the tissue of ``clean_key`` (the clean target; the noisy input would put them in
    bright speckle of the vitreous). ``last`` holds the field of the previous call (None: none drawn).
    """

    def __init__(self, keys: KeysCollection, clean_key: str, spec: LesionSpec, prob: float = 0.5,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.clean_key, self.spec = clean_key, spec
        self.last: torch.Tensor | None = None
        self.set_random_state(seed=get_seed())

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.last = None
        self.randomize(None)
        if not self._do_transform:
            return d
        self.last = lesion_field(convert_to_tensor(d[self.clean_key], track_meta=False), self.spec, self.R)
        keys = list(self.key_iterator(d))
        for key, painted in zip(keys, paint([d[k] for k in keys], self.last)):
            d[key] = painted  # a MetaTensor times a tensor stays a MetaTensor with its metadata
        return d
