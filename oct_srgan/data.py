"""Read a dataset folder written by ``oct-srgan preprocess`` into MONAI datasets.

Files flow through MONAI transforms: ``LoadImaged`` (16-bit PNG) → channel first → scale to
[0, 1] (cached once), then the random crop/flip/degradation of :func:`transforms.train_transforms`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, PILReader
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, LoadImaged, ScaleIntensityRanged

from oct_srgan.config import Config, DegradationConfig, make
from oct_srgan.errors import DataError
from oct_srgan.intensity import match_intensity

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

    @property
    def has_references(self) -> bool:
        """True when preprocess paired scans with clean references (``--reference``)."""
        return "ref_path" in self.manifest and bool((self.manifest["ref_path"] != "").any())

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
        text_columns = ("split", "group_id", "scan_id", "hr_path", "lr_path", "source_format", "source_hash", "hr_sha256",
                        "ref_path")
        manifest = pd.read_csv(manifest_file, dtype={c: str for c in text_columns})
        manifest["lr_path"] = manifest["lr_path"].fillna("")
        if "ref_path" in manifest:
            manifest["ref_path"] = manifest["ref_path"].fillna("").astype(str)
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
    if cfg.data.degradation is not None and cfg.data.degradation.axes != info.axes:
        raise DataError(
            f"{info.root}: dataset degrades '{info.axes}' axes but the config says "
            f"data.degradation.axes={cfg.data.degradation.axes}"
        )


def config_for_dataset(info: DatasetInfo, cfg: Config) -> Config:
    """The config with the dataset's degradation and a concrete training target filled in.

    The dataset owns the degradation: its fixed val/test LR were made with it, so training LR must
    be made the same way. A config that states another one is refused in one line.
    """
    check_compatible(info, cfg)
    deg = make(DegradationConfig, info.degradation or {}, "degradation")
    if cfg.data.degradation is not None and cfg.data.degradation != deg:
        said = ", ".join(f"{k}={v}" for k, v in asdict(cfg.data.degradation).items())
        has = ", ".join(f"{k}={v}" for k, v in asdict(deg).items())
        raise DataError(
            f"{info.root}: dataset LR is made with {has} but the config says data.degradation {said} "
            "(leave data.degradation out: the dataset owns it)"
        )
    target = cfg.data.target
    if target == "auto":
        target = "reference" if info.has_references else "self"
    if target == "reference" and not info.has_references:
        raise DataError(f"{info.root}: data.target=reference but the dataset has no references (preprocess --reference)")
    data = replace(cfg.data, degradation=deg, target=target)
    return replace(cfg, data=data)


def check_model_degradation(info: DatasetInfo, model_meta: dict[str, Any] | None, model_name: str) -> None:
    """Refuse scoring a model on LR made another way than it was trained on (it owns its degradation).

    A model trained on a ``mix`` of modes is valid for each mode of the mix (same axes). Models
    exported before the degradation was recorded carry none and are not checked.
    """
    recorded = dict((model_meta or {}).get("degradation") or {})
    if not recorded:
        return
    mix = recorded.pop("mix", None)
    has = make(DegradationConfig, info.degradation or {}, "degradation")
    trained = make(DegradationConfig, recorded, "degradation")
    made = ", ".join(f"{k}={v}" for k, v in asdict(has).items())
    if mix and has.axes == trained.axes and has.mode in mix.get("modes", []):
        return
    if has != trained:
        said = ", ".join(f"{k}={v}" for k, v in asdict(trained).items())
        if mix:
            said = f"a mix of {'/'.join(mix.get('modes', []))} ({trained.axes} axes)"
        raise DataError(f"{info.root}: dataset LR is made with {made} but model {model_name} was trained on {said}")


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
    from oct_srgan.transforms import reference_train_transforms, train_transforms

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
    # Flat list: CacheDataset caches up to the first random transform, and a nested Compose counts as one.
    if cfg.data.target == "reference":
        rows = rows[rows["ref_path"] != ""]
        items = [{"input": str(info.root / p), "hr": str(info.root / r), **_match_of(row, cfg.data.intensity_match)}
                 for p, r, row in zip(rows["hr_path"], rows["ref_path"], rows.itertuples(index=False))]
        transform = Compose([*load_transforms(("input", "hr")).transforms, *reference_train_transforms(cfg.data).transforms])
    else:
        items = [{"hr": str(info.root / p)} for p in rows["hr_path"]]
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


def _match_of(row: Any, enabled: bool) -> dict[str, float]:
    """The fitted reference gain/offset of a manifest row (identity when off or not recorded)."""
    if not enabled:
        return {"ref_gain": 1.0, "ref_offset": 0.0}
    gain, offset = getattr(row, "ref_gain", 1.0), getattr(row, "ref_offset", 0.0)
    gain = 1.0 if pd.isna(gain) else float(gain)
    offset = 0.0 if pd.isna(offset) else float(offset)
    return {"ref_gain": gain, "ref_offset": offset}


def eval_items(info: DatasetInfo, split: str, limit: int = 0, target: str = "auto") -> list[dict[str, Any]]:
    """Full B-scans of a val/test split with their fixed LR and targets.

    Items: ``{"id", "group_id", "lr" [1,h,w], "hr" [1,H,W] (the target), "self" (the scan's own
    full-resolution B-scan), "reference" (the clean reference, or None), "reference_matched" (the
    reference at the input's grey levels, from the manifest's fitted ref_gain/ref_offset; the
    reference itself for datasets made without the fit), "ref_gain", "ref_offset"}``. ``target`` "auto" scores
    against the reference where the dataset has one (noisy inputs only: the reference scans
    themselves are left out); "self" scores every B-scan against itself. Limits pick B-scans spread
    over the groups rather than the first group only.
    """
    rows = _rows(info, split)
    use_reference = target == "reference" or (target == "auto" and info.has_references)
    if use_reference:
        # The headline protocol is noisy input -> clean reference; a reference scored against itself
        # is plain SR of a clean scan, which the own-scan ("self") evaluation covers.
        is_ref = rows["is_reference"].astype(str).str.lower() == "true"
        rows = rows[(rows["ref_path"] != "") & ~is_ref]
    if limit > 0:
        rows = rows.iloc[np.linspace(0, len(rows) - 1, min(limit, len(rows))).round().astype(int)]
    load = load_transforms(("lr", "hr"))
    load_one = load_transforms(("hr",))
    refs: dict[str, torch.Tensor] = {}
    out = []
    for row in rows.itertuples(index=False):
        if not row.lr_path:
            raise DataError(f"{info.root}: split '{split}' has no fixed LR images")
        try:
            item = load({"lr": str(info.root / row.lr_path), "hr": str(info.root / row.hr_path)})
            ref = None
            ref_path = getattr(row, "ref_path", "")
            if ref_path:
                if ref_path not in refs:
                    refs[ref_path] = load_one({"hr": str(info.root / ref_path)})["hr"]
                ref = refs[ref_path]
        except Exception as exc:
            found = _dataset_error(exc)
            if found is None:
                raise
            raise found from None
        match = _match_of(row, True)
        out.append({
            "id": f"{row.scan_id}_{int(row.bscan):03d}",
            "group_id": row.group_id,
            "lr": item["lr"],
            "hr": ref if use_reference else item["hr"],
            "self": item["hr"],
            "reference": ref,
            "reference_matched": None if ref is None else match_intensity(ref, match["ref_gain"], match["ref_offset"]),
            **match,
        })
    return out
