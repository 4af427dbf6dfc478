"""How a model treats inputs with less speckle than a single acquisition: gain over bicubic per speckle level.

Each test B-scan of a reference dataset gets a share ``kept`` of its speckle (0: its registered
average, 1: the scan as acquired), is reduced by the paper's bicubic x4, and the model and bicubic are
scored against the matched reference (``oct_srgan/speckle_levels.py``). The model card shows the same table.

    python bench/speckle_levels.py --model default --data outputs/duke [--levels 0 0.25 0.5 1] [--fidelity F]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from oct_srgan.data import eval_items, open_dataset
from oct_srgan.evaluation import EvalOptions, open_model
from oct_srgan.speckle_levels import LEVELS, level_markdown, level_rows, level_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--levels", type=float, nargs="+", default=list(LEVELS))
    parser.add_argument("--fidelity", type=float, default=0.0)
    args = parser.parse_args()
    info = open_dataset(args.data)
    inferer = open_model(args.model, device="cpu").inferer(EvalOptions(fidelity=args.fidelity))
    rows = level_rows(eval_items(info, args.split), inferer, args.levels, info.scale)
    print(f"{rows['id'].nunique()} B-scans of split {args.split}, bicubic x4 LR, PSNR against the matched references:")
    print(level_markdown(level_table(rows)))


if __name__ == "__main__":
    main()
