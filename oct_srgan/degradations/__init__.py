"""The degradation table: how an LR image is made from an HR one, one entry per mode, one file each.

Every entry reduces the upsampled axes of ``x`` by integer factors ``(fh, fw)`` so that LR pixel
``i`` covers HR pixels ``f*i .. f*i+f-1``. Adding a mode is one :class:`Degradation` entry in its own
file plus one line in :data:`DEGRADATIONS` (``table.py``) (docs/architecture.md, "Adding a degradation").
"""

from __future__ import annotations

from .base import Degradation
from .bicubic import resize_bicubic
from .mixed import RandomDegradation
from .speckle import add_speckle
from .table import DEGRADATIONS

__all__ = ["DEGRADATIONS", "Degradation", "RandomDegradation", "add_speckle", "resize_bicubic"]
