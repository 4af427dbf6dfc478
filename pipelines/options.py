"""Options more than one command takes, with the checks that run while the command line is parsed, so a
bad value is one usage line before any model is loaded or socket opened (Typer's ``min``/``max`` cover
single integers; the callbacks here cover the rest), and the warning for an address beyond this machine."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import typer

MAX_PORT = 65535
# The ``--model`` names of the shipped weights for help texts (``OctSrganWeights.names()``, which a
# test keeps equal; the table itself loads torch, which parsing a command line should not).
SHIPPED_NAMES = "default, gan, lateral, averaged"
# Half of the largest tile the automatic choice uses on a big machine; more is surely a typo.
MAX_AUTO_OVERLAP = 256


def positive_finite(value: float) -> float:
    """A size in MB: a positive, finite number (``nan`` and ``inf`` are refused)."""
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a positive finite number")
    return value


def overlap_problem(tile: int | None, overlap: int | None) -> str | None:
    """Why ``--overlap`` does not fit ``--tile`` (None: it fits). Beyond half the tile some image sizes
    have no window layout; without ``--tile`` (automatic tiles) more than ``MAX_AUTO_OVERLAP`` is a typo."""
    if overlap is None or tile == 0:
        return None
    if tile is None:
        return (f"{overlap} is over {MAX_AUTO_OVERLAP}, the most with automatic tiles (or give --tile)"
                if overlap > MAX_AUTO_OVERLAP else None)
    return f"{overlap} is over half of --tile {tile} ({tile // 2})" if overlap > tile // 2 else None


def _tile_and_overlap(ctx: typer.Context, param: typer.CallbackParam, value: int | None) -> int | None:
    """The callback of both ``--tile`` and ``--overlap``: click parses options in command-line order,
    so whichever of the two comes second checks the pair. A default overlap is capped, not refused."""
    given = {**ctx.params, str(param.name): value}
    source = ctx.get_parameter_source("overlap")
    if "tile" in given and "overlap" in given and source is not None and source.name != "DEFAULT":
        problem = overlap_problem(given["tile"], given["overlap"])
        if problem:
            raise typer.BadParameter(problem, param_hint="'--overlap'")
    return value


def port_option(default: int, help: str, minimum: int = 0) -> Any:
    """``--port``/``-p``: a TCP port (0, where ``minimum`` allows it, picks a free one)."""
    return typer.Option(default, "--port", "-p", min=minimum, max=MAX_PORT, help=help)


def tile_option(default: int | None, help: str) -> Any:
    """``--tile``: a tile side in LR pixels, 0 or more, checked against ``--overlap``."""
    return typer.Option(default, "--tile", min=0, callback=_tile_and_overlap, help=help)


def overlap_option(default: int | None, help: str) -> Any:
    """``--overlap``: a tile overlap in LR pixels, 0 or more and at most half of ``--tile``."""
    return typer.Option(default, "--overlap", min=0, callback=_tile_and_overlap, help=help)


def max_pixels_option(default: int, help: str) -> Any:
    """``--max-pixels``: the largest decoded scan, 0 (no limit) or more."""
    return typer.Option(default, "--max-pixels", min=0, help=help)


def exposed(host: str) -> bool:
    """Whether binding ``host`` makes a port reachable beyond this machine (anything but loopback)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True


def warn_if_exposed(host: str, what: str, risk: str) -> None:
    """One ``warning:`` line when ``host`` is reachable from the network: ``what`` has no login."""
    if exposed(host):
        typer.echo(f"warning: --host {host}: {what} is reachable from the network without authentication; "
                   f"anyone who can reach this address can {risk}", err=True)
