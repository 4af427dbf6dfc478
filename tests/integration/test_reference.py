"""Reference pairs on real Duke subjects: each scan paired with its subject's average, the pairing in the
hash, the dataset's degradation used in training, evaluation and the exported model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from oct_srgan.config import Config, DataConfig, DegradationConfig
from oct_srgan.data import config_for_dataset, eval_items, open_dataset, train_dataset
from oct_srgan.errors import DataError
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.transforms import downscale
from tests.paths import DUKE, SMOKE


SUBJECTS = ("01", "02", "03", "04")


def _duke_subset(root: Path, scans: tuple[str, ...] = ("test", "1", "average")) -> Path:
    """Four real Duke subjects (symlinked, not copied) with a few scans each."""
    for subj in SUBJECTS:
        folder = root / f"subject{subj}"
        folder.mkdir(parents=True)
        for name in scans:
            (folder / f"{name}.tif").symlink_to(DUKE / f"subject{subj}" / f"{name}.tif")
    return root


@pytest.fixture(scope="module")
def ref_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _duke_subset(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare_dataset([src], out, PrepareOptions(val_fraction=0.25, test_fraction=0.25, seed=0, reference="average"))
    return out


def test_every_scan_is_paired_with_its_own_subjects_average(ref_dataset: Path) -> None:
    info = open_dataset(ref_dataset)
    m = info.manifest
    assert info.has_references and len(m) == len(SUBJECTS) * 3
    sources = pd.read_csv(ref_dataset / "sources.csv")
    name_of = dict(zip(sources["scan_id"], sources["source"]))
    subject_of = {k: Path(v).parent.name for k, v in name_of.items()}
    for row in m.itertuples():
        ref_scan = Path(row.ref_path).name.split("_")[0]
        assert Path(name_of[ref_scan]).stem == "average"
        assert subject_of[ref_scan] == subject_of[row.scan_id]
        assert row.ref_path.startswith(f"{row.split}/{row.group_id}/")
        assert str(row.is_reference) == str(Path(name_of[row.scan_id]).stem == "average")
    assert m.groupby("group_id")["split"].nunique().max() == 1


def test_reference_pairing_is_in_the_hash_and_reproducible(ref_dataset: Path, tmp_path: Path) -> None:
    src = _duke_subset(tmp_path / "src")
    options = PrepareOptions(val_fraction=0.25, test_fraction=0.25, seed=0, reference="average")
    again = prepare_dataset([src], tmp_path / "again", options)
    plain = prepare_dataset([src], tmp_path / "plain", PrepareOptions(val_fraction=0.25, test_fraction=0.25, seed=0))
    assert again.dataset_hash == open_dataset(ref_dataset).dataset_hash
    assert plain.dataset_hash != again.dataset_hash
    assert (plain.manifest["ref_path"] == "").all()


def test_training_and_validation_use_the_datasets_area_degradation(tmp_path: Path) -> None:
    src = _duke_subset(tmp_path / "src", ("test", "average"))
    options = PrepareOptions(val_fraction=0.25, test_fraction=0.25, reference="average",
                             degradation=DegradationConfig(mode="area"))
    prepare_dataset([src], tmp_path / "ds", options)
    info = open_dataset(tmp_path / "ds")
    cfg = config_for_dataset(info, Config())
    assert cfg.data.degradation == DegradationConfig(mode="area") and cfg.data.target == "reference"
    cfg.data.hr_crop = 32
    pair = train_dataset(info, cfg)[0]
    val = eval_items(info, "val")[0]
    for lr, source in ((val["lr"], val["self"]),):
        assert torch.allclose(lr, downscale(source[None], 4, "area")[0], atol=2e-5)
    assert pair["lr"].shape == (1, 8, 8) and pair["hr"].shape == (1, 32, 32)
    with pytest.raises(DataError, match="data.degradation"):
        config_for_dataset(info, Config(data=DataConfig(degradation=DegradationConfig(mode="bicubic"))))


def test_target_reference_without_references_is_refused(tmp_path: Path) -> None:
    src = _duke_subset(tmp_path / "src", ("test",))
    prepare_dataset([src], tmp_path / "ds", PrepareOptions(val_fraction=0.25, test_fraction=0.25))
    info = open_dataset(tmp_path / "ds")
    assert config_for_dataset(info, Config()).data.target == "self"
    with pytest.raises(DataError, match="no references"):
        config_for_dataset(info, Config(data=DataConfig(target="reference")))


def test_eval_items_score_noisy_inputs_against_the_reference(ref_dataset: Path) -> None:
    info = open_dataset(ref_dataset)
    items = eval_items(info, "test")
    assert items and all(it["hr"] is it["reference"] for it in items)
    assert all(not torch.equal(it["self"], it["reference"]) for it in items)


def test_exported_generator_records_the_degradation(tmp_path: Path, ref_dataset: Path) -> None:
    from oct_srgan.checkpoint import load_generator_file
    from oct_srgan.config import load_config
    from oct_srgan.training import train

    cfg = load_config(SMOKE,
                      ["train.iterations=2", "train.val_interval=2", "train.checkpoint_interval=2",
                       "tracking.register_model=false", "data.max_val_images=1"])
    result = train(cfg, ref_dataset, tmp_path / "run", progress=False)
    meta = load_generator_file(result.generator_path)[2]
    assert meta["degradation"] == {"mode": "bicubic", "axes": "both", "speckle": 0.0}
    assert meta["target"] == "reference"


def test_evaluate_refuses_a_model_trained_on_another_degradation(ref_dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from oct_srgan.checkpoint import save_generator_file
    from oct_srgan.data import check_model_degradation
    from oct_srgan.models import srresnet
    from oct_srgan.pipelines.cli import app

    info = open_dataset(ref_dataset)
    check_model_degradation(info, {"degradation": {"mode": "bicubic", "axes": "both", "speckle": 0.0}}, "m")
    check_model_degradation(info, {}, "old model without a record")
    g = srresnet(in_channels=1, channels=8, num_blocks=1, scale=4, norm="none")
    model = save_generator_file(tmp_path / "area.pt", g.state_dict(), g.spec,
                                {"degradation": {"mode": "area", "axes": "both", "speckle": 0.0}})
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), "--data", str(ref_dataset), "--split", "test",
                                      "--out", str(tmp_path / "e"), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ") and "trained on mode=area" in result.output
