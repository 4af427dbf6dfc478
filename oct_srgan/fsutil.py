"""Atomic file and folder writes, so a killed process never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .processes import alive


@contextlib.contextmanager
def atomic_path(target: str | Path, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it replaces ``target`` only if the block succeeds.

    The temporary name keeps the target's suffixes so writers that pick a format by extension
    (PIL, nibabel) still do the right thing. ``exclusive`` publishes with a hard link, which fails
    with ``FileExistsError`` if ``target`` appeared meanwhile (no check-then-write race).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.{_owner()}", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if exclusive:
            os.link(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# Temp names carry their writer's pid (``.<name>.p<pid>-<random>.tmp<suffix>``), so a later run can
# tell the leftovers of a killed writer from the temps of a run still writing beside it.
_OWNED_TEMP = re.compile(r"^\..*\.p(\d+)-[^/]*\.tmp")


def _owner() -> str:
    return f"p{os.getpid()}-"


def remove_dead_temps(directory: str | Path) -> list[Path]:
    """Delete the temp files and folders in ``directory`` whose writing process no longer runs (a
    killed ``enhance`` or ``preprocess``); temps of live processes are left alone."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    gone = []
    for p in directory.iterdir():
        match = _OWNED_TEMP.match(p.name)
        if match is None or alive(int(match.group(1))):
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        gone.append(p)
    return gone
    return True


def _umask() -> int:
    """The process umask (mkstemp creates 0600 files; outputs should get the usual permissions)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it becomes ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner()}", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            if not overwrite:
                raise FileExistsError(target)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive_dir(directory: str | Path, what: str) -> Iterator[Path]:
    """Hold an ``fcntl.flock`` on ``directory/.lock`` for the block; a second holder fails at once.

    The kernel drops the lock when the process dies, so a killed run never leaves the folder locked.
    """
    import fcntl

    from .errors import OctSrganError

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fh = (directory / LOCK_NAME).open("a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OctSrganError(f"{directory}: another {what} is using this folder (wait for it or choose another)") from None
        yield directory
    finally:
        fh.close()


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete ``.<name>.*.tmp*`` files and folders that killed atomic writes left in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def overlap_of(out: str | Path, inputs: Iterable[str | Path]) -> tuple[Path, str] | None:
    """The first input that ``out`` equals, contains or lies inside, and how; None when apart.

    Paths are compared resolved (symlinks, ``..``, ``.``), so ``preprocess . --out .`` and
    ``preprocess data/scans --out data`` are both caught before anything is written or replaced.
    """
    target = Path(out).resolve()
    for item in inputs:
        src = Path(item).resolve()
        if target == src:
            return Path(item), "is"
        if target in src.parents:
            return Path(item), "contains"
        if src in target.parents:
            return Path(item), "lies inside"
    return None


def refuse_overlap(out: str | Path, inputs: Iterable[str | Path], flag: str = "--out") -> None:
    """Refuse in one line an output folder that is, contains or lies inside an input (it would be replaced)."""
    from .errors import OctSrganError

    hit = overlap_of(out, inputs)
    if hit is not None:
        item, how = hit
        raise OctSrganError(f"{out}: {flag} {how} the input {item}; choose an output folder apart from the inputs")
