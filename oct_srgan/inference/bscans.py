"""The one B-scan loop: each B-scan of a scan through an :class:`SRInferer` in turn (after MONAI's
``SliceInferer``), shared by ``enhance`` and serve so both feed the model the same tensors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from .inferer import SRInferer


def super_resolve_bscans(
    pixels: np.ndarray,
    inferer: SRInferer,
    *,
    before: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, LR ``[1, 1, h, w]``, SR ``[1, 1, H, W]``) of each B-scan of ``pixels`` ``[N, h, w]``, in order.

    ``before(k)`` runs before B-scan ``k`` is computed (serve stops a cancelled job there);
    ``progress(count)`` receives the tile windows (or whole B-scans) as they finish.
    """
    for index in range(len(pixels)):
        if before is not None:
            before(index)
        lr = torch.from_numpy(np.ascontiguousarray(pixels[index], dtype=np.float32))[None, None]
        yield index, lr, inferer(lr, progress=progress)
