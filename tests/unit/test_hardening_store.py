"""Issue 19 item 6: the tracking store. Concurrent first use of a fresh SQLite store never fails, and
every store that cannot work is one line before any work, in seconds, never a traceback."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oct_srgan import tracking
from oct_srgan.errors import TrackingError
from oct_srgan.pipelines.cli import app


def _first_use(uri: str, ready, go, errors) -> None:  # type: ignore[no-untyped-def]
    os.environ["MLFLOW_TRACKING_URI"] = uri
    import mlflow  # noqa: F401  (imported before the start line, so all processes start together)

    ready.release()
    go.wait(60)
    try:
        tracking.check_store()
        with tracking.run("test", "concurrent"):
            tracking.log_params({"p": 1})
    except BaseException as exc:  # the parent reports what a child met
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def test_concurrent_first_use_of_a_fresh_store_never_fails(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, go, errors = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    children = [ctx.Process(target=_first_use, args=(uri, ready, go, errors)) for _ in range(3)]
    for child in children:
        child.start()
    for _ in children:
        assert ready.acquire(timeout=120)
    go.set()
    for child in children:
        child.join(300)
    met = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not met and all(c.exitcode == 0 for c in children), met
    import mlflow

    mlflow.set_tracking_uri(uri)
    assert len(mlflow.search_runs(search_all_experiments=True)) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store_cases(tmp: Path) -> dict[str, tuple[str, str]]:
    """label -> (MLFLOW_TRACKING_URI, what the one line must say)."""
    garbage = tmp / "garbage" / "mlflow.db"
    garbage.parent.mkdir()
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    return {
        "http unreachable": (f"http://127.0.0.1:{_free_port()}", "unreachable"),
        "bogus scheme": ("bogus://x", "unknown scheme"),
        "postgresql without driver": ("postgresql://u:secret@127.0.0.1/db", "no postgresql driver"),
        "file store": (f"file://{tmp / 'fs'}", "plain folder"),
        "random bytes": (f"sqlite:///{garbage}", "not an SQLite database"),
    }


@pytest.mark.parametrize("label", ["http unreachable", "bogus scheme", "postgresql without driver", "file store",
                                   "random bytes"])
def test_a_store_that_cannot_work_is_one_line_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              label: str) -> None:
    uri, says = _store_cases(tmp_path)[label]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    scans = tmp_path / "scans" / "a"
    scans.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(scans / "s.png")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["preprocess", str(scans.parent), "--out", str(tmp_path / "ds"), "--no-progress"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert says in lines[0] and "unexpected" not in lines[0] and "secret" not in lines[0]
    assert not (tmp_path / "ds").exists() and time.monotonic() - started < 30  # before the work, in seconds


def test_read_only_store_is_one_line(tmp_path: Path, mlflow_store: Path) -> None:
    tracking.check_store()
    db = mlflow_store / "mlflow.db"
    db.chmod(0o444)
    try:
        if os.access(db, os.W_OK):
            pytest.skip("root ignores file modes here")
        with pytest.raises(TrackingError, match="read-only"):
            tracking.check_store()
    finally:
        db.chmod(0o644)


def test_read_only_store_refused_by_the_database_is_one_line(mlflow_store: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write any file, so the database itself is opened read-only (SQLite's own refusal)."""
    tracking.check_store()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///file:{mlflow_store / 'mlflow.db'}?mode=ro&uri=true")
    with pytest.raises(TrackingError) as caught:
        with tracking.run("test", "read-only"):
            pass
    assert "read-only" in str(caught.value) and "\n" not in str(caught.value) and "INSERT" not in str(caught.value)


def test_relative_sqlite_uri_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel/mlflow.db")
    tracking.check_store()
    import mlflow

    location = mlflow.get_experiment_by_name(tracking.EXPERIMENT).artifact_location
    assert location == (tmp_path / "rel" / "artifacts").as_uri() and not (tmp_path / "artifacts").exists()


def test_copied_store_refuses_to_write_into_the_originals_artifacts(tmp_path: Path, mlflow_store: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tracking.check_store()
    copy = shutil.copytree(mlflow_store, tmp_path / "copy" / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    with pytest.raises(TrackingError, match="outside this store"):
        tracking.check_store()
