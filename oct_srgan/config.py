"""Typed configuration loaded from ``configs/*.yaml``.

Every value that shapes a result lives here, so logging :func:`flatten` of the resolved config to
MLflow records the whole recipe. Unknown keys and wrong types are refused with one clear line.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .enums import AdversarialLoss, Axes, DegradationMode, Norm, PixelLoss, Stage, Target, UpsampleMode, values


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message is one line for the user."""


@dataclass
class DegradationConfig:
    """How HR B-scans become LR inputs (one owner: the dataset records it; see docs/architecture.md)."""

    mode: DegradationMode = "bicubic"
    axes: Axes = "both"
    speckle: float = 0.0


@dataclass
class MixConfig:
    """A random training degradation per sample (``oct_srgan.degradations.mixed``); val/test LR stay fixed."""

    modes: list[str] = field(default_factory=lambda: ["bicubic", "decimate"])
    # Gaussian blur before sampling (sigma in HR pixels, upsampled axes): the optics' spread.
    blur: list[float] = field(default_factory=lambda: [0.0, 1.0])
    blur_prob: float = 0.5
    # Extra multiplicative speckle on the LR (sigma range), on top of the scan's own.
    speckle: list[float] = field(default_factory=lambda: [0.0, 0.0])
    speckle_prob: float = 0.0


@dataclass
class LesionConfig:
    """Synthetic cysts and foci painted into input and target alike (``oct_srgan.lesions``), so they are kept."""

    prob: float = 0.5       # share of training crops that get lesions
    cysts: int = 3          # up to this many dark ellipses per crop
    foci: int = 4           # up to this many bright dots per crop


@dataclass
class SpeckleKeptConfig:
    """Inputs with part of their speckle: ``target + kept * (input - target)``, ``kept`` drawn from ``range``.

    Clinical scans are averaged over a few to many frames, so their speckle lies anywhere between a
    single acquisition's (kept 1) and none (kept 0, the clean target as input). In the log-compressed
    display domain averaging N frames scales the speckle by about 1/sqrt(N), as ``kept`` does.
    """

    prob: float = 0.5                                                  # share of training pairs so changed
    range: list[float] = field(default_factory=lambda: [0.0, 1.0])     # kept drawn uniformly in [lo, hi]


@dataclass
class DataConfig:
    scale: int = 4
    hr_crop: int = 96
    # None = the dataset's own degradation (the dataset owns it); a value
    # here must agree with the dataset or training is refused.
    degradation: DegradationConfig | None = None
    # What the generator learns to produce: the group's clean reference or the scan itself.
    target: Target = "auto"
    # Training draws LR from this random mix instead of the dataset's own mode (None: the dataset's).
    mix: MixConfig | None = None
    # Random gain x(1 +- gain) and offset +- offset applied to input and target alike: the model
    # must keep the grey levels it is given (other devices, other settings), not learn one device's.
    gain: float = 0.0
    offset: float = 0.0
    # With reference targets: train against the reference brought to its input's grey levels by the
    # gain/offset preprocess fitted (manifest ref_gain/ref_offset), so a target differs from its
    # input only in noise and resolution.
    intensity_match: bool = True
    # Synthetic lesions in input and target alike (None: none): pathology the training scans lack.
    lesions: LesionConfig | None = None
    # Reference pairs whose input keeps only part of its speckle (None: all of it): scans from devices
    # that average in hardware carry less speckle, and a model that only ever saw full speckle smooths
    # their detail away as noise.
    speckle_kept: SpeckleKeptConfig | None = None
    cache_rate: float = 1.0
    num_workers: int = 0
    max_val_images: int = 0


@dataclass
class ModelConfig:
    # A generator architecture's name (``oct_srgan.models.ARCHITECTURES``); its builder's parameters
    # come from the fields below or, for those without one, from ``options``.
    arch: str = "srresnet"
    options: dict[str, Any] = field(default_factory=dict)
    in_channels: int = 1
    channels: int = 64
    num_blocks: int = 16
    norm: Norm = "batch"
    # 'paper': two x2 conv + pixel-shuffle stages and a 9x9 tail conv at HR (Ledig et al.);
    # 'lr_shuffle': one 3x3 conv at LR to scale**2 channels + one pixel shuffle (much faster).
    upsample: UpsampleMode = "paper"
    disc_channels: int = 64


@dataclass
class ExtractorConfig:
    """Content-loss feature extractor: a registry name or ``pkg.module:factory``."""

    name: str = "vgg19"
    layers: list[str] = field(default_factory=lambda: ["relu5_4"])
    weights: str | None = None


@dataclass
class LossConfig:
    pixel: PixelLoss = "mse"
    pixel_weight: float = 1.0
    # + weight x (1 - SSIM) inside the pixel term (0 = plain pixel loss, as in the paper).
    ssim_weight: float = 0.0
    content_weight: float = 0.0
    adversarial: AdversarialLoss = "bce"
    adversarial_weight: float = 0.0
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)


@dataclass
class TrainConfig:
    stage: Stage = "srresnet"
    init_from: str | None = None
    batch_size: int = 16
    iterations: int = 1000
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    val_interval: int = 500
    checkpoint_interval: int = 500
    log_interval: int = 10
    ema_decay: float = 0.999
    amp: bool = True
    channels_last: bool = True
    device: str = "auto"
    deterministic: bool = False


@dataclass
class TrackingConfig:
    experiment: str = "oct-srgan"
    register_model: bool = True
    model_name: str = "oct-srgan"


@dataclass
class Config:
    name: str = "default"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; int→float is the only silent widening."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # a choice of oct_srgan.enums, kept as its plain string
        if value not in values(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, values(tp)))}")
        return str(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def make(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """A validated config dataclass from a mapping: unknown keys and wrong types are refused."""
    return _build(cls, data, where)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict[str, Any]:
    """Turn ``train.lr=1e-5`` into ``{"train": {"lr": 1e-5}}`` (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=1e-5")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in "eE.") else value
        except ValueError:
            pass
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def shipped_configs() -> dict[str, Path]:
    """The recipes installed with the package (``configs/`` in the repository), by name."""
    from importlib import resources

    try:
        folder = resources.files("oct_srgan.configs")
    except ModuleNotFoundError:
        return {}
    return {Path(str(f)).stem: Path(str(f)) for f in folder.iterdir() if str(f).endswith(".yaml")}


def shared_data_root() -> Path:
    """The shared real OCT data: ``$OCT_SRGAN_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("OCT_SRGAN_DATA", "../shared/data"))


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file path, or the shipped recipe of that name (``smoke``, ``oct_x4_srresnet.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    key = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and key in shipped:
        return shipped[key]
    names = ", ".join(sorted(shipped)) or "none installed"
    raise ConfigError(f"{name_or_path}: config file not found (and not a shipped config name: {names})")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config by path or shipped name (``extends:`` another file is allowed), apply
    ``--set`` overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(resolve_config(path))
    for item in overrides:
        data = _merge(data, parse_override(item))
    return check_config(_build(Config, data))


def check_config(cfg: Config) -> Config:
    """Refuse values no training run can use (counts, intervals, a stage without its loss); returns ``cfg``.

    These depend on the config alone, so they fail at load, before a dataset is opened. What a stage
    needs from outside (``train.init_from`` of stage srgan) is checked when the run starts: a recipe
    may leave it for ``--set``.
    """
    train, loss = cfg.train, cfg.loss
    if train.iterations < 1 or train.batch_size < 1:
        raise ConfigError(f"train.iterations ({train.iterations}) and train.batch_size ({train.batch_size}) must be positive")
    for key in ("val_interval", "checkpoint_interval", "log_interval"):
        if getattr(train, key) < 1:
            raise ConfigError(f"train.{key} must be positive, got {getattr(train, key)}")
    lesions = cfg.data.lesions
    if lesions is not None and not (0.0 <= lesions.prob <= 1.0 and lesions.cysts >= 0 and lesions.foci >= 0):
        raise ConfigError(f"data.lesions: prob must be in [0, 1] and cysts/foci 0 or more, got {lesions}")
    kept = cfg.data.speckle_kept
    if kept is not None and not (0.0 <= kept.prob <= 1.0 and len(kept.range) == 2
                                 and 0.0 <= kept.range[0] <= kept.range[1] <= 1.0):
        raise ConfigError(f"data.speckle_kept: prob must be in [0, 1] and range [lo, hi] with 0 <= lo <= hi <= 1, "
                          f"got {kept}")
    if train.stage == "srgan":
        if loss.content_weight <= 0 and loss.adversarial_weight <= 0 and loss.pixel_weight <= 0:
            raise ConfigError("stage srgan: all loss weights are zero")
    elif loss.pixel_weight <= 0:
        raise ConfigError("stage srresnet trains on the pixel loss only, but loss.pixel_weight is not positive")
    return cfg


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    return _merge(_read_yaml(parent_path, seen + (path.resolve(),)), data)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for MLflow params: ``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
