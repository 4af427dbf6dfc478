"""Native-bf16 detection and the inference precision rule."""

from __future__ import annotations

import pytest
import torch

from oct_srgan import precision


def cpu_has_bf16_flag() -> bool:
    flags = open("/proc/cpuinfo").read()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_native_bf16_on_cpu_follows_the_cpu_flags() -> None:
    assert precision.native_bf16("cpu") == (cpu_has_bf16_flag() or "AMX" in torch.backends.cpu.get_cpu_capability())


def test_native_bf16_is_off_when_onednn_is_capped_below_avx512_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert not precision.native_bf16("cpu")
    assert precision.training_dtype("cpu") is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert precision.native_bf16("cpu")


def test_training_uses_bf16_only_where_native() -> None:
    expected = torch.bfloat16 if precision.native_bf16("cpu") else None
    assert precision.training_dtype("cpu") is expected


def test_auto_picks_bf16_only_for_8_bit_output_on_native_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.choose_inference_precision("auto", "cpu", 8)[0] == "bf16"
    assert precision.choose_inference_precision("auto", "cpu", 16)[0] == "fp32"
    assert precision.choose_inference_precision("auto", "cpu", None)[0] == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    chosen, why = precision.choose_inference_precision("auto", "cpu", 8)
    assert chosen == "fp32" and "no native bf16" in why


def test_explicit_precision_wins_and_bad_names_are_refused() -> None:
    assert precision.choose_inference_precision("bf16", "cpu", 16) == ("bf16", "requested")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.choose_inference_precision("fp16", "cpu", 8)
