"""What input fidelity (``enhance --fidelity``) buys and costs: reference protocols and no-reference measures per level.

For each level, one ``oct-srgan evaluate --data`` (bicubic / decimate / lateral protocols against
the registered averages of the test subjects) and one ``oct-srgan evaluate --scans`` (consistency,
background shift and kept focus contrast on native scans) of the same model; writes
``fidelity.csv`` (level, protocol or scans, metric, value) and prints it as one table.

    python bench/fidelity.py --model default --data outputs/duke --out outputs/fidelity \
        --scans ../shared/data/oct/formats/octdl_bscan_rgb_channel_first.nii.gz --levels 0 0.5 1

Every evaluation is an ordinary CLI run, so each is also an MLflow run with its ``fidelity`` param.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

CLI = [sys.executable, "-m", "oct_srgan.pipelines.cli"]


def evaluate(model: str, level: float, out: Path, source: list[str]) -> None:
    args = ["evaluate", "--model", model, "--fidelity", f"{level:g}", "--out", str(out), "--overwrite", "--no-progress",
            "--tile", "0", *source]
    print("+ oct-srgan", " ".join(args), flush=True)
    subprocess.run([*CLI, *args], check=True)


def level_rows(level: float, protocols: pd.DataFrame, scans: pd.DataFrame | None) -> list[dict[str, object]]:
    """The headline numbers of one level: each protocol's model PSNR and gain over bicubic, each measure's mean."""
    rows: list[dict[str, object]] = []
    for r in protocols.itertuples():
        if r.method in ("model", "model - bicubic"):
            rows.append({"fidelity": level, "where": r.protocol, "metric": f"{r.method} psnr", "value": r.psnr})
    if scans is not None:
        for r in scans[scans.method == "model"].itertuples():
            rows.append({"fidelity": level, "where": "scans", "metric": r.metric, "value": r.mean})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, required=True, help="A reference dataset (preprocess --reference average).")
    parser.add_argument("--scans", type=Path, action="append", default=[], help="Native scans for the no-reference measures.")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--out", type=Path, default=Path("outputs/fidelity"))
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for level in args.levels:
        ref_out, scan_out = args.out / f"f{level:g}" / "data", args.out / f"f{level:g}" / "scans"
        evaluate(args.model, level, ref_out, ["--data", str(args.data), "--split", "test"])
        scans = None
        if args.scans:
            evaluate(args.model, level, scan_out, [x for p in args.scans for x in ("--scans", str(p))])
            scans = pd.read_csv(scan_out / "summary.csv")
        rows += level_rows(level, pd.read_csv(ref_out / "protocols.csv"), scans)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "fidelity.csv", index=False, float_format="%.4f")
    print(table.pivot_table(index=["where", "metric"], columns="fidelity", values="value", sort=False).round(3).to_string())


if __name__ == "__main__":
    main()
