"""Read a dataset folder written by ``oct-srgan preprocess`` into MONAI datasets.

Files flow through MONAI transforms: ``LoadImaged`` (16-bit PNG) → channel first → scale to
[0, 1] (cached once), then the random crop/flip/degradation of :func:`transforms.train_transforms`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from monai.data import CacheDataset, PILReader
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, LoadImaged, ScaleIntensityRanged

from oct_srgan.config import Config
from oct_srgan.errors import DataError

DATASET_FORMAT = "oct-srgan-dataset/1"


@dataclass
class DatasetInfo:
    """A prepared dataset: its folder, manifest and the options that made it."""

    root: Path
    manifest: pd.DataFrame
    dataset_hash: str
    scale: int
    degradation: dict[str, Any]
    options: dict[str, Any]

    @property
    def axes(self) -> str:
        return str(self.degradation.get("axes", "both"))

    def split(self, name: str) -> pd.DataFrame:
        return self.manifest[self.manifest["split"] == name].reset_index(drop=True)


def open_dataset(path: str | Path) -> DatasetInfo:
    """Open a dataset folder; a missing folder or a folder that is not a dataset is one DataError line."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found (create it with 'oct-srgan preprocess ... --out {root}')")
    info_file, manifest_file = root / "dataset.json", root / "manifest.csv"
    if not info_file.is_file() or not manifest_file.is_file():
        raise DataError(f"{root}: not an oct-srgan dataset (dataset.json or manifest.csv missing)")
    try:
        info = json.loads(info_file.read_text())
        text_columns = ("split", "group_id", "scan_id", "hr_path", "lr_path", "source_format", "source_hash", "hr_sha256")
        manifest = pd.read_csv(manifest_file, dtype={c: str for c in text_columns})
        manifest["lr_path"] = manifest["lr_path"].fillna("")
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, KeyError) as exc:
        raise DataError(f"{root}: dataset files are corrupt ({exc.__class__.__name__})") from None
    _check_dataset_files(info_file, info, manifest_file, manifest)
    options = info.get("options", {})
    return DatasetInfo(
        root=root,
        manifest=manifest,
        dataset_hash=str(info["dataset_hash"]),
        scale=int(options.get("scale", 4)),
        degradation=dict(options.get("degradation", {})),
        options=options,
    )


REQUIRED_COLUMNS = ("split", "group_id", "scan_id", "bscan", "hr_path", "lr_path", "height", "width")


def _check_dataset_files(info_file: Path, info: Any, manifest_file: Path, manifest: pd.DataFrame) -> None:
    """One line for a dataset.json or manifest.csv that parses but is not what preprocess writes."""
    if not isinstance(info, dict):
        raise DataError(f"{info_file}: expected a JSON object, found {type(info).__name__}")
    if info.get("format") != DATASET_FORMAT:
        raise DataError(f"{info_file}: unknown dataset format {info.get('format')!r}")
    if not info.get("dataset_hash"):
        raise DataError(f"{info_file}: dataset_hash is missing")
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataError(f"{manifest_file}: missing column(s) {', '.join(missing)}")


class _LoadPngd(LoadImaged):
    """``LoadImaged`` whose failure is one DataError naming the unreadable file (not a MONAI traceback)."""

    def __call__(self, data: Any, reader: Any = None) -> Any:
        try:
            return super().__call__(data, reader)
        except Exception as exc:
            paths = [str(data[k]) for k in self.keys if k in data]
            bad = next((p for p in paths if not _png_reads(p)), ", ".join(paths))
            raise DataError(f"{bad}: cannot read dataset image ({type(exc).__name__})") from None


def _png_reads(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except Exception:
        return False
    return True


def _dataset_error(exc: BaseException) -> DataError | None:
    """The DataError a MONAI transform wrapper (RuntimeError 'applying transform') hides, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DataError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def check_compatible(info: DatasetInfo, cfg: Config) -> None:
    """Refuse a config whose scale or upsampled axes differ from the dataset's fixed LR images."""
    if cfg.data.scale != info.scale:
        raise DataError(f"{info.root}: dataset was made for x{info.scale} but the config asks for x{cfg.data.scale}")
    if cfg.data.degradation.axes != info.axes:
        raise DataError(
            f"{info.root}: dataset degrades '{info.axes}' axes but the config says "
            f"data.degradation.axes={cfg.data.degradation.axes}"
        )


def load_transforms(keys: tuple[str, ...]) -> Compose:
    """Deterministic part of the pipeline: 16-bit PNG → float32 [1, H, W] in [0, 1]."""
    return Compose(
        [
            _LoadPngd(keys=keys, reader=PILReader(reverse_indexing=False), image_only=True),
            EnsureChannelFirstd(keys=keys, channel_dim="no_channel"),
            ScaleIntensityRanged(keys=keys, a_min=0.0, a_max=65535.0, b_min=0.0, b_max=1.0),
            EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
        ]
    )


def _rows(info: DatasetInfo, split: str) -> pd.DataFrame:
    rows = info.split(split)
    if rows.empty:
        raise DataError(f"{info.root}: the '{split}' split is empty (re-run preprocess with more groups or other fractions)")
    return rows


def train_dataset(info: DatasetInfo, cfg: Config, *, progress: bool = False) -> CacheDataset:
    """Random HR crops of the train split, degraded on the fly into {"lr", "hr"} pairs."""
    from oct_srgan.transforms import train_transforms

    check_compatible(info, cfg)
    rows = _rows(info, "train")
    crop = cfg.data.hr_crop
    small = rows[(rows["height"] < crop) | (rows["width"] < crop)]
    if not small.empty:
        row = small.iloc[0]
        raise DataError(
            f"{info.root / row['hr_path']}: B-scan of {row['height']}x{row['width']} is smaller than "
            f"data.hr_crop={crop} ({len(small)} such image(s)); lower data.hr_crop"
        )
    items = [{"hr": str(info.root / p)} for p in rows["hr_path"]]
    # Flat list: CacheDataset caches up to the first random transform, and a nested Compose counts as one.
    transform = Compose([*load_transforms(("hr",)).transforms, *train_transforms(cfg.data).transforms])
    try:
        return CacheDataset(
            items, transform=transform, cache_rate=cfg.data.cache_rate, num_workers=0, progress=progress,
            copy_cache=False
        )
    except Exception as exc:
        found = _dataset_error(exc)
        if found is None:
            raise
        raise found from None


def eval_items(info: DatasetInfo, split: str, limit: int = 0) -> list[dict[str, Any]]:
    """Full B-scans of a val/test split with their fixed LR: [{"id", "lr" [1,h,w], "hr" [1,H,W]}]."""
    rows = _rows(info, split)
    if limit > 0:
        rows = rows.iloc[:limit]
    load = load_transforms(("lr", "hr"))
    out = []
    for row in rows.itertuples(index=False):
        if not row.lr_path:
            raise DataError(f"{info.root}: split '{split}' has no fixed LR images")
        try:
            item = load({"lr": str(info.root / row.lr_path), "hr": str(info.root / row.hr_path)})
        except Exception as exc:
            found = _dataset_error(exc)
            if found is None:
                raise
            raise found from None
        out.append({"id": f"{row.scan_id}_{int(row.bscan):03d}", "group_id": row.group_id, "lr": item["lr"], "hr": item["hr"]})
    return out
