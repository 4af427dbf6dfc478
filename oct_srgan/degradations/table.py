"""The table of LR-making modes; one entry per file beside this one."""

from __future__ import annotations

from .area import AREA
from .base import Degradation
from .bicubic import BICUBIC
from .decimate import DECIMATE

DEGRADATIONS: dict[str, Degradation] = {d.name: d for d in (BICUBIC, AREA, DECIMATE)}
