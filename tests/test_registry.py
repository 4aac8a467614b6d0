"""The family table: ids, vocabularies, context, infilling, chat formats and architecture numbers."""

from __future__ import annotations

import json

import pytest

from codellama_course import get_variant, variants
from codellama_course.registry import FAMILY, INFILLING_SOURCES, UnknownVariantError, llama_param_count, nano_dir

from _meta_reference import REF_DIR as REFERENCE

# The family as published, written out by hand (not derived from the registry's rules): Hub repo, vocabulary
# (config.json), infilling (paper + Meta's README: 7B/13B base and Instruct), max_position_embeddings and
# rope_theta (config.json; 70B Python/Instruct: meta-llama/codellama#188), chat format, and the exact
# parameter count the Hub's safetensors metadata shows.
FAMILY_TABLE = [
    # name            repo                        vocab  infill context rope_theta   chat      params
    ("7b",           "CodeLlama-7b-hf",           32016, True,  16384, 1_000_000.0, None,     6_738_546_688),
    ("7b-python",    "CodeLlama-7b-Python-hf",    32000, False, 16384, 1_000_000.0, None,     6_738_415_616),
    ("7b-instruct",  "CodeLlama-7b-Instruct-hf",  32016, True,  16384, 1_000_000.0, "llama2", 6_738_546_688),
    ("13b",          "CodeLlama-13b-hf",          32016, True,  16384, 1_000_000.0, None,     13_016_028_160),
    ("13b-python",   "CodeLlama-13b-Python-hf",   32000, False, 16384, 1_000_000.0, None,     13_015_864_320),
    ("13b-instruct", "CodeLlama-13b-Instruct-hf", 32016, True,  16384, 1_000_000.0, "llama2", 13_016_028_160),
    ("34b",          "CodeLlama-34b-hf",          32000, False, 16384, 1_000_000.0, None,     33_743_970_304),
    ("34b-python",   "CodeLlama-34b-Python-hf",   32000, False, 16384, 1_000_000.0, None,     33_743_970_304),
    ("34b-instruct", "CodeLlama-34b-Instruct-hf", 32000, False, 16384, 1_000_000.0, "llama2", 33_743_970_304),
    ("70b",          "CodeLlama-70b-hf",          32016, False, 16384, 1_000_000.0, None,     68_976_910_336),
    ("70b-python",   "CodeLlama-70b-Python-hf",   32000, False, 4096,  10_000.0,    None,     68_976_648_192),
    ("70b-instruct", "CodeLlama-70b-Instruct-hf", 32016, False, 4096,  10_000.0,    "70b",    68_976_910_336),
]
# Layer sizes from each size's config.json (and the paper's table of hyper-parameters):
# (hidden, intermediate, layers, attention heads, KV heads)
ARCHITECTURE = {"7B": (4096, 11008, 32, 32, 32), "13B": (5120, 13824, 40, 40, 40),
                "34B": (8192, 22016, 48, 64, 8), "70B": (8192, 28672, 80, 64, 8)}


def test_twelve_variants_four_sizes_three_flavors():
    vs = variants()
    assert len(vs) == 12
    assert {(v.size, v.flavor) for v in vs} == {(s, f) for s in ("7B", "13B", "34B", "70B")
                                                 for f in ("base", "python", "instruct")}
    assert vs.names() == [row[0] for row in FAMILY_TABLE]


@pytest.mark.parametrize("name,repo,vocab,infill,context,theta,chat,params", FAMILY_TABLE, ids=[row[0] for row in FAMILY_TABLE])
def test_the_family_as_published(name, repo, vocab, infill, context, theta, chat, params):
    v = get_variant(name)
    assert (v.hub_id, v.gated_hub_id) == (f"codellama/{repo}", f"meta-llama/{repo}")
    assert get_variant(v.hub_id) is v and get_variant(v.gated_hub_id) is v and get_variant(repo) is v
    assert (v.vocab_size, v.infilling, v.context_length, v.rope_theta, v.chat_format) == (vocab, infill, context,
                                                                                         theta, chat)
    assert v.extrapolates_to == (100_000 if context == 16384 else None)
    assert v.n_params == params


@pytest.mark.parametrize("v", FAMILY, ids=lambda v: v.name)
def test_architecture_numbers(v):
    hidden, inter, layers, heads, kv = ARCHITECTURE[v.size]
    assert (v.hidden_size, v.intermediate_size, v.num_layers, v.num_heads, v.num_kv_heads, v.head_dim) == (
        hidden, inter, layers, heads, kv, 128)
    assert v.uses_gqa == (kv != heads)


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

def test_nano_numbers_come_from_its_config():
    cfg = json.loads((nano_dir() / "config.json").read_text())
    v = get_variant("nano")
    assert (v.hidden_size, v.num_layers, v.vocab_size) == (cfg["hidden_size"], cfg["num_hidden_layers"],
                                                          cfg["vocab_size"])
    assert get_variant(str(nano_dir())).name == "nano"
    assert "nano" in variants(include_nano=True).names() and "nano" not in variants().names()


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


def test_nano_dir_is_the_one_way_and_nano_dir_constant_warns():
    import codellama_course as cc

    assert cc.nano_dir() == nano_dir() and (nano_dir() / "config.json").is_file()
    with pytest.warns(FutureWarning, match=r"from codellama_course.registry import nano_dir` and call `nano_dir\(\)`"):
        assert cc.NANO_DIR == nano_dir()
