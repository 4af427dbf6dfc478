"""Model card sections beyond the test split: the three protocols, cross-validation, inputs with less
speckle and scans without references.

Each returns Markdown lines (none when it has nothing to show), so :mod:`oct_srgan.model_card`
only places them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def speckle_levels_section(model: str, dataset: Any, split: str = "test") -> list[str]:
    """The model's gain over bicubic on the ``split`` inputs with a share of their speckle (``oct_srgan/speckle_levels.py``)."""
    if dataset is None or not dataset.has_references or dataset.axes != "both":
        return []
    from oct_srgan.data import eval_items
    from oct_srgan.evaluation import EvalOptions, open_model
    from oct_srgan.speckle_levels import level_markdown, level_rows, level_table

    rows = level_rows(eval_items(dataset, split), open_model(model, "cpu").inferer(EvalOptions()), scale=dataset.scale)
    return ["### Inputs with less speckle", "",
            f"The {rows['id'].nunique()} {split} inputs with a share of their speckle kept (0: the registered average, as "
            "from a device that averages many frames; 1: the scan as acquired), bicubic x4 LR, PSNR against the matched "
            "reference (`python bench/speckle_levels.py`). Under bicubic at a low share means the model smooths away "
            "detail a cleaner scan really has.", "", level_markdown(level_table(rows))]


def noref_section(model: str, scans: list[Path] | None, out: Path, dataset: Any = None) -> list[str]:
    """The no-reference measures of ``model`` on native scans from other devices, beside bicubic and linear,
    and (with a reference ``dataset``) what the registered averages themselves score on its test scans."""
    if not scans:
        return []
    from oct_srgan.evaluation import EvalOptions, open_model
    from oct_srgan.noref_eval import evaluate_scans, reference_ceiling, summary_markdown

    result = evaluate_scans(open_model(model, "cpu"), scans, EvalOptions(out=out, track=False, figures=0,
                                                                        overwrite=Path(out).exists()))
    return ["### Native scans without references", "",
            f"{result.rows['id'].nunique()} B-scans from {result.rows['scan'].nunique()} scans, each judged against its "
            "own input (`oct_srgan/noref.py`): consistency = PSNR of the output's block mean vs the input, both smoothed "
            "at sigma 2 input px; background shift = output minus input over the darkest 30 % of the smoothed input, "
            "in 8-bit levels; focus contrast kept = 99.5th - 50th percentile of a sigma 1 - 4 DoG, output over input.", "",
            summary_markdown(result.summary), *_ceiling_lines(dataset, reference_ceiling)]


def _ceiling_lines(dataset: Any, ceiling: Any) -> list[str]:
    if dataset is None or not dataset.has_references:
        return []
    means = ceiling(dataset, "test").mean(numeric_only=True)
    return ["", "A perfect despeckler scores lower than 1 / 100 dB here, because part of what these measures count on "
            "speckled scans is speckle: the registered averages of the test subjects, judged as the output for their own "
            f"single acquisitions (`python bench/noref_oracle.py`), score consistency {means['consistency_db']:.1f} dB, "
            f"background shift {means['background_shift']:+.1f} and focus contrast kept {means['focus_kept']:.2f}.", ""]
