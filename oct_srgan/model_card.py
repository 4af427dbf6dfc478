"""Package a trained generator as one of the shipped models, with its model card.

``python -m oct_srgan.model_card GENERATOR DATASET --name default|gan|lateral|averaged --out oct_srgan/weights
[--stage1 GEN1]`` evaluates the generator on the dataset's test split with
:func:`oct_srgan.evaluation.evaluate_split` (the protocol of ``oct-srgan evaluate``, without MLflow),
then writes the weights file and card its :class:`~oct_srgan.loading.OctSrganWeights` entry names
(the card's numbers in the file's meta so ``enhance`` and ``serve`` can show them).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from oct_srgan import __version__
from oct_srgan.checkpoint import load_generator_file, save_generator_file
from oct_srgan.data import open_dataset
from oct_srgan.enums import Split, values
from oct_srgan.evaluation import EvalOptions, evaluate_split, open_model
from oct_srgan.fsutil import atomic_path
from oct_srgan.loading import OctSrganWeights
from oct_srgan.metric_table import metric_names
from oct_srgan.model_card_sections import cv_section, noref_section, protocols_section, speckle_levels_section
from oct_srgan.scoring import EvaluationResult, summary_markdown



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
    return {"wall_time_s": (end - run.info.start_time) / 1000.0, "device": run.data.tags.get("device", "?"),
            "params": dict(run.data.params)}


def recipe_line(meta: dict[str, Any]) -> str:
    """What a stage trained with, read from its logged params (so the card never drifts from the run)."""
    p = run_facts(meta).get("params") or {}
    if not p:
        return f"- {meta.get('stage', '?')}: config `{meta.get('config_name', '?')}` (its MLflow run is not in this store)"
    loss = f"{p.get('loss.pixel')} pixel loss x{p.get('loss.pixel_weight')}"
    if float(p.get("loss.ssim_weight", 0) or 0) > 0:
        loss += f" (+ {p.get('loss.ssim_weight')} x (1 - SSIM))"
    if float(p.get("loss.content_weight", 0) or 0) > 0:
        loss += f" + content ({p.get('loss.extractor.name')} {p.get('loss.extractor.layers')}) x{p.get('loss.content_weight')}"
    if float(p.get("loss.adversarial_weight", 0) or 0) > 0:
        loss += f" + {p.get('loss.adversarial')} adversarial x{p.get('loss.adversarial_weight')}"
    aug = ""
    if float(p.get("data.gain", 0) or 0) or float(p.get("data.offset", 0) or 0):
        aug = f", random gain x(1 +- {p.get('data.gain')}) and offset +- {p.get('data.offset')} of input and target alike"
    aug += _data_recipe(p)
    milestones = p.get("train.lr_milestones", "[]")
    schedule = f" (x{p.get('train.lr_gamma')} at steps {milestones})" if milestones not in ("[]", "", None) else " (constant)"
    return (f"- {meta.get('stage', '?')}: {loss}; {p.get('train.iterations')} updates of batch {p.get('train.batch_size')} "
            f"x HR crop {p.get('data.hr_crop')}{aug}; Adam lr {p.get('train.lr')}{schedule}, EMA {p.get('train.ema_decay')}, "
            f"autocast {p.get('precision')}; "
            f"target `{p.get('data.target')}`.")


def _data_recipe(p: dict[str, Any]) -> str:
    """What the training pairs were made of beyond crops and gain: LR mix, intensity match, lesions, clean inputs."""
    out = ""
    if p.get("data.mix.modes") not in (None, "", "None"):
        out += (f", LR drawn per sample from {p.get('data.mix.modes')} (blur sigma {p.get('data.mix.blur')} HR px on "
                f"{p.get('data.mix.blur_prob')} of samples)")
    if str(p.get("data.intensity_match", "")).lower() == "true" and p.get("data.target") == "reference":
        out += ", reference matched to its input's grey levels"
    if float(p.get("data.lesions.prob", 0) or 0) > 0:
        out += (f", synthetic cysts (up to {p.get('data.lesions.cysts')}) and foci (up to {p.get('data.lesions.foci')}) "
                f"in input and target alike on {p.get('data.lesions.prob')} of crops")
    if float(p.get("data.speckle_kept.prob", 0) or 0) > 0:
        out += (f", inputs keeping a share drawn from {p.get('data.speckle_kept.range')} of their speckle on "
                f"{p.get('data.speckle_kept.prob')} of pairs")
    return out


def _stage_line(meta: dict[str, Any]) -> str:
    meta = {**run_facts(meta), **meta}
    wall = meta.get("wall_time_s")
    wall_text = f"{float(wall) / 60:.1f} min" if wall is not None else "n/a"
    return (
        f"| {meta.get('stage', '?')} | `configs/{meta.get('config_name', '?')}.yaml` | {meta.get('step', '?')} | "
        f"{wall_text} | {meta.get('device', '?')} | {meta.get('run_id', '?')} |"
    )


def _evaluation_tables(result: EvaluationResult) -> list[str]:
    """The headline table (per B-scan and per subject) and, with references, the noisy-target one."""
    lines: list[str] = []
    for target, table in result.summaries.items():
        label = ("Against the clean reference (registered average), noisy inputs" if target == "reference"
                 else "Against each input's own noisy full-resolution scan")
        subjects = result.subject_summaries[target]
        lines += [f"### {label}", "", summary_markdown(table),
                  f"Subjects as the unit (n = {int(subjects['n'].max())}: an interval over so few subjects is wide):", "",
                  summary_markdown(subjects[subjects["method"] == "model - bicubic"])]
    return lines


def stage_comparison(stage_results: list[tuple[str, EvaluationResult]]) -> list[str]:
    """Each stage's test numbers side by side, and whether the GAN stage kept PSNR and sharpened edges."""
    if len(stage_results) < 2:
        return []
    lines = ["### Stage by stage (test split, headline target)", "",
             "| stage | PSNR (dB) | SSIM | EPI | PSNR - bicubic |", "|---|---|---|---|---|"]
    for name, res in stage_results:
        lines.append(f"| {name} | {res.mean('model', 'psnr'):.2f} | {res.mean('model', 'ssim'):.4f} | "
                     f"{res.mean('model', 'epi'):.4f} | {res.mean('model - bicubic', 'psnr'):+.2f} |")
    (first_name, first), (last_name, last) = stage_results[0], stage_results[-1]
    d_psnr = last.mean("model", "psnr") - first.mean("model", "psnr")
    d_epi = last.mean("model", "epi") - first.mean("model", "epi")
    kept = d_psnr >= -0.5
    sharper = d_epi > 0
    verdict = ("meets" if kept and sharper else "does not meet")
    lines += ["", f"The {last_name} stage {verdict} its goal (PSNR within 0.5 dB of {first_name} and a higher EPI): "
              f"PSNR {d_psnr:+.2f} dB, EPI {d_epi:+.4f}.", ""]
    return lines


def _title(name: str, spec: dict[str, Any], file: Path, n_params: int, purpose: str = "") -> list[str]:
    """The card's title (which ``--model`` name it documents), file line and summary heading."""
    what = "both axes" if spec["upsample_axes"] == "both" else "the A-scan (lateral) axis"
    return [
        f"# oct-srgan `{name}` model (`--model {name}`): {spec['scale']}x super-resolution of {what} for retinal SD-OCT B-scans",
        "",
        f"File `{file.name}` ({file.stat().st_size / 1e6:.2f} MB, fp16 weights, {n_params:,} parameters), "
        f"made by oct-srgan {__version__}.",
        "",
        "## Summary",
        "",
        *([f"For {purpose}.", ""] if purpose else []),
    ]


def _model_and_data(spec: dict[str, Any], dataset: Any, trained_on: str | None = None) -> list[str]:
    """The card's Model and Data sections: the architecture, and the data set with its split (and the
    dataset the last stage trained on, ``trained_on``, where it is another split of the scans)."""
    counts = {s: len(dataset.split(s)) for s in values(Split)}
    groups = {s: dataset.split(s)["group_id"].nunique() for s in values(Split)}
    deg = dataset.degradation
    return [
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
        "x 6 B-scans of 450 x 900 (5 single acquisitions and their registered average), cropped to a multiple of 4 "
        "(registered inputs and their reference crop to their overlap). Split **by subject** (seed 0): "
        f"{groups['train']} / {groups['val']} / {groups['test']} subjects, "
        f"{counts['train']} / {counts['val']} / {counts['test']} B-scans for train / val / test. "
        f"LR = `{deg.get('mode')}` x{dataset.scale} degradation of `{deg.get('axes')}` axes, speckle {deg.get('speckle')}. "
        f"Dataset hash `{dataset.dataset_hash}`."
        + (f" The last stage trained on dataset `{trained_on}`, another `preprocess` of the same scans "
           "(`scripts/train_default_model.sh`: `--val-fraction 0.05`, which keeps the same test subjects and trains "
           "on one more subject)." if trained_on and trained_on != dataset.dataset_hash else ""),
        "",
    ]


def _evaluation_section(result: EvaluationResult, extra: list[str], name: str) -> list[str]:
    """The card's test-split evaluation: the tables, the protocols and ``extra`` sections, and how to read them."""
    return [
        "## Evaluation on the test split",
        "",
        f"`oct-srgan evaluate --model {name} --data <preprocess of ../shared/data/oct/duke_bioptigen> --split test`",
        "",
        *_evaluation_tables(result),
        *protocols_section(result.protocols),
        *extra,
        "`model - bicubic` rows are paired differences with a 95% t-interval; CNR (dB) and ENL use ROIs chosen on "
        "the reference (vitreous above the retina, brightest 5% layer band), EPI is the correlation of the Laplacians of Gaussian (sigma 2 px, the layer scale) with "
        "the target (`oct_srgan/metrics.py`).",
        "",
    ]


def card_text(
    spec: dict[str, Any], metas: list[dict[str, Any]], result: EvaluationResult, dataset: Any, n_params: int, file: Path,
    stage_results: list[tuple[str, EvaluationResult]] | None = None, extra: list[str] | None = None, name: str = "default",
    purpose: str = "",
) -> str:
    """The model card in Markdown: data and split, recipe, steps, wall time, hardware, test numbers."""
    psnr_m, psnr_b = result.mean("model", "psnr"), result.mean("bicubic", "psnr")
    ssim_m, ssim_b = result.mean("model", "ssim"), result.mean("bicubic", "ssim")
    lines = [
        *_title(name, spec, file, n_params, purpose),
        f"On the held-out test subjects, scored against "
        f"{'their registered-average (clean) reference B-scans' if result.target == 'reference' else 'the scans themselves'}: "
        f"**{psnr_m:.2f} dB PSNR / {ssim_m:.4f} SSIM** against "
        f"**{psnr_b:.2f} dB / {ssim_b:.4f}** for bicubic upscaling of the same LR "
        f"(grey channel, data range 1, {spec['scale']}-pixel border shaved).",
        "",
        *_model_and_data(spec, dataset, metas[-1].get("dataset_hash") if metas else None),
        "## Recipe",
        "",
        "| stage | config | steps | wall time | device | MLflow run |",
        "|---|---|---|---|---|---|",
        *[_stage_line(m) for m in metas],
        "",
        f"Hardware: {hardware()}.",
        "",
        "Trained on noisy LR input -> the subject's registered-average B-scan as target (preprocess "
        "`--reference average`: each single acquisition is aligned to its average by an integer translation and "
        "both are cropped to their overlap; each average is also paired with itself). The SRGAN stage's content "
        "loss is feature matching on the discriminator's own features (the paper's ImageNet VGG19 needs weights "
        "that are not downloaded here).",
        "",
        *[recipe_line(m) for m in metas],
        "",
        *stage_comparison(stage_results),
        "Retrain with one command: `bash scripts/train_default_model.sh`.",
        "",
        *_evaluation_section(result, extra or [], name),
        "## Intended use and limits",
        "",
        "Research on OCT image enhancement. Not a medical device; do not base diagnoses on enhanced images. "
        "Trained on scans of one device (Bioptigen SD-OCT). On other devices' scans the model keeps the input's "
        "grey levels (see the native-scan table), but it still smooths small cysts and foci and sharp lesion "
        "edges more than the input shows them: where pathology matters, compare with the input or bicubic, "
        f"{'' if name == 'averaged' else 'use `--model averaged` on scans averaged over several frames, '}"
        "or use `--fidelity` (README). GAN fine-tuning can invent texture that looks like speckle. A short CPU "
        "training: longer training (configs/srresnet.yaml, srgan.yaml on a GPU) gives better numbers.",
        "",
    ]
    return "\n".join(lines)


def package(generator_file: Path, dataset_dir: Path, out_dir: Path, stage_files: list[Path], cv: Path | None = None,
            scans: list[Path] | None = None, name: str = "default") -> Path:
    """Evaluate ``generator_file`` on the test split and write the shipped model ``name`` + card to ``out_dir``.

    ``cv`` (a CSV of protocol, metric, mean, sd, n_folds) adds the cross-validation figures and
    ``scans`` (native scans without references) the no-reference table.
    """
    dataset = open_dataset(dataset_dir)
    state, spec, meta = load_generator_file(generator_file)
    options = EvalOptions(content=False, track=False, figures=0)
    stage_results: list[tuple[str, EvaluationResult]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(stage_files):
            stage = evaluate_split(open_model(str(path), "cpu"), dataset, "test", replace(options, out=Path(tmp) / f"s{i}"))
            stage_results.append((str(load_generator_file(path)[2].get("stage", f"stage {i + 1}")), stage.result))
        final = evaluate_split(open_model(str(generator_file), "cpu"), dataset, "test",
                               replace(options, out=Path(tmp) / "final", figures=1))
        extra = [*cv_section(cv), *speckle_levels_section(str(generator_file), dataset),
                 *noref_section(str(generator_file), scans, Path(tmp) / "scans", dataset)]
    result = final.result
    stage_results.append((str(meta.get("stage", "final")), result))
    metas = [load_generator_file(p)[2] for p in stage_files] + [meta]
    evaluation = {
        "split": "test",
        "dataset_hash": dataset.dataset_hash,
        "n_images": final.n_images,
        "target": result.target,
        **{f"{m}_{k}": result.mean(m, k) for m in ("model", "bicubic") for k in metric_names(headline=True)},
    }
    entry = OctSrganWeights.from_name(name)
    if entry is None:
        raise ValueError(f"unknown shipped model name {name!r}: one of {', '.join(OctSrganWeights.names())}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target, card_file = out_dir / entry.value.file, str(entry.value.meta["card"])
    save_generator_file(target, state, spec, {**meta, "evaluation": evaluation, "card": card_file})
    n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
    with atomic_path(out_dir / card_file) as tmp_card:
        tmp_card.write_text(card_text(spec, metas, result, dataset, n_params, target, stage_results,
                                     extra, entry.label, str(entry.value.meta.get("purpose", ""))))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="Package a generator as a shipped model with its card.")
    parser.add_argument("generator", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--name", default="default", choices=OctSrganWeights.names(), help="Which shipped model this is.")
    parser.add_argument("--stage1", type=Path, action="append", default=[], help="Earlier stages' generator files.")
    parser.add_argument("--cv", type=Path, default=None,
                        help="Cross-validation summary CSV (protocol, metric, mean, sd, n_folds) for the card.")
    parser.add_argument("--scans", type=Path, action="append", default=[],
                        help="Native scans without references (files or folders) for the no-reference table.")
    args = parser.parse_args()
    target = package(args.generator, args.dataset, args.out, args.stage1, args.cv, args.scans, args.name)
    card = OctSrganWeights.from_name(args.name).value.meta["card"]
    print(f"{args.name} model: {target}\nmodel card: {target.parent / card}")


if __name__ == "__main__":
    main()
