"""Which number format to compute in: bf16 only where the hardware runs it natively.

bf16 autocast is ~1.35-1.9x faster than fp32 on CPUs with AVX512-BF16 or AMX and on recent GPUs,
but emulated (about 5x slower) on AVX2-only CPUs, so it is chosen per machine at start-up. For
inference it also costs up to ~7.5e-3 absolute error on [0, 1] outputs: below half a step of an
8-bit output (1/255/2 = 2e-3 is exceeded only at the rare worst pixel, invisible), but ~500 steps of
a 16-bit one. Rule for ``auto``: bf16 when native *and* the output is 8-bit; fp32 otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from oct_srgan.enums import InferencePrecision, look_up_option

BF16_MAX_BITS = 8
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN runs the convs; capped below AVX512_CORE_BF16 (``ONEDNN_MAX_CPU_ISA``) it emulates bf16.
_ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """True when ``device`` computes bf16 in hardware (CUDA: ``is_bf16_supported``; CPU: AVX512-BF16/AMX,
    unless oneDNN is capped below them with ``ONEDNN_MAX_CPU_ISA``, e.g. to act as an AVX2-only CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_ISAS_WITHOUT_BF16:
        return False
    capability = torch.backends.cpu.get_cpu_capability()
    if "AMX" in capability.upper():
        return True
    return any(flag in _cpu_flags() for flag in _CPU_BF16_FLAGS)


def training_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for training on ``device`` (weights stay fp32), or None for plain fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.bfloat16 if native_bf16(device) else None


def choose_inference_precision(requested: str, device: str | torch.device, output_bits: int | None) -> tuple[str, str]:
    """(precision, why) for inference; ``auto`` applies the module rule, an explicit choice wins.

    ``output_bits`` is the bit depth of the files to write (None: unknown, treated as more than 8).
    """
    look_up_option(requested, InferencePrecision, "precision")
    if requested != "auto":
        return requested, "requested"
    if not native_bf16(device):
        return "fp32", f"auto: no native bf16 on {torch.device(device).type}"
    if output_bits is None or output_bits > BF16_MAX_BITS:
        return "fp32", f"auto: native bf16, but {output_bits or 'unknown'}-bit output needs fp32 accuracy"
    return "bf16", f"auto: native bf16 and {output_bits}-bit output"
