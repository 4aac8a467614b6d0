"""The CPU probe (bf16 in hardware or not) and the defaults that follow from it: nano's bf16 autocast and
``load(precision="auto")`` on a CPU. The probe is monkeypatched, so each decision is checked on every CPU."""

from __future__ import annotations

import pytest

from codellama_course import hardware, memory, nano
from codellama_course.tokenizer import MetaTokenizer

GIB = 2**30


@pytest.fixture
def capabilities(monkeypatch):
    """Make torch report the given CPU capabilities."""
    import torch

    def use(caps: dict):
        hardware.cpu_capabilities.cache_clear()
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)

    yield use
    hardware.cpu_capabilities.cache_clear()


@pytest.mark.parametrize("caps,native", [
    ({"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}, False),
    ({"architecture": "x86_64", "avx2": True, "avx512_bf16": True}, True),  # Zen 4, Cooper Lake+
    ({"architecture": "x86_64", "avx2": True, "avx512_bf16": False, "amx_bf16": True}, True),  # Sapphire Rapids
    ({"architecture": "arm64", "neon": True, "bf16": True}, True),  # Graviton 3, Apple M2+
    ({"architecture": "arm64", "neon": True, "bf16": False}, False),
    ({}, False),  # torch could not tell
])
def test_native_bf16_is_read_from_torch(capabilities, caps, native):
    capabilities(caps)
    assert hardware.cpu_has_native_bf16() is native


def test_probe_survives_a_torch_without_get_capabilities(monkeypatch):
    import torch

    hardware.cpu_capabilities.cache_clear()
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    try:
        assert hardware.cpu_has_native_bf16() is False
    finally:
        hardware.cpu_capabilities.cache_clear()


@pytest.mark.parametrize("native", [True, False])
def test_nano_training_autocasts_bf16_only_on_native_bf16(monkeypatch, native):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert nano.NanoConfig().bf16_autocast is None  # the default asks the CPU
    assert nano.NanoConfig().uses_bf16_autocast() is native
    assert nano.NanoConfig(bf16_autocast=True).uses_bf16_autocast() is True  # an explicit choice wins
    assert nano.NanoConfig(bf16_autocast=False).uses_bf16_autocast() is False


@pytest.mark.parametrize("native", [True, False])
def test_train_passes_the_decision_to_the_loss(monkeypatch, native):
    seen = []
    real = nano._next_token_loss

    def spy(model, batch, *, bf16=False):
        seen.append(bf16)
        return real(model, batch, bf16=bf16)

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(nano, "_next_token_loss", spy)
    codec = MetaTokenizer.from_file(nano.NANO_DIR / "tokenizer.model")
    cfg = nano.NanoConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                          context=16, batch_size=1, max_steps=2, warmup_steps=1,
                          vocab_size=codec.sp.get_piece_size())
    nano.train(cfg, codec, ["def f(x):\n    return x\n"] * 2, progress=False)
    assert seen == [native, native]


@pytest.mark.parametrize("native,capacity_gib,expected", [
    (True, 40, "bf16"),   # 7B fp32 weights (25 GiB) > half of 40 GiB, and bf16 is fast here
    (False, 40, "fp32"),  # they fit; emulated bf16 would be ~13x slower
    (False, 16, "bf16"),  # fp32 cannot fit: bf16 is the only way in (slow)
    (True, 128, "fp32"),
    (False, 128, "fp32"),
])
def test_auto_precision_on_cpu_asks_the_cpu(monkeypatch, native, capacity_gib, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (capacity_gib * GIB, "CPU RAM"))
    assert memory.auto_precision("7b") == expected
    assert memory.auto_precision() == memory.auto_precision("nano") == "fp32"


@pytest.mark.parametrize("caps,expected", [
    ({"cpu_name": "AMD EPYC", "num_physical_cores": 2, "avx2": True, "avx512_bf16": False},
     "AMD EPYC · 2 cores · AVX2 · bf16 in hardware no (emulated: nano trains in fp32 here)"),
    ({"cpu_name": "Intel Xeon", "num_physical_cores": 8, "avx512_bf16": True, "amx_bf16": True},
     "Intel Xeon · 8 cores · AVX2 · bf16 in hardware yes (avx512_bf16, amx_bf16)"),
])
def test_preflight_reports_the_cpu(capabilities, monkeypatch, caps, expected):
    import torch

    from codellama_course import preflight

    capabilities(caps)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    line = next(line for line in str(preflight()).splitlines() if line.strip().startswith("CPU "))
    assert line.split(None, 1)[1] == expected
