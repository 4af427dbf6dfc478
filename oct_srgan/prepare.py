"""Build a super-resolution dataset from OCT scan files (the library side of ``oct-srgan preprocess``).

Scans are grouped (by subject: the parent folder, or a regex), groups are split into
train/val/test so no subject sits in two splits, every B-scan is written as a 16-bit PNG (HR) and,
for val/test, its fixed 4x LR counterpart. The source paths live only in ``sources.csv`` inside the
dataset folder, which is not logged.

The manifest (logged to MLflow) names groups and scans by HMAC-SHA256 ids, not by plain hashes of
names or paths: an unkeyed hash lets anyone holding a list of candidate patient names or IDs confirm
who is in the dataset. The key is derived from the *content* of every source file (see
``dataset_key``) rather than kept as a random ``secret.key``, because the dataset hash must stay
reproducible (same inputs + options -> same ids in any ``--out`` and on any machine; a random key
would change them for every fresh folder and a lost key file would change them all): whoever
holds the source files already knows the names, whoever holds only the MLflow store cannot
compute the key. Every file digest is domain-separated, so neither a published
checksum list of the source files nor any logged hash (``hr_sha256`` hashes the written 16-bit
pixels, not file bytes) is a key input.

Groups that share an identical B-scan (same decoded 16-bit pixels, before or after cropping) are
joined before the split, so copies of one image never sit in two splits (constant B-scans, e.g.
blank frames, carry nothing of a subject and are ignored); each joined pair is reported locally
(``PrepareReport.joined``), only the count reaches the logged files.

With ``reference`` (a regex on the file name stem, e.g. ``average``), the matching scan of each group
is its clean reference: every scan of the group (the reference included, so clean inputs stay
clean) is an *input* whose row names the reference B-scan it is scored and trained against
(B-scan i of a volume <-> B-scan i of the reference; a single-B-scan reference serves every B-scan).
All scans of such a group are cropped to their common area; with ``register`` (the default) each
input B-scan is then aligned to its reference by the integer translation that phase correlation finds
(single acquisitions drift by up to ~20 lateral / ~6 axial pixels against the average in the Duke
set), and both are cropped to their overlap, so no pixel is interpolated and the pairs align pixel for
pixel. A shift beyond ``MAX_REGISTRATION_SHIFT`` of a side means the pairing is wrong and is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from oct_srgan import __version__
from oct_srgan.config import DegradationConfig
from oct_srgan.errors import DataError, ScanError
from oct_srgan.fsutil import atomic_dir
from oct_srgan.io import find_scans, read_scan
from oct_srgan.transforms import Degraded

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = [
    "split",
    "group_id",
    "scan_id",
    "bscan",
    "hr_path",
    "lr_path",
    "height",
    "width",
    "lr_height",
    "lr_width",
    "row_spacing",
    "col_spacing",
    "slice_spacing",
    "source_format",
    "bit_depth",
    "source_hash",
    "hr_sha256",
    "ref_path",
    "is_reference",
    "ref_shift_y",
    "ref_shift_x",
]
# A group's scans may differ by a few rows/columns (export padding); more than this is not one location.
MAX_REFERENCE_MISMATCH = 8
# Registration shifts beyond this fraction of a side are not one location seen twice.
MAX_REGISTRATION_SHIFT = 0.1


@dataclass
class PrepareOptions:
    """Every value that shapes the dataset; all of it goes into ``dataset.json`` and MLflow params."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    scale: int = 4
    group_pattern: str | None = None
    bscan_axis: int | None = None
    reference: str | None = None
    register: bool = True
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


_KEY_DOMAIN = b"oct-srgan/id-key/v1\0"
_FILE_DOMAIN = b"oct-srgan/id-key/source-file/v1\0"


def _file_digest(path: Path) -> bytes | None:
    """Domain-separated sha256 of a file's bytes (None if unreadable: read_scan will skip it)."""
    digest = hashlib.sha256(_FILE_DOMAIN)
    try:
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def dataset_key(files: Iterable[Path]) -> bytes:
    """The HMAC key of the ids: a hash over the sorted content digests of every source file.

    Computable only with all source files in hand; it depends on neither the seed nor the output
    folder, so one subject keeps its id in every dataset built from the same files (datasets with
    different seeds can be checked for subject overlap). Never written anywhere.
    """
    digest = hashlib.sha256(_KEY_DOMAIN)
    for d in sorted(d for d in map(_file_digest, files) if d is not None):
        digest.update(d)
    return digest.digest()


def keyed_id(key: bytes, kind: str, text: str, n: int) -> str:
    """``n`` hex digits of HMAC-SHA256(key, kind + text); ``kind`` keeps group and scan ids apart."""
    return hmac.new(key, f"{kind}\0{text}".encode("utf-8"), hashlib.sha256).hexdigest()[:n]


def content_key(u16: np.ndarray) -> str | None:
    """Hash of one 16-bit B-scan (shape included); None for a constant one, which says nothing about a subject."""
    if u16.size == 0 or u16.min() == u16.max():
        return None
    return hashlib.sha256(repr(u16.shape).encode("ascii") + np.ascontiguousarray(u16).tobytes()).hexdigest()


class _UnionFind:
    """Groups joined by shared content; the root of a set is its smallest name, so splits stay deterministic."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_of(path: Path, root: Path, pattern: re.Pattern[str] | None) -> str:
    """The subject a scan belongs to: the regex's first group (or match) on the relative path, else the parent folder."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    if pattern is not None:
        m = pattern.search(rel)
        if m is None:
            raise DataError(f"--group-pattern {pattern.pattern!r} does not match a scan path (see sources.csv)")
        return m.group(1) if m.groups() else m.group(0)
    parent = Path(rel).parent.as_posix()
    return parent if parent != "." else root.name


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Checked before any scan is read, since the split itself only happens after reading them all."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"split fractions val={val_fraction} test={test_fraction} must be in [0, 1) and sum below 1")


def split_groups(groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Assign whole groups to splits with a seeded shuffle; val/test get at least one group when there are 3+."""
    _check_fractions(val_fraction, test_fraction)
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n = len(shuffled)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    out = {}
    for i, g in enumerate(shuffled):
        out[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def _crop_to_scale(pixels: np.ndarray, scale: int, axes: str) -> np.ndarray:
    """Crop the upsampled axes to a multiple of ``scale`` so LR and HR align exactly."""
    h, w = pixels.shape[-2:]
    h2 = h - h % scale if axes == "both" else h
    return pixels[..., :h2, : w - w % scale]


def _crop_common(scans: list[tuple[Path, str, Any]], ref: tuple[Path, str, Any]) -> list[tuple[Path, str, Any]]:
    """Crop every scan of a reference group to the group's common B-scan area (top-left aligned).

    Registered exports of one location differ by at most a few border pixels; a larger mismatch
    means the pairing is wrong, so it is refused naming both files.
    """
    rh, rw = ref[2].pixels.shape[-2:]
    for path, _, scan in scans:
        h, w = scan.pixels.shape[-2:]
        if abs(h - rh) > MAX_REFERENCE_MISMATCH or abs(w - rw) > MAX_REFERENCE_MISMATCH:
            raise DataError(
                f"{path}: B-scans of {h}x{w} do not match the {rh}x{rw} of reference {ref[0]} "
                f"(more than {MAX_REFERENCE_MISMATCH} pixels apart)"
            )
    h = min(s.pixels.shape[-2] for _, _, s in scans)
    w = min(s.pixels.shape[-1] for _, _, s in scans)
    return [(p, r, dataclasses.replace(s, pixels=s.pixels[..., :h, :w])) for p, r, s in scans]


def registration_shift(moving: np.ndarray, fixed: np.ndarray) -> tuple[int, int]:
    """Integer (dy, dx) with ``fixed[y, x] ~ moving[y - dy, x - dx]``, by phase correlation (scikit-image).

    Integer shifts keep both images exact (no resampling of the reference or the input).
    """
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(fixed, moving, normalization=None)
    return int(round(float(shift[0]))), int(round(float(shift[1])))


def overlap(moving: np.ndarray, fixed: np.ndarray, shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``moving`` and ``fixed`` that show the same tissue after ``shift`` (same shape)."""
    h, w = moving.shape[-2:]
    (dy, dx) = shift
    m = moving[..., max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    f = fixed[..., max(0, dy): h - max(0, -dy), max(0, dx): w - max(0, -dx)]
    return m, f


def _register(path: Path, ref_path: Path, moving: np.ndarray, fixed: np.ndarray) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    shift = registration_shift(moving, fixed)
    h, w = moving.shape[-2:]
    if abs(shift[0]) > MAX_REGISTRATION_SHIFT * h or abs(shift[1]) > MAX_REGISTRATION_SHIFT * w:
        raise DataError(
            f"{path}: registration to reference {ref_path} found a shift of {shift[0]} rows, {shift[1]} columns "
            f"(more than {MAX_REGISTRATION_SHIFT:.0%} of the B-scan; not the same location, or use --no-register)"
        )
    return (shift, *overlap(moving, fixed, shift))


def _to_u16(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _write_png16(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="PNG", compress_level=3)


def _preview(path: Path, hr: np.ndarray, lr: np.ndarray, options: PrepareOptions) -> None:
    """HR | bicubic-from-LR side by side, so a reviewer sees what the degradation removes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oct_srgan.transforms import upscale_bicubic

    axes = options.degradation.axes
    up = upscale_bicubic(torch.from_numpy(lr)[None, None], options.scale, axes)[0, 0].clamp(0, 1).numpy()
    fig, ax = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
    for a, img, title in zip(ax, (hr, up), ("HR", f"bicubic x{options.scale} from LR ({options.degradation.mode}, {axes})")):
        a.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        a.set_title(title)
        a.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_lr(tmp: Path, row: dict, degrade: Degraded) -> np.ndarray:
    """Read the staged HR back (exact 16-bit PNG) and write its fixed LR; the HR is returned for the preview."""
    hr16 = np.asarray(Image.open(tmp / row["hr_path"]))
    hr_t = torch.from_numpy(hr16.astype(np.float32) / 65535.0)[None]
    lr = degrade({"hr": hr_t})["lr"][0].numpy()
    row["lr_path"] = row["hr_path"][: -len("_hr.png")] + "_lr.png"
    _write_png16(tmp / row["lr_path"], _to_u16(lr))
    row["lr_height"], row["lr_width"] = lr.shape
    return hr16


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
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out}: output exists and is not empty (use --overwrite to replace it)")
    if options.scale < 1:
        raise DataError(f"scale {options.scale} must be a positive integer")
    _check_fractions(options.val_fraction, options.test_fraction)
    roots = [Path(p) for p in inputs]
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
    key = dataset_key(f for f, _, _ in files)
    degrade = Degraded(
        keys="hr",
        lr_key="lr",
        scale=options.scale,
        mode=options.degradation.mode,
        axes=options.degradation.axes,
        speckle=options.degradation.speckle,
        seed=options.seed,
    )
    skipped: list[tuple[Path, str]] = []
    sources: list[tuple[str, str, str, str]] = []
    ref_pattern = re.compile(options.reference) if options.reference else None

    def skip(path: Path, reason: str) -> None:
        skipped.append((path, reason))
        if on_skip:
            on_skip(path, reason)

    by_group: dict[str, list[tuple[Path, str]]] = {}
    for path, group, rel in files:
        by_group.setdefault(group, []).append((path, rel))
    group_ids = {g: keyed_id(key, "group", g, 10) for g in by_group}
    rows_of: dict[str, list[dict]] = {}
    joins = _UnionFind()
    owner: dict[str, str] = {}
    shared: dict[tuple[str, str], int] = {}
    iterator: Iterable = progress(files) if progress else files
    ticks = iter(iterator)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        staging = tmp / ".staging"
        for group in sorted(by_group):
            group_id = group_ids[group]
            gdir = staging / group_id
            scans = []
            raw_keys: dict[Path, list[str | None]] = {}
            for path, rel in by_group[group]:
                next(ticks, None)
                try:
                    scan = read_scan(path, bscan_axis=options.bscan_axis)
                except ScanError as exc:
                    skip(path, str(exc))
                    continue
                if min(scan.pixels.shape[-2:]) < options.scale * 2:
                    skip(path, f"{path}: B-scans of {scan.pixels.shape[-2]}x{scan.pixels.shape[-1]} are too small for x{options.scale}")
                    continue
                raw_keys[path] = [content_key(_to_u16(b)) for b in scan.pixels]
                scans.append((path, rel, scan))
            refs = [s for s in scans if ref_pattern is not None and ref_pattern.search(s[0].name.split(".")[0])]
            if len(refs) > 1:
                raise DataError(
                    f"{refs[0][0]}: group has {len(refs)} reference scans matching --reference {options.reference!r} "
                    f"(also {refs[1][0]}); use --group-pattern so that each group has one"
                )
            ref = refs[0] if refs else None
            if ref is not None:
                scans = _crop_common(scans, ref)
                ref = next(s for s in scans if s[0] == ref[0])
            ref_names: dict[int, str] = {}
            if ref is not None:
                ref_scan_id = keyed_id(key, "source", ref[1], 16)[:12]
                ref_names = {b: f"{ref_scan_id}_{b:03d}_hr.png" for b in range(ref[2].pixels.shape[0])}
            rows = rows_of.setdefault(group, [])
            for path, rel, scan in scans:
                source_hash = keyed_id(key, "source", rel, 16)
                scan_id = source_hash[:12]
                sources.append((scan_id, group_id, group, str(path)))
                pixels = _crop_to_scale(scan.pixels, options.scale, options.degradation.axes)
                if ref is not None and len(ref_names) not in (1, len(pixels)):
                    raise DataError(
                        f"{path}: {len(pixels)} B-scans cannot pair with the {len(ref_names)} of reference {ref[0]}"
                    )
                geo = scan.geometry
                is_ref = ref is not None and path == ref[0]
                for b, hr in enumerate(pixels):
                    ref_name, shift = (ref_names.get(b, ref_names.get(0, "")), (0, 0)) if ref is not None else ("", (0, 0))
                    if ref is not None and options.register and not is_ref:
                        rb = b if len(ref_names) > 1 else 0
                        shift, hr, ref_hr = _register(path, ref[0], scan.pixels[b], ref[2].pixels[rb])
                        hr, ref_hr = (_crop_to_scale(x, options.scale, options.degradation.axes) for x in (hr, ref_hr))
                        ref_name = f"{ref_names[rb].rsplit('_', 1)[0]}_ref_{scan_id}_{b:03d}.png"
                        _write_png16(gdir / ref_name, _to_u16(ref_hr))
                    hr16 = _to_u16(hr)
                    hr_name = f"{scan_id}_{b:03d}_hr.png"
                    _write_png16(gdir / hr_name, hr16)
                    keys = [k for k in (raw_keys[path][b], content_key(hr16)) if k is not None]
                    for other in {owner[k] for k in keys if k in owner} - {group}:
                        joins.union(other, group)
                        shared[(other, group)] = shared.get((other, group), 0) + 1
                    for k in keys:
                        owner.setdefault(k, group)
                    rows.append(
                        {
                            "split": "",
                            "group_id": group_id,
                            "scan_id": scan_id,
                            "bscan": b,
                            "hr_path": hr_name,
                            "lr_path": "",
                            "height": hr.shape[0],
                            "width": hr.shape[1],
                            "lr_height": 0,
                            "lr_width": 0,
                            "row_spacing": geo.row_spacing,
                            "col_spacing": geo.col_spacing,
                            "slice_spacing": geo.slice_spacing,
                            "source_format": scan.source_format,
                            "bit_depth": scan.bit_depth,
                            "source_hash": source_hash,
                            "hr_sha256": hashlib.sha256(hr16.tobytes()).hexdigest(),
                            "ref_path": ref_name,
                            "is_reference": is_ref,
                            "ref_shift_y": shift[0],
                            "ref_shift_x": shift[1],
                        }
                    )
        for _ in ticks:
            pass
        if not any(rows_of.values()):
            raise DataError(
                f"no usable scan in {', '.join(map(str, roots))} ({len(skipped)} file(s) skipped, see the messages above)"
            )
        root_split = split_groups({joins.find(g) for g in by_group}, options.val_fraction, options.test_fraction, options.seed)
        split_of = {g: root_split[joins.find(g)] for g in by_group}
        rows: list[dict] = []
        preview_hr: np.ndarray | None = None
        for group in sorted(by_group):
            split, group_id = split_of[group], group_ids[group]
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
            "skipped": len(skipped),
            "references": int((manifest["ref_path"] != "").sum()),
            "joined_group_pairs": len(shared),
        }
        (tmp / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
        with (tmp / "skipped.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "reason"])
            writer.writerows((str(p), r) for p, r in skipped)
        with (tmp / "sources.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["scan_id", "group_id", "group", "source"])
            writer.writerows(sources)
        preview = tmp / "preview.png"
        hr_t = torch.from_numpy(preview_hr.astype(np.float32) / 65535.0)[None]
        _preview(preview, hr_t[0].numpy(), degrade({"hr": hr_t})["lr"][0].numpy(), options)
    groups: dict[str, list[str]] = {s: [] for s in SPLITS}
    for g, s in sorted(split_of.items()):
        groups[s].append(g)

    def folder(group: str) -> Path:
        return Path(os.path.commonpath([str(p.parent) for p, _ in by_group[group]]))

    joined = [JoinedGroups((a, b), (folder(a), folder(b)), n) for (a, b), n in sorted(shared.items())]
    return PrepareReport(
        out=out,
        dataset_hash=dataset_hash,
        manifest=manifest,
        skipped=skipped,
        groups=groups,
        preview=out / "preview.png",
        joined=joined,
    )


def tracking_params(report: PrepareReport, options: PrepareOptions) -> dict[str, object]:
    """The params logged for a preprocess run: counts and options, no names or paths."""
    m = report.manifest
    params: dict[str, object] = {
        "scale": options.scale,
        "seed": options.seed,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "group_pattern": options.group_pattern or "parent-folder",
        "bscan_axis": options.bscan_axis if options.bscan_axis is not None else "auto",
        "degradation.mode": options.degradation.mode,
        "degradation.axes": options.degradation.axes,
        "degradation.speckle": options.degradation.speckle,
        "n_scans": int(m["scan_id"].nunique()),
        "n_bscans": len(m),
        "n_groups": int(m["group_id"].nunique()),
        "n_skipped": len(report.skipped),
        "reference": "yes" if options.reference else "no",
        "n_bscans_with_reference": int((m["ref_path"] != "").sum()),
        "register": options.register if options.reference else "n/a",
        "max_abs_ref_shift_px": int(m[["ref_shift_y", "ref_shift_x"]].abs().to_numpy().max()) if len(m) else 0,
        "n_joined_group_pairs": len(report.joined),
    }
    for s in SPLITS:
        part = m[m["split"] == s]
        params[f"n_bscans.{s}"] = len(part)
        params[f"n_groups.{s}"] = int(part["group_id"].nunique())
    return params
