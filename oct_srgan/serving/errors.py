"""Errors of the serving app: a request that cannot be served, a cancelled job, and any error as
the one line a client may see."""

from __future__ import annotations

import re
from pathlib import Path

from .. import errors


class UserError(Exception):
    """A request that cannot be served; ``status`` and a one-line message go back as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Cancelled(Exception):
    """Raised in the worker between B-scans once a job's cancel flag is set."""


def one_line(exc: BaseException, folder: Path | None) -> str:
    """:func:`oct_srgan.errors.one_line` without paths under the server's ``folder`` (clients see it)."""
    text = errors.one_line(exc)
    if folder is not None:
        text = re.sub(re.escape(str(folder)) + r"[^\s:]*:?\s*", "", text)
    return text[:300]
