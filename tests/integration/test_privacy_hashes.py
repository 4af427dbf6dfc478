"""Logged ids are keyed hashes: a list of candidate subject names or paths cannot confirm membership."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from oct_srgan.io import find_scans
from oct_srgan.pipelines.cli import app
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from tests.paths import DUKE


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unsalted_needles() -> list[str]:
    """What an attacker with a list of candidate names/paths computes: plain sha256 prefixes."""
    needles = []
    for folder in sorted(p for p in DUKE.iterdir() if p.is_dir()):
        needles.append(_sha(folder.name)[:10])
        for scan in sorted(folder.glob("*.tif")):
            needles.append(_sha(f"{folder.name}/{scan.name}")[:12])
    return needles


def _mlflow_dump(store: Path) -> dict[str, bytes]:
    """Every byte the MLflow store holds: each artifact file and an SQL dump of the tracking db."""
    files = {str(p): p.read_bytes() for p in store.rglob("*") if p.is_file() and p.name != "mlflow.db"}
    db = sqlite3.connect(store / "mlflow.db")
    files["mlflow.db (dump)"] = "\n".join(db.iterdump()).encode()
    db.close()
    return files


def test_unsalted_name_and_path_hashes_appear_nowhere_logged(tmp_path: Path, mlflow_store: Path) -> None:
    needles = _unsalted_needles()
    assert len(needles) == 14 + 14 * 6
    result = CliRunner().invoke(app, ["preprocess", str(DUKE), "--out", str(tmp_path / "ds"), "--no-progress"])
    assert result.exit_code == 0, result.output
    manifest = (tmp_path / "ds" / "manifest.csv").read_text()
    for needle in needles:
        assert needle not in manifest, f"unsalted hash {needle} in manifest.csv"
    logged = _mlflow_dump(mlflow_store)
    assert any(name.endswith("manifest.csv") for name in logged)
    for name, data in logged.items():
        text = data.decode("latin-1")
        for needle in [*needles, "subject", str(DUKE)]:
            assert needle not in text, f"{needle!r} found in {name}"
    from oct_srgan.splitting import dataset_key

    key = dataset_key(find_scans([DUKE])).hex()
    assert not any(key in data.decode("latin-1") for data in logged.values())
    sources = pd.read_csv(tmp_path / "ds" / "sources.csv")
    m = pd.read_csv(tmp_path / "ds" / "manifest.csv", dtype=str)
    assert set(sources["scan_id"]) == set(m["scan_id"]) and sources["source"].str.contains("subject").all()


def test_ids_are_stable_across_runs_on_the_same_inputs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for subj in ("01", "02", "03"):
        (src / f"subject{subj}").mkdir(parents=True)
        for name in ("1.tif", "2.tif"):
            (src / f"subject{subj}" / name).symlink_to(DUKE / f"subject{subj}" / name)
    options = PrepareOptions(val_fraction=0.34, test_fraction=0.34, seed=3)
    a = prepare_dataset([src], tmp_path / "a", options)
    b = prepare_dataset([src], tmp_path / "b", options)
    cols = ["group_id", "scan_id", "source_hash", "hr_path"]
    assert a.manifest[cols].equals(b.manifest[cols]) and a.dataset_hash == b.dataset_hash
    assert (tmp_path / "a" / "sources.csv").read_text() == (tmp_path / "b" / "sources.csv").read_text()
    plain = {_sha(f"subject{s}")[:10] for s in ("01", "02", "03")}
    assert not plain & set(a.manifest["group_id"])
    assert a.manifest["group_id"].str.fullmatch(r"[0-9a-f]{10}").all()
    assert a.manifest["source_hash"].str.fullmatch(r"[0-9a-f]{16}").all()
