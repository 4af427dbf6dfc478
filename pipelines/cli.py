"""The ``oct-srgan`` command: one sub-command per stage module."""

from __future__ import annotations

import typer

from oct_srgan.pipelines import chain, enhance, evaluate, preprocess, serve, train, ui
from oct_srgan.pipelines.common import OneLineErrors, PlainHelpCommand, exit_on_sigterm

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="4x super-resolution for retinal OCT: preprocess → train → evaluate → enhance, tracked in MLflow.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"oct-srgan {version('oct-srgan')}")
        except PackageNotFoundError:
            typer.echo("oct-srgan (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """4x super-resolution for retinal OCT: preprocess → train → evaluate → enhance, tracked in MLflow."""


app.command("preprocess", cls=PlainHelpCommand)(preprocess.preprocess)
app.command("train", cls=PlainHelpCommand)(train.train)
app.command("evaluate", cls=PlainHelpCommand)(evaluate.evaluate)
app.command("enhance", cls=PlainHelpCommand)(enhance.enhance)
app.command("ui", cls=PlainHelpCommand)(ui.ui)
app.command("serve", cls=PlainHelpCommand)(serve.serve)
app.command("chain", cls=PlainHelpCommand)(chain.chain)


def main() -> None:
    exit_on_sigterm()
    app()


if __name__ == "__main__":
    main()
