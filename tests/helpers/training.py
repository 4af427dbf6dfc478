"""Tiny training configs and generators: small networks that train in seconds on one thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from oct_srgan import checkpoint
from oct_srgan.config import load_config
from oct_srgan.models import build_generator
from tests.paths import SMOKE

TINY = [
    "model.channels=16",
    "model.num_blocks=2",
    "model.disc_channels=16",
    "data.hr_crop=32",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.lr=2e-3",
    "train.ema_decay=0.9",
    "train.device=cpu",
    "train.log_interval=5",
    "train.val_interval=1000",
    "train.checkpoint_interval=1000",
    "tracking.model_name=oct-srgan-test",
    "tracking.register_model=false",
]
SRGAN = [
    "train.stage=srgan",
    "loss.pixel_weight=0",
    "loss.content_weight=1",
    "loss.adversarial_weight=1e-3",
    "loss.extractor.name=discriminator",
    "loss.extractor.layers=[]",
]


def tiny(*extra: str):
    return load_config(SMOKE, [*TINY, *extra])


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest (and reproducibly) on one thread, also on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def all_runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def nudge(image: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """A copy one grey level away at one pixel: the same picture, but not identical content."""
    out = image.copy()
    out[at] = out[at] + 1 if out[at] < 255 else out[at] - 1
    return out


def random_generator_file(path: Path, **spec_changes) -> Path:
    spec = {"in_channels": 1, "channels": 16, "num_blocks": 2, "scale": 4, "norm": "batch", "upsample_axes": "both"}
    spec.update(spec_changes)
    return checkpoint.save_generator_file(path, build_generator(spec).state_dict(), spec, {"source": "test"})
