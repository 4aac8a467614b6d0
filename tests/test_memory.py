"""estimate_memory against Meta's checkpoint sizes and against models measured in this process."""

from __future__ import annotations

import pytest

from codellama_course import estimate_memory, get_variant
from codellama_course.lessons import memory_table
from codellama_course.memory import GIB, kv_cache_bytes, loaded_memory
from codellama_course.registry import nano_dir

from _tiny_llama import make_tiny_llama

# Meta's fp16 checkpoints (consolidated.*.pth / the Hub safetensors), GiB.
PUBLISHED_FP16_GIB = {"7b": 12.55, "13b": 24.24, "34b": 62.85}


@pytest.mark.parametrize("name,gib", PUBLISHED_FP16_GIB.items())
def test_fp16_matches_meta_checkpoint_sizes(name, gib):
    est = estimate_memory(name, "fp16")
    assert est.weights_gib == pytest.approx(gib, rel=0.01)
    assert est.kv_cache_bytes == 0 and est.total_bytes == est.weights_bytes


def test_precisions_order_and_aliases():
    e = {p: estimate_memory("13b", p).weights_bytes for p in ("fp32", "bf16", "fp16", "8bit", "4bit")}
    assert e["fp32"] == 2 * e["fp16"] == 2 * e["bf16"]
    assert e["4bit"] < e["8bit"] < e["fp16"]
    # 4-bit: a bit over a quarter of fp16 (embeddings, lm_head and scales stay bigger)
    assert 0.25 < e["4bit"] / e["fp16"] < 0.32
    assert estimate_memory("13b", "bfloat16").weights_bytes == e["bf16"]
    assert estimate_memory("13b", "nf4").weights_bytes == e["4bit"]
    with pytest.raises(ValueError):
        estimate_memory("13b", "3bit")
    with pytest.raises(ValueError):
        estimate_memory("13b", "fp16", context_tokens=-1)


def test_kv_cache_formula_and_gqa():
    v7, v34 = get_variant("7b"), get_variant("34b")
    # 7B: 2 × 32 layers × 32 heads × 128 × 2 bytes = 0.5 MiB per token
    assert kv_cache_bytes("7b", 1) == 2 * 32 * 32 * 128 * 2 == 512 * 1024
    assert kv_cache_bytes("7b", 16384, batch_size=2) == 2 * 16384 * kv_cache_bytes("7b", 1)
    # 34B has 48 layers but only 8 KV heads: per token less than half of 7B's
    assert kv_cache_bytes("34b", 1) == 2 * 48 * 8 * 128 * 2
    assert v34.kv_bytes_per_token() < v7.kv_bytes_per_token() / 2
    est = estimate_memory("7b", "fp16", context_tokens=4096)
    assert est.kv_cache_bytes == kv_cache_bytes("7b", 4096) == 2 * GIB
    assert est.total_bytes == est.weights_bytes + est.kv_cache_bytes + est.overhead_bytes
    assert est.overhead_bytes > 0


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def test_kv_cache_matches_a_real_cache(tiny_dir):
    """Run a forward pass and measure the DynamicCache transformers actually builds."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    tokens, batch = 37, 3
    out = model(torch.randint(3, 500, (batch, tokens)), use_cache=True)
    cache = out.past_key_values
    measured = 0
    for layer in cache.layers:
        measured += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    assert kv_cache_bytes(str(tiny_dir), tokens, batch, dtype="fp32") == measured
    assert estimate_memory(model, "fp32", tokens, batch).kv_cache_bytes == measured


def _load(folder, precision):
    import torch
    from transformers import AutoModelForCausalLM

    from codellama_course.quantization import quantization_config

    if precision in ("4bit", "8bit"):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16,
                                                    quantization_config=quantization_config(precision))
    return AutoModelForCausalLM.from_pretrained(folder, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[precision])


def _check_against_measurement(folder, precision):
    model = _load(folder, precision)
    est = estimate_memory(str(folder), precision)
    footprint = model.get_memory_footprint()
    assert est.footprint_bytes == pytest.approx(footprint, rel=0.03)
    real = loaded_memory(model)
    assert real["params"] + real["buffers"] == footprint
    assert est.weights_bytes == pytest.approx(real["params"] + real["quant_state"], rel=0.03)
    return est, real


@pytest.mark.parametrize("precision", ["fp32", "bf16", "8bit", "4bit"])
def test_matches_measured_tiny_gqa_model(tiny_dir, precision):
    est, real = _check_against_measurement(tiny_dir, precision)
    if precision in ("4bit", "8bit"):
        assert real["quant_state"] > 0 and est.quant_state_bytes == pytest.approx(real["quant_state"], rel=0.03)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "4bit"])
def test_matches_measured_nano(precision):
    _check_against_measurement(nano_dir(), precision)
    assert estimate_memory("nano", precision).n_params == get_variant("nano").n_params


def test_memory_table_grid():
    table = memory_table(["7b", "34b"], ["fp16", "4bit"], context_tokens=1024)
    assert len(table) == 4
    text = str(table)
    for e in table:
        assert f"{e.total_gib:.2f}" in text
    assert "1,024" in text


def test_str_mentions_parts():
    e = estimate_memory("7b", "4bit", context_tokens=2048)
    s = str(e)
    assert f"{e.weights_gib:.2f}" in s and f"{e.kv_cache_gib:.2f}" in s and f"{e.total_gib:.2f}" in s


@pytest.mark.parametrize("old,new", [("measure_model", "codellama_course.memory:loaded_memory"),
                                     ("memory_table", "codellama_course.lessons:memory_table"),
                                     ("measure_precisions", "codellama_course.lessons:measure_precisions"),
                                     ("roofline_table", "codellama_course.lessons:roofline_table")])
def test_moved_names_still_work_with_a_warning(old, new):
    import importlib

    import codellama_course as cc

    module, name = new.split(":")
    with pytest.warns(FutureWarning, match=f"from {module} import {name}"):
        assert getattr(cc, old) is getattr(importlib.import_module(module), name)
