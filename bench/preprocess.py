"""Preprocessing throughput on the shared Duke scans: B-scans per second.

Reports `oct-srgan preprocess` (read → crop → 16-bit PNG + fixed LR → manifest) next to a baseline in
the same run: decoding the same TIFFs with PIL alone, so the ratio shows our overhead over raw I/O.

    python bench/preprocess.py [--data ../shared/data/oct/duke_bioptigen] [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oct_srgan.io import find_scans
from oct_srgan.prepare import PrepareOptions, prepare_dataset

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "oct" / "duke_bioptigen"


def best_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    files = find_scans([args.data])

    def baseline() -> None:
        for f in files:
            np.asarray(Image.open(f)).astype(np.float32)

    n_bscans = 0

    def ours() -> None:
        nonlocal n_bscans
        with tempfile.TemporaryDirectory() as tmp:
            report = prepare_dataset([args.data], Path(tmp) / "ds", PrepareOptions())
            n_bscans = len(report.manifest)

    t_base = best_of(baseline, args.repeat)
    t_ours = best_of(ours, args.repeat)
    print(f"{'what':<34}{'B-scans/s':>12}{'ratio':>8}")
    print(f"{'baseline: PIL decode only':<34}{len(files) / t_base:>12.1f}{1.0:>8.2f}")
    print(f"{'oct-srgan preprocess':<34}{n_bscans / t_ours:>12.1f}{(n_bscans / t_ours) / (len(files) / t_base):>8.3f}")
    print(f"({n_bscans} B-scans from {len(files)} files, best of {args.repeat})")


if __name__ == "__main__":
    main()
