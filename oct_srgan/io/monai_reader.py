"""MONAI loading of scan files: ``LoadImage(reader=ScanReader())`` and the dictionary transform ``LoadScand``.

Kept out of ``oct_srgan.io``'s package import (which must not import MONAI, for ``enhance``'s start-up);
datasets and tests import it directly.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.transforms import LoadImage, MapTransform
from monai.utils import ensure_tuple

from ..errors import ScanError
from .detect import is_scan_file
from .readwrite import read_scan
from .scan import Scan, scan_meta


class ScanReader(ImageReader):
    """MONAI ``ImageReader`` over ``read_scan``: ``LoadImage(reader=ScanReader())`` yields [N, H, W]."""

    def __init__(self, bscan_axis: int | None = None) -> None:
        super().__init__()
        self.bscan_axis = bscan_axis

    def verify_suffix(self, filename: Sequence[str | Path] | str | Path) -> bool:
        return all(is_scan_file(f) for f in ensure_tuple(filename))

    def read(self, data: Sequence[str | Path] | str | Path, **kwargs: Any) -> Scan:
        names = ensure_tuple(data)
        if len(names) != 1:
            first = names[0] if names else "<none>"
            raise ScanError(f"{first}: ScanReader reads one file at a time, got {len(names)}")
        return read_scan(names[0], self.bscan_axis)

    def get_data(self, img: Scan) -> tuple[np.ndarray, dict]:
        return img.pixels, scan_meta(img)


class LoadScand(MapTransform):
    """Dictionary transform: the path in each key becomes a MetaTensor [N, H, W] with scan metadata."""

    def __init__(self, keys: Hashable | Sequence[Hashable] = ("image",), bscan_axis: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reader = ScanReader(bscan_axis)
        self.loader = LoadImage(reader=self.reader, image_only=True, dtype=np.float32)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], reader=self.reader)
        return d
