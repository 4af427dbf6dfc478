"""The short report that ends the main job: what it was trained and judged on, each model's gain over
bicubic with its interval, and where every output went. The full tables stay in their files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .data import open_dataset
from .enums import Split, values
from .metrics import interval_text


@dataclass(frozen=True)
class Gain:
    """A model's headline numbers from an evaluate folder's ``summary.csv`` (PSNR in dB)."""

    label: str
    psnr: float
    bicubic_psnr: float
    gain: float
    ci_low: float
    ci_high: float
    ssim_gain: float
    n: int

    @classmethod
    def read(cls, label: str, folder: Path) -> Gain:
        table = pd.read_csv(Path(folder) / "summary.csv")

        def row(method: str, metric: str) -> pd.Series:
            rows = table[(table["method"] == method) & (table["metric"] == metric)]
            return rows.iloc[0] if len(rows) else pd.Series({"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0})

        diff = row("model - bicubic", "psnr")
        return cls(label, float(row("model", "psnr")["mean"]), float(row("bicubic", "psnr")["mean"]),
                   float(diff["mean"]), float(diff["ci_low"]), float(diff["ci_high"]),
                   float(row("model - bicubic", "ssim")["mean"]), int(diff["n"]))

    def line(self) -> str:
        """``<label>  +2.13 dB [+1.90, +2.36] over bicubic (27.47 vs 25.35 dB), SSIM +0.101``."""
        interval = interval_text(self.ci_low, self.ci_high, self.n, "+.2f", "B-scans")
        return (f"  {self.label + ' model':<16} {self.gain:+.2f} dB {interval} over bicubic "
                f"({self.psnr:.2f} vs {self.bicubic_psnr:.2f} dB), SSIM {self.ssim_gain:+.3f}")


def dataset_line(data: Path) -> str:
    """One line about a prepared dataset: subjects and B-scans per split, the degradation, the target."""
    info = open_dataset(data)
    splits = values(Split)
    groups = [str(info.split(s)["group_id"].nunique()) for s in splits]
    counts = [str(len(info.split(s))) for s in splits]
    target = "clean reference (registered average)" if info.has_references else "the scan itself"
    return (f"dataset {data}: {info.manifest['group_id'].nunique()} subjects ({'/'.join(groups)} train/val/test), "
            f"{'/'.join(counts)} B-scans; LR = {info.degradation.get('mode', '?')} x{info.scale} "
            f"({info.axes} axes), target = {target}")


def best(gains: list[Gain]) -> Gain:
    """The model with the highest PSNR gain (NaN counts as worst)."""
    return max(gains, key=lambda g: g.gain if math.isfinite(g.gain) else -math.inf)


def summary_lines(*, data: Path, gains: list[Gain], evaluations: dict[str, Path], model: Path, enhanced: Path,
                  enhanced_with: str, logs: Path, parent_run: str, tracking_uri: str, minutes: float) -> list[str]:
    """The main job's closing report (at most 25 lines), ending on the ``done.`` line listing every output."""
    n = gains[0].n if gains else 0
    target = "clean references" if open_dataset(data).has_references else "test scans themselves"
    lines = [
        "",
        f"main job finished in {minutes:.1f} min",
        dataset_line(data),
        f"test split, against the {target}: PSNR gain over bicubic, 95% interval over the {n} B-scans",
        *(g.line() for g in gains),
        "tables: " + ", ".join(f"{folder / 'summary.md'}" for folder in evaluations.values())
        + " (+ per_image.csv, summary.csv, summary_subjects.csv)",
        "figures: " + ", ".join(f"{folder}/compare_*.png" for folder in evaluations.values()),
        f"enhanced scans (with the {enhanced_with} model) and bicubic | SR comparisons: {enhanced}",
        f"stage logs: {logs}",
        f"MLflow: parent run {parent_run} in {tracking_uri}; open it with: oct-srgan ui  (then http://127.0.0.1:5000)",
        "done. " + "  ".join([f"dataset: {data}", f"model: {model}",
                              *(f"evaluation ({label}): {folder}" for label, folder in evaluations.items()),
                              f"enhanced: {enhanced}", f"logs: {logs}", f"MLflow run: {parent_run}"]),
    ]
    return lines
