"""User-facing errors: each carries a one-line message naming the file (or value) and the cause.

The CLI prints ``error: <message>`` and exits non-zero for any of these, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator


class OctSrganError(Exception):
    """Base of every error meant to reach the user as one line."""


class ScanError(OctSrganError):
    """A scan file that cannot be read or written (corrupt, empty, unsupported, wrong shape)."""


class DataError(OctSrganError):
    """A dataset folder or manifest that cannot be used."""


class ModelError(OctSrganError):
    """A checkpoint or model that cannot be loaded or does not fit the task."""


class WeightsNotFoundError(ModelError):
    """Pretrained feature-extractor weights are missing; the message says where to put them."""


class TrainingError(OctSrganError):
    """Training had to stop (NaN loss, bad config at run time)."""


class TrackingError(OctSrganError):
    """The MLflow tracking store cannot be used (unknown scheme, unreachable, read-only, disk full)."""


class DiskFullError(OctSrganError):
    """A write ran out of space (ENOSPC / quota): the message is ``disk full: <path>``."""


DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (Linux)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a full disk or an exhausted quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PixelLimitError(ScanError):
    """A scan whose header declares more decoded pixels than allowed (decompression-bomb guard)."""


class OutputExistsError(ScanError):
    """The output file exists (or another process created it first) and overwriting was not asked for."""


class WriteError(ScanError):
    """An output could not be written (disk full, I/O error): a failure of the run, not a skipped input."""


# Advice a library addresses to its programmers ("Use force=True to force reading."): it names no flag
# of ours, so the user could not follow it; dropped from messages passed on.
_LIBRARY_ADVICE = re.compile(r"[^.;]*\b(?:use|set|pass)\s+\w+=\w+[^.;]*[.;]?", re.IGNORECASE)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of at most 200 characters, without advice about library keyword arguments."""
    text = " ".join(_LIBRARY_ADVICE.sub("", str(exc)).split()).rstrip(" .;,") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def raised_as(make: Callable[[Exception], OctSrganError], keep: type[OctSrganError] = OctSrganError) -> Iterator[None]:
    """Let ``keep`` errors through and turn any other failure into ``make(exc)``: a library's own
    exception becomes the one line the CLI prints."""
    try:
        yield
    except keep:
        raise
    except Exception as exc:
        raise make(exc) from exc
