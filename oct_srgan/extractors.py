"""Feature extractors for the content loss, chosen by name from a registry like torchvision's
``get_model``:

- ``vgg19``: the paper's VGG19 content loss (``relu2_2`` = VGG22, ``relu5_4`` = VGG54) with
  torchvision-format ImageNet weights read from an explicit path or from the torch hub cache.
  Nothing is ever downloaded and nothing is silently random: missing weights raise
  :class:`WeightsNotFoundError`; ``weights='random'`` asks for an untrained network explicitly.
- ``discriminator``: feature matching on the discriminator's own activations (no outside weights).
- ``pkg.module:factory``: a user's factory, imported by dotted path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from oct_srgan.errors import ModelError, WeightsNotFoundError, one_line
from oct_srgan.models.discriminator import Discriminator

__all__ = [
    "DiscriminatorFeatures",
    "UserExtractor",
    "VGG19Features",
    "VGG19_FILE_NAME",
    "VGG19_LAYERS",
    "available_extractors",
    "build_extractor",
    "default_vgg19_path",
    "register_extractor",
]

Extractor = Callable[..., nn.Module]
_EXTRACTORS: dict[str, Extractor] = {}

VGG19_FILE_NAME = "vgg19-dcbb9e9d.pth"
# torchvision's VGG19 ("E") ``features``: numbers are conv widths, "M" a 2x2 max pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SRGAN_FEATURE_SCALE = 1 / 12.75


def _vgg19_layer_names() -> dict[str, int]:
    """Map ``convB_L`` / ``reluB_L`` / ``poolB`` to their index in torchvision's ``features``."""
    names: dict[str, int] = {}
    index, block, layer = 0, 1, 1
    for item in _VGG19_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index += 1
            block, layer = block + 1, 1
        else:
            names[f"conv{block}_{layer}"] = index
            names[f"relu{block}_{layer}"] = index + 1
            index += 2
            layer += 1
    return names


VGG19_LAYERS = _vgg19_layer_names()
_VGG19_CONV_INDICES = tuple(i for n, i in VGG19_LAYERS.items() if n.startswith("conv"))
VGG19_FEATURE_KEYS = tuple(f"features.{i}.{p}" for i in _VGG19_CONV_INDICES for p in ("weight", "bias"))


def register_extractor(name: str) -> Callable[[Extractor], Extractor]:
    """Decorator adding a builder ``fn(*, layers, weights, in_channels, discriminator, **options)``."""

    def wrap(fn: Extractor) -> Extractor:
        if name in _EXTRACTORS:
            raise ValueError(f"feature extractor {name!r} is already registered")
        _EXTRACTORS[name] = fn
        return fn

    return wrap


def available_extractors() -> list[str]:
    """Registered extractor names (a ``pkg.module:factory`` path works in addition)."""
    return sorted(_EXTRACTORS)


def build_extractor(
    name: str,
    *,
    layers: Sequence[str] | None,
    weights: str | Path | None = None,
    in_channels: int = 1,
    discriminator: nn.Module | None = None,
    **options,
) -> nn.Module:
    """The feature extractor ``name``; its forward maps an image batch to a list of feature maps.

    ``options`` go to the builder (e.g. ``feature_scale`` for ``vgg19``).
    """
    if ":" in name:
        return _user_extractor(name, layers, weights, in_channels, options)
    if name not in _EXTRACTORS:
        raise ModelError(
            f"unknown feature extractor {name!r} (available: {', '.join(available_extractors())}; "
            "or a 'pkg.module:factory' path)"
        )
    return _EXTRACTORS[name](
        layers=list(layers or []),
        weights=weights,
        in_channels=in_channels,
        discriminator=discriminator,
        **options,
    )


class _FrozenEval(nn.Module):
    """A fixed function: no trainable parameters and always in eval mode, whatever the trainer calls."""

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> _FrozenEval:
        return super().train(False)


# ----------------------------------------------------------------------------------------- VGG19


def _check_vgg_input(in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise ModelError(f"vgg19 feature extractor: in_channels must be 1 or 3, got {in_channels}")


class VGG19Features(_FrozenEval):
    """VGG19 ``features`` up to the deepest requested layer, module indices as torchvision's.

    Input is [B, 1 or 3, H, W] in [0, 1]; grey is repeated to RGB and ImageNet-normalised here, so
    the data pipeline stays single-channel. Outputs are multiplied by ``feature_scale`` (1/12.75 in
    the SRGAN paper, to bring VGG losses to the scale of the pixel MSE). ``weights_source`` says
    which weights are in use; :func:`vgg19` fills them.
    """

    def __init__(
        self,
        layers: Sequence[str],
        in_channels: int = 1,
        feature_scale: float = SRGAN_FEATURE_SCALE,
    ) -> None:
        super().__init__()
        _check_vgg_input(in_channels)
        if not layers:
            raise ModelError("vgg19 feature extractor: no layers given (e.g. relu5_4 or relu2_2)")
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown:
            raise ModelError(
                f"vgg19 feature extractor: unknown layer(s) {', '.join(map(str, unknown))} "
                "(use convB_L / reluB_L / poolB names, e.g. relu2_2, relu5_4)"
            )
        self.layers = list(layers)
        self.layer_indices = [VGG19_LAYERS[name] for name in layers]
        self.in_channels = in_channels
        self.feature_scale = float(feature_scale)
        self.weights_source = "random"
        self.features = self._make_features(max(self.layer_indices) + 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._init_weights()
        self._freeze()

    @staticmethod
    def _make_features(length: int) -> nn.Sequential:
        modules: list[nn.Module] = []
        width = 3
        for item in _VGG19_CFG:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in-place: a captured conv output must survive the ReLU after it.
                modules += [nn.Conv2d(width, item, 3, padding=1), nn.ReLU(inplace=False)]
                width = item
        return nn.Sequential(*modules[:length])

    def _init_weights(self) -> None:
        """torchvision's VGG init, used only when ``weights='random'`` is asked for."""
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def load_torchvision_file(self, path: Path) -> None:
        """Load a torchvision VGG19 state dict (``classifier.*`` ignored); ModelError if it is not one."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise ModelError(f"{path}: not a readable VGG19 state dict ({one_line(exc)})") from None
        if not isinstance(state, dict):
            raise ModelError(f"{path}: not a VGG19 state dict (got {type(state).__name__})")
        present = {k for k in state if isinstance(k, str) and k.startswith("features.")}
        missing = [k for k in VGG19_FEATURE_KEYS if k not in state]
        extra = sorted(present - set(VGG19_FEATURE_KEYS))
        if missing or extra:
            what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
            raise ModelError(
                f"{path}: not a torchvision VGG19 state dict ({what}; "
                f"{len(missing)} missing, {len(extra)} unexpected features keys)"
            )
        wanted = self.features.state_dict().keys()
        try:
            self.features.load_state_dict(
                {k: state[f"features.{k}"] for k in wanted}, strict=True
            )
        except RuntimeError as exc:
            raise ModelError(f"{path}: VGG19 weights do not fit ({one_line(exc)})") from None
        self.weights_source = str(path)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel(s), got {x.shape[1]}")
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = set(self.layer_indices)
        captured: dict[int, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            # A ReLU may overwrite its input unless that input is a captured conv output: one
            # fewer full-size tensor written per layer (VGG19 at HR is most of an SRGAN step).
            inplace = isinstance(module, nn.ReLU) and index - 1 not in wanted
            x = torch.relu_(x) if inplace else module(x)
            if index in wanted:
                captured[index] = x
        return [captured[i] * self.feature_scale for i in self.layer_indices]


def default_vgg19_path() -> Path:
    """Where torchvision would have cached its VGG19 ImageNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE_NAME


@register_extractor("vgg19")
def vgg19(*, layers: Sequence[str], weights: str | Path | None = None, in_channels: int = 1,
          feature_scale: float = SRGAN_FEATURE_SCALE, **_unused: Any) -> VGG19Features:
    """VGG19 content-loss features. ``weights``: a file path, None (torch hub cache) or 'random'."""
    if weights == "random":
        return VGG19Features(layers, in_channels=in_channels, feature_scale=feature_scale)
    path = Path(weights).expanduser() if weights is not None else default_vgg19_path()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"VGG19 weights not found (looked in: {path}); put torchvision's {VGG19_FILE_NAME} "
            f"there or set loss.extractor.weights=/path/to/{VGG19_FILE_NAME} "
            "(this program never downloads weights)"
        )
    extractor = VGG19Features(layers, in_channels=in_channels, feature_scale=feature_scale)
    extractor.load_torchvision_file(path)
    return extractor


# ---------------------------------------------------------------------------- discriminator


class DiscriminatorFeatures(nn.Module):
    """Feature matching on a discriminator's ``.features()`` activations.

    The discriminator is used, not owned: it is not registered as a submodule (the trainer owns its
    device, mode and state dict) and not frozen. Its parameters enter the computation detached, so
    the content loss sends gradients to the generator only and never into the discriminator's
    ``.grad`` -- the generator step (which only steps G's optimiser) cannot move D. Running BN
    statistics still follow D's own train/eval mode, as for any forward through D.
    """

    def __init__(self, discriminator: Discriminator, layers: Sequence[int]) -> None:
        super().__init__()
        self._discriminator = (discriminator,)
        self.layer_indices = list(layers)
        self.weights_source = "discriminator"

    @property
    def discriminator(self) -> Discriminator:
        return self._discriminator[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        disc = self.discriminator
        params = {name: p.detach() for name, p in disc.named_parameters()}
        feats = functional_call(_FeaturesView(disc), {f"disc.{k}": v for k, v in params.items()}, (x,))
        return [feats[i] for i in self.layer_indices]


class _FeaturesView(nn.Module):
    """Lets ``functional_call`` (which calls ``forward``) run ``discriminator.features``."""

    def __init__(self, disc: nn.Module) -> None:
        super().__init__()
        self.disc = disc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.disc.features(x)


def _parse_block(name: str, count: int) -> int:
    text = str(name)
    digits = text[len("block"):] if text.startswith("block") else text
    if not digits.isdigit() or int(digits) >= count:
        raise ModelError(
            f"discriminator feature extractor: unknown layer {name!r} "
            f"(use block0 .. block{count - 1}, or 0 .. {count - 1})"
        )
    return int(digits)


@register_extractor("discriminator")
def discriminator_features(*, layers: Sequence[str], discriminator: nn.Module | None = None,
                           weights: str | Path | None = None, in_channels: int = 1) -> DiscriminatorFeatures:
    """Feature matching on ``discriminator``; ``layers`` like 'block4' or '4' (empty: all blocks)."""
    if not isinstance(discriminator, Discriminator):
        raise ModelError(
            "discriminator feature extractor: needs the Discriminator module (pass discriminator=..., "
            f"unwrapped from DDP), got {type(discriminator).__name__}"
        )
    if weights is not None:
        raise ModelError(
            f"discriminator feature extractor: takes no weights (got loss.extractor.weights={weights})"
        )
    if discriminator.in_channels != in_channels:
        raise ModelError(
            f"discriminator feature extractor: discriminator has {discriminator.in_channels} input "
            f"channel(s), images have {in_channels}"
        )
    count = len(discriminator.blocks)
    indices = [_parse_block(name, count) for name in layers] if layers else list(range(count))
    return DiscriminatorFeatures(discriminator, indices)


# ---------------------------------------------------------------------------- user factories


class UserExtractor(_FrozenEval):
    """Wraps a user's module so that it is frozen, stays in eval mode and returns a list."""

    def __init__(self, module: nn.Module, source: str) -> None:
        super().__init__()
        self.module = module
        self.weights_source = source
        self._freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.module(x)
        return [out] if isinstance(out, torch.Tensor) else list(out)


def _user_extractor(
    path: str, layers: Sequence[str] | None, weights: str | Path | None, in_channels: int, options: dict
) -> UserExtractor:
    module_name, _, attr = path.partition(":")
    where = f"feature extractor {path!r}"
    if not module_name or not attr:
        raise ModelError(f"{where}: expected 'pkg.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the same user error
        raise ModelError(
            f"{where}: cannot import {module_name} ({type(exc).__name__}: {one_line(exc)})"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"{where}: {module_name} has no callable {attr!r}")
    built = factory(layers=list(layers or []), weights=weights, in_channels=in_channels, **options)
    if not isinstance(built, nn.Module):
        raise ModelError(f"{where}: factory returned {type(built).__name__}, not a torch.nn.Module")
    source = f"{path} ({weights})" if weights is not None else path
    return UserExtractor(built, source)


# ------------------------------------------------------------------------------------ losses
