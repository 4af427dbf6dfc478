"""Shared fixtures (an MLflow store per test, tiny models, the served app) and the ``integration`` marker.

Every test under tests/integration is marked ``integration``, so ``pytest -m "not integration"`` runs
the unit tests alone, without ../shared/data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.helpers")

from oct_srgan import serving  # noqa: E402
from tests.helpers.serving import tiny_model  # noqa: E402

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


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


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with model-card numbers (tests.helpers.serving.tiny_model), one per test module."""
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny_x4.pt")


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[tuple[str, serving.ScanService]]:
    """The serve app on ``model_file``, served from a thread: its base URL and its ScanService.

    Scans may be evicted at once (no grace period), so the module's many uploads never fill it.
    """
    app = serving.create_app(model_file, tile=0, keep_s=(0.0, 0.0))
    with serving.background(app) as base:
        yield base, app.state.service
