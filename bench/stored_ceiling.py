"""What an intensity-faithful model can score against the references as stored, per test subject.

A model that keeps its input's grey levels (design: "Keep the input's grey levels") can at best
output the clean reference at the input's grey levels: the matched reference. Scored against the
reference as stored, that perfect output still carries the scan's own gain/offset error (fitted
gain 0.71 to 1.35 on Duke), which caps the PSNR and so the gain over bicubic a faithful model can
show in the stored comparison. This bench prints that cap per subject, beside bicubic.

    python bench/stored_ceiling.py outputs/duke [--split test]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oct_srgan.data import eval_items, open_dataset
from oct_srgan.metric_table import score
from oct_srgan.transforms import downscale, upscale_bicubic


def ceiling_rows(items: list[dict[str, Any]], scale: int = 4, shave: int = 4) -> pd.DataFrame:
    """One row per noisy B-scan: PSNR against the stored reference of bicubic (paper protocol LR) and
    of the matched reference (the perfect faithful output), and the cap on the gain they leave."""
    rows = []
    for item in items:
        if item.get("reference") is None or item.get("reference_matched") is None:
            continue
        h, w = (item["self"].shape[-2] // scale) * scale, (item["self"].shape[-1] // scale) * scale
        reference = item["reference"][None].float()[..., :h, :w]
        matched = item["reference_matched"][None].float()[..., :h, :w]
        lr = downscale(item["self"][None].float()[..., :h, :w], scale, "bicubic", "both")
        bicubic = upscale_bicubic(lr, scale, "both").clamp(0, 1)
        rows.append({"group_id": item["group_id"], "id": item["id"], "ref_gain": item["ref_gain"],
                     "bicubic": score(bicubic, reference, shave=shave, names=("psnr",))["psnr"],
                     "faithful_ceiling": score(matched, reference, shave=shave, names=("psnr",))["psnr"]})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["gain_cap"] = table["faithful_ceiling"] - table["bicubic"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    info = open_dataset(args.dataset)
    with torch.no_grad():
        table = ceiling_rows(eval_items(info, args.split), info.scale, shave=info.scale)
    print(f"{len(table)} noisy B-scans of split {args.split}; PSNR (dB) against the references as stored:")
    print(table.groupby("group_id")[["ref_gain", "bicubic", "faithful_ceiling", "gain_cap"]].mean().round(2).to_string())
    print(table[["bicubic", "faithful_ceiling", "gain_cap"]].mean().round(2).to_string())


if __name__ == "__main__":
    main()
