"""``pip install .`` of a fresh clone: no setuptools warnings, and the page, weights and recipes are installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.slow


def test_pip_install_of_a_fresh_clone_warns_nothing_and_installs_the_data(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of the project")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation", "--no-compile",
         "--target", str(target), str(clone)],
        capture_output=True, text=True, timeout=600,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "would be ignored" not in log and "absent from the `packages`" not in log
    installed = target / "oct_srgan"
    for part in ("web/index.html", "web/app.js", "web/style.css", "weights/oct_srgan_x4.pt", "weights/MODEL_CARD.md",
                 "configs/smoke.yaml", "pipelines/cli.py"):
        assert (installed / part).is_file(), part
