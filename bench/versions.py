"""Two releases side by side: whole-volume ``enhance`` time of code trees and weight files, as ratios.

Each variant is a (code tree, weights) pair: the tree's ``oct_srgan`` (first on ``PYTHONPATH``)
enhances the shared 6-frame DICOM volume with the weights through ``enhance_files`` in a fresh
process (what ``oct-srgan enhance`` runs after parsing), fp32 on the CPU. Repetitions are
interleaved so a machine that slows down slows every variant alike; the first variant is the
baseline of the ratio column. Earlier trees come from ``git worktree add /tmp/old <commit>`` and
earlier weights from ``git show <commit>:oct_srgan/weights/oct_srgan_x4.pt > old.pt``:

    python bench/versions.py --variant old=/tmp/old:old.pt --variant new=.:oct_srgan/weights/oct_srgan_x4.pt
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VOLUME = Path(__file__).resolve().parents[2] / "shared" / "data" / "oct" / "formats" / "oct_volume_s14.dcm"
RUN = """
import sys, time
from pathlib import Path
from oct_srgan.inference.enhance import enhance_files
start = time.perf_counter()
enhance_files([Path(sys.argv[1])], Path(sys.argv[2]), sys.argv[3], overwrite=True)
print(time.perf_counter() - start)
"""


def time_once(tree: Path, weights: str, out: Path) -> float:
    """Seconds one fresh process with ``tree``'s code spends enhancing the volume with ``weights``."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run([sys.executable, "-c", RUN, str(VOLUME), str(out), weights], env=env,
                          capture_output=True, text=True, check=True, cwd=tree)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=TREE:WEIGHTS (repeat).")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    variants = []
    for spec in args.variant:
        name, rest = spec.split("=", 1)
        tree, weights = rest.split(":", 1)
        variants.append((name, Path(tree), str(Path(weights).resolve()) if Path(weights).exists() else weights))
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.reps):
            for name, tree, weights in variants:
                times[name].append(time_once(tree, weights, Path(tmp) / name))
    base = statistics.median(times[variants[0][0]])
    print(f"{'variant':<12} {'median s':>9} {'ratio':>6}  runs")
    for name, _, _ in variants:
        med = statistics.median(times[name])
        print(f"{name:<12} {med:9.2f} {med / base:6.2f}  {', '.join(f'{t:.2f}' for t in times[name])}")


if __name__ == "__main__":
    main()
