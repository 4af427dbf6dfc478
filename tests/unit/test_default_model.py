"""The shipped models (``--model default|gan|lateral|averaged``): small, documented by their cards, described by their weights entries."""

from __future__ import annotations

import pytest

from oct_srgan.checkpoint import load_generator_file
from oct_srgan.loading import OctSrganWeights, load_model

ENTRIES = list(OctSrganWeights)


def test_every_shipped_name_is_an_entry_in_any_case() -> None:
    assert OctSrganWeights.names() == ["default", "gan", "lateral", "averaged"]
    assert OctSrganWeights.from_name("default") is OctSrganWeights.DEFAULT is OctSrganWeights.OCT_X4
    assert OctSrganWeights.from_name("GAN") is OctSrganWeights.OCT_X4_GAN
    assert OctSrganWeights.from_name("Lateral") is OctSrganWeights.OCT_X4_LATERAL
    assert OctSrganWeights.from_name("AVERAGED") is OctSrganWeights.OCT_X4_AVERAGED
    assert OctSrganWeights.from_name("OctSrganWeights.OCT_X4_GAN") is OctSrganWeights.OCT_X4_GAN
    assert OctSrganWeights.from_name("model.pt") is None
    from oct_srgan.pipelines.options import SHIPPED_NAMES

    assert SHIPPED_NAMES == ", ".join(OctSrganWeights.names())  # what --help lists


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.label)
def test_shipped_model_is_small_and_documented(entry: OctSrganWeights) -> None:
    assert entry.path.is_file()
    assert entry.path.stat().st_size < 5_000_000
    _, spec, meta = load_generator_file(entry.path)
    assert spec["scale"] == 4 and spec["in_channels"] == 1
    card = (entry.path.parent / entry.value.meta["card"]).read_text()
    numbers = meta["evaluation"]
    assert f"--model {entry.label}" in card
    assert f"{numbers['model_psnr']:.2f} dB" in card and f"{numbers['bicubic_psnr']:.2f} dB" in card
    assert numbers["model_psnr"] > numbers["bicubic_psnr"]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.label)
def test_weights_entry_carries_the_numbers_stored_in_the_file(entry: OctSrganWeights) -> None:
    _, spec, meta = load_generator_file(entry.path)
    described = entry.value.meta
    assert {k: spec[k] for k in ("scale", "upsample_axes", "in_channels")} == {
        k: described[k] for k in ("scale", "upsample_axes", "in_channels")}
    assert described["degradation"] == meta["degradation"] and described["card"] == meta["card"]
    assert described["evaluation"].keys() == meta["evaluation"].keys()
    for key, value in meta["evaluation"].items():
        assert described["evaluation"][key] == (pytest.approx(value, abs=1e-4) if isinstance(value, float) else value), key


@pytest.mark.parametrize("name, axes, mode", [("default", "both", "bicubic"), ("gan", "both", "bicubic"),
                                              ("lateral", "lateral", "decimate"), ("averaged", "both", "bicubic")])
def test_every_model_name_loads_and_carries_its_degradation(name: str, axes: str, mode: str) -> None:
    loaded = load_model(name)
    assert loaded.source == f"{name} ({OctSrganWeights.from_name(name).value.file})"
    assert (loaded.scale, loaded.axes) == (4, axes)
    assert loaded.degradation is not None
    assert (loaded.degradation["mode"], loaded.degradation["axes"]) == (mode, axes)
    assert loaded.degradation["mix"]["modes"] == ["bicubic", "decimate"]
