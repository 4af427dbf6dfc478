"""Option checks that run while the command line is parsed, so a bad value is one usage line
before any model is loaded or socket opened (Typer's ``min``/``max`` cover integers; these cover the rest)."""

from __future__ import annotations

import math

import typer

MAX_PORT = 65535


def positive_finite(value: float) -> float:
    """A size in MB: a positive, finite number (``nan`` and ``inf`` are refused)."""
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a positive finite number")
    return value


def all_interfaces(host: str) -> bool:
    """Whether ``host`` binds beyond this machine (anything but a loopback address)."""
    return host not in ("127.0.0.1", "localhost", "::1")
