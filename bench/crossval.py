"""Leave-subjects-out cross-validation of a training recipe on the Duke reference scans.

Recipes are chosen on the train+val subjects, never on the test subjects: the plain split's test
groups are left out, the other groups are cut into ``--folds`` folds, and for each fold a model is
trained from scratch on the others (`preprocess --folds N --fold k`, `train`) and scored on it
(`evaluate`, every protocol). Prints and writes ``cv_folds.csv`` (one row per fold, protocol and
method) and ``cv_summary.csv`` (mean and sd over folds of each protocol's PSNR/SSIM and gain over
bicubic, against the references as stored and matched to each input's grey levels), which the model card reads (``python -m oct_srgan.model_card ... --cv``).

    python bench/crossval.py --folds 3 --out outputs/cv [--config configs/oct_x4_srresnet.yaml] [--set k=v ...]

Every stage is an ordinary CLI run, so each fold's dataset, training and evaluation are MLflow runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DUKE = REPO.parent / "shared" / "data" / "oct" / "duke_bioptigen"
CLI = [sys.executable, "-m", "oct_srgan.pipelines.cli"]


def run(*args: str) -> None:
    print("+ oct-srgan", " ".join(args), flush=True)
    subprocess.run([*CLI, *args], check=True)


def fold_scores(evaluation: Path, fold: int) -> pd.DataFrame:
    """The fold's protocol table (protocol, method, psnr, ssim, ...) from its evaluate folder."""
    table = pd.read_csv(evaluation / "protocols.csv")
    table.insert(0, "fold", fold)
    return table


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over folds of each protocol's model PSNR/SSIM and its gain over bicubic, against the
    references as stored and (``*_matched``, where the table has them) matched to each input's grey levels."""
    rows = []
    for protocol, part in folds.groupby("protocol", sort=False):
        model = part[part["method"] == "model"].set_index("fold")
        bicubic = part[part["method"] == "bicubic"].set_index("fold")
        if model.empty:
            continue
        for metric in [m for m in ("psnr", "ssim", "psnr_matched", "ssim_matched") if m in part]:
            for name, values in ((metric, model[metric]), (f"gain_{metric}", model[metric] - bicubic[metric])):
                rows.append({"protocol": protocol, "metric": name, "mean": values.mean(), "sd": values.std(ddof=1),
                             "n_folds": int(values.notna().sum())})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DUKE, help="Folder of subject folders with an 'average' reference each.")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "cv")
    parser.add_argument("--config", default="configs/oct_x4_srresnet.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Config override for every fold.")
    parser.add_argument("--only", type=int, action="append", help="Run only these folds (repeatable).")
    args = parser.parse_args()
    overrides = ["train.init_from=null", *args.overrides]
    scores = []
    for k in args.only or range(args.folds):
        data, runs, ev = (args.out / f"fold{k}" / part for part in ("dataset", "run", "evaluate"))
        if not (data / "dataset.json").is_file():
            run("preprocess", str(args.data), "--reference", "average", "--seed", "0", "--folds", str(args.folds),
                "--fold", str(k), "--out", str(data), "--overwrite", "--no-progress")
        if not (runs / "generator.pt").is_file():
            run("train", "--config", args.config, "--data", str(data), "--out", str(runs), "--overwrite", "--no-progress",
                *[a for o in overrides for a in ("--set", o)])
        if not (ev / "protocols.csv").is_file():
            run("evaluate", "--model", str(runs / "generator.pt"), "--data", str(data), "--split", "test", "--out", str(ev),
                "--overwrite", "--no-progress")
        scores.append(fold_scores(ev, k))
    folds = pd.concat(scores, ignore_index=True)
    summary = summarise(folds)
    args.out.mkdir(parents=True, exist_ok=True)
    folds.to_csv(args.out / "cv_folds.csv", index=False, float_format="%.4f")
    summary.to_csv(args.out / "cv_summary.csv", index=False, float_format="%.4f")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
