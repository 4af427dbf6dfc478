"""`oct-srgan preprocess` on files the tests make: no usable scan, bad paths and fractions, duplicate content."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oct_srgan.errors import DataError
from oct_srgan.splitting import split_groups
from tests.helpers.cli import preprocess


def test_no_usable_scan_exits_2_with_one_line(tmp_path: Path) -> None:
    src = tmp_path / "in" / "s"
    src.mkdir(parents=True)
    (src / "empty.png").write_bytes(b"")
    result = preprocess(str(src.parent), "--out", str(tmp_path / "ds"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no usable scan" in last
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_missing_input_path_is_one_line(tmp_path: Path) -> None:
    result = preprocess(str(tmp_path / "nope"), "--out", str(tmp_path / "ds"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nope'}: input path does not exist"]


def test_split_fractions_are_validated() -> None:
    with pytest.raises(DataError, match="fractions"):
        split_groups(["a", "b"], 0.6, 0.6, 0)


def _duplicate_folder(root: Path) -> Path:
    """subjectA/x.png == subjectB/y.png and subjectB/z.png == subjectC/w.png (pixels), plus distinct subjects."""
    rng = np.random.default_rng(0)
    images = {name: (rng.random((48, 64)) * 255).astype(np.uint8) for name in ("x", "z", "d", "e", "f")}
    layout = {"subjectA": {"x": "x"}, "subjectB": {"y": "x", "z": "z"}, "subjectC": {"w": "z"},
              "subjectD": {"d": "d"}, "subjectE": {"e": "e"}, "subjectF": {"f": "f"}}
    for subject, files in layout.items():
        (root / subject).mkdir(parents=True)
        for name, image in files.items():
            Image.fromarray(images[image]).save(root / subject / f"{name}.png")
    return root


def test_identical_content_in_two_groups_lands_in_one_split(tmp_path: Path, mlflow_store: Path) -> None:
    src = _duplicate_folder(tmp_path / "in")
    for seed in range(8):
        out = tmp_path / f"ds{seed}"
        result = preprocess(str(src), "--out", str(out), "--seed", str(seed), "--val-fraction", "0.34", "--test-fraction", "0.34")
        assert result.exit_code == 0, result.output
        m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
        sources = pd.read_csv(out / "sources.csv")
        split_of = {Path(src_path).relative_to(src).as_posix(): m.loc[m["scan_id"] == sid, "split"].iloc[0]
                    for sid, src_path in zip(sources["scan_id"], sources["source"])}
        assert split_of["subjectA/x.png"] == split_of["subjectB/y.png"] == split_of["subjectC/w.png"], (seed, split_of)
        assert (m.groupby("hr_sha256")["split"].nunique() == 1).all()
        warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 2, result.output
        assert "subjectA" in warnings[0] and "subjectB" in warnings[0] and "1 identical B-scan" in warnings[0]
        assert "subjectB" in warnings[1] and "subjectC" in warnings[1]
    for path in (p for p in mlflow_store.rglob("*") if p.is_file()):
        assert b"subjectA" not in path.read_bytes() and b"subjectB" not in path.read_bytes()
    db = sqlite3.connect(mlflow_store / "mlflow.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert "subjectA" not in dump and "subjectB" not in dump and "n_joined_group_pairs" in dump


def test_cross_validation_folds_partition_the_train_and_val_groups() -> None:
    """Each train+val group is the test split of exactly one fold; the plain test groups are always left out."""
    from oct_srgan.splitting import split_groups

    groups = [f"subject{i:02d}" for i in range(14)]
    plain = split_groups(groups, 0.15, 0.15, seed=0)
    held_out = [g for g, s in plain.items() if s == "test"]
    tested: list[str] = []
    for k in range(3):
        fold = split_groups(groups, 0.15, 0.15, seed=0, folds=3, fold=k)
        assert all(fold[g] == "drop" for g in held_out)
        assert sum(s == "val" for s in fold.values()) >= 1
        tested += [g for g, s in fold.items() if s == "test"]
    assert sorted(tested) == sorted(g for g in groups if g not in held_out)
