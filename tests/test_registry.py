"""The family table: ids, vocabularies, context, infilling, chat formats and architecture numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codellama_course import get_variant, variants
from codellama_course.registry import (FAMILY, INFILLING_SOURCES, UnknownVariantError, llama_param_count,
                                       nano_available, nano_dir)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "codellama-tokenizers"

# Parameter counts the Hub shows for the real checkpoints (safetensors metadata), in billions.
PUBLISHED_PARAMS_B = {"7B": 6.74, "13B": 13.0, "34B": 33.7, "70B": 69.0}


def test_twelve_variants_four_sizes_three_flavors():
    vs = variants()
    assert len(vs) == 12
    assert {(v.size, v.flavor) for v in vs} == {(s, f) for s in ("7B", "13B", "34B", "70B")
                                                 for f in ("base", "python", "instruct")}
    assert len({v.name for v in vs}) == 12


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_hub_ids(v):
    suffix = {"base": "", "python": "-Python", "instruct": "-Instruct"}[v.flavor]
    assert v.hub_id == f"codellama/CodeLlama-{v.size.lower()}{suffix}-hf"
    assert v.gated_hub_id == f"meta-llama/CodeLlama-{v.size.lower()}{suffix}-hf"
    assert get_variant(v.hub_id) is v and get_variant(v.gated_hub_id) is v


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_vocab_and_infilling(v):
    plain = v.flavor == "python" or v.size == "34B"
    assert v.vocab_size == (32000 if plain else 32016)
    assert v.infilling == (v.size in ("7B", "13B") and v.flavor != "python")
    if v.vocab_size == 32000:
        assert not v.infilling, "a 32000-piece vocabulary has no <PRE>/<SUF>/<MID> pieces"


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_context_and_rope(v):
    if v.size == "70B" and v.flavor != "base":  # meta-llama/codellama#188
        assert (v.context_length, v.rope_theta, v.extrapolates_to) == (4096, 10_000.0, None)
    else:
        assert (v.context_length, v.rope_theta, v.extrapolates_to) == (16384, 1_000_000.0, 100_000)


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_chat_format(v):
    expected = None if v.flavor != "instruct" else ("70b" if v.size == "70B" else "llama2")
    assert v.chat_format == expected


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_architecture_numbers(v):
    assert v.head_dim == 128 and v.num_heads * v.head_dim == v.hidden_size
    assert v.uses_gqa == (v.size in ("34B", "70B"))
    if v.uses_gqa:
        assert v.num_kv_heads == 8
    assert v.n_params / 1e9 == pytest.approx(PUBLISHED_PARAMS_B[v.size], rel=0.01)


def test_param_formula_matches_a_real_llama():
    """Count parameters of actual transformers models (MHA, GQA, tied) and compare with the formula."""
    from transformers import LlamaConfig, LlamaForCausalLM

    for kv, tied in ((4, False), (2, False), (1, True)):
        cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=kv, tie_word_embeddings=tied)
        model = LlamaForCausalLM(cfg)
        real = sum(p.numel() for p in model.parameters())
        assert llama_param_count(64, 160, 3, 4, kv, 16, 300, tied) == real


def test_linear_params_are_what_bitsandbytes_converts():
    from transformers import LlamaConfig, LlamaForCausalLM

    from codellama_course.registry import variant_from_config

    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    linear = sum(m.weight.numel() for n, m in model.named_modules()
                 if type(m).__name__ == "Linear" and n != "lm_head")
    assert variant_from_config(cfg.to_dict()).linear_params() == linear


@pytest.mark.parametrize("alias,name", [
    ("7b", "7b"), ("7B-Instruct", "7b-instruct"), ("CodeLlama-13b-Python-hf", "13b-python"),
    ("codellama/CodeLlama-34b-hf", "34b"), ("meta-llama/CodeLlama-70b-Instruct-hf", "70b-instruct"),
    ("70b_python", "70b-python"), ("13b-base", "13b"),
])
def test_get_variant_aliases(alias, name):
    assert get_variant(alias).name == name


def test_unknown_variant_suggests():
    with pytest.raises(UnknownVariantError, match="7b-instruct"):
        get_variant("7b-instrct")
    with pytest.raises(LookupError):
        get_variant("gpt2")


def test_filters_and_bad_filters():
    assert [v.name for v in variants(size="7B")] == ["7b", "7b-python", "7b-instruct"]
    assert {v.size for v in variants(flavor="instruct")} == {"7B", "13B", "34B", "70B"}
    assert len(variants(size=["7b", "13b"], flavor=["base"])) == 2
    with pytest.raises(ValueError):
        variants(size="8B")
    with pytest.raises(ValueError):
        variants(flavor="chat")


def test_table_lists_every_model():
    text = str(variants())
    html = variants()._repr_html_()
    for v in FAMILY:
        assert v.hub_id in text and v.hub_id in html
    assert text.count("\n") == 12 + 1  # header + rule + 12 rows


def test_infilling_sources_recorded():
    assert {"paper_v1", "paper_v3", "meta_readme"} <= set(INFILLING_SOURCES)
    seventy = get_variant("70b")
    assert "paper_v3" in seventy.infilling_note


def test_frozen():
    v = get_variant("7b")
    with pytest.raises(Exception):
        v.vocab_size = 1  # type: ignore[misc]


# ---- the nano model: numbers come from the shipped folder -------------------------------------

needs_nano = pytest.mark.skipif(not nano_available(), reason="nano model not built yet")


@needs_nano
def test_nano_numbers_come_from_its_config():
    cfg = json.loads((nano_dir() / "config.json").read_text())
    v = get_variant("nano")
    assert (v.hidden_size, v.num_layers, v.vocab_size) == (cfg["hidden_size"], cfg["num_hidden_layers"],
                                                          cfg["vocab_size"])
    assert get_variant(str(nano_dir())).name == "nano"
    assert "nano" in variants(include_nano=True).names() and "nano" not in variants().names()


@needs_nano
def test_nano_param_count_matches_weights():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(nano_dir())
    assert get_variant("nano").n_params == sum(p.numel() for p in model.parameters())


# ---- against the reference vocabularies (test data outside the project) -----------------------

@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference tokenizers not available")
@pytest.mark.parametrize("file,names", [
    ("codellama-7b-13b.model", ["7b", "7b-instruct", "13b", "13b-instruct"]),
    ("codellama-70b-instruct.model", ["70b-instruct"]),
    ("codellama-34b-python.model", ["34b", "34b-instruct", "34b-python", "7b-python", "13b-python", "70b-python"]),
])
def test_vocab_sizes_match_reference_tokenizers(file, names):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(REFERENCE / file))
    has_fim = sp.piece_to_id("▁<PRE>") != sp.unk_id()
    for name in names:
        v = get_variant(name)
        assert v.vocab_size == sp.get_piece_size(), name
        assert has_fim == (v.vocab_size == 32016), name
