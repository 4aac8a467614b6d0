"""What the CPU in hand can do, asked of torch (never assumed from the machine a model was trained on).

One question matters to the course: does this CPU compute bfloat16 in hardware? With AVX512-BF16 or AMX
(x86) or the BF16 extension (Arm), a bf16 matmul is faster than fp32; without it torch emulates bf16 and a
training step of nano takes ~13x longer than in fp32 (measured on a 2-core AVX2 EPYC: 1.60 s vs 0.125 s).
``nano.train`` (bf16 autocast) and ``loading.auto_precision`` (CPU branch) both ask :func:`cpu_has_native_bf16`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

__all__ = ["cpu_capabilities", "cpu_has_native_bf16", "NATIVE_BF16_FEATURES"]

#: ``torch.cpu.get_capabilities()`` keys (cpuinfo's names) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


@lru_cache(maxsize=1)
def cpu_capabilities() -> Mapping[str, Any]:
    """torch's view of this CPU (``torch.cpu.get_capabilities()``: ISA flags, cores, caches); empty if unknown."""
    try:
        import torch

        return dict(torch.cpu.get_capabilities())
    except Exception:  # older torch (no get_capabilities), or cpuinfo could not read the CPU
        return {}


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16, AMX-BF16, Arm BF16); False when torch would
    emulate bf16 (AVX2-only x86, most laptops before 2023) or cannot tell."""
    caps = cpu_capabilities()
    return any(caps.get(feature) is True for feature in NATIVE_BF16_FEATURES)
