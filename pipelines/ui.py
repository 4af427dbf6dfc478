"""``oct-srgan ui``: the MLflow UI on the project's tracking store."""

from __future__ import annotations

import os
import sys

import typer

from oct_srgan.pipelines.common import user_errors
from oct_srgan.pipelines.options import port_option, warn_if_exposed
from oct_srgan.processes import run_child

app = typer.Typer(add_completion=False)


@app.command()
@user_errors
def ui(
    port: int = port_option(5000, help="Port to listen on.", minimum=1),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
) -> None:
    """Open the MLflow UI on mlruns/ (or MLFLOW_TRACKING_URI) to compare runs, metrics and figures."""
    from oct_srgan import tracking

    uri = tracking.configure()
    local = tracking.store_dir()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if local is not None:
        tracking.experiment_id()
        cmd += ["--default-artifact-root", (local / "artifacts").as_uri(), "--workers", "1"]
    typer.echo(f"MLflow UI for {uri} at http://{host}:{port}  (Ctrl+C or kill to stop)")
    warn_if_exposed(host, "the MLflow UI", "read and delete the runs")
    ended = run_child(cmd, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    if ended.stopped_by is not None:
        typer.echo("MLflow UI stopped")
        raise typer.Exit(0)
    raise typer.Exit(ended.code)
