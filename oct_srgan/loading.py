"""Where a model comes from and what it is: the shipped weights, the model sources, one loader.

A model argument (``--model``) is one of: a shipped weights entry (``default``, or an
:class:`OctSrganWeights` member), an MLflow model URI (``runs:/…``, ``models:/…``), or a generator
file / training checkpoint. :func:`load_model` turns any of them into a :class:`LoadedModel`, the
one object the rest of the package reads a model's scale, axes, channels and provenance from.

The weights entries follow torchvision's ``WeightsEnum`` of ``Weights(url, transforms, meta)``
(``torchvision/models/_api.py``): a file shipped with the package instead of a URL, and in ``meta``
what the model card reports (the clean-reference test numbers, also stored in the file's meta).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_generator_file, load_weights
from .errors import ModelError
from .models import build_generator

WEIGHTS_DIR = Path(__file__).parent / "weights"
MLFLOW_SCHEMES = ("runs:/", "models:/")
# Channel counts a grey B-scan can be fed to: itself, or repeated to RGB (averaged back afterwards).
GREY_CHANNELS = (1, 3)


@dataclass(frozen=True)
class Weights:
    """One shipped weight file (a name inside :data:`WEIGHTS_DIR`) and what is known about it."""

    file: str
    meta: dict[str, Any]


_MIX = {"modes": ["bicubic", "decimate"], "blur": [0.0, 1.0], "blur_prob": 0.3, "speckle": [0.0, 0.0], "speckle_prob": 0.0}


def _shipped(name: str, file: str, card: str, axes: str, mode: str, dataset_hash: str, *,
             model: tuple[float, float], bicubic: tuple[float, float], purpose: str) -> Weights:
    """One shipped x4 grey model: its file, card, the degradation it was trained on, its card's test
    numbers ((PSNR, SSIM) of the model and of bicubic on the 10 test B-scans, clean references) and
    what it is for (the card's and the README's words)."""
    evaluation = {"split": "test", "target": "reference", "dataset_hash": dataset_hash, "n_images": 10,
                  "model_psnr": model[0], "model_ssim": model[1], "bicubic_psnr": bicubic[0], "bicubic_ssim": bicubic[1]}
    degradation = {"mode": mode, "axes": axes, "speckle": 0.0, "mix": _MIX}
    return Weights(file=file, meta={"name": name, "scale": 4, "upsample_axes": axes, "in_channels": 1,
                                    "degradation": degradation, "card": card, "evaluation": evaluation,
                                    "purpose": purpose})


class OctSrganWeights(Enum):
    """The weights shipped with oct-srgan, each named on the command line by its ``name`` (any case).

    ``default`` (PSNR-oriented, x4 on both axes), ``gan`` (the SRGAN stage fine-tuned from it),
    ``lateral`` (x4 along the A-scan axis only: scans acquired with 4x fewer A-scans) and ``averaged``
    (x4 for scans averaged over several frames, which carry little speckle: it despeckles little and
    keeps their detail). ``meta``
    repeats what the file's own meta says (tests keep them equal) so a user can see what an entry
    is without loading it; its ``evaluation`` is the card's test-split numbers against the
    registered-average (clean) references of the Duke Bioptigen test subjects.
    """

    OCT_X4 = _shipped("default", "oct_srgan_x4.pt", "MODEL_CARD.md", "both", "bicubic",
                      "5b29cf6aa3281402", model=(26.9547, 0.6951), bicubic=(25.3461, 0.5925),
                      purpose="single acquisitions with full speckle (research scanners, fast or unaveraged scans): it "
                              "despeckles and sharpens, keeping the input's grey levels")
    OCT_X4_GAN = _shipped("gan", "oct_srgan_x4_gan.pt", "MODEL_CARD_gan.md", "both", "bicubic",
                          "5b29cf6aa3281402", model=(26.9981, 0.6944), bicubic=(25.3461, 0.5925),
                          purpose="the SRGAN stage fine-tuned from an earlier `default` (the card says what it gains "
                                  "and costs)")
    OCT_X4_LATERAL = _shipped("lateral", "oct_srgan_x4_lateral.pt", "MODEL_CARD_lateral.md", "lateral", "decimate",
                              "d96ff683d137d9eb", model=(26.8318, 0.6873), bicubic=(18.1452, 0.1142),
                              purpose="scans acquired with 4x fewer A-scans: x4 along the A-scan axis only")
    OCT_X4_AVERAGED = _shipped("averaged", "oct_srgan_x4_averaged.pt", "MODEL_CARD_averaged.md", "both", "bicubic",
                               "5b29cf6aa3281402", model=(26.5001, 0.6858), bicubic=(25.3461, 0.5925),
                               purpose="scans averaged over several frames (most clinical exports), which carry little "
                                       "speckle: it despeckles little and keeps the lesions and detail such a scan has; on "
                                       "single acquisitions `default` removes more speckle")
    DEFAULT = OCT_X4

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.value.file

    @property
    def label(self) -> str:
        """The name ``--model`` takes for this entry (``default``, ``gan``, ``lateral``, ``averaged``)."""
        return str(self.value.meta["name"])

    @classmethod
    def names(cls) -> list[str]:
        """Every ``--model`` name of a shipped entry, in table order."""
        return [member.label for member in cls]

    @classmethod
    def from_name(cls, text: str) -> OctSrganWeights | None:
        """The entry a model argument names (``default``, ``GAN``, ``OCT_X4``, ``OctSrganWeights.OCT_X4``), else None."""
        name = text.removeprefix(f"{cls.__name__}.")
        by_label = {member.label: member for member in cls}
        return by_label.get(name.lower()) or cls.__members__.get(name.upper())


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An eval-mode generator with what inference needs to know about it.

    ``source`` is a short name safe to write into output headers and MLflow params (never a full
    local path); ``file`` is the local file the weights were read from; ``degradation`` is how its
    training LR was made (None for models exported before it was recorded).
    """

    module: nn.Module
    scale: int
    axes: str
    channels: int
    source: str
    degradation: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None

    @property
    def takes_grey(self) -> bool:
        """True when a grey B-scan can go in (as itself, or repeated to RGB)."""
        return self.channels in GREY_CHANNELS


def resolve_model_file(model: str | Path | OctSrganWeights) -> tuple[Path, str]:
    """The local generator/checkpoint file for a model argument, and a short name for provenance."""
    weights = model if isinstance(model, OctSrganWeights) else OctSrganWeights.from_name(model) if isinstance(model, str) else None
    if weights is not None:
        path = weights.path
        if not path.is_file():
            raise ModelError(f"{path}: the {weights.label} model is not installed; pass a checkpoint, "
                             "generator file or MLflow model URI instead")
        return path, f"{weights.label} ({path.name})"
    return locate_model_file(model)


def locate_model_file(model: str | Path, what: str = "model") -> tuple[Path, str]:
    """The local file of an MLflow model URI or a generator/checkpoint path, and a short name for provenance.

    No weights entries (:func:`resolve_model_file` adds them); ``what`` names the argument in the
    not-found message (``train.init_from``).
    """
    text = str(model)
    if text.startswith(MLFLOW_SCHEMES):
        from .model_download import download_generator_file

        return download_generator_file(text), text
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: {what} file not found")
    return path, path.name


def check_shapes(path: Path, model_spec: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> None:
    """Refuse a spec that disagrees with the weights before the net costs any memory.

    The net is first built on PyTorch's ``meta`` device (shapes only, no storage), so a 16 KB file whose
    spec says ``channels=200000`` is one line instead of a terabyte allocation.
    """
    try:
        with torch.device("meta"):
            probe = build_generator(model_spec)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: its model_spec cannot build a generator ({exc})") from None
    wanted = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    for key, shape in wanted.items():
        if key in given and given[key] != shape:
            raise ModelError(f"{path}: model_spec asks for {key} of shape {shape} but the weights hold {given[key]}")
    missing = sorted(set(wanted) - set(given))
    if missing:
        raise ModelError(f"{path}: the weights lack {len(missing)} tensor(s) the model_spec needs (first: {missing[0]})")


def load_model(model: str | Path | OctSrganWeights, device: Any = "cpu") -> LoadedModel:
    """The model a checkpoint, generator file, MLflow URI or weights entry (``"default"``) names.

    Training checkpoints give their EMA weights (what validation measured).
    """
    path, source = resolve_model_file(model)
    state_dict, model_spec, meta = load_generator_file(path)
    try:
        check_shapes(path, model_spec, state_dict)
        module = build_generator(model_spec)
    except ModelError as exc:
        raise ModelError(exc if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    load_weights(module, state_dict, path)
    return LoadedModel(
        module.to(device).eval(),
        scale=int(model_spec["scale"]),
        axes=str(model_spec["upsample_axes"]),
        channels=int(model_spec["in_channels"]),
        source=source,
        degradation=meta.get("degradation") or None,
        spec=model_spec,
        meta=meta,
        file=path,
    )
