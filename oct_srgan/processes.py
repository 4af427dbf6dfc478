"""Child processes that stop with their parent.

``oct-srgan ui`` and ``chain`` start children (an MLflow server with its uvicorn workers and job
runner; one process per stage). Each child starts a process group of its own, and SIGTERM, SIGINT or
SIGHUP to the parent go to that whole group; the parent then waits for it, and what is still alive
after a grace period is killed, so ``kill <pid>`` never leaves a server answering on a port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 10.0


@dataclass
class ChildResult:
    """How a child ended: its exit code, and the signal that stopped the parent (None: it ended by itself)."""

    code: int
    stopped_by: int | None = None
    signals: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The parent's exit status: the child's code, or 128 + the signal that stopped the parent or the child."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 128 - self.code if self.code < 0 else self.code


def alive(pid: int, *, group: bool = False) -> bool:
    """Whether process ``pid`` (or, with ``group``, any process of the group ``pid``) still exists;
    one owned by another user counts as alive."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(pgid: int, grace_s: float = GRACE_S) -> None:
    """SIGTERM to the group, then SIGKILL to what is left after ``grace_s`` seconds."""
    if not alive(pgid, group=True):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive(pgid, group=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pgid, group=True):
        _signal_group(pgid, signal.SIGKILL)


def run_child(cmd: Sequence[str], env: Mapping[str, str] | None = None, grace_s: float = GRACE_S,
              stdout: IO[str] | None = None) -> ChildResult:
    """Run ``cmd`` in its own process group until it ends; signals to this process go to the group.

    The first forwarded signal asks the children to stop; after ``grace_s`` seconds the group is
    killed. Whatever the child left behind in its group (workers it did not wait for) is stopped too.
    """
    proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, start_new_session=True,
                            stdout=stdout)
    result = ChildResult(code=0)

    def forward(signum: int, frame: FrameType | None) -> None:
        result.signals.append(signum)
        if result.stopped_by is None:
            result.stopped_by = signum
        _signal_group(proc.pid, signum)

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = {s: signal.signal(s, forward) for s in FORWARDED} if main else {}
    try:
        result.code = _wait(proc, result, grace_s)
    finally:
        stop_group(proc.pid, grace_s)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return result


def _wait(proc: subprocess.Popen, result: ChildResult, grace_s: float) -> int:
    """The child's exit code; once a signal was forwarded, the group gets ``grace_s`` to end, then SIGKILL."""
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if result.stopped_by is not None:
            break
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.wait()
