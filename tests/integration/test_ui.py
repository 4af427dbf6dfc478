"""``oct-srgan ui`` serves the project's MLflow store: a finished run is listed through the REST API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from oct_srgan import tracking

pytestmark = pytest.mark.slow

STARTUP = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def search_runs(port: int, experiment_id: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def stop(proc: subprocess.Popen) -> None:
    """End the ui command and the MLflow server it started (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_ui_lists_a_finished_run(mlflow_store: Path, tmp_path: Path) -> None:
    with tracking.run("train", "srresnet-tiny-abc123", tags={"dataset_hash": "abc123"}) as active:
        tracking.log_metrics({"val_psnr": 27.5}, step=100)
        run_id = active.info.run_id
    experiment_id = tracking.experiment_id()

    port = free_port()
    command = Path(sys.executable).parent / "oct-srgan"
    assert command.is_file(), f"{command} missing: install the project (pip install -e .)"
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(command), "ui", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            assert proc.poll() is None, f"oct-srgan ui exited with {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                found = search_runs(port, experiment_id)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"MLflow UI not up after {STARTUP} s: {log.read_text()[-2000:]}"
                time.sleep(0.5)
    finally:
        stop(proc)

    runs = found.get("runs", [])
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    info, data = runs[0]["info"], runs[0]["data"]
    assert info["status"] == "FINISHED" and info["run_name"] == "srresnet-tiny-abc123"
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["stage"] == "train" and tags["dataset_hash"] == "abc123"
    assert {m["key"]: (m["value"], m["step"]) for m in data["metrics"]} == {"val_psnr": (27.5, 100)}
    assert f"http://127.0.0.1:{port}" in log.read_text()
    assert "no login" not in log.read_text()  # loopback only: no warning


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_to_ui_closes_the_port_and_leaves_no_child(mlflow_store: Path, tmp_path: Path) -> None:
    """Bound to every interface (``--host 0.0.0.0``), the UI also warns in one line that it has no login."""
    host = "0.0.0.0"
    port = free_port()
    command = Path(sys.executable).parent / "oct-srgan"
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(command), "ui", "--port", str(port), "--host", host], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP
        while not port_open(port):
            assert proc.poll() is None, f"oct-srgan ui exited with {proc.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"MLflow UI not up after {STARTUP} s: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        time.sleep(2)  # let the server start its workers and job runner
        children = descendants(proc.pid)
        assert children, "the ui command started no child process"
        proc.send_signal(signal.SIGTERM)  # the ui command alone, as `kill <pid>` does
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        assert not port_open(port)
        assert sorted(pid for pid in children if not gone(pid)) == []
        warned = ("warning: --host 0.0.0.0: the MLflow UI is reachable from the network without authentication; "
                  "anyone who can reach this address can read and delete the runs")
        assert warned in log.read_text()
    finally:
        stop(proc)
