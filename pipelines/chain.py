"""``oct-srgan chain``: the whole job on a folder of scans, every stage nested under one MLflow parent run."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from oct_srgan.pipelines.common import fail, user_errors
from oct_srgan.processes import run_child

app = typer.Typer(add_completion=False)


def _stage(args: list[str], env: dict[str, str]) -> None:
    """Run one stage as its own process (so each gets a clean MLflow run) and stop the chain if it fails."""
    typer.echo(f"\n$ oct-srgan {' '.join(args)}")
    ended = run_child([sys.executable, "-m", "oct_srgan.pipelines.cli", *args], env=env)
    if ended.stopped_by is not None:
        name = signal.Signals(ended.stopped_by).name
        raise fail(f"stopped by {name} during stage '{args[0]}'; earlier outputs are kept", ended.exit_code)
    if ended.code != 0:
        raise fail(f"stage '{args[0]}' failed with exit code {ended.exit_code}; earlier outputs are kept", ended.exit_code)


@app.command()
@user_errors
def chain(
    scans: Path = typer.Option(Path("../shared/data/oct/duke_bioptigen"), "--scans", help="Folder of training scans (one sub-folder per subject)."),
    enhance_input: list[Path] = typer.Option(
        [Path("../shared/data/oct/formats/oct_volume_s14.dcm")], "--enhance", help="Scan(s) to enhance at the end."
    ),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", help="Folder for the dataset, runs, tables and enhanced scans."),
    full: bool = typer.Option(False, "--full", help="Train stage 1 of the default model's CPU recipe (training measured 12.6 min on 2 cores, about 15 min in all) instead of the smoke run."),
    config: Optional[str] = typer.Option(None, "--config", help="Stage-1 training config, a shipped name or a YAML path (overrides --full)."),
    reference: str = typer.Option("average", "--reference", help="Regex on file name stems marking each subject's clean reference scan ('' = none)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """preprocess → train → evaluate → enhance, nested under one MLflow parent run."""
    from oct_srgan import tracking
    from oct_srgan.chain_run import record_chain
    from oct_srgan.config import resolve_config

    cfg = resolve_config(config or ("oct_x4_srresnet" if full else "smoke"))
    name = cfg.stem
    data, run_dir = out / "dataset", out / "runs" / name
    with tracking.run("chain", f"chain-{name}", tags={"config": name}) as parent:
        env = {**os.environ, "OCT_SRGAN_PARENT_RUN_ID": parent.info.run_id, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
        _stage(["preprocess", str(scans), "--out", str(data), "--overwrite", *(["--reference", reference] if reference else [])], env)
        _stage(["train", "--config", str(cfg), "--data", str(data), "--out", str(run_dir), "--device", device, "--overwrite"], env)
        model = run_dir / "generator.pt"
        _stage(["evaluate", "--model", str(model), "--data", str(data), "--split", "test", "--out", str(out / "evaluate" / name), "--overwrite", "--device", device], env)
        if not (full or config):
            # The shipped default model on the same test subjects, for comparison with the smoke model.
            _stage(["evaluate", "--model", "default", "--data", str(data), "--split", "test", "--out", str(out / "evaluate" / "default"), "--overwrite", "--device", device], env)
        enhance_model = str(model) if full or config else "default"
        _stage(["enhance", *map(str, enhance_input), "--out", str(out / "enhanced"), "--model", enhance_model, "--overwrite", "--compare", "--device", device], env)
        labels = (name, *([] if full or config else ["default"]))
        record_chain(data, {label: out / "evaluate" / label for label in labels}, model)
    from oct_srgan.evaluation import headline

    target = "against the clean references" if reference else "against the test scans themselves"
    typer.echo(f"\ntest subjects, {target}:")
    for label in labels:
        typer.echo(f"  {label + ' model':<22} {headline(out / 'evaluate' / label)}")
    typer.echo(
        f"\ndone. dataset: {data}  model: {model}  evaluation: {out / 'evaluate' / name}  enhanced scans: {out / 'enhanced'}\n"
        f"MLflow parent run {parent.info.run_id}; open the UI with: oct-srgan ui  (then http://127.0.0.1:5000)"
    )
