"""One MLflow store per test module, for modules whose module-scoped fixtures log runs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for this module: creating a SQLite store costs seconds, every test would pay it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def module_store(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of a module that imports this logs to that module's store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    return store_uri
