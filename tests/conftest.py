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
