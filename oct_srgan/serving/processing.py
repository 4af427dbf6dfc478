"""The model's work on one scan: a job's input (the scan itself, or in check mode the scan degraded
the way the model was trained) and its B-scans super-resolved one at a time, scored in check mode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import metric_table
from ..inference import DEFAULT_OVERLAP, SRInferer
from ..inference.bscans import super_resolve_bscans
from ..loading import LoadedModel
from ..scaling import scale_factors
from ..transforms import Degrade, upscale_bicubic
from .errors import Cancelled, UserError
from .jobs import Job
from .panels import diff_scale, to_uint8
from .reports import finite


class ModelRunner:
    """A loaded model and its inferer; check mode degrades scans the way the model's training data was."""

    def __init__(self, model: LoadedModel, *, device: str | torch.device, tile: int | None) -> None:
        self.loaded = model
        self.inferer = SRInferer(model, tile=tile or None, overlap=DEFAULT_OVERLAP, batch_size=4, device=device)
        self.scale, self.axes, self.channels = model.scale, model.axes, model.channels
        # Check mode degrades the way the model was trained (docs/architecture.md, "Degradations").
        recorded = model.degradation or {}
        self.degradation = {"mode": str(recorded.get("mode", "bicubic")), "speckle": float(recorded.get("speckle", 0.0))}

    @property
    def area_factor(self) -> int:
        """Output samples per input sample (16 for x4 in both axes, 4 for lateral-only)."""
        fh, fw = scale_factors(self.scale, self.axes)
        return fh * fw

    @property
    def derivation(self) -> str:
        """What an enhanced file records as its derivation."""
        return f"oct-srgan x{self.scale} super-resolution (model {self.loaded.source})"

    def prepare(self, pixels: np.ndarray, mode: str, reference: tuple[str, np.ndarray] | None = None) -> Job:
        """The job's model input: the scan itself (enhance), or the scan cropped and degraded (check),
        scored against the scan or against ``reference`` (its id and B-scans, of the scan's size)."""
        if mode == "enhance":
            return Job(mode, len(pixels), source=pixels)
        s = self.scale
        n, h, w = pixels.shape
        hh = h if self.axes == "lateral" else h // s * s
        ww = w // s * s
        min_side = 2 * s + 11
        if min(hh, ww) < min_side or min(hh if self.axes == "lateral" else hh // s, ww // s) < 2:
            raise UserError(400, f"B-scans of {h}x{w} are too small for check mode (need at least "
                                 f"{min_side} pixels a side)")
        own = np.ascontiguousarray(pixels[:, :hh, :ww])
        deg = self.degradation
        degrade = Degrade(scale=s, mode=deg["mode"], axes=self.axes, speckle=deg["speckle"], seed=0)
        lr = np.stack([degrade(torch.from_numpy(b)[None])[0].numpy() for b in own])
        if reference is None:
            return Job(mode, n, source=lr, hr=own)
        return Job(mode, n, source=lr, hr=_reference_bscans(reference[1], pixels.shape, hh, ww), reference=reference[0])

    def run(self, job: Job, after_bscan: Callable[[Job, int], None]) -> np.ndarray | None:
        """Fill the job's panels (and scores, in check mode) B-scan by B-scan, calling ``after_bscan``
        after each; returns the enhanced volume in enhance mode. Raises Cancelled between B-scans."""
        def stop_if_cancelled(k: int) -> None:
            if job.cancel.is_set():
                raise Cancelled

        enhanced = None
        for k, x, sr in super_resolve_bscans(job.source, self.inferer, before=stop_if_cancelled):
            bicubic = upscale_bicubic(x, self.scale, self.axes).clamp_(0, 1)
            if job.hr is not None:
                job.scores[k] = self._scores(bicubic, sr, torch.from_numpy(job.hr[k])[None, None])
            else:
                if enhanced is None:
                    enhanced = np.empty((job.total, *sr.shape[-2:]), dtype=np.float32)
                enhanced[k] = sr[0, 0].numpy()
            job.bicubic[k] = to_uint8(bicubic[0, 0])
            job.diff_scale[k] = diff_scale(to_uint8(sr[0, 0]), job.bicubic[k])
            job.sr[k] = to_uint8(sr[0, 0])
            job.done = k + 1
            after_bscan(job, k)
        return enhanced

    def _scores(self, bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, dict[str, float | None]]:
        """PSNR and SSIM of bicubic and SR against the scan, a scale-wide border shaved off."""
        scored = metric_table.score_against(hr, {"bicubic": bicubic, "sr": sr}, shave=self.scale)
        return {name: {k: finite(v) for k, v in values.items()} for name, values in scored.items()}


def _reference_bscans(reference: np.ndarray, shape: tuple[int, ...], hh: int, ww: int) -> np.ndarray:
    """The reference's B-scans cropped as the scan was: one per B-scan of the scan, or one for all.

    It must already be registered to the scan (same B-scan size); nothing is resampled or shifted.
    """
    n, h, w = shape
    if reference.shape[1:] != (h, w) or reference.shape[0] not in (1, n):
        raise UserError(400, f"the reference has {reference.shape[0]} B-scan(s) of {reference.shape[2]}x{reference.shape[1]}; "
                             f"it must have 1 or {n} of {w}x{h}, registered to the scan")
    return np.array(np.broadcast_to(reference[:, :hh, :ww], (n, hh, ww)))  # a writable copy
