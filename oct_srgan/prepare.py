"""Build a super-resolution dataset from OCT scan files (the library side of ``oct-srgan preprocess``).

Scans are grouped (by subject: the parent folder, or a regex), groups are split into
train/val/test so no subject sits in two splits, every B-scan is written as a 16-bit PNG (HR) and,
for val/test, its fixed 4x LR counterpart. The source paths live only in ``sources.csv`` inside the
dataset folder, which is not logged.

The steps: find the files and key the ids (:mod:`oct_srgan.splitting`: ids are keyed hashes, never
plain hashes of names), read each group once and stage its HR PNGs, pairing scans with the group's
clean reference when asked (:mod:`oct_srgan.pairing`), join groups that share an identical B-scan,
split by group, move each group under its split writing val/test LR, then write the manifest,
``dataset.json`` and a preview. Each joined pair of groups is reported locally
(``PrepareReport.joined``), only the count reaches the logged files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from oct_srgan import __version__
from oct_srgan.config import DegradationConfig
from oct_srgan.enums import Split, values
from oct_srgan.errors import DataError, ScanError
from oct_srgan.figures import degradation_preview, save_figure
from oct_srgan.fsutil import atomic_dir, refuse_overlap, remove_dead_temps
from oct_srgan.io import Scan, find_scans, read_scan
from oct_srgan.pairing import Reference, SourceScan, crop_to_scale, find_reference
from oct_srgan.splitting import ContentJoins, check_fractions, content_key, dataset_key, group_of, keyed_id
from oct_srgan.transforms import Degrade

SPLITS = values(Split)
MANIFEST_COLUMNS = [
    "split", "group_id", "scan_id", "bscan", "hr_path", "lr_path", "height", "width", "lr_height", "lr_width",
    "row_spacing", "col_spacing", "slice_spacing", "source_format", "bit_depth", "source_hash", "hr_sha256",
    "ref_path", "is_reference", "ref_shift_y", "ref_shift_x", "ref_gain", "ref_offset",
]


@dataclass
class PrepareOptions:
    """Every value that shapes the dataset; all of it goes into ``dataset.json`` and MLflow params."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    # Leave-subjects-out cross-validation: fold ``fold`` of ``folds`` over the train+val groups is the
    # test split, the plain split's test groups are left out (0 = no cross-validation).
    folds: int = 0
    fold: int = 0
    scale: int = 4
    group_pattern: str | None = None
    bscan_axis: int | None = None
    reference: str | None = None
    register: bool = True
    # Fit each input's gain/offset against its reference (manifest ref_gain/ref_offset) for training.
    intensity_match: bool = True
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


@dataclass
class JoinedGroups:
    """Two groups holding identical B-scans, kept in one split; names and folders are for the console only."""

    groups: tuple[str, str]
    folders: tuple[Path, Path]
    n_bscans: int


@dataclass
class PrepareReport:
    out: Path
    dataset_hash: str
    manifest: pd.DataFrame
    skipped: list[tuple[Path, str]]
    groups: dict[str, list[str]]
    preview: Path | None
    joined: list[JoinedGroups] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {s: int((self.manifest["split"] == s).sum()) for s in SPLITS}


def _to_u16(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _write_png16(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="PNG", compress_level=3)


def _write_lr(tmp: Path, row: dict, degrade: Degrade) -> np.ndarray:
    """Read the staged HR back (exact 16-bit PNG) and write its fixed LR; the HR is returned for the preview."""
    hr16 = np.asarray(Image.open(tmp / row["hr_path"]))
    hr_t = torch.from_numpy(hr16.astype(np.float32) / 65535.0)[None]
    lr = degrade(hr_t)[0].numpy()
    row["lr_path"] = row["hr_path"][: -len("_hr.png")] + "_lr.png"
    _write_png16(tmp / row["lr_path"], _to_u16(lr))
    row["lr_height"], row["lr_width"] = lr.shape
    return hr16


def _find_files(roots: list[Path], options: PrepareOptions) -> list[tuple[Path, str, str]]:
    """(file, group, path relative to its input folder) of every scan file under ``roots``."""
    for root in roots:
        if not root.exists():
            raise DataError(f"{root}: input path does not exist")
    pattern = re.compile(options.group_pattern) if options.group_pattern else None
    files: list[tuple[Path, str, str]] = []
    for root in roots:
        base = root if root.is_dir() else root.parent
        for f in find_scans([root]):
            files.append((f, group_of(f, base, pattern), f.relative_to(base).as_posix()))
    if not files:
        raise DataError(f"no scan files found under {', '.join(map(str, roots))}")
    return files


class _Stager:
    """Reads each group's scans once and writes their HR (and registered reference) PNGs to ``staging``.

    Memory holds one group at a time; the rows wait for the split, which needs every group's content.
    """

    def __init__(self, key: bytes, options: PrepareOptions, staging: Path, ticks: Iterator,
                 on_skip: Callable[[Path, str], None] | None) -> None:
        self.key, self.options, self.staging, self.ticks, self.on_skip = key, options, staging, ticks, on_skip
        self.ref_pattern = re.compile(options.reference) if options.reference else None
        self.skipped: list[tuple[Path, str]] = []
        self.sources: list[tuple[str, str, str, str]] = []
        self.rows_of: dict[str, list[dict]] = {}
        self.joins = ContentJoins()

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, reason))
        if self.on_skip:
            self.on_skip(path, reason)

    def _read(self, files: list[tuple[Path, str]]) -> tuple[list[SourceScan], dict[Path, list[str | None]]]:
        """The group's readable scans, and the content keys of their B-scans as read (before any crop)."""
        scans = []
        raw_keys: dict[Path, list[str | None]] = {}
        for path, rel in files:
            next(self.ticks, None)
            try:
                scan = read_scan(path, bscan_axis=self.options.bscan_axis)
            except ScanError as exc:
                self.skip(path, str(exc))
                continue
            if min(scan.pixels.shape[-2:]) < self.options.scale * 2:
                self.skip(path, f"{path}: B-scans of {scan.pixels.shape[-2]}x{scan.pixels.shape[-1]} are too small for x{self.options.scale}")
                continue
            raw_keys[path] = [content_key(_to_u16(b)) for b in scan.pixels]
            scans.append((path, rel, scan))
        return scans, raw_keys

    def stage(self, group: str, group_id: str, files: list[tuple[Path, str]]) -> None:
        """Read one group, pair it with its reference and stage its B-scans under ``staging/<group_id>``."""
        scans, raw_keys = self._read(files)
        scans, ref = find_reference(scans, self.ref_pattern, self.options.reference)
        reference = Reference.of(ref, keyed_id(self.key, "source", ref[1], 16)[:12]) if ref is not None else None
        rows = self.rows_of.setdefault(group, [])
        for path, rel, scan in scans:
            source_hash = keyed_id(self.key, "source", rel, 16)
            self.sources.append((source_hash[:12], group_id, group, str(path)))
            rows += self._stage_scan(group, group_id, path, scan, source_hash, reference, raw_keys[path])

    def _stage_scan(self, group: str, group_id: str, path: Path, scan: Scan, source_hash: str,
                    reference: Reference | None, raw_keys: list[str | None]) -> list[dict]:
        options, scan_id, gdir = self.options, source_hash[:12], self.staging / group_id
        pixels = crop_to_scale(scan.pixels, options.scale, options.degradation.axes)
        if reference is not None:
            reference.check_count(path, len(pixels))
        is_ref = reference is not None and path == reference.path
        rows = []
        for b, hr in enumerate(pixels):
            ref_name, shift, match = "", (0, 0), (1.0, 0.0)
            if reference is not None:
                hr, ref_hr, ref_name, shift = reference.pair(
                    path, scan_id, b, scan.pixels[b], hr, register_it=options.register and not is_ref,
                    scale=options.scale, axes=options.degradation.axes)
                if ref_hr is not None:
                    _write_png16(gdir / ref_name, _to_u16(ref_hr))
                if options.intensity_match and not is_ref:
                    match = reference.intensity_fit(path, b, hr, ref_hr)
            hr16 = _to_u16(hr)
            hr_name = f"{scan_id}_{b:03d}_hr.png"
            _write_png16(gdir / hr_name, hr16)
            self.joins.add(group, [k for k in (raw_keys[b], content_key(hr16)) if k is not None])
            geo = scan.geometry
            rows.append({
                "split": "", "group_id": group_id, "scan_id": scan_id, "bscan": b, "hr_path": hr_name, "lr_path": "",
                "height": hr.shape[0], "width": hr.shape[1], "lr_height": 0, "lr_width": 0,
                "row_spacing": geo.row_spacing, "col_spacing": geo.col_spacing, "slice_spacing": geo.slice_spacing,
                "source_format": scan.source_format, "bit_depth": scan.bit_depth, "source_hash": source_hash,
                "hr_sha256": hashlib.sha256(hr16.tobytes()).hexdigest(), "ref_path": ref_name, "is_reference": is_ref,
                "ref_shift_y": shift[0], "ref_shift_x": shift[1], "ref_gain": round(match[0], 6),
                "ref_offset": round(match[1], 6),
            })
        return rows


def _place(tmp: Path, group_ids: dict[str, str], split_of: dict[str, str], rows_of: dict[str, list[dict]],
           degrade: Degrade) -> tuple[list[dict], np.ndarray]:
    """Move each staged group under its split, writing the fixed LR of val/test; (rows, a preview HR)."""
    staging = tmp / ".staging"
    rows: list[dict] = []
    preview_hr: np.ndarray | None = None
    for group in sorted(group_ids):
        split, group_id = split_of[group], group_ids[group]
        if split == "drop":
            if (staging / group_id).is_dir():
                shutil.rmtree(staging / group_id)
            continue
        if (staging / group_id).is_dir():
            (tmp / split).mkdir(exist_ok=True)
            os.replace(staging / group_id, tmp / split / group_id)
        for row in rows_of.get(group, []):
            row["split"] = split
            row["hr_path"] = f"{split}/{group_id}/{row['hr_path']}"
            if row["ref_path"]:
                row["ref_path"] = f"{split}/{group_id}/{row['ref_path']}"
            if split != "train":
                hr16 = _write_lr(tmp, row, degrade)
                if preview_hr is None:
                    preview_hr = hr16
            rows.append(row)
    if staging.is_dir():
        staging.rmdir()
    if preview_hr is None:
        preview_hr = np.asarray(Image.open(tmp / rows[0]["hr_path"]))
    return rows, preview_hr


def _write_tables(tmp: Path, rows: list[dict], options: PrepareOptions, stager: _Stager) -> tuple[pd.DataFrame, str]:
    """manifest.csv, dataset.json (with the dataset hash), skipped.csv and the local sources.csv."""
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values(["split", "group_id", "scan_id", "bscan"])
    manifest = manifest.reset_index(drop=True)
    manifest.to_csv(tmp / "manifest.csv", index=False)
    options_dict = asdict(options)
    # The pattern is user text (it could name a person); the pairing itself is in the manifest.
    options_dict["reference"] = options.reference is not None
    digest = hashlib.sha256((tmp / "manifest.csv").read_bytes())
    digest.update(json.dumps(options_dict, sort_keys=True).encode("utf-8"))
    dataset_hash = digest.hexdigest()[:16]
    info = {
        "format": "oct-srgan-dataset/1",
        "dataset_hash": dataset_hash,
        "created_with": f"oct-srgan {__version__}",
        "options": options_dict,
        "counts": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "groups": {s: int(manifest.loc[manifest["split"] == s, "group_id"].nunique()) for s in SPLITS},
        "skipped": len(stager.skipped),
        "references": int((manifest["ref_path"] != "").sum()),
        "joined_group_pairs": len(stager.joins.shared),
    }
    (tmp / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    for name, header, table in (("skipped.csv", ["file", "reason"], [(str(p), r) for p, r in stager.skipped]),
                                ("sources.csv", ["scan_id", "group_id", "group", "source"], stager.sources)):
        with (tmp / name).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(table)
    return manifest, dataset_hash


def _write_preview(path: Path, hr16: np.ndarray, degrade: Degrade, options: PrepareOptions) -> None:
    hr_t = torch.from_numpy(hr16.astype(np.float32) / 65535.0)[None]
    fig = degradation_preview(hr_t[0].numpy(), degrade(hr_t)[0].numpy(), scale=options.scale,
                              axes=options.degradation.axes, mode=options.degradation.mode)
    save_figure(fig, path, dpi=100)


def _joined(by_group: dict[str, list[tuple[Path, str]]], shared: dict[tuple[str, str], int]) -> list[JoinedGroups]:
    def folder(group: str) -> Path:
        return Path(os.path.commonpath([str(p.parent) for p, _ in by_group[group]]))

    return [JoinedGroups((a, b), (folder(a), folder(b)), n) for (a, b), n in sorted(shared.items())]


def prepare_dataset(
    inputs: list[Path],
    out: Path,
    options: PrepareOptions | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> PrepareReport:
    """Read every scan once, join groups sharing content, split, write HR/LR PNGs + manifest atomically into ``out``.

    The split needs every group's pixels (for the duplicate check), so each group's HR PNGs are first
    written to a staging folder and moved under their split afterwards: memory holds one group at a time.
    """
    options = options or PrepareOptions()
    out = Path(out)
    refuse_overlap(out, inputs)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out}: output exists and is not empty (use --overwrite to replace it)")
    if options.scale < 1:
        raise DataError(f"scale {options.scale} must be a positive integer")
    check_fractions(options.val_fraction, options.test_fraction)
    roots = [Path(p) for p in inputs]
    files = _find_files(roots, options)
    key = dataset_key(f for f, _, _ in files)
    deg = options.degradation
    degrade = Degrade(scale=options.scale, mode=deg.mode, axes=deg.axes, speckle=deg.speckle, seed=options.seed)
    by_group: dict[str, list[tuple[Path, str]]] = {}
    for path, group, rel in files:
        by_group.setdefault(group, []).append((path, rel))
    group_ids = {g: keyed_id(key, "group", g, 10) for g in by_group}
    ticks = iter(progress(files) if progress else files)
    remove_dead_temps(Path(out).resolve().parent)  # what a killed earlier run was writing
    with atomic_dir(out, overwrite=overwrite) as tmp:
        stager = _Stager(key, options, tmp / ".staging", ticks, on_skip)
        for group in sorted(by_group):
            stager.stage(group, group_ids[group], by_group[group])
        for _ in ticks:
            pass
        if not any(stager.rows_of.values()):
            raise DataError(f"no usable scan in {', '.join(map(str, roots))} ({len(stager.skipped)} file(s) skipped, "
                            "see the messages above)")
        split_of = stager.joins.split(by_group, options.val_fraction, options.test_fraction, options.seed,
                                      options.folds, options.fold)
        rows, preview_hr = _place(tmp, group_ids, split_of, stager.rows_of, degrade)
        manifest, dataset_hash = _write_tables(tmp, rows, options, stager)
        _write_preview(tmp / "preview.png", preview_hr, degrade, options)
    groups: dict[str, list[str]] = {s: [] for s in SPLITS}
    for g, s in sorted(split_of.items()):
        if s in groups:
            groups[s].append(g)
    return PrepareReport(out=out, dataset_hash=dataset_hash, manifest=manifest, skipped=stager.skipped, groups=groups,
                         preview=out / "preview.png", joined=_joined(by_group, stager.joins.shared))
