"""Infilling prompts: exact to Meta's reference ids (codellama_course.prompts)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from _meta_reference import (
    GOLDEN_INFILL,
    GOLDEN_PREFIX,
    GOLDEN_SUFFIX,
    NANO_DIR,
    VOCAB_7B,
    VOCAB_34B,
    VOCAB_70B,
    MetaReference,
    load_tokenizer,
    make_folder,
    random_splits,
    require,
)
from codellama_course import tokenizer
from codellama_course.lessons import compare_infill, inspect_tokenizer
from codellama_course.prompts import (
    decode_infill,
    fill_me,
    infill_ids,
    infill_stop_ids,
)

N_RANDOM = 300


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sp7():
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(require(VOCAB_7B)))


@pytest.fixture(scope="module")
def folder7(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("vocab7") / "tok", require(VOCAB_7B))


@pytest.fixture(scope="module")
def hf7(folder7):
    return load_tokenizer(folder7)


@pytest.fixture(scope="module")
def hf7_no_model(tmp_path_factory, folder7):
    """A transformers tokenizer whose folder has tokenizer.json but no tokenizer.model."""
    out = tmp_path_factory.mktemp("vocab7json") / "tok"
    load_tokenizer(folder7).save_pretrained(str(out))
    assert not (out / "tokenizer.model").exists() and (out / "tokenizer.json").exists()
    return load_tokenizer(out)


@pytest.fixture(scope="module")
def splits():
    return random_splits(N_RANDOM, seed=20240101)


# ------------------------------------------------------------------------------------------------
# golden ids
# ------------------------------------------------------------------------------------------------
def test_golden_via_sentencepiece_processor(sp7):
    assert infill_ids(sp7, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL


def test_golden_via_model_path():
    path = require(VOCAB_7B)
    assert infill_ids(path, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL
    assert infill_ids(str(path), GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL


def test_golden_via_folder_path(folder7):
    assert infill_ids(folder7, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL


@pytest.mark.parametrize("cls", ["AutoTokenizer", "CodeLlamaTokenizer", "LlamaTokenizer"])
def test_golden_via_transformers_tokenizer(folder7, cls):
    tok = load_tokenizer(folder7, cls)
    assert infill_ids(tok, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL
    assert inspect_tokenizer(tok).backend == "sentencepiece"


def test_inspect_tokenizer_reports_the_segmentation_difference(folder7, sp7):
    info = inspect_tokenizer(load_tokenizer(folder7))
    assert info.backend == "sentencepiece" and info.model_file.endswith("tokenizer.model")
    assert (info.vocab_size, info.bos_id, info.eos_id, info.step_id) == (32016, 1, 2, None)
    assert info.fim_ids == {"▁<PRE>": 32007, "▁<SUF>": 32008, "▁<MID>": 32009, "▁<EOT>": 32010}
    assert info.can_infill and info.chat_style == "llama2"
    # "\n    return": SentencePiece ▁ <0x0A> ▁▁▁ ▁return, transformers ▁ <0x0A> ▁▁▁▁ return
    assert info.probes["\n    return"] == ([29871, 13, 1678, 736], [29871, 13, 268, 2457])
    assert info.transformers_agrees is False
    assert inspect_tokenizer(sp7).transformers_agrees is None
    with pytest.raises(TypeError, match="transformers tokenizer"):
        compare_infill(sp7, "a", "b")


def test_golden_reference_reimplementation(ref7):
    # the test's own re-implementation of Meta's logic reproduces the published ids too
    assert ref7.infill(GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL


def test_special_ids_come_from_the_vocabulary(sp7):
    assert infill_stop_ids(sp7) == [sp7.piece_to_id("▁<EOT>"), sp7.eos_id()] == [32010, 2]
    ids = infill_ids(sp7, "a", "b")
    assert [sp7.id_to_piece(i) for i in (ids[0], ids[1], ids[-1])] == ["<s>", "▁<PRE>", "▁<MID>"]
    assert sp7.id_to_piece(ids[ids.index(32008)]) == "▁<SUF>"


def test_spm_layout(ref7, sp7):
    ids = infill_ids(sp7, GOLDEN_PREFIX, GOLDEN_SUFFIX, suffix_first=True)
    assert ids == ref7.infill(GOLDEN_PREFIX, GOLDEN_SUFFIX, suffix_first=True)
    suffix_ids = ref7.text_no_space(GOLDEN_SUFFIX)
    assert ids == [1, 32007, 32008] + suffix_ids + [32009] + ref7.text(GOLDEN_PREFIX)


# ------------------------------------------------------------------------------------------------
# random splits of real code vs the independent re-implementation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix_first", [False, True], ids=["psm", "spm"])
def test_random_splits_sentencepiece(ref7, sp7, splits, suffix_first):
    assert len(splits) >= 200
    for prefix, suffix in splits:
        assert infill_ids(sp7, prefix, suffix, suffix_first=suffix_first) == ref7.infill(
            prefix, suffix, suffix_first=suffix_first
        ), (prefix, suffix)


def test_random_splits_transformers_tokenizer(ref7, hf7, splits):
    for prefix, suffix in splits:
        assert infill_ids(hf7, prefix, suffix) == ref7.infill(prefix, suffix), (prefix, suffix)


def test_random_splits_fallback_without_tokenizer_model(ref7, hf7_no_model, splits):
    # no tokenizer.model: ids are built from the transformers vocabulary (with a warning); the
    # SentencePiece-like pipeline still reproduces Meta's ids on this vocabulary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for prefix, suffix in splits:
            for sf in (False, True):
                assert infill_ids(hf7_no_model, prefix, suffix, suffix_first=sf) == ref7.infill(
                    prefix, suffix, suffix_first=sf
                ), (prefix, suffix, sf)


def test_decode_infill_matches_reference(ref7, sp7, hf7, hf7_no_model, splits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _, suffix in splits[:120]:
            middle = ref7.text_no_space(suffix)
            want = ref7.decode_no_space(middle)
            assert decode_infill(sp7, middle) == want
            assert decode_infill(hf7, middle) == want
            assert decode_infill(hf7_no_model, middle) == want
    assert decode_infill(sp7, [1121, 353, 525]) == " result = '"  # the leading space survives


# ------------------------------------------------------------------------------------------------
# fallback, state, checks
# ------------------------------------------------------------------------------------------------
def test_fallback_warns_once_and_says_so(hf7_no_model, monkeypatch):
    monkeypatch.setattr(tokenizer, "_WARNED", set())
    with pytest.warns(UserWarning, match="no tokenizer.model"):
        assert infill_ids(hf7_no_model, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infill_ids(hf7_no_model, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL
    assert inspect_tokenizer(hf7_no_model).backend == "transformers"


def test_independent_of_and_does_not_change_tokenizer_state(folder7):
    tok = load_tokenizer(folder7)
    before = tok.backend_tokenizer.to_str()
    first = infill_ids(tok, GOLDEN_PREFIX, GOLDEN_SUFFIX)
    assert tok.backend_tokenizer.to_str() == before  # we changed nothing
    tok(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX)  # transformers' own path swaps the normalizer
    assert tok.backend_tokenizer.to_str() != before
    assert infill_ids(tok, GOLDEN_PREFIX, GOLDEN_SUFFIX) == first == GOLDEN_INFILL


def test_mismatched_tokenizer_model_is_refused(tmp_path):
    # a 34B/Python transformers tokenizer pointed at the 7B tokenizer.model: ids disagree
    tok = load_tokenizer(make_folder(tmp_path / "t34", require(VOCAB_34B), fim=False))
    tok.vocab_file = str(require(VOCAB_7B))
    with pytest.raises(ValueError, match="does not match"):
        infill_ids(tok, "a", "b")


def test_70b_vocabulary_has_the_pieces():
    ref = MetaReference(require(VOCAB_70B))
    assert infill_ids(VOCAB_70B, GOLDEN_PREFIX, GOLDEN_SUFFIX) == ref.infill(GOLDEN_PREFIX, GOLDEN_SUFFIX)


def test_no_fim_vocabulary_is_a_clear_error(tmp_path):
    path = require(VOCAB_34B)
    with pytest.raises(ValueError, match=r"CodeLlama-7b.*CodeLlama-13b") as err:
        infill_ids(path, "a", "b")
    assert "Python" in str(err.value) and "34b" in str(err.value)
    tok = load_tokenizer(make_folder(tmp_path / "t34", path, fim=False))
    with pytest.raises(ValueError, match="no infilling pieces"):
        infill_ids(tok, "a", "b")
    with pytest.raises(ValueError, match="no infilling pieces"):
        infill_stop_ids(tok)


def test_bad_arguments(sp7, tmp_path):
    with pytest.raises(TypeError):
        infill_ids(sp7, b"bytes", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        infill_ids(object(), "a", "b")
    with pytest.raises(FileNotFoundError):
        infill_ids(tmp_path / "missing" / "tokenizer.model", "a", "b")


# ------------------------------------------------------------------------------------------------
# <FILL_ME>
# ------------------------------------------------------------------------------------------------
def test_fill_me_splits_exactly_one_marker():
    assert fill_me("def f(<FILL_ME>):\n") == ("def f(", "):\n")
    assert fill_me("<FILL_ME>") == ("", "")
    with pytest.raises(ValueError, match="exactly one <FILL_ME>.*found 0"):
        fill_me("no marker")
    with pytest.raises(ValueError, match="found 2"):
        fill_me("a<FILL_ME>b<FILL_ME>c")
    with pytest.raises(TypeError):
        fill_me(None)  # type: ignore[arg-type]


def test_fill_me_then_infill_ids_is_golden(sp7):
    assert infill_ids(sp7, *fill_me(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX)) == GOLDEN_INFILL


# ------------------------------------------------------------------------------------------------
# the transformers 5 deviations the lessons show (measured on the 7B reference vocabulary)
# ------------------------------------------------------------------------------------------------
def test_transformers_fill_me_path_differs_from_meta(folder7):
    tok = load_tokenizer(folder7)
    diff = compare_infill(tok, GOLDEN_PREFIX, GOLDEN_SUFFIX)
    assert diff.ours == GOLDEN_INFILL and not diff.equal
    theirs = diff.theirs
    k = theirs.index(32008)
    assert theirs[k + 1] == 29871  # an extra "▁" right after ▁<SUF>
    assert "▁▁▁▁" in str(diff) and "'▁▁▁'" in str(diff)  # indentation split differently
    # decode() drops the middle's leading space; Meta's decode_infilling keeps it
    assert tok.decode([1121, 353, 525]) == "result = '" != decode_infill(tok, [1121, 353, 525])
    # a batch of <FILL_ME> prompts is not split: the marker stays a token, no ▁<PRE>/▁<SUF>/▁<MID>
    batch = tok(["a = <FILL_ME>\n", "b = <FILL_ME>\n"])["input_ids"]
    fill = tok.convert_tokens_to_ids("<FILL_ME>")
    assert all(fill in ids and 32007 not in ids for ids in batch)


# ------------------------------------------------------------------------------------------------
# the course's own nano model
# ------------------------------------------------------------------------------------------------
def test_nano_model_infills():
    assert (NANO_DIR / "tokenizer.model").is_file(), "the nano model folder must ship tokenizer.model"
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(NANO_DIR / "tokenizer.model"))
    pid = {p: sp.piece_to_id(p) for p in ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")}
    assert all(sp.id_to_piece(i) == p for p, i in pid.items())
    prefix, suffix = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
    ids = infill_ids(NANO_DIR, prefix, suffix)
    assert ids[:2] == [sp.bos_id(), pid["▁<PRE>"]] and ids[-1] == pid["▁<MID>"]
    k = ids.index(pid["▁<SUF>"])
    assert ids[2:k] == sp.encode(prefix)
    assert decode_infill(NANO_DIR, ids[k + 1:-1]) == suffix
    assert infill_stop_ids(NANO_DIR) == [pid["▁<EOT>"], sp.eos_id()]
    if (NANO_DIR / "tokenizer_config.json").is_file():
        tok = load_tokenizer(NANO_DIR)
        assert infill_ids(tok, prefix, suffix) == ids
        assert infill_ids(tok, prefix, suffix, suffix_first=True) == infill_ids(NANO_DIR, prefix, suffix, suffix_first=True)
        info = inspect_tokenizer(tok)
        assert info.backend == "sentencepiece" and info.can_infill
