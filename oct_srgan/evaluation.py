"""The ``evaluate`` protocol: a generator against bicubic and nearest-neighbour upscaling.

Two protocols:

- **OCT split** of a prepared dataset (:func:`evaluate_split`): every full B-scan of the split, its
  fixed LR from preprocess, tiled inference; grey channel, data range 1, ``scale`` pixels shaved;
  scored against the clean references where the dataset has them, and against each scan itself.
- **Natural-image benchmark** (:func:`evaluate_benchmark`: Set5, Set14 or a folder of RGB images) as
  in Ledig et al. 2017: HR cropped to a multiple of the scale, LR made with MATLAB-compatible bicubic
  and rounded to 8 bit, SR rounded to 8 bit, scored on the MATLAB Y channel with a 4-pixel border shaved.

Both check what they are given, score with :mod:`oct_srgan.scoring` (tables and figures in one
folder) and log an MLflow run whose headline numbers also go on the model's LoggedModel and
registered version. ``oct-srgan evaluate`` and the model card (:mod:`oct_srgan.model_card`) call them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from oct_srgan.config import shared_data_root
from oct_srgan.data import DatasetInfo, check_model_degradation, eval_items
from oct_srgan.errors import DataError, ModelError
from oct_srgan.fsutil import refuse_overlap
from oct_srgan.inference import DEFAULT_OVERLAP, DEFAULT_TILE, SRInferer
from oct_srgan.loading import LoadedModel
from oct_srgan.metrics import interval_text, quantize
from oct_srgan.protocols import headline_metrics, protocol_rows, protocol_table, write_protocols
from oct_srgan.scoring import EvaluationResult, evaluate_items, methods_for, optional_extractor, table_mean
from oct_srgan.transforms import downscale

if TYPE_CHECKING:
    from oct_srgan.model_registry import ModelRecord

BENCHMARKS = ("set5", "set14")
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
# Rows of the summary whose means are also recorded on the evaluated model.
HEADLINE_METHODS = ("model", "model_minus_bicubic")


@dataclass(frozen=True)
class ModelUnderTest:
    """A loaded model with the ``--model`` text it came from (it names the output folder and finds
    the model's MLflow record) and the device and precision to run it at."""

    name: str
    model: LoadedModel
    device: torch.device
    precision: str = "fp32"

    def inferer(self, options: EvalOptions) -> SRInferer:
        """The one inference path (tiles, overlap, precision, channels) with ``options``' tiling."""
        return SRInferer(self.model, tile=options.tile or None, overlap=options.overlap, device=self.device,
                         precision=self.precision, fidelity=options.fidelity)


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: the options of ``oct-srgan evaluate`` (``tile`` 0 = whole images, ``limit`` 0 = all).

    ``content`` tries the VGG19 content distance; ``track`` logs an MLflow run and records the
    headline numbers on the model; ``out`` defaults to ``outputs/evaluate/<name>``.
    """

    out: Path | None = None
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    limit: int = 0
    extractor_weights: str | None = None
    content: bool = True
    overwrite: bool = False
    figures: int = 3
    track: bool = True
    progress: bool = False
    fidelity: float = 0.0


@dataclass
class Evaluation:
    """What an evaluation produced: the scores, where they are, and where they were recorded."""

    result: EvaluationResult
    out: Path
    n_images: int
    run_id: str | None = None
    content_note: str | None = None
    registered_uri: str | None = None
    alias: bool = False

    def report(self) -> list[str]:
        """The lines ``oct-srgan evaluate`` prints: the summary, the headline gains, where things went."""
        lines = [(self.out / "summary.md").read_text()]
        if self.content_note:
            lines.append(self.content_note.split(":")[0])
        result = self.result
        for target_name, table in result.summaries.items():
            gain = table[(table["method"] == "model - bicubic") & (table["metric"] == "psnr")].iloc[0]
            label = "clean reference" if target_name == "reference" else "own noisy scan" if result.target == "reference" else "HR"
            lines.append(
                f"against the {label}: model {table_mean(table, 'model', 'psnr'):.2f} dB / SSIM "
                f"{table_mean(table, 'model', 'ssim'):.3f} vs bicubic {table_mean(table, 'bicubic', 'psnr'):.2f} dB / "
                f"{table_mean(table, 'bicubic', 'ssim'):.3f} (gain {gain['mean']:+.2f} dB, 95% CI over "
                f"B-scans {interval_text(gain['ci_low'], gain['ci_high'], int(gain['n']), '+.2f', 'B-scans')}) "
                f"on {self.n_images} images"
            )
        if result.protocols is not None:
            lines.append((self.out / "protocols.md").read_text())
        lines.append(f"tables and figures in {self.out}; MLflow run {self.run_id}")
        if self.registered_uri:
            lines.append(f"metrics recorded on {self.registered_uri}{' (alias @evaluated)' if self.alias else ''}")
        return lines


@dataclass(frozen=True)
class _Protocol:
    """What one evaluation scores and how: its name, MLflow scope and scoring settings."""

    name: str
    protocol: str
    scope: str
    shave: int
    y_channel: bool
    bits: int | None
    split: str | None = None
    benchmark: str | None = None
    dataset: DatasetInfo | None = None


def open_model(model: str, device: str = "auto", precision: str = "fp32") -> ModelUnderTest:
    """The generator a ``--model`` names (a training output folder means its ``generator.pt``)."""
    from oct_srgan.devices import resolve_device
    from oct_srgan.loading import load_model

    model_dir = Path(model).expanduser()
    if ":/" not in model and model_dir.is_dir() and (model_dir / "generator.pt").is_file():
        model = str(model_dir / "generator.pt")
    dev = resolve_device(device)
    return ModelUnderTest(model, load_model(model, dev), dev, precision)


def model_label(model: str) -> str:
    """A short file-name-safe name of the model argument, so two models never share an output folder."""
    text = model.rstrip("/")
    if "://" not in text and ":/" not in text:
        path = Path(text)
        text = f"{path.parent.name}-{path.stem}" if path.parent.name not in ("", ".") else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "model"


def evaluation_run_name(model: str, protocol_name: str) -> str:
    """``<model>-eval-<split or benchmark>``: the model first, within 19 characters (a longer label is cut
    to 12 and a digest of the whole), so two models' runs differ where MLflow's run lists cut names."""
    label = model_label(model)
    if len(label) > 19:
        label = f"{label[:12]}-{hashlib.sha256(label.encode()).hexdigest()[:6]}"
    return f"{label}-eval-{protocol_name}"


def _model_record(model: ModelUnderTest) -> ModelRecord | None:
    """The MLflow LoggedModel / registered version the evaluated weights came from, if any."""
    from oct_srgan.model_registry import find_model_record

    try:
        return find_model_record(model.name, None if model.name.startswith("models:/") else model.model.file)
    except ModelError:
        return None


def headline(folder: Path) -> str:
    """One line from an evaluate folder's headline table: model and bicubic PSNR/SSIM and the gain."""
    table = pd.read_csv(Path(folder) / "summary.csv")

    def mean(method: str, metric: str) -> float:
        return table_mean(table, method, metric)

    return (f"{mean('model', 'psnr'):.2f} dB / SSIM {mean('model', 'ssim'):.3f} "
            f"({mean('model - bicubic', 'psnr'):+.2f} dB, {mean('model - bicubic', 'ssim'):+.3f} SSIM vs bicubic "
            f"{mean('bicubic', 'psnr'):.2f} dB / {mean('bicubic', 'ssim'):.3f})")


def benchmark_folder(name_or_path: str, data_root: Path) -> Path:
    """``set5``/``set14`` → the shared copy under ``data_root/sr_benchmarks``; anything else is a path."""
    key = name_or_path.lower()
    if key in BENCHMARKS:
        folder = data_root / "sr_benchmarks" / {"set5": "Set5", "set14": "Set14"}[key]
    else:
        folder = Path(name_or_path)
    if not folder.is_dir():
        raise DataError(f"{folder}: benchmark folder not found")
    return folder


def benchmark_items(folder: Path, scale: int = 4) -> list[dict[str, Any]]:
    """HR RGB images cropped to a multiple of ``scale``, with 8-bit bicubic LR (the paper's protocol)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    items = []
    for path in files:
        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None
        h, w = rgb.shape[0] - rgb.shape[0] % scale, rgb.shape[1] - rgb.shape[1] % scale
        hr = torch.from_numpy(np.ascontiguousarray(rgb[:h, :w].transpose(2, 0, 1)))
        lr = quantize(downscale(hr, scale, "bicubic", "both"), 8)
        items.append({"id": path.stem, "lr": lr, "hr": hr})
    return items


def evaluate_split(model: ModelUnderTest, dataset: DatasetInfo, split: str = "test",
                   options: EvalOptions = EvalOptions()) -> Evaluation:
    """Score ``model`` on every full B-scan of a prepared dataset's ``split`` (references and noisy targets).

    Refuses a dataset made for another scale, other axes or another degradation than the model's.
    """
    loaded = model.model
    scale = loaded.scale
    if dataset.scale != scale or dataset.axes != loaded.axes:
        raise DataError(f"{dataset.root}: dataset is x{dataset.scale} ({dataset.axes}) but the model is x{scale} "
                        f"({loaded.axes})")
    check_model_degradation(dataset, loaded.meta, loaded.source)
    items = eval_items(dataset, split, options.limit)
    protocol = _Protocol(f"{split}-{dataset.dataset_hash[:8]}", "oct", split, shave=scale, y_channel=False, bits=None,
                         split=split, dataset=dataset)
    return _evaluate(model, items, protocol, options)


def evaluate_benchmark(model: ModelUnderTest, benchmark: str, options: EvalOptions = EvalOptions(),
                       data_root: Path | None = None) -> Evaluation:
    """Score ``model`` on ``set5``, ``set14`` (under ``data_root``, default ``$OCT_SRGAN_DATA``) or a folder of images."""
    root = data_root or shared_data_root()
    folder = benchmark_folder(benchmark, root)
    items = benchmark_items(folder, model.model.scale)[: options.limit or None]
    name = f"benchmark-{folder.name.lower()}"
    protocol = _Protocol(name, "srgan-paper", name, shave=4, y_channel=True, bits=8, benchmark=benchmark)
    return _evaluate(model, items, protocol, options)


def _evaluate(model: ModelUnderTest, items: list[dict[str, Any]], protocol: _Protocol, options: EvalOptions) -> Evaluation:
    """Score ``items`` into the output folder, inside an MLflow run when ``options.track``."""
    name = f"{protocol.name}-{model_label(model.name)}"
    out = options.out or Path("outputs") / "evaluate" / name
    if protocol.dataset is not None:
        refuse_overlap(out, [protocol.dataset.root])
    if out.exists() and any(out.iterdir()) and not options.overwrite:
        raise DataError(f"{out}: output folder exists (results of an earlier evaluation); pass --overwrite to replace it or choose another --out")
    extractor, note = optional_extractor(options.extractor_weights, model.model.channels) if options.content else (None, "")
    methods = methods_for(model.inferer(options))

    def score() -> EvaluationResult:
        from tqdm import tqdm

        with tqdm(total=len(items), desc="evaluate", unit="img", disable=not options.progress, dynamic_ncols=True) as bar:
            result = evaluate_items(items, methods, out, shave=protocol.shave, y_channel=protocol.y_channel,
                                    quantize_bits=protocol.bits, extractor=extractor, figures=options.figures, title=name,
                                    progress=lambda done, total: bar.update(done - bar.n))
        if protocol.dataset is not None:
            _score_protocols(result, items, methods["model"], model.model, protocol.shave, out)
        return result

    missing = note if extractor is None else None
    if not options.track:
        return Evaluation(score(), out, len(items), content_note=missing)
    result, run_id, record = _tracked(model, len(items), protocol, options, name, note, score)
    return Evaluation(result, out, len(items), run_id, missing, record.registered_uri if record else None,
                      alias=protocol.dataset is not None and protocol.split == "test")


def _score_protocols(result: EvaluationResult, items: list[dict[str, Any]], run_model: Callable[[torch.Tensor], torch.Tensor],
                     loaded: LoadedModel, shave: int, out: Path) -> None:
    """The three-protocol table (LR made on the fly from the noisy inputs) beside the split's own tables."""
    rows = protocol_rows(items, run_model, loaded.axes, loaded.scale, shave)
    if len(rows):
        result.protocols = protocol_table(rows)
        result.files.update(write_protocols(result.protocols, out))


def _tracked(model: ModelUnderTest, n_images: int, protocol: _Protocol, options: EvalOptions, name: str, note: str,
             score: Callable[[], EvaluationResult]) -> tuple[EvaluationResult, str, ModelRecord | None]:
    """Run ``score`` inside an ``evaluate`` MLflow run; the headline numbers also go on the model's record."""
    from oct_srgan import tracking

    record = _model_record(model)
    tags: dict[str, str] = {"model_source": model.model.source, "device": str(model.device)}
    if record is not None and record.model_id:
        tags["model_id"] = record.model_id
    if record is not None and record.registered_uri:
        tags["registered_model"] = record.registered_uri
    dataset, split = protocol.dataset, protocol.split
    if dataset is not None:
        tags["dataset_hash"] = dataset.dataset_hash
    with tracking.run("evaluate", evaluation_run_name(model.name, protocol.name), tags=tags) as run:
        lineage = tracking.log_dataset_splits(dataset.manifest, dataset.dataset_hash, (split,)).get(split) if dataset is not None else None
        result = score()
        headline = _log_results(model, n_images, protocol, options, note, result, lineage)
        # The headline numbers also go on the LoggedModel (and are linked to the evaluated split).
        tracking.log_metrics(headline, model_id=record.model_id if record else None, dataset=lineage)
        for path in result.files.values():
            tracking.log_artifact(path, "figures" if path.suffix == ".png" else "tables")
    if record is not None and headline:
        from oct_srgan.model_registry import record_evaluation

        details = {"run_id": run.info.run_id, "n_images": str(n_images), "target": result.target}
        if dataset is not None:
            details["dataset_hash"] = dataset.dataset_hash
        record_evaluation(record, protocol.scope, headline, details, set_alias=dataset is not None and split == "test")
    return result, run.info.run_id, record


def _log_results(model: ModelUnderTest, n_images: int, protocol: _Protocol, options: EvalOptions, note: str,
                 result: EvaluationResult, lineage: Any) -> dict[str, float]:
    """Log the run's params and every summary mean but the headline ones, which are returned."""
    from oct_srgan import tracking

    loaded = model.model
    tracking.log_params({
        "model": loaded.source, "model.scale": loaded.scale, "model.upsample_axes": loaded.axes,
        "model.train_run_id": loaded.meta.get("run_id", "unknown"), "protocol": protocol.protocol,
        "split": protocol.split if protocol.dataset is not None else "-", "benchmark": protocol.benchmark or "-",
        "n_images": n_images, "shave": protocol.shave, "y_channel": protocol.y_channel, "tile": options.tile,
        "overlap": options.overlap, "fidelity": options.fidelity, "precision": model.precision, "content_extractor": note[:250],
    })
    tracking.log_params({"target": result.target})
    headline: dict[str, float] = {}
    for target_name, table in result.summaries.items():
        prefix = "" if target_name == result.target else f"{target_name}."
        metrics = {
            f"{prefix}{r.method.replace(' - ', '_minus_')}.{r.metric}": float(r.mean)
            for r in table.itertuples() if r.mean == r.mean
        }
        if target_name == result.target:
            headline = {k: v for k, v in metrics.items() if k.split(".")[0] in HEADLINE_METHODS}
        tracking.log_metrics({k: v for k, v in metrics.items() if k not in headline}, dataset=lineage)
    if result.protocols is not None:
        tracking.log_metrics(headline_metrics(result.protocols, protocol.split or "eval"), dataset=lineage)
    return headline
