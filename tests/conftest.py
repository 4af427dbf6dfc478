"""Shared fixtures: the real data in ../shared/data and an MLflow store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DUKE = SHARED_DATA / "oct" / "duke_bioptigen"
FORMATS = SHARED_DATA / "oct" / "formats"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"real data missing at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SQLite MLflow store, so nothing touches the repo's mlruns/."""
    store = tmp_path / "mlruns"
    store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.delenv("OCT_SRGAN_PARENT_RUN_ID", raising=False)
    return store


@pytest.fixture(scope="session")
def tiny_generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-init x4 generator in the portable file format (fast; for I/O and CLI tests)."""
    import torch

    from oct_srgan.checkpoint import save_generator_file
    from oct_srgan.models import srresnet

    torch.manual_seed(0)
    g = srresnet(in_channels=1, channels=8, num_blocks=1, scale=4, norm="none")
    path = tmp_path_factory.mktemp("models") / "tiny_x4.pt"
    save_generator_file(path, g.state_dict(), g.spec, {"stage": "test", "run_id": "none"})
    return path
