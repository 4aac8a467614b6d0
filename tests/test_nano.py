"""The nano Code Llama: tokenizer shape, FIM transformation, training loop, shipped files."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codellama_course import nano, nano_data
from codellama_course.tokenizer import FIM_PIECES, MetaTokenizer

SNIPPET = textwrap.dedent(
    '''\
    def remove_non_ascii(s: str) -> str:
        """Remove non-ASCII characters."""
        result = ""
        for c in s:
            if ord(c) < 128:
                result += c
        return result
    '''
)


@pytest.fixture(scope="module")
def codec() -> MetaTokenizer:
    return MetaTokenizer.from_file(nano.NANO_DIR / "tokenizer.model")


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_has_code_llama_special_ids(codec):
    sp = codec.sp
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    # the four FIM pieces close the vocabulary, in Code Llama's order (PRE, SUF, MID, EOT)
    size = sp.get_piece_size()
    assert [sp.id_to_piece(i) for i in range(size - 4, size)] == list(FIM_PIECES)
    assert (codec.prefix_id, codec.suffix_id, codec.middle_id, codec.eot_id) == tuple(range(size - 4, size))


def test_tokenizer_byte_fallback_and_indentation_pieces(codec):
    sp = codec.sp
    assert sp.piece_to_id("<0x0A>") == 13  # newline by byte fallback, as in Llama (id 13)
    assert sp.decode(sp.encode("naïve ☃ 🦙")) == "naïve ☃ 🦙"  # nothing is <unk>
    assert 0 not in sp.encode("🦙 unusual ✓ text")
    pieces = sp.encode("        return x", out_type=str)
    whitespace = [p for p in pieces if set(p) == {"▁"}]
    assert 1 <= len(whitespace) <= 2 and len(pieces) <= 4, pieces  # indentation is pieces, not 9 tokens


def test_transformers_loads_it_as_code_llama_tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(nano.NANO_DIR)
    assert type(tok).__name__ == "CodeLlamaTokenizer"
    assert tok.convert_tokens_to_ids(list(FIM_PIECES)) == [tok.prefix_id, tok.suffix_id, tok.middle_id, tok.eot_id]
    codec = MetaTokenizer.from_file(nano.NANO_DIR / "tokenizer.model")
    assert tok("def f(x):\n    return x")["input_ids"] == [1, *codec.encode("def f(x):\n    return x")]
    enc = tok("def f(x):\n    <FILL_ME>\n    return y")["input_ids"]
    assert tok.prefix_id in enc and tok.suffix_id in enc and tok.middle_id in enc


def test_encode_infilling_is_metas_encode_infilling(codec):
    for text in ["\n    return result\n", "x = 1", " leading space", ""]:
        ids = codec.encode_infilling(text)
        assert ids == codec.sp.encode("☺" + text)[2:]
        assert codec.sp.decode(ids) == text.lstrip(" ") if text.startswith(" ") else codec.sp.decode(ids) == text
    # with the implicit space, a word at the start gets '▁'; without it, it does not
    assert codec.sp.id_to_piece(codec.encode("return")[0]).startswith("▁")
    assert not codec.sp.id_to_piece(codec.encode_infilling("return")[0]).startswith("▁")


# --- fill-in-the-middle ------------------------------------------------------------------------


def test_fim_split_covers_the_document():
    rng = random.Random(0)
    for _ in range(200):
        prefix, middle, suffix = nano_data.fim_split(SNIPPET, rng)
        assert prefix + middle + suffix == SNIPPET


def _layout(codec, ids):
    if ids[1] != codec.prefix_id:
        return "plain"
    return "spm" if ids[2] == codec.suffix_id else "psm"


def test_fim_transform_layouts_match_metas_prompts(codec):
    seen = {"plain": 0, "psm": 0, "spm": 0}
    for seed in range(400):
        rng = random.Random(seed)
        ids = nano_data.fim_transform(codec, SNIPPET, rng)
        layout = _layout(codec, ids)
        seen[layout] += 1
        # replay the same random draws to know the split
        replay = random.Random(seed)
        if replay.random() >= nano_data.FIM_RATE:
            assert ids == [1, *codec.encode(SNIPPET), 2]
            continue
        prefix, middle, suffix = nano_data.fim_split(SNIPPET, replay)
        middle_ids = [*codec.encode_infilling(middle), codec.eot_id, codec.eos_id]
        if layout == "spm":
            assert ids == [1, codec.prefix_id, codec.suffix_id, *codec.encode_infilling(suffix), codec.middle_id,
                           *codec.encode(prefix), *middle_ids]
        else:
            assert ids == [1, codec.prefix_id, *codec.encode(prefix), codec.suffix_id,
                           *codec.encode_infilling(suffix), codec.middle_id, *middle_ids]
    # 90 % FIM, half of it SPM (binomial bounds, ~4.5 sigma)
    assert 20 <= seen["plain"] <= 65
    assert 130 <= seen["spm"] <= 230 and 130 <= seen["psm"] <= 230


def test_training_documents_are_spans_of_whole_lines():
    rng = random.Random(1)
    files = [SNIPPET * 5]
    for _ in range(50):
        doc = nano_data.sample_document(files, rng, max_chars=300)
        assert 0 < len(doc) <= 300
        assert all(line.strip() in SNIPPET for line in doc.splitlines())


def test_short_spans_are_log_uniform():
    rng = random.Random(2)
    files = ["\n".join(f"x{i} = {i}" for i in range(200))]
    lengths = [len(nano_data.sample_document(files, rng, max_chars=10_000, span_lines=(1, 80), log_uniform=True).splitlines())
               for _ in range(2000)]
    assert min(lengths) == 1 and max(lengths) <= 80
    # log-uniform over 1..80: about 30 % of spans are 1-3 lines, about as many as 25-80 lines
    assert 0.2 < sum(n <= 3 for n in lengths) / len(lengths) < 0.4
    assert 0.2 < sum(n >= 25 for n in lengths) / len(lengths) < 0.4


def test_short_middles_are_character_level_and_mostly_short():
    document = "".join(f"    value_{i} = compute({i}, step={i * 3})\n" for i in range(60))  # ~2.4 k chars
    rng = random.Random(3)
    splits = [nano_data.fim_split(document, rng, short_middle_rate=1.0) for _ in range(2000)]
    assert all("".join(parts) == document for parts in splits)
    middles = sorted(len(m) for _, m, _ in splits)
    assert middles[len(middles) // 2] < 80  # median about a line (uniform cut points: ~800 characters)
    assert sum(not m.endswith("\n") for _, m, _ in splits) > 1500  # cut anywhere, not at line ends
    # the default keeps Meta's uniform cut points and draws exactly what it always drew
    assert nano_data.fim_split(document, random.Random(4)) == nano_data.fim_split(document, random.Random(4), short_middle_rate=0.0)
    uniform = sorted(len(nano_data.fim_split(document, rng)[1]) for _ in range(2000))
    assert uniform[len(uniform) // 2] > 500


def test_line_middles_are_whole_lines():
    document = "".join(f"    value_{i} = compute({i})\n" for i in range(60))
    rng = random.Random(5)
    counts = []
    for _ in range(1000):
        prefix, middle, suffix = nano_data.fim_split(document, rng, line_middle_rate=1.0)
        assert prefix + middle + suffix == document
        assert middle.endswith("\n") and (prefix == "" or prefix.endswith("\n"))
        counts.append(middle.count("\n"))
    assert min(counts) == 1 and max(counts) <= 8
    assert 0.2 < counts.count(1) / len(counts) < 0.45  # log-uniform over 1-8 lines
    singles = [nano_data.fim_split(document, rng, line_middle_rate=1.0, single_line_share=0.5)[1].count("\n")
               for _ in range(1000)]
    assert 0.57 < singles.count(1) / len(singles) < 0.77  # half exactly one line, the rest log-uniform 1-8


# --- training ----------------------------------------------------------------------------------


def test_a_tiny_training_run_learns(codec):
    import torch

    torch.set_num_threads(1)
    cfg = nano.NanoConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                          context=64, batch_size=4, max_steps=40, warmup_steps=5, learning_rate=5e-3,
                          vocab_size=codec.sp.get_piece_size(), bf16_autocast=False)
    model, log = nano.train(cfg, codec, [SNIPPET] * 3, [SNIPPET], eval_every=40, progress=False)
    losses = [row["loss"] for row in log.rows]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0  # it learned the snippet
    assert "val_loss" in log.rows[-1] and "val_fim_middle_loss" in log.rows[-1]


def test_bitsandbytes_shape_rule_is_enforced():
    with pytest.raises(ValueError, match="multiple of 64"):
        nano.llama_config(nano.NanoConfig(hidden_size=200))


def test_learning_rate_schedule():
    cfg = nano.NanoConfig(max_steps=1000, warmup_steps=100)
    assert nano.learning_rate(cfg, 0) == pytest.approx(cfg.learning_rate / 100)
    assert nano.learning_rate(cfg, 99) == pytest.approx(cfg.learning_rate)
    assert nano.learning_rate(cfg, 1000) == pytest.approx(cfg.min_learning_rate)


# --- data and licenses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("license_text", "ok"),
    [("MIT", True), ("BSD-3-Clause", True), ("Apache-2.0; Apache Software License", True),
     ("Python Software Foundation License", True), ("MPL-2.0 AND MIT", False), ("GPLv3", False), ("", False),
     ("LGPL-2.1-or-later", False)],
)
def test_only_permissive_licenses(license_text, ok):
    assert nano_data._is_permissive(license_text) is ok


def test_humaneval_and_generated_files_are_filtered():
    good = SNIPPET * 3
    assert nano_data._good_python(good)
    assert not nano_data._good_python(good + "# from HumanEval/0\n")
    assert not nano_data._good_python(good + "x = [" + "1, " * 200 + "]\n")  # a 600-char line: generated data
    assert not nano_data._good_python(good + "def broken(:\n")


# --- the shipped model -------------------------------------------------------------------------


def test_shipped_folder_is_small_and_complete():
    names = {p.name for p in nano.NANO_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer.json",
            "tokenizer_config.json", "README.md"} <= names
    total = sum(p.stat().st_size for p in nano.NANO_DIR.iterdir() if p.name != "training_log.csv")
    assert total <= 20 * 1024 * 1024


def test_shipped_config_follows_code_llama_conventions(codec):
    config = json.loads((nano.NANO_DIR / "config.json").read_text())
    generation = json.loads((nano.NANO_DIR / "generation_config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["rope_parameters"]["rope_theta"] == 1_000_000.0
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    assert config["vocab_size"] == codec.sp.get_piece_size()
    assert set(generation["eos_token_id"]) == {codec.eos_id, codec.eot_id}  # stops at </s> and ▁<EOT>
    for size in (config["hidden_size"], config["intermediate_size"]):
        assert size % 64 == 0


def test_shipped_model_loads_with_the_network_off():
    """Load in a fresh interpreter where every socket connection raises."""
    script = textwrap.dedent(
        f"""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network is off in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(nano.NANO_DIR)!r})
        tok = AutoTokenizer.from_pretrained({str(nano.NANO_DIR)!r})
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert all(m.in_features % 64 == 0 and m.out_features % 32 == 0 for m in linear)
        out = model.generate(**tok("def add(a, b):", return_tensors="pt"), max_new_tokens=8, do_sample=False)
        assert out.shape[1] > 5
        print("ok")
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_model_card_reports_the_measured_figures():
    card = (nano.NANO_DIR / "README.md").read_text()
    for section in ("Training data", "Architecture", "Training", "Measured quality", "Intended use"):
        assert f"## {section}" in card
    quality_file = nano.NANO_DIR / "quality.json"
    quality = json.loads(quality_file.read_text())
    assert f"{quality['humaneval_parse_rate']:.1%}" in card
    assert f"{quality['infill_eot_rate']:.1%}" in card
    meta = json.loads((nano.NANO_DIR / "training_meta.json").read_text())
    for source in meta["corpus"]["sources"]:
        assert source["name"] in card and source["license"] in card
