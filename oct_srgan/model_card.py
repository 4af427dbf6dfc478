"""Package a trained generator as the shipped default model, with its model card.

``python -m oct_srgan.model_card GENERATOR DATASET --out oct_srgan/weights [--stage1 GEN1]``
evaluates the generator on the dataset's test split (the same code as ``oct-srgan evaluate``),
then writes ``oct_srgan_x4.pt`` (fp16 weights; the card's numbers in its meta so ``enhance`` and
``serve`` can show them) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

from oct_srgan import __version__
from oct_srgan.checkpoint import load_generator_file, save_generator_file
from oct_srgan.data import eval_items, open_dataset
from oct_srgan.evaluation import EvaluationResult, evaluate, methods_for, summary_markdown
from oct_srgan.fsutil import atomic_path
from oct_srgan.inference import load_generator, prepare_for_inference

MODEL_FILE = "oct_srgan_x4.pt"
CARD_FILE = "MODEL_CARD.md"


def hardware() -> str:
    """A short description of the machine the model was trained on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}){gpu}, torch {torch.__version__}"


def run_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """Wall time and device of the training run that made ``meta``, read from its MLflow run."""
    run_id = meta.get("run_id")
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from oct_srgan import tracking

    tracking.configure()
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return {}
    end = run.info.end_time or run.info.start_time
    return {"wall_time_s": (end - run.info.start_time) / 1000.0, "device": run.data.tags.get("device", "?")}


def _stage_line(meta: dict[str, Any]) -> str:
    meta = {**run_facts(meta), **meta}
    wall = meta.get("wall_time_s")
    wall_text = f"{float(wall) / 60:.1f} min" if wall is not None else "n/a"
    return (
        f"| {meta.get('stage', '?')} | `configs/{meta.get('config_name', '?')}.yaml` | {meta.get('step', '?')} | "
        f"{wall_text} | {meta.get('device', '?')} | {meta.get('run_id', '?')} |"
    )


def card_text(
    spec: dict[str, Any], metas: list[dict[str, Any]], result: EvaluationResult, dataset: Any, n_params: int, size: int
) -> str:
    """The model card in Markdown: data and split, recipe, steps, wall time, hardware, test numbers."""
    counts = {s: len(dataset.split(s)) for s in ("train", "val", "test")}
    groups = {s: dataset.split(s)["group_id"].nunique() for s in ("train", "val", "test")}
    psnr_m, psnr_b = result.mean("model", "psnr"), result.mean("bicubic", "psnr")
    ssim_m, ssim_b = result.mean("model", "ssim"), result.mean("bicubic", "ssim")
    deg = dataset.degradation
    lines = [
        "# oct-srgan default model: 4x super-resolution for retinal SD-OCT B-scans",
        "",
        f"File `{MODEL_FILE}` ({size / 1e6:.2f} MB, fp16 weights, {n_params:,} parameters), made by oct-srgan {__version__}.",
        "",
        "## Summary",
        "",
        f"On the held-out test subjects: **{psnr_m:.2f} dB PSNR / {ssim_m:.4f} SSIM** against "
        f"**{psnr_b:.2f} dB / {ssim_b:.4f}** for bicubic upscaling of the same LR "
        f"(grey channel, data range 1, {spec['scale']}-pixel border shaved).",
        "",
        "## Model",
        "",
        f"SRResNet generator (Ledig et al. 2017) with {spec['num_blocks']} residual blocks of {spec['channels']} "
        f"channels, norm `{spec['norm']}`, x{spec['scale']} upsampling of `{spec['upsample_axes']}` axes "
        f"(`{spec.get('upsample', 'paper')}` layout), "
        f"{spec['in_channels']} input channel(s). The exported weights are the EMA of the generator weights.",
        "",
        "## Data and split",
        "",
        "Duke Bioptigen SD-OCT B-scans (Fang et al., IEEE TMI 32(11):2034-2049, 2013; research use), 14 subjects "
        "x 6 B-scans of 450 x 900, cropped to 448 x 900. Split **by subject** (seed 0): "
        f"{groups['train']} / {groups['val']} / {groups['test']} subjects, "
        f"{counts['train']} / {counts['val']} / {counts['test']} B-scans for train / val / test. "
        f"LR = `{deg.get('mode')}` x{dataset.scale} degradation of `{deg.get('axes')}` axes, speckle {deg.get('speckle')}. "
        f"Dataset hash `{dataset.dataset_hash}`.",
        "",
        "## Recipe",
        "",
        "| stage | config | steps | wall time | device | MLflow run |",
        "|---|---|---|---|---|---|",
        *[_stage_line(m) for m in metas],
        "",
        f"Hardware: {hardware()}.",
        "Stage 1 trains on the pixel MSE; stage 2 fine-tunes it as an SRGAN with content loss from the "
        "discriminator's own features (feature matching; the paper's ImageNet VGG19 needs weights that are "
        "not downloaded here) + 1e-3 adversarial loss + the pixel MSE.",
        "",
        "Retrain with one command: `bash scripts/train_default_model.sh`.",
        "",
        "## Evaluation on the test split",
        "",
        "`oct-srgan evaluate --model default --data <preprocess of ../shared/data/oct/duke_bioptigen> --split test`",
        "",
        summary_markdown(result.summary),
        "`model - bicubic` rows are paired per-image differences with a 95% t-interval.",
        "",
        "## Intended use and limits",
        "",
        "Research on OCT image enhancement. Not a medical device; do not base diagnoses on enhanced images. "
        "Trained on one device (Bioptigen SD-OCT) and one synthetic degradation: scans from other devices or "
        "with other noise may be enhanced less well, and GAN fine-tuning can invent texture that looks like "
        "speckle. A short CPU training: longer training (configs/srresnet.yaml, srgan.yaml on a GPU) gives "
        "better numbers.",
        "",
    ]
    return "\n".join(lines)


def package(generator_file: Path, dataset_dir: Path, out_dir: Path, stage_files: list[Path]) -> Path:
    """Evaluate ``generator_file`` on the test split and write the default model + card to ``out_dir``."""
    dataset = open_dataset(dataset_dir)
    state, spec, meta = load_generator_file(generator_file)
    generator, info = load_generator(generator_file)
    generator = prepare_for_inference(generator)
    items = eval_items(dataset, "test")
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(items, methods_for(generator, info), Path(tmp), shave=int(spec["scale"]), figures=1)
    metas = [load_generator_file(p)[2] for p in stage_files] + [meta]
    evaluation = {
        "split": "test",
        "dataset_hash": dataset.dataset_hash,
        "n_images": len(items),
        **{f"{m}_{k}": result.mean(m, k) for m in ("model", "bicubic") for k in ("psnr", "ssim")},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / MODEL_FILE
    save_generator_file(target, state, spec, {**meta, "evaluation": evaluation, "card": CARD_FILE})
    n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
    with atomic_path(out_dir / CARD_FILE) as tmp_card:
        tmp_card.write_text(card_text(spec, metas, result, dataset, n_params, target.stat().st_size))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="Package a generator as the default model with its card.")
    parser.add_argument("generator", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--stage1", type=Path, action="append", default=[], help="Earlier stages' generator files.")
    args = parser.parse_args()
    target = package(args.generator, args.dataset, args.out, args.stage1)
    print(f"default model: {target}\nmodel card: {target.parent / CARD_FILE}")


if __name__ == "__main__":
    main()
