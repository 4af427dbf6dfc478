"""Where the tests find the repository and the real data: the one place these paths are spelled.

The real data sits beside the repository (``../shared/data``) or wherever ``OCT_SRGAN_DATA`` points,
as for the main job. Only tests under ``tests/integration`` may read it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"

SHARED_DATA = Path(os.environ.get("OCT_SRGAN_DATA") or REPO.parent / "shared" / "data")
DUKE = SHARED_DATA / "oct" / "duke_bioptigen"  # 14 subjects of Duke Bioptigen B-scans (450 x 900 TIFF)
FORMATS = SHARED_DATA / "oct" / "formats"  # one small scan per supported format
SET5 = SHARED_DATA / "sr_benchmarks" / "Set5"

VOLUME_DCM = FORMATS / "oct_volume_s14.dcm"  # the 6-frame multi-frame DICOM volume
BSCAN16_DCM = FORMATS / "oct_bscan16_s14.dcm"  # one 16-bit single-frame DICOM B-scan
VOLUME_NII = FORMATS / "oct_volume_s14.nii.gz"  # the DICOM volume as NIfTI
BSCAN16_PNG = FORMATS / "oct_bscan16_s14.png"  # the 16-bit B-scan as PNG
DUKE_SAMPLE = [DUKE / "subject01" / "1.tif", DUKE / "subject07" / "average.tif", DUKE / "subject14" / "test.tif"]
