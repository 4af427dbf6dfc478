"""MLflow as its users expect, read back from the store: dataset lineage on every stage, evaluation
metrics on the LoggedModel and its registered version, aliases, and a served model that answers.

One small real dataset (three subjects, one 64x64 patch of a Duke average scan each, in folders
named like patients) goes through the CLI stages preprocess → train (smoke config, a few steps)
→ evaluate, all in one module-scoped store.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from mlflow import MlflowClient
from PIL import Image
from typer.testing import CliRunner

from oct_srgan import tracking
from oct_srgan.pipelines.cli import app
from tests.helpers.store import module_store, store_uri  # noqa: F401
from tests.paths import DUKE, SMOKE

pytestmark = pytest.mark.slow

MODEL = "oct-srgan-smoke"
PATIENT_DIRS = ("Doe^Jane", "Roe^Richard", "Poe^Edgar")
FILE_STEM = "jane_doe_1961-04-02"
runner = CliRunner()


def cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory, store_uri: str) -> dict:
    """preprocess, train and evaluate (test split, on the training output folder) through the CLI."""
    root = tmp_path_factory.mktemp("lineage")
    src = root / "scans"
    for i, name in enumerate(PATIENT_DIRS):
        patch = tifffile.imread(DUKE / f"subject0{i + 1}" / "average.tif")[180:244, 380:444]
        (src / name).mkdir(parents=True)
        Image.fromarray(patch).save(src / name / f"{FILE_STEM}.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store_uri)
        mp.delenv("OCT_SRGAN_PARENT_RUN_ID", raising=False)
        data, out = root / "ds", root / "runs" / "smoke"
        cli("preprocess", str(src), "--out", str(data), "--val-fraction", "0.34", "--test-fraction", "0.34",
            "--no-progress")
        cli("train", "--config", str(SMOKE), "--data", str(data), "--out", str(out), "--no-progress",
            "--set", "train.iterations=4", "--set", "train.val_interval=4", "--set", "train.checkpoint_interval=4")
        evaluated = cli("evaluate", "--model", str(out), "--data", str(data), "--split", "test",
                        "--out", str(root / "eval"), "--no-progress", "--device", "cpu")
    torch.set_num_threads(threads)
    info = json.loads((data / "dataset.json").read_text())
    client = MlflowClient(store_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_stage = {r.data.tags["stage"]: r for r in runs}
    return {"root": root, "src": src, "data": data, "out": out, "hash": info["dataset_hash"], "runs": by_stage,
            "evaluate_output": evaluated.output}


def dataset_inputs(run) -> dict[str, object]:
    """context → DatasetInput of a run, as the store returns it."""
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    return {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in inputs}


def test_every_stage_logs_its_splits_as_datasets_with_the_dataset_hash(stages: dict) -> None:
    expected = {"preprocess": {"train", "validation", "test"}, "srresnet": {"train", "validation"}, "evaluate": {"test"}}
    for stage, contexts in expected.items():
        inputs = dataset_inputs(stages["runs"][stage])
        assert set(inputs) == contexts, stage
        for context, inp in inputs.items():
            ds = inp.dataset
            assert ds.digest == stages["hash"]
            assert ds.name == f"oct-srgan-dataset-{stages['hash']}-{context}"
            assert json.loads(ds.source) == {"format": "oct-srgan-dataset/1", "dataset_hash": stages["hash"],
                                             "split": {"validation": "val"}.get(context, context)}
            columns = [c["name"] for c in json.loads(ds.schema)["mlflow_colspec"]]
            assert columns == list(tracking.DATASET_COLUMNS)
            assert json.loads(ds.profile)["num_rows"] == 1
            tags = {t.key: t.value for t in inp.tags}
            assert tags["n_bscans"] == "1" and tags["n_groups"] == "1"


def test_no_source_path_or_patient_name_in_any_dataset_field_or_the_store(stages: dict, store_uri: str) -> None:
    needles = [str(stages["src"]), FILE_STEM, "jane_doe", *PATIENT_DIRS]
    for run in stages["runs"].values():
        for inp in dataset_inputs(run).values():
            ds = inp.dataset
            fields = [ds.name, ds.digest, ds.source_type, ds.source, ds.schema or "", ds.profile or ""]
            fields += [f"{t.key}={t.value}" for t in inp.tags]
            for text in fields:
                for needle in needles:
                    assert needle not in text, f"{needle!r} in dataset field {text!r}"
    db = sqlite3.connect(store_uri[len("sqlite:///"):])
    dump = "\n".join(db.iterdump())
    db.close()
    assert "oct-srgan-dataset-" in dump
    for needle in needles:
        assert needle not in dump, needle


def test_evaluation_metrics_land_on_the_logged_model_and_registered_version(stages: dict) -> None:
    client = MlflowClient()
    evaluate = stages["runs"]["evaluate"]
    version = client.get_model_version_by_alias(MODEL, "evaluated")
    assert evaluate.data.tags["registered_model"] == f"models:/{MODEL}/{version.version}"
    model_id = version.model_id or version.source.removeprefix("models:/")
    assert evaluate.data.tags["model_id"] == model_id
    assert f"metrics recorded on models:/{MODEL}/{version.version} (alias @evaluated)" in stages["evaluate_output"]
    run_psnr = evaluate.data.metrics["model.psnr"]
    assert float(version.tags["eval.test.model.psnr"]) == pytest.approx(run_psnr, rel=1e-5)
    assert "eval.test.model_minus_bicubic.psnr" in version.tags
    assert version.tags["eval.test.dataset_hash"] == stages["hash"]
    assert version.tags["eval.test.run_id"] == evaluate.info.run_id
    assert "test (dataset " in version.description and "PSNR" in version.description
    logged = client.get_logged_model(model_id)
    metrics = {m.key: m for m in logged.metrics}
    assert metrics["model.psnr"].value == pytest.approx(run_psnr)
    assert metrics["model.psnr"].dataset_digest == stages["hash"]
    assert metrics["model.psnr"].dataset_name == f"oct-srgan-dataset-{stages['hash']}-test"
    assert "model_minus_bicubic.ssim" in metrics and "bicubic.psnr" not in metrics
    model_inputs = MlflowClient().get_run(evaluate.info.run_id).inputs.model_inputs
    assert [m.model_id for m in model_inputs] == [model_id]


def test_aliases_resolve_for_loading_and_for_the_registered_version(stages: dict) -> None:
    from oct_srgan.loading import load_model
    from oct_srgan.model_registry import find_model_record

    client = MlflowClient()
    trained = client.get_model_version_by_alias(MODEL, "latest-srresnet")
    assert trained.version == client.get_model_version_by_alias(MODEL, "evaluated").version
    info = load_model(f"models:/{MODEL}@evaluated")
    assert info.source == f"models:/{MODEL}@evaluated" and info.meta["stage"] == "srresnet"
    train_run = stages["runs"]["srresnet"].info.run_id
    for source, file in ((f"models:/{MODEL}@latest-srresnet", None), (f"runs:/{train_run}/model", stages["out"] / "generator.pt"),
                         (str(stages["out"] / "generator.pt"), stages["out"] / "generator.pt")):
        record = find_model_record(source, file)
        assert record is not None and (record.name, record.version) == (MODEL, str(trained.version)), source
        assert record.model_id == (trained.model_id or trained.source.removeprefix("models:/"))
    assert find_model_record("default", stages["root"] / "nothing.pt") is None


def test_logged_model_environment_is_installable_from_a_registry(stages: dict, tmp_path: Path) -> None:
    import mlflow

    from oct_srgan.model_registry import requirements

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}@latest-srresnet", dst_path=str(tmp_path)))
    reqs = (local / "requirements.txt").read_text().split()
    assert reqs == requirements()
    assert f"torch=={torch.__version__.split('+')[0]}" in reqs
    assert not any("+" in r for r in reqs) and not any(r.startswith("oct-srgan") for r in reqs)
    assert {r.split("==")[0] for r in reqs} >= {"mlflow", "torch", "monai", "numpy", "pydicom", "tifffile", "pillow"}
    code = local / "code" / "oct_srgan"
    assert (code / "__init__.py").is_file() and (code / "mlflow_model.py").is_file() and (code / "models").is_dir()
    assert not (code / "weights").exists() and not list(code.rglob("__pycache__"))
    assert "code: code" in (local / "MLmodel").read_text()
    env = {**os.environ, "PYTHONPATH": str(local / "code")}
    probe = "import oct_srgan.mlflow_model as m, sys; print(m.__file__)"
    out = subprocess.run([sys.executable, "-I", "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_predict_refuses_values_outside_the_unit_range_and_tiles_large_inputs(
    stages: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    from oct_srgan.inference import inferer as inference

    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@evaluated")
    rng = np.random.default_rng(0)
    for bad, message in ((np.full((1, 1, 8, 8), 2.0, np.float32), "must lie in [0, 1]"),
                         (np.full((1, 1, 8, 8), -0.5, np.float32), "must lie in [0, 1]"),
                         (np.full((1, 1, 8, 8), np.nan, np.float32), "NaN or infinite")):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            model.predict(bad)
    lr = rng.random((1, 1, 80, 96), dtype=np.float32)
    whole = model.predict(lr)
    tiles: list = []
    real_auto_tile = inference.auto_tile

    def small_budget(size, bytes_per_pixel, budget=None):
        tiles.append(real_auto_tile(size, bytes_per_pixel, budget=int(bytes_per_pixel * 40 * 40)))
        return tiles[-1]

    monkeypatch.setattr(inference, "auto_tile", small_budget)
    tiled = model.predict(lr)
    assert tiles and tiles[0] is not None and tiles[0] < 80
    assert tiled.shape == whole.shape == (1, 1, 320, 384)
    np.testing.assert_allclose(tiled, whole, atol=2e-2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict, timeout: float = 60) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_mlflow_models_serve_answers_invocations(stages: dict, store_uri: str, tmp_path: Path) -> None:
    version = MlflowClient().get_model_version_by_alias(MODEL, "evaluated").version
    port = _free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", f"models:/{MODEL}/{version}", "--env-manager", "local",
         "-p", str(port), "--host", "127.0.0.1", "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping in 180 s"
            time.sleep(1)
        lr = np.random.default_rng(1).random((2, 1, 12, 20), dtype=np.float32)
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": lr.tolist()})
        assert status == 200, body
        assert np.asarray(json.loads(body)["predictions"], dtype=np.float32).shape == (2, 1, 48, 80)
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": (lr * 255).tolist()})
        assert status == 400 and "must lie in [0, 1]" in body
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        log.close()
