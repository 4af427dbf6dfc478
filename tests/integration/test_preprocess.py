"""`oct-srgan preprocess`: split by subject, deterministic hash, bad input, no patient data in MLflow."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oct_srgan.config import DegradationConfig
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.splitting import split_groups
from tests.helpers.cli import preprocess
from tests.paths import DUKE, FORMATS


@pytest.fixture(scope="module")
def duke_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("duke") / "ds"
    report = prepare_dataset([DUKE], out, PrepareOptions(seed=7))
    return out, report.dataset_hash


def test_duke_split_keeps_every_subject_in_one_split(duke_dataset: tuple[Path, str]) -> None:
    out, _ = duke_dataset
    m = pd.read_csv(out / "manifest.csv", dtype=str)
    splits_per_group = m.groupby("group_id")["split"].nunique()
    assert len(splits_per_group) == 14
    assert (splits_per_group == 1).all()
    groups = m.groupby("split")["group_id"].nunique().to_dict()
    assert groups == {"train": 10, "val": 2, "test": 2}
    assert len(m) == 14 * 6


def test_duke_pairs_are_aligned_16bit_pngs(duke_dataset: tuple[Path, str]) -> None:
    out, _ = duke_dataset
    m = pd.read_csv(out / "manifest.csv", dtype={"lr_path": str}, keep_default_na=False)
    test_row = m[m["split"] == "test"].iloc[0]
    hr = np.asarray(Image.open(out / test_row["hr_path"]))
    lr = np.asarray(Image.open(out / test_row["lr_path"]))
    assert hr.dtype == np.uint16 and lr.dtype == np.uint16
    assert hr.shape == (448, 900) and lr.shape == (112, 225)
    assert (int(test_row["height"]), int(test_row["width"])) == hr.shape
    # 8-bit sources are stored exactly (v * 257) in 16 bits.
    assert np.all(hr % 257 == 0)
    assert (m.loc[m["split"] == "train", "lr_path"] == "").all()


def test_same_seed_gives_same_dataset_hash(duke_dataset: tuple[Path, str], tmp_path: Path) -> None:
    out, digest = duke_dataset
    again = prepare_dataset([DUKE], tmp_path / "again", PrepareOptions(seed=7))
    assert again.dataset_hash == digest
    assert json.loads((out / "dataset.json").read_text())["dataset_hash"] == digest


def test_other_seed_changes_split_and_hash(duke_dataset: tuple[Path, str]) -> None:
    _, digest = duke_dataset
    a = split_groups([f"s{i}" for i in range(14)], 0.15, 0.15, seed=7)
    b = split_groups([f"s{i}" for i in range(14)], 0.15, 0.15, seed=8)
    assert a != b
    assert sorted(a.values()).count("test") == 2


def test_manifest_holds_no_source_paths(duke_dataset: tuple[Path, str]) -> None:
    out, _ = duke_dataset
    text = (out / "manifest.csv").read_text() + (out / "dataset.json").read_text()
    assert "subject" not in text and str(DUKE) not in text and ".tif" not in text
    assert "subject01" in (out / "sources.csv").read_text()


def test_formats_folder_leaves_no_patient_data_in_mlflow(tmp_path: Path, mlflow_store: Path) -> None:
    result = preprocess(str(FORMATS), "--out", str(tmp_path / "fmt"))
    assert result.exit_code == 0, result.output
    m = pd.read_csv(tmp_path / "fmt" / "manifest.csv")
    assert m["scan_id"].nunique() == len(list(FORMATS.iterdir()))
    needles = [b"Fixture^Jane", b"FIXTURE-s14", str(FORMATS).encode(), b"oct_volume_s14", b"octdl_bscan"]
    files = [p for p in mlflow_store.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.csv" for p in files) and any(p.suffix == ".png" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
    db = sqlite3.connect(mlflow_store / "mlflow.db")
    dump = "\n".join(db.iterdump()).encode()
    db.close()
    for needle in needles:
        assert needle not in dump
    assert b"n_bscans" in dump


def _bad_input_folder(root: Path) -> Path:
    subj = root / "subjA"
    subj.mkdir(parents=True)
    for name in ("1.tif", "2.tif"):
        (subj / name).write_bytes((DUKE / "subject01" / name).read_bytes())
    other = root / "subjB"
    other.mkdir()
    (other / "3.tif").write_bytes((DUKE / "subject02" / "3.tif").read_bytes())
    (subj / "corrupt.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00garbage" * 10)
    (subj / "empty.png").write_bytes(b"")
    (other / "notes.nii.gz").write_text("this is not a NIfTI volume\n")
    return root


def test_bad_files_are_skipped_and_listed(tmp_path: Path) -> None:
    src = _bad_input_folder(tmp_path / "in")
    result = preprocess(str(src), "--out", str(tmp_path / "ds"), "--val-fraction", "0", "--test-fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv")
    names = sorted(Path(f).name for f in skipped["file"])
    assert names == ["corrupt.dcm", "empty.png", "notes.nii.gz"]
    assert all(Path(f).name in r for f, r in zip(skipped["file"], skipped["reason"]))
    m = pd.read_csv(tmp_path / "ds" / "manifest.csv")
    assert len(m) == 3
    for name in ("corrupt.dcm", "empty.png", "notes.nii.gz"):
        assert name in result.output


def test_existing_output_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    src = tmp_path / "in" / "s1"
    src.mkdir(parents=True)
    (src / "a.tif").write_bytes((DUKE / "subject03" / "1.tif").read_bytes())
    result = preprocess(str(src.parent), "--out", str(out))
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = preprocess(str(src.parent), "--out", str(out), "--overwrite", "--val-fraction", "0", "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "manifest.csv").is_file()


def test_interrupted_run_leaves_no_half_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oct_srgan.prepare as prepare

    calls = {"n": 0}
    real = prepare.read_scan

    def flaky(path, bscan_axis=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path, bscan_axis=bscan_axis)

    monkeypatch.setattr(prepare, "read_scan", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset([DUKE / "subject01"], tmp_path / "work" / "ds", PrepareOptions(val_fraction=0, test_fraction=0))
    assert list((tmp_path / "work").iterdir()) == []


def test_group_pattern_groups_files_by_regex(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    src.mkdir()
    for subj in ("01", "02", "03"):
        for k in ("1", "2"):
            (src / f"pt{subj}_scan{k}.tif").write_bytes((DUKE / f"subject{subj}" / f"{k}.tif").read_bytes())
    report = prepare_dataset(
        [src], tmp_path / "ds", PrepareOptions(group_pattern=r"pt(\d+)_", val_fraction=0.34, test_fraction=0.34)
    )
    assert sorted(len(v) for v in report.groups.values()) == [1, 1, 1]
    assert report.manifest.groupby("group_id")["scan_id"].nunique().tolist() == [2, 2, 2]


def test_lateral_degradation_keeps_axial_samples(tmp_path: Path) -> None:
    options = PrepareOptions(val_fraction=0, test_fraction=0.5, degradation=DegradationConfig(axes="lateral", mode="area"))
    src = tmp_path / "in"
    for subj in ("04", "05"):
        (src / subj).mkdir(parents=True)
        (src / subj / "a.tif").write_bytes((DUKE / f"subject{subj}" / "1.tif").read_bytes())
    report = prepare_dataset([src], tmp_path / "ds", options)
    row = report.manifest[report.manifest["split"] == "test"].iloc[0]
    assert (row["height"], row["width"], row["lr_height"], row["lr_width"]) == (450, 900, 450, 225)
    hr = np.asarray(Image.open(tmp_path / "ds" / row["hr_path"])).astype(np.float64)
    lr = np.asarray(Image.open(tmp_path / "ds" / row["lr_path"])).astype(np.float64)
    np.testing.assert_allclose(lr, hr.reshape(450, 225, 4).mean(axis=2), atol=1.0)
