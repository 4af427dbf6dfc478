"""The shipped default model file: small, documented by its card, described by its weights entry."""

from __future__ import annotations

import pytest

from oct_srgan.checkpoint import load_generator_file
from oct_srgan.loading import OctSrganWeights

DEFAULT_MODEL_FILE = OctSrganWeights.DEFAULT.path


def test_default_model_is_small_and_documented() -> None:
    assert DEFAULT_MODEL_FILE.is_file()
    assert DEFAULT_MODEL_FILE.stat().st_size < 5_000_000
    _, spec, meta = load_generator_file(DEFAULT_MODEL_FILE)
    assert spec["scale"] == 4 and spec["in_channels"] == 1
    card = (DEFAULT_MODEL_FILE.parent / "MODEL_CARD.md").read_text()
    numbers = meta["evaluation"]
    assert f"{numbers['model_psnr']:.2f} dB" in card and f"{numbers['bicubic_psnr']:.2f} dB" in card
    assert numbers["model_psnr"] > numbers["bicubic_psnr"]


def test_default_weights_entry_carries_the_numbers_stored_in_the_file() -> None:
    entry = OctSrganWeights.from_name("default")
    assert entry is OctSrganWeights.DEFAULT is OctSrganWeights.OCT_X4
    _, spec, meta = load_generator_file(entry.path)
    described = entry.value.meta
    assert {k: spec[k] for k in ("scale", "upsample_axes", "in_channels")} == {
        k: described[k] for k in ("scale", "upsample_axes", "in_channels")}
    assert described["degradation"] == meta["degradation"] and described["card"] == meta["card"]
    assert described["evaluation"].keys() == meta["evaluation"].keys()
    for key, value in meta["evaluation"].items():
        assert described["evaluation"][key] == (pytest.approx(value, abs=1e-4) if isinstance(value, float) else value), key
