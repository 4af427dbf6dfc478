"""Model card sections beyond the test split: the three protocols, cross-validation and scans without references.

Each returns Markdown lines (none when it has nothing to show), so :mod:`oct_srgan.model_card`
only places them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oct_srgan.errors import DataError
from oct_srgan.protocols import table_markdown

CV_COLUMNS = ("protocol", "metric", "mean", "sd", "n_folds")


def protocols_section(table: pd.DataFrame | None) -> list[str]:
    """The three-protocol table of the test split (bicubic, decimate and lateral LR of the noisy inputs)."""
    if table is None:
        return []
    return ["### Three protocols: LR made from the noisy test inputs", "",
            "PSNR/SSIM against the references as stored, and against the reference matched to each input's grey "
            "levels (matched). The model runs only the protocols whose axes it upsamples; the baselines run all.", "",
            table_markdown(table)]


def read_cv(path: Path) -> pd.DataFrame:
    """A cross-validation summary CSV with columns protocol, metric, mean, sd, n_folds."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read cross-validation summary ({exc})") from None
    missing = [c for c in CV_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: cross-validation summary lacks column(s) {', '.join(missing)}")
    return table


def cv_section(path: Path | None) -> list[str]:
    """Subject cross-validation figures (mean ± sd over folds) beside the test split, read from ``path``."""
    if path is None:
        return []
    table = read_cv(path)
    lines = ["### Subject cross-validation (leave-subjects-out folds of the train+val subjects)", "",
             "| protocol | metric | mean ± sd over folds | folds |", "|---|---|---|---|"]
    lines += [f"| {r.protocol} | {r.metric} | {r.mean:.3f} ± {r.sd:.3f} | {int(r.n_folds)} |" for r in table.itertuples()]
    return [*lines, ""]


def noref_section(model: str, scans: list[Path] | None, out: Path) -> list[str]:
    """The no-reference measures of ``model`` on native scans from other devices, beside bicubic and linear."""
    if not scans:
        return []
    from oct_srgan.evaluation import EvalOptions, open_model
    from oct_srgan.noref_eval import evaluate_scans, summary_markdown

    result = evaluate_scans(open_model(model, "cpu"), scans, EvalOptions(out=out, track=False, figures=0,
                                                                        overwrite=Path(out).exists()))
    return ["### Native scans without references", "",
            f"{result.rows['id'].nunique()} B-scans from {result.rows['scan'].nunique()} scans, each judged against its "
            "own input (`oct_srgan/noref.py`): consistency = PSNR of the output's block mean vs the input, both smoothed "
            "at sigma 2 input px; background shift = output minus input over the darkest 30 % of the smoothed input, "
            "in 8-bit levels; focus contrast kept = 99.5th - 50th percentile of a sigma 1 - 4 DoG, output over input.", "",
            summary_markdown(result.summary)]
