"""``torchrun --nproc-per-node 2 -m oct_srgan.pipelines.cli enhance``: the ranks split the inputs, none twice, none lost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oct_srgan.inference.distributed import Share
from tests.paths import REPO

pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def test_shares_are_disjoint_and_cover_every_item() -> None:
    items = list(range(7))
    shares = [Share(rank, 3).take(items) for rank in range(3)]
    assert sorted(x for share in shares for x in share) == items and shares[0] == [0, 3, 6]


def test_torchrun_two_ranks_enhance_each_input_once(tmp_path: Path, tiny_generator_file: Path) -> None:
    names = [f"scan{i}.png" for i in range(5)]
    for i, name in enumerate(names):
        pixels = (np.random.default_rng(i).random((24, 32)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save((tmp_path / "in").mkdir(exist_ok=True) or tmp_path / "in" / name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "oct_srgan.pipelines.cli", "enhance", str(tmp_path / "in"), "-o", str(out),
           "--model", str(tiny_generator_file), "--device", "cpu"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = re.findall(r"\[rank (\d)/2\] (\S+) -> (\S+)", done.stdout)
    by_rank = {rank: sorted(Path(src).name for r, src, _ in lines if r == rank) for rank in ("0", "1")}
    assert by_rank == {"0": ["scan0.png", "scan2.png", "scan4.png"], "1": ["scan1.png", "scan3.png"]}
    assert sorted(p.name for p in out.iterdir()) == [n.replace(".png", "_sr.png") for n in names]
    assert all(Image.open(out / n.replace(".png", "_sr.png")).size == (128, 96) for n in names)
    assert done.stdout.count("5 scan(s) enhanced x4") == 1 and "by 2 ranks" in done.stdout
