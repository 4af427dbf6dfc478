"""The architecture table: a test-only architecture is one ``Architecture`` entry, and config, spec,
generator files, loading and tiled inference all follow from it; old files still load as SRResNet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from oct_srgan.checkpoint import save_generator_file
from oct_srgan.config import Config
from oct_srgan.errors import ModelError
from oct_srgan.inference import SRInferer
from oct_srgan.loading import load_model
from oct_srgan.models import (
    ARCHITECTURES,
    Architecture,
    SRResNet,
    build_generator,
    generator_spec,
    register_architecture,
    srresnet,
)


class Tiny(nn.Module):
    """One conv to ``scale**2`` sub-pixels and a pixel shuffle."""

    def __init__(self, *, in_channels: int = 1, scale: int = 4, upsample_axes: str = "both", width: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1),
                                  nn.Conv2d(width, in_channels * scale**2, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _clamped(model: nn.Module, device: torch.device) -> nn.Module:
    return nn.Sequential(model, nn.Hardtanh(0.0, 1.0))


@pytest.fixture()
def tiny() -> Iterator[Architecture]:
    entry = register_architecture(Architecture("tiny", Tiny, for_inference=_clamped))
    yield entry
    del ARCHITECTURES["tiny"]


def test_the_spec_keys_are_the_builders_parameters(tiny: Architecture) -> None:
    assert tiny.spec_keys == ("in_channels", "scale", "upsample_axes", "width")
    cfg = Config()
    cfg.model.arch, cfg.model.options, cfg.data.scale = "tiny", {"width": 3}, 2
    assert generator_spec(cfg) == {"arch": "tiny", "in_channels": 1, "scale": 2, "upsample_axes": "both", "width": 3}


def test_a_registered_architecture_saves_loads_and_runs_its_inference_form(tiny: Architecture, tmp_path: Path) -> None:
    net = build_generator({"arch": "tiny", "in_channels": 1, "scale": 4, "upsample_axes": "both", "width": 2})
    assert isinstance(net, Tiny) and net.spec["width"] == 2
    with torch.no_grad():
        net.body[1].bias.fill_(5.0)  # outputs far above 1 unless the inference form clamps them
    path = save_generator_file(tmp_path / "tiny.pt", net.state_dict(), net.spec, {})
    loaded = load_model(path)
    assert isinstance(loaded.module, Tiny) and loaded.scale == 4 and loaded.spec["arch"] == "tiny"
    out = SRInferer(loaded, tile=None)(torch.rand(1, 1, 6, 5))
    assert out.shape == (1, 1, 24, 20) and float(out.max()) <= 1.0


def test_a_spec_without_arch_is_an_srresnet() -> None:
    spec = {k: v for k, v in srresnet(channels=4, num_blocks=1).spec.items() if k != "arch"}
    model = build_generator(spec)
    assert isinstance(model, SRResNet) and model.spec["arch"] == "srresnet"


def test_an_unknown_architecture_is_one_line() -> None:
    with pytest.raises(ModelError, match="unknown architecture 'nope'.*srresnet") as info:
        build_generator({"arch": "nope"})
    assert "\n" not in str(info.value)
