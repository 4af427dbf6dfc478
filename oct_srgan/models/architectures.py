"""The architecture table: ``spec["arch"]`` -> how to build that generator and tune it for inference
(BasicSR's ``ARCH_REGISTRY`` idea, with torchvision-style builders that take explicit arguments).

A spec is the plain dict stored with every checkpoint and generator file: ``{"arch": name, **kwargs}``
where the keys are the builder's own parameters, read from its signature once. Files saved before
``arch`` existed hold an SRResNet. A new architecture is one module that defines its network and
registers an ``Architecture`` entry; training, loading, export and inference find it here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ModelError
from ..tables import Table

if TYPE_CHECKING:
    from ..config import Config

# What a spec without "arch" holds: every file saved before architectures were a table.
DEFAULT_ARCH = "srresnet"


def _as_is(model: nn.Module, device: torch.device) -> nn.Module:
    return model


@dataclass(frozen=True)
class Architecture:
    """One generator architecture. ``builder(**kwargs)`` makes the network; ``for_inference(model,
    device)`` may return a faster inference-only copy (e.g. CPU fusions); ``defaults`` are the values
    meant by files saved before a key existed."""

    name: str
    builder: Callable[..., nn.Module]
    for_inference: Callable[[nn.Module, torch.device], nn.Module] = _as_is
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec_keys(self) -> tuple[str, ...]:
        """The builder's parameter names: the keys of this architecture's spec besides ``arch``."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in inspect.signature(self.builder).parameters.values() if p.kind in kinds)

    def build(self, **kwargs: Any) -> nn.Module:
        """The network for ``kwargs`` (builder defaults for the rest), with its full spec as ``.spec``."""
        bound = inspect.signature(self.builder).bind(**kwargs)
        bound.apply_defaults()
        module = self.builder(**bound.arguments)
        module.spec = {"arch": self.name, **bound.arguments}
        return module


ARCHITECTURES: Table[Architecture] = Table("architecture", ModelError)
register_architecture = ARCHITECTURES.register


def resolve_architecture(name: str) -> Architecture:
    """The entry of architecture ``name``; ``ModelError`` naming the known ones otherwise."""
    return ARCHITECTURES.resolve(name, prefix="model spec: ")


def full_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its ``arch`` (SRResNet when absent) and the defaults of keys added since it was saved."""
    entry = resolve_architecture(str(spec.get("arch", DEFAULT_ARCH)))
    return {"arch": entry.name, **entry.defaults, **spec}


def generator_spec(cfg: Config) -> dict[str, Any]:
    """The generator's spec from a config: ``model.arch``, and for each of its builder's parameters the
    value ``model.<key>`` or ``model.options[key]`` gives (scale and axes from the data), else the
    builder's default."""
    entry = resolve_architecture(cfg.model.arch)
    degradation = cfg.data.degradation
    known = {"scale": cfg.data.scale, "upsample_axes": degradation.axes if degradation is not None else "both",
             **{f.name: getattr(cfg.model, f.name) for f in fields(cfg.model)}, **cfg.model.options}
    return {"arch": entry.name, **{k: known[k] for k in entry.spec_keys if k in known}}


def build_generator(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a generator from a spec dict (e.g. read from a checkpoint); ModelError if unusable."""
    if not isinstance(spec, Mapping):
        raise ModelError(f"model spec: expected a mapping, got {type(spec).__name__}")
    spec = full_spec(spec)
    entry = resolve_architecture(spec["arch"])
    keys = entry.spec_keys
    missing = [k for k in keys if k not in spec]
    unknown = sorted(str(k) for k in spec if k not in keys and k != "arch")
    if missing or unknown:
        parts = [f"missing key(s) {', '.join(missing)}"] if missing else []
        parts += [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        raise ModelError(f"model spec: {'; '.join(parts)} (expected: {', '.join(keys)})")
    try:
        return entry.build(**{k: spec[k] for k in keys})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model spec: {exc}") from None


def for_inference(model: nn.Module, device: torch.device | str) -> nn.Module:
    """The architecture's inference form of ``model`` (a model without a known spec: itself)."""
    spec = getattr(model, "spec", None)
    entry = ARCHITECTURES.get(str(spec.get("arch", DEFAULT_ARCH))) if isinstance(spec, Mapping) else None
    return entry.for_inference(model, torch.device(device)) if entry is not None else model
