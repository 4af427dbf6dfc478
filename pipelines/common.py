"""What every stage's CLI shares: quiet third-party chatter and turn library errors into one line."""

from __future__ import annotations

import enum
import functools
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


class Precision(str, enum.Enum):
    """Inference precision; Typer lists the values in --help and refuses others in one line."""

    fp32 = "fp32"
    bf16 = "bf16"


def quiet() -> None:
    """Hide library warnings a user cannot act on; ``OCT_SRGAN_DEBUG=1`` shows them again."""
    if os.environ.get("OCT_SRGAN_DEBUG"):
        return
    warnings.simplefilter("ignore")
    for name in ("monai", "monai.data.nvimgcodec_pydicom_plugin", "mlflow", "alembic", "pydicom", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Run a stage command so a library error reaches the user as ``error: <one line>``, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from oct_srgan.config import ConfigError
        from oct_srgan.errors import OctSrganError

        quiet()
        try:
            return fn(*args, **kwargs)
        except (OctSrganError, ConfigError) as exc:
            raise fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as exc:
            if os.environ.get("OCT_SRGAN_DEBUG"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{exc.strerror or exc}") from None

    return wrapper  # type: ignore[return-value]
