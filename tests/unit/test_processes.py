"""Children started through ``oct_srgan.processes`` stop with their parent: the signal reaches the whole group."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from oct_srgan import processes

# A child that starts a grandchild (both sleep), writes the grandchild's pid, and waits for it.
PARENT_OF_SLEEPER = (
    "import subprocess, sys, pathlib; "
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "pathlib.Path(sys.argv[1]).write_text(str(g.pid)); g.wait()"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_sigterm_to_the_parent_stops_child_and_grandchild(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"

    def send_when_started() -> None:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_when_started, daemon=True).start()
    started = time.monotonic()
    ended = processes.run_child([sys.executable, "-c", PARENT_OF_SLEEPER, str(pid_file)], grace_s=5)
    assert ended.stopped_by == signal.SIGTERM and ended.exit_code == 128 + signal.SIGTERM
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_a_child_that_ends_by_itself_gives_its_code() -> None:
    ended = processes.run_child([sys.executable, "-c", "raise SystemExit(3)"])
    assert ended.stopped_by is None and ended.code == 3 and ended.exit_code == 3


def test_handlers_are_restored_after_the_child_ends() -> None:
    before = {s: signal.getsignal(s) for s in processes.FORWARDED}
    processes.run_child([sys.executable, "-c", "pass"])
    assert {s: signal.getsignal(s) for s in processes.FORWARDED} == before
