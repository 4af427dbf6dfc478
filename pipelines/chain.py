"""``oct-srgan chain``: the whole job on a folder of scans, every stage nested under one MLflow parent run."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from oct_srgan.config import shared_data_root
from oct_srgan.pipelines.common import fail, user_errors
from oct_srgan.processes import run_child

app = typer.Typer(add_completion=False)


def _stage(args: list[str], env: dict[str, str], logs: Path) -> None:
    """Run one stage as its own process (so each gets a clean MLflow run), its printed tables going to
    ``logs/<stage>.log`` and its progress bar and errors to the terminal; stop the chain if it fails.
    SIGTERM/SIGINT reach the stage's whole process group and the chain waits for it."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{len(list(logs.glob('*.log'))) + 1}-{args[0]}.log"
    typer.echo(f"{args[0]}: output in {log}")
    with open(log, "w") as stdout:
        stdout.write(f"$ oct-srgan {' '.join(args)}\n")
        stdout.flush()
        ended = run_child([sys.executable, "-m", "oct_srgan.pipelines.cli", *args], env=env, stdout=stdout)
    if ended.stopped_by is not None:
        name = signal.Signals(ended.stopped_by).name
        raise fail(f"stopped by {name} during stage '{args[0]}'; earlier outputs are kept", ended.exit_code)
    if ended.code != 0:
        raise fail(f"stage '{args[0]}' failed with exit code {ended.exit_code} (its output: {log}); earlier outputs "
                   "are kept", ended.exit_code)


@app.command()
@user_errors
def chain(
    scans: Path = typer.Option(shared_data_root() / "oct" / "duke_bioptigen", "--scans", help="Folder of training scans (one sub-folder per subject)."),
    enhance_input: list[Path] = typer.Option(
        [shared_data_root() / "oct" / "formats" / "oct_volume_s14.dcm"], "--enhance", help="Scan(s) to enhance at the end."
    ),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", help="Folder for the dataset, runs, tables and enhanced scans."),
    full: bool = typer.Option(False, "--full", help="Train stage 1 of the default model's CPU recipe instead of the main job's short fine-tune."),
    config: Optional[str] = typer.Option(None, "--config", help="Training config, a shipped name or a YAML path (default: main, a few minutes' fine-tune of the shipped model; overrides --full)."),
    reference: str = typer.Option("average", "--reference", help="Regex on file name stems marking each subject's clean reference scan ('' = none)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """preprocess → train → evaluate (the trained and the shipped model) → enhance, under one MLflow parent run."""
    from oct_srgan import tracking
    from oct_srgan.chain_run import record_chain
    from oct_srgan.config import resolve_config
    from oct_srgan.job_summary import Gain, best, summary_lines

    started = time.monotonic()
    tracking.check_store()
    cfg = resolve_config(config or ("oct_x4_srresnet" if full else "main"))
    name = cfg.stem
    data, run_dir, logs = out / "dataset", out / "runs" / name, out / "logs"
    evaluations = {name: out / "evaluate" / name, "default": out / "evaluate" / "default"}
    if logs.is_dir():
        for old in logs.glob("*.log"):
            old.unlink()
    with tracking.run("chain", f"chain-{name}", tags={"config": name}) as parent:
        env = {**os.environ, "OCT_SRGAN_PARENT_RUN_ID": parent.info.run_id, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
        _stage(["preprocess", str(scans), "--out", str(data), "--overwrite", *(["--reference", reference] if reference else [])], env, logs)
        _stage(["train", "--config", str(cfg), "--data", str(data), "--out", str(run_dir), "--device", device, "--overwrite"], env, logs)
        model = run_dir / "generator.pt"
        for label, folder in evaluations.items():
            which = str(model) if label == name else "default"
            _stage(["evaluate", "--model", which, "--data", str(data), "--split", "test", "--out", str(folder), "--overwrite", "--device", device], env, logs)
        gains = [Gain.read(label, folder) for label, folder in evaluations.items()]
        chosen = best(gains).label
        enhance_model = str(model) if chosen == name else "default"
        _stage(["enhance", *map(str, enhance_input), "--out", str(out / "enhanced"), "--model", enhance_model, "--overwrite", "--compare", "--device", device], env, logs)
        record_chain(data, evaluations, model)
    lines = summary_lines(data=data, gains=gains, evaluations=evaluations, model=model, enhanced=out / "enhanced",
                          enhanced_with=chosen, logs=logs, parent_run=parent.info.run_id,
                          tracking_uri=tracking.tracking_uri(), minutes=(time.monotonic() - started) / 60)
    typer.echo("\n".join(lines))
