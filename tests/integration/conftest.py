"""Fixtures on the real data shared by integration test modules (each is marked ``integration``
by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from oct_srgan.prepare import PrepareOptions, prepare_dataset
from tests.helpers.training import nudge
from tests.paths import DUKE


@pytest.fixture(scope="module")
def patch_data(tmp_path_factory) -> Path:
    """A dataset whose train (2 groups) and val (1 group) splits hold the same 32x32 retina patch (up to one grey level at one pixel)."""
    root = tmp_path_factory.mktemp("patch")
    patch = tifffile.imread(DUKE / "subject01" / "average.tif")[200:232, 400:432]
    # Not bit-identical (preprocess keeps identical content in one split), but the same to learn from:
    # each copy differs from the others by one grey level at one pixel.
    for group, image in zip("abc", (patch, *(nudge(patch, at) for at in ((0, 0), (31, 31))))):
        (root / "src" / group).mkdir(parents=True)
        Image.fromarray(np.ascontiguousarray(image)).save(root / "src" / group / "patch.png")
    report = prepare_dataset([root / "src"], root / "ds", PrepareOptions(val_fraction=0.34, test_fraction=0.0))
    assert report.counts == {"train": 2, "val": 1, "test": 0}
    return root / "ds"
