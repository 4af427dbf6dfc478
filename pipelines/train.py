"""``oct-srgan train``: one training stage (SRResNet or SRGAN) from a config, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oct_srgan.pipelines.common import TERMINATED_EXIT, user_errors

app = typer.Typer(add_completion=False)

INTERRUPTED_EXIT = 130  # the shell's code for Ctrl+C; SIGTERM (also on another rank) exits TERMINATED_EXIT


@app.command()
@user_errors
def train(
    config: str = typer.Option(
        ..., "--config", "-c", help="Config: a shipped name (smoke, oct_x4_srresnet, oct_x4_srgan, srresnet, srgan, cpu, default) or a YAML path."
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder written by 'oct-srgan preprocess'."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder for checkpoints and generator.pt (default: runs/<config name>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set train.lr=1e-5 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out (same MLflow run)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N (default: the config's train.device)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the checkpoints of another run in a non-empty --out."),
) -> None:
    """Train the generator (stage srresnet) or the GAN (stage srgan); under torchrun, one process per GPU."""
    from oct_srgan import tracking
    from oct_srgan.config import load_config
    from oct_srgan.training import train as run_training

    cfg = load_config(config, set_)
    tracking.check_store()
    out_dir = out if out is not None else Path("runs") / cfg.name
    result = run_training(cfg, data, out_dir, resume=resume, device=device, progress=not no_progress,
                          overwrite=overwrite)
    if result.interrupted:
        where = f"checkpoint {result.checkpoint_path}; " if result.checkpoint_path else ""
        how = "interrupted" if result.stop_signal == "SIGINT" else "terminated (SIGTERM)"
        typer.echo(f"{how} at step {result.step}: {where}continue with --resume --out {out_dir}", err=True)
        raise typer.Exit(INTERRUPTED_EXIT if result.stop_signal == "SIGINT" else TERMINATED_EXIT)
    if result.generator_path is None:
        return
    summary = ", ".join(f"{k.removeprefix('val/')} {v:.4f}" for k, v in result.metrics.items() if k.startswith("val/"))
    typer.echo(f"trained {cfg.train.stage} to step {result.step}" + (f": {summary}" if summary else ""))
    typer.echo(f"generator: {result.generator_path}")
    typer.echo(f"checkpoint: {result.checkpoint_path}")
    typer.echo(f"MLflow run {result.run_id} in {tracking.tracking_uri()}; model {result.model_uri}")
