"""DDP under torchrun on CPU (gloo): two ranks train in lock-step, only rank 0 logs and writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tifffile
from mlflow import MlflowClient
from PIL import Image

from oct_srgan import checkpoint
from oct_srgan.models import build_generator
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from tests.paths import DUKE, REPO

pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def test_torchrun_two_ranks_stay_identical_and_log_one_run(tmp_path: Path, mlflow_store: Path) -> None:
    average = tifffile.imread(DUKE / "subject02" / "average.tif")
    for i, group in enumerate("abc"):  # three different retina patches: identical content would share a split
        (tmp_path / "src" / group).mkdir(parents=True)
        Image.fromarray(average[180:244, 300 + 64 * i : 364 + 64 * i]).save(tmp_path / "src" / group / "patch.png")
    prepare_dataset([tmp_path / "src"], tmp_path / "ds", PrepareOptions(val_fraction=0.34, test_fraction=0.0))
    spec = {"in_channels": 1, "channels": 8, "num_blocks": 1, "scale": 4, "norm": "batch", "upsample_axes": "both"}
    init = checkpoint.save_generator_file(tmp_path / "init.pt", build_generator(spec).state_dict(), spec, {})
    overrides = [
        "model.channels=8", "model.num_blocks=1", "model.disc_channels=8", "data.hr_crop=32",
        "train.batch_size=2", "train.iterations=4", "train.log_interval=2", "train.checkpoint_interval=2",
        "train.stage=srgan", f"train.init_from={init}", "loss.pixel_weight=0", "loss.content_weight=1",
        "loss.adversarial_weight=1e-3", "loss.extractor.name=discriminator", "loss.extractor.layers=[]",
        "tracking.register_model=false",
    ]
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "oct_srgan.pipelines.cli", "train", "--config", str(REPO / "configs" / "smoke.yaml"),
        "--data", str(tmp_path / "ds"), "--out", str(out), "--no-progress",
        *[arg for item in overrides for arg in ("--set", item)],
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("generator: ") == 1

    uri = f"sqlite:///{mlflow_store / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["world_size"] == "2"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "ddp/param_max_abs_diff")] == [0.0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_d")] == [2, 4]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]
    assert checkpoint.load_checkpoint(out / "checkpoints" / "step_0000004.pt")["run_id"] == run.info.run_id
