"""Batches that depend only on ``(seed, step, rank)``, so a run resumed at any step sees the same data.

The training split is opened here too: every B-scan must hold one HR crop, said before the data
loader trips over it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import Config
from ..errors import DataError
from .distributed import Dist

SAMPLE_STREAM, TORCH_STREAM = 0, 1  # separate seed streams for transforms and for torch's RNG


def mix_seed(*values: int) -> int:
    """A 32-bit seed from several integers (independent streams per seed/step/rank/sample)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches for steps ``start..stop-1``; step ``t`` on rank ``r`` depends only on (seed, t, r).

    Positions ``t * B * world + r * B + j`` index an endless stream of per-epoch permutations
    (seeded by (seed, epoch)), so every epoch visits each sample once across all ranks, like
    DistributedSampler, but resuming at any step needs no iterator state. Each item carries its own
    seed for the random transforms.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        cache: dict[int, np.ndarray] = {}
        for step in range(self.start, self.stop):
            batch = []
            for j in range(self.batch_size):
                pos = (step * self.world + self.rank) * self.batch_size + j
                epoch = pos // self.n
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._perm(epoch)
                batch.append((int(cache[epoch][pos % self.n]), mix_seed(self.seed, SAMPLE_STREAM, step, self.rank, j)))
            yield batch


class SeededItems(Dataset):
    """Item ``(index, seed)`` of a MONAI dataset, its random transforms seeded with ``seed``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        self.dataset.transform.set_random_state(seed=seed)
        item = self.dataset[index]
        return {k: torch.as_tensor(item[k]).as_subclass(torch.Tensor) for k in ("lr", "hr")}


def _ignore_sigint(worker_id: int) -> None:
    """Data-loader workers leave Ctrl-C to the main process, which finishes the step and saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(dataset: Any, cfg: Config, start: int, ranks: Dist, device: torch.device) -> DataLoader:
    """The batches of steps ``start..train.iterations-1`` for this rank."""
    sampler = StepBatchSampler(
        len(dataset), cfg.train.batch_size, cfg.seed, start, cfg.train.iterations, ranks.rank, ranks.world,
    )
    workers = cfg.data.num_workers
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_sigint if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def open_train_split(info: Any, cfg: Config) -> Any:
    """The training dataset (random HR crops, degraded on the fly); refused when a B-scan is smaller than a crop."""
    from ..data import train_dataset

    rows = info.split("train")
    crop = cfg.data.hr_crop
    if len(rows) and min(int(rows["height"].min()), int(rows["width"].min())) < crop:
        small = rows.loc[(rows["height"] < crop) | (rows["width"] < crop)].iloc[0]
        raise DataError(
            f"{info.root / small['hr_path']}: B-scan of {small['height']}x{small['width']} is smaller than "
            f"data.hr_crop={crop}; lower data.hr_crop or leave such scans out of the dataset"
        )
    dataset = train_dataset(info, cfg)
    if len(dataset) == 0:
        raise DataError(f"{info.root}: the 'train' split is empty")
    return dataset
