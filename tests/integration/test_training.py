"""Training loop: both stages, MLflow logging, exact resume, checkpoints, failure modes, CLI.

The networks are tiny (16 channels, 2 blocks) and the data is one real 32x32 patch of a Duke
averaged B-scan, in three "subjects" (each one grey level apart at one pixel) so the validation split
holds an image the training split also shows: the SRResNet can overfit it past bicubic within a few hundred steps on one core.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from typer.testing import CliRunner

from oct_srgan import checkpoint, extractors, losses, training
from oct_srgan.errors import ModelError, TrainingError, WeightsNotFoundError
from oct_srgan.models import build_generator
from tests.helpers.store import module_store, store_uri  # noqa: F401
from tests.helpers.training import SRGAN, all_runs, one_thread, random_generator_file, tiny  # noqa: F401
from tests.paths import SMOKE


@pytest.fixture(scope="module")
def srresnet_run(patch_data: Path, store_uri: str, tmp_path_factory):
    """One SRResNet training of 400 steps on the patch, registered as model oct-srgan-test."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store_uri)
        torch.set_num_threads(1)
        cfg = tiny("train.iterations=400", "train.log_interval=100", "train.deterministic=true",
                   "tracking.register_model=true")
        result = training.train(cfg, patch_data, tmp_path_factory.mktemp("srresnet") / "out", progress=False)
    torch.set_num_threads(threads)
    return result


def test_srresnet_overfits_a_patch_beyond_bicubic(srresnet_run) -> None:
    result = srresnet_run
    assert result.step == 400
    assert result.metrics["val/psnr"] > result.metrics["val/psnr_bicubic"] + 0.5
    assert result.metrics["val/ssim"] > result.metrics["val/ssim_bicubic"]
    weights, spec, meta = checkpoint.load_generator_file(result.generator_path)
    assert spec["channels"] == 16 and meta["step"] == 400 and meta["stage"] == "srresnet"
    assert all(v.dtype != torch.float16 for v in weights.values())
    assert result.checkpoint_path.name == "step_0000400.pt"


def test_srresnet_run_is_logged_and_registered(srresnet_run, store_uri: str) -> None:
    result = srresnet_run
    client = MlflowClient(store_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["train.stage"] == "srresnet"
    assert run.data.params["model.channels"] == "16"
    assert run.data.params["world_size"] == "1"
    assert run.data.tags["dataset_hash"] and run.data.tags["device"] == "cpu"
    steps = [m.step for m in client.get_metric_history(result.run_id, "train/pixel")]
    assert steps == [100, 200, 300, 400]
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert "config.yaml" in artifacts and "figures" in artifacts
    assert result.model_uri == "models:/oct-srgan-test/1"
    version = client.get_model_version("oct-srgan-test", "1")
    assert version.tags["stage"] == "srresnet"

    import mlflow.pyfunc

    from oct_srgan.model_download import download_generator_file

    model = mlflow.pyfunc.load_model(result.model_uri)
    lr = np.random.default_rng(0).random((2, 1, 12, 20), dtype=np.float32)
    sr = model.predict(lr)
    assert sr.shape == (2, 1, 48, 80) and sr.min() >= 0 and sr.max() <= 1
    local = download_generator_file(result.model_uri)
    weights, spec, _ = checkpoint.load_generator_file(local)
    generator = build_generator(spec).eval()
    generator.load_state_dict(weights)
    with torch.no_grad():
        np.testing.assert_allclose(generator(torch.from_numpy(lr)).clamp(0, 1).numpy(), sr, atol=1e-6)


def test_srgan_from_mlflow_model_logs_generator_and_discriminator_losses(
    srresnet_run, patch_data: Path, tmp_path: Path, store_uri: str
) -> None:
    cfg = tiny(*SRGAN, "train.iterations=10", f"train.init_from={srresnet_run.model_uri}")
    gan = training.train(cfg, patch_data, tmp_path / "gan", progress=False)
    client = MlflowClient(store_uri)
    run = client.get_run(gan.run_id)
    assert run.data.tags["stage"] == "srgan"
    assert run.data.params["extractor.weights_source"] == "discriminator"
    for name in ("train/loss_g", "train/loss_d", "train/content", "train/adv_g", "train/d_real", "train/d_fake"):
        history = client.get_metric_history(gan.run_id, name)
        assert [m.step for m in history] == [5, 10], name
        assert all(np.isfinite(m.value) for m in history)
    assert gan.generator_path.is_file()
    assert gan.model_uri.startswith("models:/m-")
    from oct_srgan.model_download import download_generator_file

    _, _, meta = checkpoint.load_generator_file(download_generator_file(gan.model_uri))
    assert meta["stage"] == "srgan" and meta["run_id"] == gan.run_id


def test_resume_reaches_the_same_weights_as_an_unbroken_run(patch_data: Path, tmp_path: Path) -> None:
    init = random_generator_file(tmp_path / "init.pt")
    cfg = tiny(
        *SRGAN, "train.iterations=8", "train.checkpoint_interval=4", "train.lr_milestones=[6]",
        f"train.init_from={init}", "train.deterministic=true",
    )
    unbroken = training.train(cfg, patch_data, tmp_path / "a", progress=False)
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "step_0000004.pt", tmp_path / "b" / "checkpoints")
    resumed = training.train(cfg, patch_data, tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 8 and resumed.run_id == unbroken.run_id
    a = checkpoint.load_checkpoint(unbroken.checkpoint_path)
    b = checkpoint.load_checkpoint(resumed.checkpoint_path)
    for key in ("generator", "discriminator", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    assert a["sched_g"]["_last_lr"] == b["sched_g"]["_last_lr"] == [pytest.approx(2e-4)]


def test_missing_vgg19_weights_stop_before_the_first_step(
    patch_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_uri: str
) -> None:
    runs_before = len(all_runs(store_uri))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    init = random_generator_file(tmp_path / "init.pt")
    vgg = [*SRGAN, "loss.extractor.name=vgg19", "loss.extractor.layers=[relu2_2]", f"train.init_from={init}"]
    with pytest.raises(WeightsNotFoundError) as info:
        training.train(tiny(*vgg, "train.iterations=2"), patch_data, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints" / extractors.VGG19_FILE_NAME) in message
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert len(all_runs(store_uri)) == runs_before


def test_random_vgg19_file_in_torchvision_format_lets_training_start(patch_data: Path, tmp_path: Path) -> None:
    full = extractors.VGG19Features(["pool5"])
    weights = tmp_path / "vgg19-random.pth"
    torch.save({k: v for k, v in full.state_dict().items() if k.startswith("features.")}, weights)
    init = random_generator_file(tmp_path / "init.pt")
    cfg = tiny(
        *SRGAN, "loss.extractor.name=vgg19", "loss.extractor.layers=[relu5_4]", f"loss.extractor.weights={weights}",
        f"train.init_from={init}", "train.iterations=2",
    )
    result = training.train(cfg, patch_data, tmp_path / "out", progress=False)
    assert result.step == 2
    run = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(result.run_id)
    assert run.data.params["extractor.weights_source"] == str(weights)


def test_non_finite_loss_stops_with_the_last_good_checkpoint(
    patch_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    forward = losses.PixelLoss.forward

    def nan_on_third_step(self, sr, hr):
        calls["n"] += 1
        loss = forward(self, sr, hr)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(losses.PixelLoss, "forward", nan_on_third_step)
    with pytest.raises(TrainingError) as info:
        training.train(tiny("train.iterations=10", "train.checkpoint_interval=1"), patch_data, tmp_path / "out",
                       progress=False)
    good = tmp_path / "out" / "checkpoints" / "step_0000001.pt"
    assert str(info.value).startswith("non-finite loss at step 3 ")
    assert str(info.value).endswith(f"last good checkpoint: {good}")
    state = checkpoint.load_checkpoint(good)
    assert state["step"] == 1
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


def signal_during_step(monkeypatch: pytest.MonkeyPatch, step_no: int, signum: int) -> None:
    """Make the training step ``step_no`` send ``signum`` to this process while it runs."""
    step = training.train_step
    calls = {"n": 0}

    def signalling_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step_no:
            os.kill(os.getpid(), signum)
        return step(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", signalling_step)


def test_signal_finishes_the_step_and_saves_a_checkpoint(
    patch_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal_during_step(monkeypatch, 3, signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)
    result = training.train(tiny("train.iterations=10", "data.num_workers=1"), patch_data, tmp_path / "out", progress=False)
    assert result.interrupted and result.step == 3 and result.generator_path is None
    assert result.stop_signal == "SIGINT"
    assert result.checkpoint_path == tmp_path / "out" / "checkpoints" / "step_0000003.pt"
    assert checkpoint.load_checkpoint(result.checkpoint_path)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_stops_train_with_exit_143_and_a_checkpoint(
    patch_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oct_srgan.pipelines.train import app

    signal_during_step(monkeypatch, 2, signal.SIGTERM)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["--config", str(SMOKE), "--data", str(patch_data), "--out", str(out),
                                      "--no-progress", "--set", "train.iterations=10", "--set", "data.num_workers=0"])
    assert result.exit_code == 143, result.output
    assert f"terminated (SIGTERM) at step 2: checkpoint {out / 'checkpoints' / 'step_0000002.pt'}" in result.output


def test_checkpoint_of_another_architecture_is_refused(patch_data: Path, tmp_path: Path) -> None:
    training.train(tiny("train.iterations=2"), patch_data, tmp_path / "out", progress=False)
    with pytest.raises(ModelError, match=r"step_0000002\.pt: checkpoint is for another architecture \(channels=16, this config needs 8\)"):
        training.train(tiny("model.channels=8", "train.iterations=4"), patch_data, tmp_path / "out", resume=True, progress=False)
    other = random_generator_file(tmp_path / "blocks3.pt", num_blocks=3)
    with pytest.raises(ModelError, match=r"blocks3\.pt: checkpoint is for another architecture \(num_blocks=3"):
        training.train(tiny(*SRGAN, f"train.init_from={other}"), patch_data, tmp_path / "gan", progress=False)


def test_cli_trains_and_reports_one_line_errors(patch_data: Path, tmp_path: Path) -> None:
    from oct_srgan.pipelines.train import app

    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["--config", str(SMOKE), "--data", str(patch_data), "--out", str(out), "--no-progress"]
    ok = runner.invoke(app, [*args, "--set", "train.iterations=2", "--set", "tracking.register_model=false"])
    assert ok.exit_code == 0, ok.output
    assert f"generator: {out / 'generator.pt'}" in ok.output and (out / "generator.pt").is_file()
    bad = runner.invoke(app, ["--config", str(SMOKE), "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: ") and len(bad.output.strip().splitlines()) == 1
    args = ["--config", str(SMOKE), "--data", str(patch_data), "--out", str(tmp_path / "other"), "--no-progress"]
    gan = runner.invoke(app, [*args, "--set", "train.stage=srgan"])
    assert gan.exit_code == 2 and "train.init_from" in gan.output
    big = runner.invoke(app, [*args, "--set", "data.hr_crop=48"])
    assert big.exit_code == 2 and "is smaller than data.hr_crop=48" in big.output
