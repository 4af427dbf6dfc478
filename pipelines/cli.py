"""The ``oct-srgan`` command: one sub-command per stage module."""

from __future__ import annotations

import typer

from oct_srgan.pipelines import chain, enhance, evaluate, preprocess, serve, train, ui
from oct_srgan.pipelines.common import OneLineErrors

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


app.command("preprocess")(preprocess.preprocess)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("enhance")(enhance.enhance)
app.command("ui")(ui.ui)
app.command("serve")(serve.serve)
app.command("chain")(chain.chain)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
