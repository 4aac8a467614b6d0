"""Precision names -> one spec, and what "auto" means on machines described by their facts (no probes)."""

from __future__ import annotations

import pytest

from codellama_course.precision import PrecisionSpec, choose_precision, parse_precision, torch_dtype

GIB = 2**30


def test_a_spec_is_parsed_once_and_passed_on():
    spec = parse_precision("fp4-nodq")
    assert spec == PrecisionSpec("fp4-nodq", "4bit", "fp4", False) and parse_precision(spec) is spec
    assert spec.bits == 4 and spec.quantized and not spec.is_auto
    assert parse_precision("auto").is_auto and parse_precision(None).is_auto
    with pytest.raises(ValueError, match="no bit width"):
        parse_precision("auto").bits


def test_torch_dtype_only_for_dense_precisions():
    import torch

    assert torch_dtype("half") == torch.float16 and torch_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="not a dense precision"):
        torch_dtype("4bit")


def _need(table: dict[str, float]):
    return lambda precision: int(table[precision] * GIB)


# 7B with a 4,096-token context needs 14.9 GiB in bf16/fp16 (tests/test_preflight.py); its fp32 weights are 25.1 GiB.
SEVEN_B = {"bf16": 14.9, "fp16": 14.9}
SEVEN_B_FP32_WEIGHTS = int(25.1 * GIB)


@pytest.mark.parametrize("facts,expected", [
    (dict(cuda=True, gpu_bf16=True), "bf16"),                                       # A100, no model in mind
    (dict(cuda=True, gpu_bf16=False), "fp16"),                                      # T4: bf16 only emulated
    (dict(cuda=True, gpu_bf16=False, capacity_bytes=int(14.7 * GIB), bitsandbytes_usable=True,
          need_bytes=_need(SEVEN_B)), "4bit"),                                      # T4 + 7B: does not fit in fp16
    (dict(cuda=True, gpu_bf16=False, capacity_bytes=int(14.7 * GIB), bitsandbytes_usable=False,
          need_bytes=_need(SEVEN_B)), "fp16"),                                      # ...without bitsandbytes: fp16
    (dict(cuda=True, gpu_bf16=True, capacity_bytes=int(22 * GIB), bitsandbytes_usable=True,
          need_bytes=_need(SEVEN_B)), "bf16"),                                      # L4 + 7B: 68 % of 22 GiB
    (dict(cuda=False, mps=True), "fp16"),                                           # Apple
    (dict(cuda=False), "fp32"),                                                     # CPU, no model in mind
    (dict(cuda=False, cpu_bf16=True, capacity_bytes=40 * GIB, fp32_weights_bytes=SEVEN_B_FP32_WEIGHTS), "bf16"),
    (dict(cuda=False, cpu_bf16=False, capacity_bytes=40 * GIB, fp32_weights_bytes=SEVEN_B_FP32_WEIGHTS), "fp32"),
    (dict(cuda=False, cpu_bf16=False, capacity_bytes=16 * GIB, fp32_weights_bytes=SEVEN_B_FP32_WEIGHTS), "bf16"),
    (dict(cuda=False, cpu_bf16=True, capacity_bytes=128 * GIB, fp32_weights_bytes=SEVEN_B_FP32_WEIGHTS), "fp32"),
    (dict(cuda=True, gpu_bf16=True, forced="nf4-nodq"), "nf4-nodq"),                # CODELLAMA_COURSE_PRECISION
    (dict(cuda=False, forced="auto"), "fp32"),
])
def test_choose_precision(facts, expected):
    assert choose_precision(**facts) == expected


def test_a_forced_typo_says_which_variable():
    with pytest.raises(ValueError, match="CODELLAMA_COURSE_PRECISION='bf61'.*unset it"):
        choose_precision(cuda=False, forced="bf61")
