"""What every stage's CLI shares: quiet third-party chatter and turn library errors into one line."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer

try:  # typer >= 0.26 carries its own copy of click; older versions use click itself
    from typer._click import Context, exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import Context, exceptions as click_errors

F = TypeVar("F", bound=Callable[..., Any])


class _NamedArgument(typer.core.TyperArgument):
    """A positional argument shown the Typer way: ``INPUTS...`` in the usage line and no ``<type>`` box."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.metavar or self.name or ""
        return [name if self.required else f"[{name}]"]


def plain_help(params: list[Any], ctx: Context) -> list[Any]:
    """Flags without a ``<bool>`` value box, a repeatable option typed by one value (``--set <str>``, not
    ``<list[str]>``) and arguments named ``NAME...``, as flags, options and arguments read in Typer."""
    for param in params:
        if isinstance(param, typer.core.TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif param.multiple:
                param.metavar = re.sub(r"list\[(\w+)\]", lambda m: m.group(1).lower(), param.display_type(ctx))
        elif isinstance(param, typer.core.TyperArgument) and not isinstance(param, _NamedArgument):
            param.metavar = param.metavar or (param.name or "").upper() + ("..." if param.nargs != 1 else "")
            param.__class__ = _NamedArgument
    return params


class PlainHelpCommand(typer.core.TyperCommand):
    """A stage command whose ``--help`` reads as Typer's conventions do (see :func:`plain_help`)."""

    def get_params(self, ctx: Context) -> list[Any]:
        return plain_help(super().get_params(ctx), ctx)


class OneLineErrors(typer.core.TyperGroup):
    """The ``oct-srgan`` group: a usage error (bad choice, unknown option) is one ``error:`` line, exit 2.

    Typer would print a framed usage box; every other refusal of the tool is one line, so these are too.
    """

    def get_params(self, ctx: Context) -> list[Any]:
        return plain_help(super().get_params(ctx), ctx)

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: Any) -> Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click_errors.UsageError as exc:
            raise _usage_line(exc) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as exc:
            raise _usage_line(exc) from None


def _usage_line(exc: click_errors.UsageError) -> Exception:
    if isinstance(exc, click_errors.NoArgsIsHelpError):
        return exc
    return fail(" ".join(exc.format_message().split()), exc.exit_code)


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


def user_errors(fn: F | None = None, *, keep_memory: bool = True) -> Any:
    """Run a stage command so a library error reaches the user as ``error: <one line>``, never a traceback.

    ``keep_memory`` applies the allocator settings that keep freed memory for the next pass (fast
    batch work); a long-running server passes False so its memory settles after each job.
    """
    if fn is None:
        return functools.partial(user_errors, keep_memory=keep_memory)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from oct_srgan.allocator import keep_freed_memory
        from oct_srgan.config import ConfigError
        from oct_srgan.errors import DISK_FULL_ERRNOS, OctSrganError

        quiet()
        if keep_memory:
            keep_freed_memory()
        try:
            with _terminate_unwinds():
                return fn(*args, **kwargs)
        except Terminated:
            raise fail("terminated (SIGTERM)", TERMINATED_EXIT) from None
        except (OctSrganError, ConfigError) as exc:
            raise fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as exc:
            if os.environ.get("OCT_SRGAN_DEBUG"):
                raise
            if exc.errno in DISK_FULL_ERRNOS:
                where = f": {exc.filename}" if exc.filename else ""
                raise fail(f"disk full{where} ({exc.strerror or 'no space left on device'})") from None
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{exc.strerror or exc}") from None
        except (typer.Exit, typer.Abort, click_errors.ClickException):
            raise
        except MemoryError:
            raise fail("out of memory (lower --max-pixels, --tile or --batch-size)") from None
        except Exception as exc:
            if os.environ.get("OCT_SRGAN_DEBUG"):
                raise
            cause = _user_error_in_chain(exc)
            if cause is not None:
                raise fail(str(cause).splitlines()[0]) from None
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise fail(f"unexpected {type(exc).__name__}: {text} (OCT_SRGAN_DEBUG=1 shows the traceback)") from None

    return wrapper  # type: ignore[return-value]


TERMINATED_EXIT = 143  # the shell's code for a process ended by SIGTERM


class Terminated(BaseException):
    """SIGTERM raised in the main thread, so ``finally`` blocks remove temp files before the exit."""


def exit_on_sigterm() -> None:
    """SIGTERM while the command line is parsed (before a command installs its own handler) exits 143
    with one line, as during the command, instead of the process dying of the signal (status -15)."""

    def terminated(signum: int, frame: Any) -> None:
        typer.echo("error: terminated (SIGTERM)", err=True)
        raise SystemExit(TERMINATED_EXIT)

    signal.signal(signal.SIGTERM, terminated)


@contextlib.contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` for the block (commands with their own handler, train's loop and
    serve, install it over this one); outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _user_error_in_chain(exc: BaseException) -> BaseException | None:
    """A library error that a third-party wrapper (MONAI's 'applying transform', a DataLoader) re-raised."""
    from oct_srgan.errors import OctSrganError

    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, OctSrganError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
