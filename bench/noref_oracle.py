"""The no-reference measures of a perfect despeckler: each registered average as the output for its own single scans.

``oct-srgan evaluate --scans`` judges an output by how faithful it stays to its input (consistency,
background shift, kept focus contrast; ``oct_srgan/noref.py``). On speckled scans part of what these
measures count is speckle, so even the clean answer loses some: this bench scores, for every single
acquisition of a reference dataset, its registered average (matched to its grey levels, replicated
x4) as if a model had made it, giving the ceiling a model that despeckles towards the averages can
reach on the Duke scans.

    python bench/noref_oracle.py outputs/duke [--split test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from oct_srgan import noref
from oct_srgan.data import open_dataset
from oct_srgan.noref_eval import reference_ceiling

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    table = reference_ceiling(open_dataset(args.dataset), args.split)
    means = table[list(noref.MEASURES)].mean()
    print(f"{len(table)} single acquisitions of split {args.split}, their registered average as the output:")
    for name, (label, _) in noref.MEASURES.items():
        print(f"  {label}: {means[name]:.3f}")


if __name__ == "__main__":
    main()
