"""The one SentencePiece adapter (codellama_course.tokenizer), checked against SentencePiece itself on nano's
vocabulary, and the old top-level names of the token tools (they warn and point to their new home)."""

from __future__ import annotations

import warnings

import pytest

import codellama_course as cc
from codellama_course.registry import nano_available, nano_dir
from codellama_course.tokenizer import FIM_PIECES, MetaTokenizer, adapt

needs_nano = pytest.mark.skipif(not nano_available(), reason="the shipped nano model is not in this checkout")
TEXTS = ["def f(x):\n    return x", " leading space", "\n    indented", "x", "", "emoji ☺ and ü"]


@pytest.fixture(scope="module")
def sp():
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(nano_dir() / "tokenizer.model"))


@needs_nano
def test_meta_operations_equal_sentencepiece_by_metas_formulas(sp):
    tok = MetaTokenizer.from_file(nano_dir() / "tokenizer.model")
    smile = sp.piece_to_id("☺")
    assert sp.id_to_piece(smile) == "☺"  # one piece on nano's vocabulary, as on Code Llama's
    for text in TEXTS:
        ids = sp.encode(text)
        assert tok.encode(text) == ids
        assert tok.encode(text, bos=True, eos=True) == [1, *ids, 2]
        assert tok.encode_infilling(text) == sp.encode("☺" + text)[2:]  # Meta: encode("☺" + s)[2:]
        assert tok.decode(ids) == sp.decode(ids)
        assert tok.decode_infilling(ids) == sp.decode([smile] + ids)[1:]  # Meta: decode([☺] + t)[1:]
    assert tok.decode_infilling(tok.encode_infilling(" x = 1")) == " x = 1"  # the leading space survives


@needs_nano
def test_piece_ids_are_the_last_four_of_nanos_vocabulary():
    tok = MetaTokenizer.from_file(nano_dir() / "tokenizer.model")
    n = tok.vocab_size
    assert (tok.prefix_id, tok.suffix_id, tok.middle_id, tok.eot_id) == (n - 4, n - 3, n - 2, n - 1)
    assert [tok.id_piece(i) for i in range(n - 4, n)] == list(FIM_PIECES)
    assert tok.step_id is None  # only CodeLlama-70b-Instruct's vocabulary has <step>


@needs_nano
def test_adapt_reads_a_transformers_tokenizer_through_its_tokenizer_model():
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(nano_dir())
    tok = adapt(hf)
    assert tok.backend == "sentencepiece" and tok.model_file and tok.model_file.endswith("tokenizer.model")
    assert adapt(tok) is tok


def test_bad_input_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        MetaTokenizer.from_file(tmp_path / "missing.model")
    with pytest.raises(TypeError, match="transformers tokenizer"):
        adapt(42)
    with pytest.raises(ValueError, match="exactly one backend"):
        MetaTokenizer(source="nothing")


@pytest.mark.parametrize("old, home", [
    ("inspect_tokenizer", "codellama_course.lessons"),
    ("compare_ids", "codellama_course.lessons"),
    ("compare_infill", "codellama_course.lessons"),
    ("compare_chat", "codellama_course.lessons"),
    ("blog_output", "codellama_course.lessons"),
    ("fill_me", "codellama_course.prompts"),
    ("infill_stop_ids", "codellama_course.prompts"),
    ("chat_style", "codellama_course.prompts"),
])
def test_old_top_level_names_warn_and_still_work(old, home):
    with pytest.warns(FutureWarning, match=f"from {home} import {old}"):
        value = getattr(cc, old)
    assert callable(value) and old not in dir(cc)


def test_core_token_names_stay_at_the_top_level_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("infill_ids", "chat_ids", "chat_prompt", "decode_infill", "chat_stop_ids", "complete", "infill",
                     "chat"):
            assert callable(getattr(cc, name)) and name in dir(cc)
